/*
 * engine/engine.c - the forward pass of the BitNet architectures.
 *
 * Reads top to bottom like the model (docs/formats.md, "Forward pass"):
 * embed, then per layer attention and FFN with their norms and residuals,
 * then the final norm and the LM head. Ternary matrices run on the kernel
 * the registry chose; everything else is float (engine/ops.c, engine/fmat.c).
 * Each operation is split across the compute pool; nothing here allocates
 * once the engine is built.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bitnet/error.h"
#include "common/f16.h"
#include "engine/attn.h"
#include "engine/engine.h"
#include "engine/fmat.h"
#include "engine/model_meta.h"
#include "engine/ops.h"
#include "engine/pool.h"
#include "kernels/tq.h"

/* How one weight matrix is multiplied. */
enum wmat_kind { WMAT_TERNARY, WMAT_F16, WMAT_F32, WMAT_Q8_0 };

/* One weight matrix ready for compute: n_rows outputs of k inputs. */
struct wmat {
    enum wmat_kind kind;
    const uint8_t *data;
    size_t row_bytes;
    long n_rows, k;
    float w_scale;   /* I2_S per-tensor scale; 1 otherwise */
    float out_scale; /* the optional `.scale` tensor of the bitnet arch; 1 otherwise */
};

struct layer {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm;
    struct wmat q, k, v, o, gate, up, down;
};

/* Per-sequence state: the KV cache and how far it is filled. */
struct seq {
    bool used;
    int len;
    void *k, *v; /* [n_layer][n_ctx][kv_dim] each, float or half (kv_type) */
};

struct engine {
    gguf_file *file;
    model_meta *meta;
    engine_info info;
    char kernel_reason[160];
    char lm_head_desc[96];
    char fmat_name[32];

    /* hyperparameters, copied out of meta for the hot path */
    int n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, kv_dim, n_vocab, n_ctx, n_rot;
    float eps, rope_base, rope_scale;
    bool relu2;              /* ReLU^2 FFN (bitnet-b1.58) or SiLU (bitnet) */
    bool rope_neox;          /* NEOX rotary pairs (these archs) or NORM */
    const float *rope_freqs; /* optional per-frequency divisors, or NULL */

    struct layer *layers;
    const uint8_t *embd; /* token_embd rows */
    int embd_type;       /* GGUF_DTYPE_F16 or F32 */
    size_t embd_row_bytes;
    struct wmat head;   /* the LM head: token_embd (tied) or output.weight */
    uint8_t *head_copy; /* the in-memory Q8_0 LM head, when asked for */
    uint8_t **repacked; /* n_layer * 7 weight buffers of a repacking kernel */
    bool tq1_as_tq2;    /* TQ1_0 weights converted to TQ2_0 at load for a tq2_0 kernel */
    const float *out_norm;

    const bitnet_kernel *kernel; /* for WMAT_TERNARY */
    const struct fmat_ops *fmat;
    const struct attn_ops *attn_impl; /* attention over the KV cache, chosen for this CPU */
    attn_kv_type kv_type;             /* how the sequences' caches store K and V */
    int attn_q_max;                   /* query heads one attention call serves (scores scratch) */
    pool *pool;

    struct seq *seqs;
    int n_seq_max;

    /* Scratch sized for batch_cap tokens; grown by ensure_batch(). */
    int batch_cap;
    float *x, *h, *q, *kx, *vx, *attn, *ff_g, *ff_u, *tmp;
    uint8_t *act;         /* quantized activations, batch_cap rows of the widest input */
    size_t act_row_bytes; /* bytes of the widest activation row (sizes act) */
    size_t act_stride;    /* row stride of the matrix product in progress */
    float *scores;        /* per thread: attn_q_max * n_ctx */
    int *tok_pos;         /* position of each batch token */
};

/* ---- loading ----------------------------------------------------------- */

static int wmat_bind(struct wmat *m, const gguf_tensor *t, const gguf_tensor *scale, char *err,
                     size_t err_len)
{
    memset(m, 0, sizeof(*m));
    m->k = t->ne[0];
    m->n_rows = t->ne[1];
    m->w_scale = 1.0f;
    m->out_scale = 1.0f;
    m->data = t->data;
    switch (t->dtype) {
    case GGUF_DTYPE_I2_S:
        m->kind = WMAT_TERNARY;
        m->row_bytes = (size_t)m->k / 4;
        memcpy(&m->w_scale, t->data + (size_t)m->k * (size_t)m->n_rows / 4, 4);
        break;
    case GGUF_DTYPE_TQ2_0:
        m->kind = WMAT_TERNARY;
        m->row_bytes = (size_t)m->k / 256 * 66;
        break;
    case GGUF_DTYPE_TQ1_0:
        m->kind = WMAT_TERNARY;
        m->row_bytes = (size_t)m->k / 256 * 54;
        break;
    case GGUF_DTYPE_F16:
        m->kind = WMAT_F16;
        m->row_bytes = (size_t)m->k * 2;
        break;
    case GGUF_DTYPE_F32:
        m->kind = WMAT_F32;
        m->row_bytes = (size_t)m->k * 4;
        break;
    default:
        snprintf(err, err_len, "tensor %s: type %s cannot be used as a weight matrix", t->name,
                 gguf_dtype_name(t->dtype));
        return BITNET_ETYPE;
    }
    if (scale) {
        if (scale->dtype != GGUF_DTYPE_F32 || scale->nbytes < 4) {
            snprintf(err, err_len, "tensor %s: must be one f32", scale->name);
            return BITNET_ETYPE;
        }
        memcpy(&m->out_scale, scale->data, 4);
    }
    return 0;
}

static bitnet_format format_of(gguf_dtype t)
{
    switch (t) {
    case GGUF_DTYPE_TQ2_0:
        return BITNET_FORMAT_TQ2_0;
    case GGUF_DTYPE_TQ1_0:
        return BITNET_FORMAT_TQ1_0;
    default:
        return BITNET_FORMAT_I2S;
    }
}

static const char *dtype_short(gguf_dtype t)
{
    switch (t) {
    case GGUF_DTYPE_I2_S:
        return "i2s";
    case GGUF_DTYPE_TQ2_0:
        return "tq2_0";
    case GGUF_DTYPE_TQ1_0:
        return "tq1_0";
    case GGUF_DTYPE_F16:
        return "f16";
    case GGUF_DTYPE_F32:
        return "f32";
    default:
        return gguf_dtype_name(t);
    }
}

/* Chooses the kernel for the ternary matrices: the forced one if it can run
 * and matches the format, else the registry's best. */
static int choose_kernel(engine *e, gguf_dtype wtype, const char *forced, char *err, size_t err_len)
{
    if (wtype == GGUF_DTYPE_F16 || wtype == GGUF_DTYPE_F32) {
        if (forced && strncmp(forced, "fmat", 4) != 0) {
            snprintf(err, err_len,
                     "kernel %s cannot run this model: its matrices are %s, not ternary", forced,
                     dtype_short(wtype));
            return BITNET_EPARAM;
        }
        snprintf(e->kernel_reason, sizeof(e->kernel_reason),
                 "float weights use the float matrix product");
        return 0;
    }
    bitnet_format fmt = format_of(wtype);
    if (forced) {
        const bitnet_kernel *k;
        int rc = bitnet_kernel_require(forced, &k, err, err_len);
        if (rc)
            return rc;
        /* Lookup-table kernels build their layout at load from I2_S. */
        bool from_i2s = fmt == BITNET_FORMAT_I2S && k->ops && k->ops->repack &&
                        (k->format == BITNET_FORMAT_TL1 || k->format == BITNET_FORMAT_TL2);
        /* TQ2_0 kernels run TQ1_0 weights converted at load. */
        bool from_tq1 = fmt == BITNET_FORMAT_TQ1_0 && k->format == BITNET_FORMAT_TQ2_0;
        if ((k->format != fmt && !from_i2s && !from_tq1) ||
            k->provider != BITNET_PROVIDER_BITNETD) {
            snprintf(err, err_len, "kernel %s is for %s weights; this model's are %s", k->name,
                     bitnet_format_name(k->format), bitnet_format_name(fmt));
            return BITNET_EPARAM;
        }
        e->kernel = k;
        e->tq1_as_tq2 = from_tq1;
        snprintf(e->kernel_reason, sizeof(e->kernel_reason), "forced by the caller%s",
                 from_i2s   ? "; weights repacked at load from I2_S"
                 : from_tq1 ? "; weights converted at load from TQ1_0"
                            : "");
        return 0;
    }
    /* TQ1_0 decodes about 2.5x slower than TQ2_0 (the base-3 digits cost
     * more vector work than the bytes they save), and converting is exact,
     * so TQ1_0 models run on the TQ2_0 kernel with weights converted at
     * load, at 22% more weight memory. --kernel tq1_0.<isa> reads the file's
     * layout instead. */
    if (fmt == BITNET_FORMAT_TQ1_0) {
        e->kernel = bitnet_kernel_select(BITNET_FORMAT_TQ2_0, NULL);
        if (e->kernel) {
            e->tq1_as_tq2 = true;
            snprintf(e->kernel_reason, sizeof(e->kernel_reason),
                     "best available on this CPU (SIMD %s); tq1_0 weights converted at load to "
                     "tq2_0, which decodes faster",
                     bitnet_simd_level_name(bitnet_cpu_features_get()->active));
            return 0;
        }
    }
    e->kernel = bitnet_kernel_select(fmt, NULL);
    if (!e->kernel) {
        snprintf(err, err_len, "no kernel for %s weights is available in this build",
                 bitnet_format_name(fmt));
        return BITNET_ENOT_COMPILED;
    }
    snprintf(e->kernel_reason, sizeof(e->kernel_reason),
             "best available for %s on this CPU (SIMD %s)", bitnet_format_name(fmt),
             bitnet_simd_level_name(bitnet_cpu_features_get()->active));
    return 0;
}

/* For kernels that read a layout of their own (TL1/TL2): repacks every
 * ternary matrix once, into buffers the engine owns. The file is not
 * modified; the mapping's pages of the original weights are not read again. */
static int repack_weights(engine *e, char *err, size_t err_len)
{
    e->repacked = calloc((size_t)e->n_layer * 7, sizeof(uint8_t *));
    if (!e->repacked)
        return -ENOMEM;
    for (int l = 0; l < e->n_layer; l++) {
        struct layer *L = &e->layers[l];
        struct wmat *ms[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++) {
            uint8_t *out = NULL;
            size_t rb = 0;
            int rc = e->kernel->ops->repack(ms[i]->data, ms[i]->k, ms[i]->n_rows, &out, &rb);
            if (rc) {
                snprintf(err, err_len, "kernel %s cannot repack layer %d's weights: %s",
                         e->kernel->name, l, bitnet_strerror(rc));
                return rc;
            }
            e->repacked[l * 7 + i] = out;
            ms[i]->data = out;
            ms[i]->row_bytes = rb;
        }
    }
    return 0;
}

/* Asks the kernel to reclaim the whole pages of [p, p + n): file pages of
 * the mapping that will not be read again, so that they stop counting in
 * the resident set. Only a hint: the contents stay what they were. */
static void pages_reclaim(const uint8_t *p, size_t n)
{
#ifdef MADV_PAGEOUT
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0)
        return;
    uintptr_t b = ((uintptr_t)p + (uintptr_t)ps - 1) / (uintptr_t)ps * (uintptr_t)ps;
    uintptr_t end = ((uintptr_t)p + n) / (uintptr_t)ps * (uintptr_t)ps;
    if (end > b)
        (void)madvise((void *)b, end - b, MADV_PAGEOUT);
#else
    (void)p;
    (void)n;
#endif
}

/* Rewrites every TQ1_0 matrix as TQ2_0 rows in buffers the engine owns
 * (kept in e->repacked): the same codes and block scales, so the products
 * are those of the file's weights. The file's pages of each matrix are
 * reclaimed once it is converted, so that the resident set holds the
 * TQ2_0 copy, not both. */
static int convert_tq1_weights(engine *e)
{
    e->repacked = calloc((size_t)e->n_layer * 7, sizeof(uint8_t *));
    if (!e->repacked)
        return -ENOMEM;
    for (int l = 0; l < e->n_layer; l++) {
        struct layer *L = &e->layers[l];
        struct wmat *ms[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++) {
            size_t rb = (size_t)(ms[i]->k / TQ_QK) * TQ2_0_BYTES;
            uint8_t *out = malloc(rb * (size_t)ms[i]->n_rows);
            if (!out)
                return -ENOMEM;
            tq1_0_to_tq2_0(ms[i]->data, ms[i]->row_bytes, ms[i]->k, ms[i]->n_rows, out, rb);
            pages_reclaim(ms[i]->data, ms[i]->row_bytes * (size_t)ms[i]->n_rows);
            e->repacked[l * 7 + i] = out;
            ms[i]->data = out;
            ms[i]->row_bytes = rb;
        }
    }
    return 0;
}

static int bind_model(engine *e, const engine_opts *opts, char *err, size_t err_len)
{
    const model_meta *m = e->meta;
    e->n_embd = (int)m->n_embd;
    e->n_ff = (int)m->n_ff;
    e->n_layer = (int)m->n_layer;
    e->n_head = (int)m->n_head;
    e->n_head_kv = (int)m->n_head_kv;
    e->head_dim = (int)m->head_dim;
    e->kv_dim = e->head_dim * e->n_head_kv;
    e->n_vocab = (int)m->n_vocab;
    e->n_rot = (int)m->n_rot;
    e->eps = m->rms_eps;
    e->rope_base = m->rope_freq_base;
    e->rope_scale = m->rope_freq_scale > 0 ? m->rope_freq_scale : 1.0f;
    e->relu2 = m->ffn_act == MODEL_FFN_RELU2;
    e->rope_neox = m->rope_type == MODEL_ROPE_NEOX;
    e->rope_freqs = m->rope_freqs ? (const float *)m->rope_freqs->data : NULL;
    int n_ctx_train = m->n_ctx_train > 0 ? (int)m->n_ctx_train : 4096;
    e->n_ctx = opts && opts->n_ctx > 0 ? opts->n_ctx : (n_ctx_train < 4096 ? n_ctx_train : 4096);

    e->layers = calloc((size_t)e->n_layer, sizeof(*e->layers));
    if (!e->layers)
        return -ENOMEM;
    for (int l = 0; l < e->n_layer; l++) {
        const model_layer *ml = &m->layers[l];
        struct layer *L = &e->layers[l];
        L->attn_norm = (const float *)ml->attn_norm->data;
        L->attn_sub_norm = (const float *)ml->attn_sub_norm->data;
        L->ffn_norm = (const float *)ml->ffn_norm->data;
        L->ffn_sub_norm = (const float *)ml->ffn_sub_norm->data;
        int rc = 0;
        rc = rc ? rc : wmat_bind(&L->q, ml->wq, ml->wq_scale, err, err_len);
        rc = rc ? rc : wmat_bind(&L->k, ml->wk, ml->wk_scale, err, err_len);
        rc = rc ? rc : wmat_bind(&L->v, ml->wv, ml->wv_scale, err, err_len);
        rc = rc ? rc : wmat_bind(&L->o, ml->wo, ml->wo_scale, err, err_len);
        rc = rc ? rc : wmat_bind(&L->gate, ml->ffn_gate, ml->ffn_gate_scale, err, err_len);
        rc = rc ? rc : wmat_bind(&L->up, ml->ffn_up, ml->ffn_up_scale, err, err_len);
        rc = rc ? rc : wmat_bind(&L->down, ml->ffn_down, ml->ffn_down_scale, err, err_len);
        if (rc)
            return rc;
    }
    e->out_norm = (const float *)m->output_norm->data;
    e->embd = m->token_embd->data;
    e->embd_type = m->token_embd->dtype;
    if (e->embd_type != GGUF_DTYPE_F16 && e->embd_type != GGUF_DTYPE_F32) {
        snprintf(err, err_len, "token_embd.weight: type %s is not supported yet (F16 or F32)",
                 gguf_dtype_name(m->token_embd->dtype));
        return BITNET_ETYPE;
    }
    e->embd_row_bytes = (size_t)e->n_embd * (e->embd_type == GGUF_DTYPE_F16 ? 2 : 4);
    const gguf_tensor *head = m->output ? m->output : m->token_embd;
    int rc = wmat_bind(&e->head, head, NULL, err, err_len);
    if (rc)
        return rc;
    if (e->head.kind == WMAT_TERNARY) {
        snprintf(err, err_len, "%s: a ternary LM head is not supported", head->name);
        return BITNET_ETYPE;
    }
    e->fmat = fmat_select();
    snprintf(e->lm_head_desc, sizeof(e->lm_head_desc), "%s (%s) fmat.%s", dtype_short(head->dtype),
             m->output ? "output.weight" : "token_embd, tied", e->fmat->name);

    rc = choose_kernel(e, m->weight_dtype, opts ? opts->kernel : NULL, err, err_len);
    if (rc)
        return rc;
    if (e->kernel && e->kernel->ops->repack) {
        rc = repack_weights(e, err, err_len);
        if (rc)
            return rc;
    }
    if (e->tq1_as_tq2) {
        rc = convert_tq1_weights(e);
        if (rc) {
            snprintf(err, err_len, "converting TQ1_0 weights to TQ2_0: %s", bitnet_strerror(rc));
            return rc;
        }
    }
    if (e->kernel)
        e->act_row_bytes = e->kernel->ops->act_row_bytes(e->n_ff > e->n_embd ? e->n_ff : e->n_embd);
    snprintf(e->fmat_name, sizeof(e->fmat_name), "fmat.%s", e->fmat->name);
    return 0;
}

static uint64_t weight_bytes(const engine *e)
{
    uint64_t total = 0;
    for (int l = 0; l < e->n_layer; l++) {
        const struct layer *L = &e->layers[l];
        const struct wmat *ms[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++)
            total += (uint64_t)ms[i]->row_bytes * (uint64_t)ms[i]->n_rows;
    }
    return total + (uint64_t)e->head.row_bytes * (uint64_t)e->head.n_rows;
}

/* Grows the per-batch scratch to hold n tokens. */
static int ensure_batch(engine *e, int n)
{
    if (n <= e->batch_cap)
        return 0;
    int cap = n < 8 ? 8 : n;
    size_t wide = (size_t)(e->n_ff > e->n_embd ? e->n_ff : e->n_embd);
    float **bufs[] = {&e->x, &e->h, &e->q, &e->attn, &e->tmp, &e->ff_g, &e->ff_u, &e->kx, &e->vx};
    size_t widths[] = {(size_t)e->n_embd,
                       wide,
                       (size_t)e->n_embd,
                       (size_t)e->n_embd,
                       wide,
                       (size_t)e->n_ff,
                       (size_t)e->n_ff,
                       (size_t)e->kv_dim,
                       (size_t)e->kv_dim};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        float *p = realloc(*bufs[i], sizeof(float) * widths[i] * (size_t)cap);
        if (!p)
            return -ENOMEM;
        *bufs[i] = p;
    }
    if (e->act_row_bytes) {
        free(e->act);
        e->act = aligned_alloc(64, ((e->act_row_bytes * (size_t)cap) + 63) / 64 * 64);
        if (!e->act)
            return -ENOMEM;
    }
    int *pos = realloc(e->tok_pos, sizeof(int) * (size_t)cap);
    if (!pos)
        return -ENOMEM;
    e->tok_pos = pos;
    e->batch_cap = cap;
    return 0;
}

/* Quantizes the LM head rows [ith share] from the file's F16/F32 to Q8_0. */
struct head_q8_task {
    engine *e;
    struct wmat src;
    int failed;
};

static void head_q8_task_run(void *ctx, int ith, int nth)
{
    struct head_q8_task *ht = ctx;
    engine *e = ht->e;
    float *row = malloc(sizeof(float) * (size_t)ht->src.k);
    if (!row) {
        ht->failed = 1;
        return;
    }
    long b, end;
    pool_split(ht->src.n_rows, ith, nth, 64, &b, &end);
    for (long r = b; r < end; r++) {
        const uint8_t *in = ht->src.data + (size_t)r * ht->src.row_bytes;
        for (long i = 0; i < ht->src.k; i++) {
            if (ht->src.kind == WMAT_F16) {
                uint16_t h;
                memcpy(&h, in + 2 * i, 2);
                row[i] = f16_to_f32(h);
            } else {
                memcpy(&row[i], in + 4 * i, 4);
            }
        }
        fmat_quantize_q8_0(row, ht->src.k, e->head_copy + (size_t)r * e->head.row_bytes);
    }
    free(row);
}

/* Replaces the LM head by an in-memory Q8_0 copy (engine_opts.lm_head). */
static int build_head_q8_0(engine *e, char *err, size_t err_len)
{
    if (e->head.k % FMAT_Q8_0_BLOCK) {
        snprintf(err, err_len, "a Q8_0 LM head needs n_embd divisible by 32 (it is %ld)",
                 e->head.k);
        return BITNET_EPARAM;
    }
    struct head_q8_task ht = {e, e->head, 0};
    size_t rb = (size_t)e->head.k / FMAT_Q8_0_BLOCK * FMAT_Q8_0_BYTES;
    e->head_copy = malloc(rb * (size_t)e->head.n_rows);
    if (!e->head_copy)
        return -ENOMEM;
    e->head.kind = WMAT_Q8_0;
    e->head.row_bytes = rb;
    e->head.data = e->head_copy;
    pool_run(e->pool, head_q8_task_run, &ht);
    if (ht.failed)
        return -ENOMEM;
    snprintf(e->lm_head_desc, sizeof(e->lm_head_desc), "q8_0 (in-memory copy of %s) fmat.%s",
             e->meta->output ? "output.weight" : "token_embd", e->fmat->name);
    return 0;
}

int engine_new(const char *path, const engine_opts *opts, engine **out, char *err, size_t err_len)
{
    engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    int rc = gguf_open(path, &e->file, err, err_len);
    if (!rc)
        rc = model_meta_load(e->file, &e->meta, err, err_len);
    if (!rc)
        rc = bind_model(e, opts, err, err_len);
    int n_threads =
        opts && opts->n_threads > 0 ? opts->n_threads : bitnet_cpu_features_get()->physical_cores;
    if (!rc) {
        rc = pool_new(n_threads, &e->pool);
        if (rc)
            snprintf(err, err_len, "cannot start %d compute threads: %s", n_threads,
                     bitnet_strerror(rc));
    }
    if (!rc && opts && opts->lm_head && strcmp(opts->lm_head, "native") != 0) {
        if (strcmp(opts->lm_head, "q8_0") == 0) {
            rc = build_head_q8_0(e, err, err_len);
        } else {
            snprintf(err, err_len, "unknown LM head '%s' (native or q8_0)", opts->lm_head);
            rc = BITNET_EPARAM;
        }
    }
    if (!rc && attn_kv_type_parse(opts ? opts->kv_type : NULL, &e->kv_type) != 0) {
        snprintf(err, err_len, "unknown KV cache type '%s' (f32 or f16)", opts->kv_type);
        rc = BITNET_EPARAM;
    }
    e->attn_impl = attn_select();
    e->attn_q_max = e->n_head_kv > 0 ? e->n_head / e->n_head_kv : 1;
    if (e->attn_q_max > ATTN_MAX_Q)
        e->attn_q_max = ATTN_MAX_Q;
    e->n_seq_max = opts && opts->n_seq_max > 0 ? opts->n_seq_max : 1;
    if (!rc) {
        e->seqs = calloc((size_t)e->n_seq_max, sizeof(*e->seqs));
        e->scores =
            malloc(sizeof(float) * (size_t)e->n_ctx * (size_t)e->attn_q_max * (size_t)n_threads);
        if (!e->seqs || !e->scores)
            rc = -ENOMEM;
    }
    if (!rc)
        rc = ensure_batch(e, 8);
    if (rc) {
        if (rc == -ENOMEM)
            snprintf(err, err_len, "%s: out of memory", path);
        engine_free(e);
        return rc;
    }
    engine_info *in = &e->info;
    in->arch = gguf_architecture(e->file);
    in->weight_type = dtype_short(e->meta->weight_dtype);
    in->kernel = e->kernel ? e->kernel->name : e->fmat_name;
    in->kernel_reason = e->kernel_reason;
    in->lm_head = e->lm_head_desc;
    in->kv_cache = attn_kv_type_name(e->kv_type);
    in->attention = e->attn_impl->name;
    in->n_vocab = e->n_vocab;
    in->n_embd = e->n_embd;
    in->n_layer = e->n_layer;
    in->n_head = e->n_head;
    in->n_head_kv = e->n_head_kv;
    in->n_ff = e->n_ff;
    in->n_ctx = e->n_ctx;
    in->n_threads = n_threads;
    in->n_seq_max = e->n_seq_max;
    in->weight_bytes = weight_bytes(e);
    *out = e;
    return 0;
}

void engine_free(engine *e)
{
    if (!e)
        return;
    pool_free(e->pool);
    for (int s = 0; e->seqs && s < e->n_seq_max; s++) {
        free(e->seqs[s].k);
        free(e->seqs[s].v);
    }
    free(e->seqs);
    for (int i = 0; e->repacked && i < e->n_layer * 7; i++)
        free(e->repacked[i]);
    free(e->repacked);
    free(e->layers);
    free(e->head_copy);
    float *bufs[] = {e->x, e->h, e->q, e->attn, e->tmp, e->ff_g, e->ff_u, e->kx, e->vx, e->scores};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
    free(e->act);
    free(e->tok_pos);
    model_meta_free(e->meta);
    gguf_close(e->file);
    free(e);
}

const engine_info *engine_get_info(const engine *e)
{
    return &e->info;
}

const gguf_file *engine_gguf(const engine *e)
{
    return e->file;
}

/* ---- sequences --------------------------------------------------------- */

int engine_seq_new(engine *e, int *seq)
{
    for (int s = 0; s < e->n_seq_max; s++) {
        struct seq *q = &e->seqs[s];
        if (q->used)
            continue;
        if (!q->k) {
            size_t n = (size_t)e->n_layer * (size_t)e->n_ctx * (size_t)e->kv_dim *
                       (size_t)attn_kv_type_size(e->kv_type);
            q->k = malloc(n);
            q->v = malloc(n);
            if (!q->k || !q->v) {
                free(q->k);
                free(q->v);
                q->k = q->v = NULL;
                return -ENOMEM;
            }
        }
        q->used = true;
        q->len = 0;
        *seq = s;
        return 0;
    }
    return BITNET_ELIMIT;
}

void engine_seq_free(engine *e, int seq)
{
    if (seq >= 0 && seq < e->n_seq_max)
        e->seqs[seq].used = false;
}

int engine_seq_len(const engine *e, int seq)
{
    if (seq < 0 || seq >= e->n_seq_max || !e->seqs[seq].used)
        return -1;
    return e->seqs[seq].len;
}

int engine_seq_truncate(engine *e, int seq, int len)
{
    if (seq < 0 || seq >= e->n_seq_max || !e->seqs[seq].used || len < 0)
        return BITNET_EPARAM;
    if (len < e->seqs[seq].len)
        e->seqs[seq].len = len;
    return 0;
}

/* ---- parallel operations ----------------------------------------------- */

/* Up to three matrices over the same input, computed as one pool task so
 * the threads split their rows together (Q|K|V, or gate|up). */
struct matmul_task {
    engine *e;
    int n_mats;
    const struct wmat *m[3];
    float *y[3]; /* outputs: y[t * y_stride + r] */
    long y_stride[3];
    const float *x; /* float input (for F16/F32 weights), n_tok rows of k */
    int n_tok;
};

static void wmat_rows(const engine *e, const struct wmat *m, long r0, long r1, const float *x,
                      int n_tok, float *y, long y_stride)
{
    if (r1 <= r0)
        return;
    if (m->kind == WMAT_TERNARY) {
        bitnet_matmul_args a = {
            .w = m->data + (size_t)r0 * m->row_bytes,
            .w_row_bytes = m->row_bytes,
            .w_scale = m->w_scale,
            .k = m->k,
            .n_rows = r1 - r0,
            .act = e->act,
            .act_row_bytes = e->act_stride,
            .n_act = n_tok,
            .y = y + r0,
            .y_stride = y_stride,
        };
        e->kernel->ops->matmul(&a);
    } else if (m->kind == WMAT_F16) {
        e->fmat->f16((const uint16_t *)m->data + (size_t)r0 * (size_t)m->k, m->k, r1 - r0, m->k, x,
                     n_tok, y + r0, y_stride);
    } else if (m->kind == WMAT_Q8_0) {
        e->fmat->q8_0(m->data + (size_t)r0 * m->row_bytes, (long)m->row_bytes, r1 - r0, m->k, x,
                      n_tok, y + r0, y_stride);
    } else {
        e->fmat->f32((const float *)m->data + (size_t)r0 * (size_t)m->k, m->k, r1 - r0, m->k, x,
                     n_tok, y + r0, y_stride);
    }
    if (m->out_scale != 1.0f)
        for (int t = 0; t < n_tok; t++)
            for (long r = r0; r < r1; r++)
                y[t * y_stride + r] *= m->out_scale;
}

static void matmul_task_run(void *ctx, int ith, int nth)
{
    struct matmul_task *mt = ctx;
    long total = 0;
    for (int i = 0; i < mt->n_mats; i++)
        total += mt->m[i]->n_rows;
    long b, end;
    pool_split(total, ith, nth, 16, &b, &end);
    long base = 0;
    for (int i = 0; i < mt->n_mats; i++) {
        long n = mt->m[i]->n_rows;
        long r0 = b > base ? b - base : 0, r1 = end - base < n ? end - base : n;
        wmat_rows(mt->e, mt->m[i], r0, r1, mt->x, mt->n_tok, mt->y[i], mt->y_stride[i]);
        base += n;
    }
}

/* Quantizes the activations of n_tok rows of width k for the ternary kernel. */
struct quant_task {
    engine *e;
    const float *x;
    long k;
    int n_tok;
};

static void quant_task_run(void *ctx, int ith, int nth)
{
    struct quant_task *qt = ctx;
    long b, end;
    pool_split(qt->n_tok, ith, nth, 1, &b, &end);
    for (long t = b; t < end; t++)
        qt->e->kernel->ops->quantize_act(qt->x + t * qt->k, qt->k,
                                         qt->e->act + (size_t)t * qt->e->act_stride);
}

/* y = W x for up to three matrices sharing the input x (n_tok rows of k). */
static void matmul(engine *e, int n_mats, const struct wmat *const *ms, float *const *ys,
                   const float *x, int n_tok)
{
    if (ms[0]->kind == WMAT_TERNARY) {
        e->act_stride = e->kernel->ops->act_row_bytes(ms[0]->k);
        struct quant_task qt = {e, x, ms[0]->k, n_tok};
        if (n_tok > 1)
            pool_run(e->pool, quant_task_run, &qt);
        else
            quant_task_run(&qt, 0, 1);
    }
    struct matmul_task mt = {.e = e, .n_mats = n_mats, .x = x, .n_tok = n_tok};
    for (int i = 0; i < n_mats; i++) {
        mt.m[i] = ms[i];
        mt.y[i] = ys[i];
        mt.y_stride[i] = ms[i]->n_rows;
    }
    pool_run(e->pool, matmul_task_run, &mt);
}

/* Attention for every (token, head) of the batch, split across threads. */
struct attn_task {
    engine *e;
    int layer;
    const engine_batch *b;
};

static void attn_task_run(void *ctx, int ith, int nth)
{
    struct attn_task *at = ctx;
    engine *e = at->e;
    long n = (long)at->b->n * e->n_head, b, end;
    pool_split(n, ith, nth, 1, &b, &end);
    int group = e->n_head / e->n_head_kv;
    size_t esz = (size_t)attn_kv_type_size(e->kv_type);
    attn_fn fn = e->kv_type == ATTN_KV_F16 ? e->attn_impl->f16 : e->attn_impl->f32;
    attn_args a = {
        .kv_stride = e->kv_dim,
        .head_dim = e->head_dim,
        .scale = 1.0f / sqrtf((float)e->head_dim),
        .scores = e->scores + (size_t)ith * (size_t)e->attn_q_max * (size_t)e->n_ctx,
    };
    /* Consecutive heads of a token that share a KV head go in one call, so
     * this thread reads that part of the cache once for all of them. */
    for (long i = b; i < end; i += a.n_q) {
        int t = (int)(i / e->n_head), h = (int)(i % e->n_head);
        long n_q = group - h % group;
        n_q = n_q < end - i ? n_q : end - i;
        a.n_q = n_q < e->attn_q_max ? (int)n_q : e->attn_q_max;
        const struct seq *sq = &e->seqs[at->b->seq[t]];
        size_t off = ((size_t)at->layer * (size_t)e->n_ctx * (size_t)e->kv_dim +
                      (size_t)(h / group) * (size_t)e->head_dim) *
                     esz;
        a.k = (const uint8_t *)sq->k + off;
        a.v = (const uint8_t *)sq->v + off;
        a.q = e->q + (size_t)t * e->n_embd + (size_t)h * e->head_dim;
        a.out = e->attn + (size_t)t * e->n_embd + (size_t)h * e->head_dim;
        a.n_pos = e->tok_pos[t] + 1;
        fn(&a);
    }
}

/* The LM head over the tokens that want logits. */
struct head_task {
    engine *e;
    const float *x; /* n rows of n_embd, already normed */
    int n;
    float *logits;
};

static void head_task_run(void *ctx, int ith, int nth)
{
    struct head_task *ht = ctx;
    long b, end;
    pool_split(ht->e->head.n_rows, ith, nth, 64, &b, &end);
    wmat_rows(ht->e, &ht->e->head, b, end, ht->x, ht->n, ht->logits, ht->e->head.n_rows);
}

/* The elementwise work between the matrix products, one token at a time:
 * split across the pool for batches, inline for a single token (a barrier
 * costs more than the work). */
enum tok_stage {
    TOK_ATTN_IN,  /* h = rmsnorm(x) * attn_norm */
    TOK_ROPE_KV,  /* rotate q and k, store k and v in the sequence's cache */
    TOK_ATTN_OUT, /* attn = rmsnorm(attn) * attn_sub_norm */
    TOK_FFN_IN,   /* x += attention output; h = rmsnorm(x) * ffn_norm */
    TOK_FFN_ACT,  /* g = act(g) * u; g = rmsnorm(g) * ffn_sub_norm */
    TOK_RESIDUAL  /* x += FFN output */
};

struct tok_task {
    engine *e;
    const struct layer *L;
    const engine_batch *b;
    int layer;
    enum tok_stage stage;
};

/* Writes kv_dim values at element offset off of a cache, as its type. */
static void kv_store(const engine *e, void *cache, size_t off, const float *src)
{
    if (e->kv_type == ATTN_KV_F16)
        e->attn_impl->to_f16((uint16_t *)cache + off, src, e->kv_dim);
    else
        memcpy((float *)cache + off, src, sizeof(float) * (size_t)e->kv_dim);
}

static void tok_stage_one(const struct tok_task *tt, int t)
{
    engine *e = tt->e;
    const struct layer *L = tt->L;
    const size_t D = (size_t)e->n_embd, F = (size_t)e->n_ff, KV = (size_t)e->kv_dim;
    float *x = e->x + t * D, *h = e->h + t * D;
    switch (tt->stage) {
    case TOK_ATTN_IN:
        op_rmsnorm(h, x, L->attn_norm, (int)D, e->eps);
        break;
    case TOK_ROPE_KV: {
        int pos = e->tok_pos[t];
        float *qt = e->q + t * D, *kt = e->kx + t * KV;
        op_rope(qt, e->n_head, e->head_dim, e->n_rot, pos, e->rope_base, e->rope_scale,
                e->rope_freqs, e->rope_neox);
        op_rope(kt, e->n_head_kv, e->head_dim, e->n_rot, pos, e->rope_base, e->rope_scale,
                e->rope_freqs, e->rope_neox);
        struct seq *sq = &e->seqs[tt->b->seq[t]];
        size_t off = ((size_t)tt->layer * (size_t)e->n_ctx + (size_t)pos) * KV;
        kv_store(e, sq->k, off, kt);
        kv_store(e, sq->v, off, e->vx + t * KV);
        break;
    }
    case TOK_ATTN_OUT:
        op_rmsnorm(e->attn + t * D, e->attn + t * D, L->attn_sub_norm, (int)D, e->eps);
        break;
    case TOK_FFN_IN:
        op_axpy(x, 1.0f, e->tmp + t * D, (int)D);
        op_rmsnorm(h, x, L->ffn_norm, (int)D, e->eps);
        break;
    case TOK_FFN_ACT: {
        float *g = e->ff_g + t * F;
        if (e->relu2)
            op_relu2_mul(g, e->ff_u + t * F, (int)F);
        else
            op_silu_mul(g, e->ff_u + t * F, (int)F);
        op_rmsnorm(g, g, L->ffn_sub_norm, (int)F, e->eps);
        break;
    }
    case TOK_RESIDUAL:
        op_axpy(x, 1.0f, e->tmp + t * D, (int)D);
        break;
    }
}

static void tok_task_run(void *ctx, int ith, int nth)
{
    const struct tok_task *tt = ctx;
    long b, end;
    pool_split(tt->b->n, ith, nth, 1, &b, &end);
    for (long t = b; t < end; t++)
        tok_stage_one(tt, (int)t);
}

static void per_token(engine *e, struct tok_task *tt, enum tok_stage stage)
{
    tt->stage = stage;
    if (tt->b->n == 1)
        tok_task_run(tt, 0, 1);
    else
        pool_run(e->pool, tok_task_run, tt);
}

/* ---- the forward pass -------------------------------------------------- */

static void embed(engine *e, int32_t tok, float *out)
{
    const uint8_t *row = e->embd + (size_t)tok * e->embd_row_bytes;
    if (e->embd_type == GGUF_DTYPE_F16) {
        const uint16_t *h = (const uint16_t *)row;
        for (int i = 0; i < e->n_embd; i++)
            out[i] = f16_to_f32(h[i]);
    } else {
        memcpy(out, row, sizeof(float) * (size_t)e->n_embd);
    }
}

static int check_batch(engine *e, const engine_batch *b, char *err, size_t err_len)
{
    for (int i = 0; i < b->n; i++) {
        int s = b->seq[i];
        if (s < 0 || s >= e->n_seq_max || !e->seqs[s].used) {
            snprintf(err, err_len, "batch token %d: unknown sequence %d", i, s);
            return BITNET_EPARAM;
        }
        if (b->tokens[i] < 0 || b->tokens[i] >= e->n_vocab) {
            snprintf(err, err_len, "batch token %d: id %d is outside the vocabulary (%d)", i,
                     b->tokens[i], e->n_vocab);
            return BITNET_EPARAM;
        }
    }
    /* Positions: each sequence's tokens follow its current length in order. */
    for (int i = 0; i < b->n; i++) {
        int before = 0;
        for (int j = 0; j < i; j++)
            before += b->seq[j] == b->seq[i];
        e->tok_pos[i] = e->seqs[b->seq[i]].len + before;
        if (e->tok_pos[i] >= e->n_ctx) {
            snprintf(err, err_len, "sequence %d is full: %d positions (n_ctx)", b->seq[i],
                     e->n_ctx);
            return BITNET_ECONTEXT;
        }
    }
    return 0;
}

int engine_eval(engine *e, const engine_batch *b, float *out_logits, char *err, size_t err_len)
{
    if (b->n <= 0)
        return 0;
    int rc = ensure_batch(e, b->n);
    if (rc) {
        snprintf(err, err_len, "out of memory for a batch of %d tokens", b->n);
        return rc;
    }
    rc = check_batch(e, b, err, err_len);
    if (rc)
        return rc;
    const int n = b->n, D = e->n_embd;

    for (int t = 0; t < n; t++)
        embed(e, b->tokens[t], e->x + (size_t)t * D);

    for (int l = 0; l < e->n_layer; l++) {
        const struct layer *L = &e->layers[l];
        struct tok_task tt = {e, L, b, l, TOK_ATTN_IN};

        /* Attention block. */
        per_token(e, &tt, TOK_ATTN_IN);
        const struct wmat *qkv[3] = {&L->q, &L->k, &L->v};
        float *qkv_out[3] = {e->q, e->kx, e->vx};
        matmul(e, 3, qkv, qkv_out, e->h, n);
        per_token(e, &tt, TOK_ROPE_KV);
        struct attn_task at = {e, l, b};
        pool_run(e->pool, attn_task_run, &at);
        per_token(e, &tt, TOK_ATTN_OUT);
        const struct wmat *wo[1] = {&L->o};
        float *o_out[1] = {e->tmp};
        matmul(e, 1, wo, o_out, e->attn, n);

        /* Feed-forward block. */
        per_token(e, &tt, TOK_FFN_IN);
        const struct wmat *gu[2] = {&L->gate, &L->up};
        float *gu_out[2] = {e->ff_g, e->ff_u};
        matmul(e, 2, gu, gu_out, e->h, n);
        per_token(e, &tt, TOK_FFN_ACT);
        const struct wmat *wd[1] = {&L->down};
        float *d_out[1] = {e->tmp};
        matmul(e, 1, wd, d_out, e->ff_g, n);
        per_token(e, &tt, TOK_RESIDUAL);
    }

    for (int t = 0; t < n; t++)
        e->seqs[b->seq[t]].len =
            e->tok_pos[t] + 1 > e->seqs[b->seq[t]].len ? e->tok_pos[t] + 1 : e->seqs[b->seq[t]].len;

    /* Final norm and LM head for the tokens that want logits. */
    int n_out = 0;
    for (int t = 0; t < n; t++) {
        if (!b->logits || !b->logits[t])
            continue;
        op_rmsnorm(e->h + (size_t)n_out * D, e->x + (size_t)t * D, e->out_norm, D, e->eps);
        n_out++;
    }
    if (n_out > 0 && out_logits) {
        struct head_task ht = {e, e->h, n_out, out_logits};
        pool_run(e->pool, head_task_run, &ht);
    }
    return 0;
}
