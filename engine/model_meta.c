/*
 * engine/model_meta.c - hyperparameters and tensor validation per
 * architecture (see model_meta.h and docs/formats.md).
 */
#include "engine/model_meta.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"

/* Upper bounds that keep allocations and arithmetic sane on hostile input;
 * real models are far below them. */
#define META_MAX_LAYERS 4096u
#define META_MAX_DIM    (1u << 24)

static const char *const arch_names[MODEL_ARCH_COUNT] = {
    [MODEL_ARCH_BITNET] = "bitnet",
    [MODEL_ARCH_BITNET_B158] = "bitnet-b1.58",
    [MODEL_ARCH_BITNET_25] = "bitnet-25",
};

const char *model_arch_name(model_arch a)
{
    return (unsigned)a < MODEL_ARCH_COUNT ? arch_names[a] : "?";
}

int model_arch_parse(const char *name, model_arch *out)
{
    for (int a = 0; a < MODEL_ARCH_COUNT; a++) {
        if (strcmp(name, arch_names[a]) == 0) {
            *out = (model_arch)a;
            return 0;
        }
    }
    return BITNET_EARCH;
}

const char *model_ffn_act_name(model_ffn_act a)
{
    return a == MODEL_FFN_SILU ? "silu" : a == MODEL_FFN_RELU2 ? "relu2" : "?";
}

const char *model_rope_type_name(model_rope_type r)
{
    return r == MODEL_ROPE_NEOX ? "neox" : r == MODEL_ROPE_NORM ? "norm" : "?";
}

bool model_dtype_format(gguf_dtype d, bitnet_format *out)
{
    switch (d) {
    case GGUF_DTYPE_I2_S:
        *out = BITNET_FORMAT_I2S;
        return true;
    case GGUF_DTYPE_TQ1_0:
        *out = BITNET_FORMAT_TQ1_0;
        return true;
    case GGUF_DTYPE_TQ2_0:
        *out = BITNET_FORMAT_TQ2_0;
        return true;
    default:
        return false;
    }
}

/* ---- loading context ------------------------------------------------------ */

typedef struct loader {
    const gguf_file *f;
    model_meta *m;
    char *err;
    size_t err_len;
    char prefix[64]; /* "{arch}." */
    bool *used;      /* per tensor: claimed by the architecture */
} loader;

static int fail(const loader *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const loader *l, int code, const char *fmt, ...)
{
    if (l->err && l->err_len > 0) {
        int n = snprintf(l->err, l->err_len, "%s: ", gguf_name(l->f));
        if (n >= 0 && (size_t)n < l->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(l->err + n, l->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* ---- hyperparameters ------------------------------------------------------ */

static void arch_key(const loader *l, const char *suffix, char *key, size_t len)
{
    snprintf(key, len, "%s%s", l->prefix, suffix);
}

/* Reads {arch}.suffix as u32. Missing: *out = def when !required. */
static int read_u32(const loader *l, const char *suffix, bool required, uint32_t def, uint32_t *out)
{
    char key[128];
    arch_key(l, suffix, key, sizeof(key));
    int rc = gguf_get_u32(l->f, key, out);
    if (rc == BITNET_EMISSING && !required) {
        *out = def;
        return 0;
    }
    if (rc == BITNET_EMISSING)
        return fail(l, rc, "required key '%s' is missing", key);
    if (rc < 0)
        return fail(l, rc, "key '%s' must be an unsigned 32-bit integer", key);
    return 0;
}

/*
 * Reads {arch}.suffix given either as u32 or as a per-layer array whose
 * entries must all be equal (the engine has no per-layer widths).
 */
static int read_u32_or_array(const loader *l, const char *suffix, bool required, uint32_t def,
                             uint32_t *out)
{
    char key[128];
    arch_key(l, suffix, key, sizeof(key));
    int64_t i = gguf_kv_find(l->f, key);
    if (i < 0 || gguf_kv_type(l->f, i) != GGUF_TYPE_ARRAY)
        return read_u32(l, suffix, required, def, out);
    uint64_t n = gguf_kv_array_count(l->f, i);
    if (n == 0)
        return fail(l, BITNET_EFORMAT, "key '%s' is an empty array", key);
    uint32_t first = 0;
    for (uint64_t k = 0; k < n; k++) {
        gguf_value v;
        int rc = gguf_kv_array_value(l->f, i, k, &v);
        if (rc < 0)
            return fail(l, rc, "key '%s': cannot read element %llu", key, (unsigned long long)k);
        bool is_u = v.type == GGUF_TYPE_UINT8 || v.type == GGUF_TYPE_UINT16 ||
                    v.type == GGUF_TYPE_UINT32 || v.type == GGUF_TYPE_UINT64;
        bool is_i = v.type == GGUF_TYPE_INT8 || v.type == GGUF_TYPE_INT16 ||
                    v.type == GGUF_TYPE_INT32 || v.type == GGUF_TYPE_INT64;
        uint64_t val = is_u ? v.u : (uint64_t)v.i;
        if (!(is_u || (is_i && v.i >= 0)) || val > UINT32_MAX)
            return fail(l, BITNET_ETYPE, "key '%s': element %llu is not a u32", key,
                        (unsigned long long)k);
        if (k == 0)
            first = (uint32_t)val;
        else if ((uint32_t)val != first)
            return fail(l, BITNET_EFORMAT,
                        "key '%s': per-layer values differ (%u and %u); bitnetd needs them equal",
                        key, first, (uint32_t)val);
    }
    *out = first;
    return 0;
}

static int read_f32(const loader *l, const char *suffix, bool required, float def, float *out)
{
    char key[128];
    arch_key(l, suffix, key, sizeof(key));
    int rc = gguf_get_f32(l->f, key, out);
    if (rc == BITNET_EMISSING && !required) {
        *out = def;
        return 0;
    }
    if (rc == BITNET_EMISSING)
        return fail(l, rc, "required key '%s' is missing", key);
    if (rc < 0)
        return fail(l, rc, "key '%s' must be a float", key);
    if (!isfinite(*out))
        return fail(l, BITNET_EFORMAT, "key '%s' is not finite", key);
    return 0;
}

static int read_vocab(loader *l)
{
    model_meta *m = l->m;
    uint32_t vocab_size = 0;
    bool have_size = false;
    int rc = read_u32(l, "vocab_size", false, 0, &vocab_size);
    if (rc < 0)
        return rc;
    char key[128];
    arch_key(l, "vocab_size", key, sizeof(key));
    have_size = gguf_kv_find(l->f, key) >= 0;

    int64_t i = gguf_kv_find(l->f, "tokenizer.ggml.tokens");
    if (i >= 0) {
        if (gguf_kv_type(l->f, i) != GGUF_TYPE_ARRAY ||
            gguf_kv_array_type(l->f, i) != GGUF_TYPE_STRING)
            return fail(l, BITNET_ETYPE, "key 'tokenizer.ggml.tokens' must be an array of strings");
        uint64_t n = gguf_kv_array_count(l->f, i);
        if (n == 0 || n > UINT32_MAX)
            return fail(l, BITNET_EFORMAT, "tokenizer.ggml.tokens has %llu entries",
                        (unsigned long long)n);
        if (have_size && vocab_size != n)
            return fail(l, BITNET_EFORMAT,
                        "key '%s' = %u but tokenizer.ggml.tokens has %llu entries", key, vocab_size,
                        (unsigned long long)n);
        m->n_vocab = (uint32_t)n;
        return 0;
    }
    if (!have_size || vocab_size == 0)
        return fail(l, BITNET_EMISSING,
                    "no vocabulary size: neither tokenizer.ggml.tokens nor '%s' is present", key);
    m->n_vocab = vocab_size;
    return 0;
}

static int read_rope_scaling(loader *l)
{
    model_meta *m = l->m;
    char key[128];
    const char *s;
    size_t len;
    m->rope_freq_scale = 1.0f;
    arch_key(l, "rope.scaling.type", key, sizeof(key));
    int rc = gguf_get_str(l->f, key, &s, &len);
    if (rc == BITNET_ETYPE)
        return fail(l, rc, "key '%s' must be a string", key);
    bool linear = rc == BITNET_EMISSING || (len == 6 && memcmp(s, "linear", 6) == 0);
    if (rc == 0 && !(len == 4 && memcmp(s, "none", 4) == 0) && !linear)
        return fail(l, BITNET_ETYPE, "key '%s' = '%.*s': only linear RoPE scaling is supported",
                    key, (int)(len > 32 ? 32 : len), s);
    if (!linear)
        return 0;
    float factor = 0.0f;
    rc = read_f32(l, "rope.scaling.factor", false, 0.0f, &factor);
    if (rc < 0)
        return rc;
    if (factor == 0.0f) {
        rc = read_f32(l, "rope.scale_linear", false, 0.0f, &factor);
        if (rc < 0)
            return rc;
    }
    if (factor < 0.0f)
        return fail(l, BITNET_EFORMAT, "RoPE scaling factor %g is negative", (double)factor);
    if (factor > 0.0f)
        m->rope_freq_scale = 1.0f / factor;
    return 0;
}

static int read_hparams(loader *l)
{
    model_meta *m = l->m;
    int rc;
    if ((rc = read_u32(l, "context_length", true, 0, &m->n_ctx_train)) < 0 ||
        (rc = read_u32(l, "embedding_length", true, 0, &m->n_embd)) < 0 ||
        (rc = read_u32(l, "block_count", true, 0, &m->n_layer)) < 0 ||
        (rc = read_u32_or_array(l, "feed_forward_length", true, 0, &m->n_ff)) < 0 ||
        (rc = read_u32_or_array(l, "attention.head_count", true, 0, &m->n_head)) < 0)
        return rc;
    if ((rc = read_u32_or_array(l, "attention.head_count_kv", false, m->n_head, &m->n_head_kv)) <
            0 ||
        (rc = read_f32(l, "attention.layer_norm_rms_epsilon", true, 0, &m->rms_eps)) < 0 ||
        (rc = read_f32(l, "rope.freq_base", false, 10000.0f, &m->rope_freq_base)) < 0 ||
        (rc = read_rope_scaling(l)) < 0 || (rc = read_vocab(l)) < 0)
        return rc;

    const struct {
        const char *name;
        uint32_t v;
    } dims[] = {{"embedding_length", m->n_embd},
                {"block_count", m->n_layer},
                {"feed_forward_length", m->n_ff},
                {"attention.head_count", m->n_head},
                {"attention.head_count_kv", m->n_head_kv}};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++) {
        uint32_t max = i == 1 ? META_MAX_LAYERS : META_MAX_DIM;
        if (dims[i].v == 0 || dims[i].v > max)
            return fail(l, BITNET_EFORMAT, "%s%s = %u is out of range (1..%u)", l->prefix,
                        dims[i].name, dims[i].v, max);
    }
    if (m->n_embd % m->n_head != 0)
        return fail(l, BITNET_EFORMAT, "embedding_length %u is not a multiple of head_count %u",
                    m->n_embd, m->n_head);
    if (m->n_head % m->n_head_kv != 0)
        return fail(l, BITNET_EFORMAT, "head_count %u is not a multiple of head_count_kv %u",
                    m->n_head, m->n_head_kv);
    m->head_dim = m->n_embd / m->n_head;
    m->n_embd_kv = m->head_dim * m->n_head_kv;
    if (m->rms_eps <= 0.0f)
        return fail(l, BITNET_EFORMAT, "%sattention.layer_norm_rms_epsilon = %g must be > 0",
                    l->prefix, (double)m->rms_eps);
    if (m->rope_freq_base <= 0.0f)
        return fail(l, BITNET_EFORMAT, "%srope.freq_base = %g must be > 0", l->prefix,
                    (double)m->rope_freq_base);
    uint32_t kl, vl;
    if ((rc = read_u32(l, "attention.key_length", false, m->head_dim, &kl)) < 0 ||
        (rc = read_u32(l, "attention.value_length", false, m->head_dim, &vl)) < 0 ||
        (rc = read_u32(l, "rope.dimension_count", false, m->head_dim, &m->n_rot)) < 0)
        return rc;
    if (kl != m->head_dim || vl != m->head_dim)
        return fail(l, BITNET_EFORMAT,
                    "attention key/value length %u/%u differs from head_dim %u (n_embd %u / "
                    "n_head %u)",
                    kl, vl, m->head_dim, m->n_embd, m->n_head);
    if (m->n_rot != m->head_dim)
        return fail(l, BITNET_EFORMAT, "%srope.dimension_count = %u but head_dim = %u", l->prefix,
                    m->n_rot, m->head_dim);
    return 0;
}

/* ---- tensors -------------------------------------------------------------- */

static void shape_str(const int64_t *ne, int n, char *buf, size_t len)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int d = 0; d < n && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", d ? ", " : "", (long long)ne[d]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Shown dims of a tensor: up to its last non-1 dim (at least n_dims). */
static int tensor_rank(const gguf_tensor *t)
{
    int n = (int)t->n_dims;
    while (n > 1 && t->ne[n - 1] == 1)
        n--;
    return n;
}

typedef enum tkind {
    TK_NORM,    /* F32 vector */
    TK_MATRIX,  /* a ternary weight matrix */
    TK_EMBED,   /* token embedding or output head */
    TK_SCALE,   /* F32 [1] */
    TK_ROPEFREQ /* F32 vector */
} tkind;

static bool embed_dtype_ok(gguf_dtype d)
{
    return d == GGUF_DTYPE_F32 || d == GGUF_DTYPE_F16 || d == GGUF_DTYPE_BF16 ||
           d == GGUF_DTYPE_Q8_0 || d == GGUF_DTYPE_Q6_K;
}

static bool matrix_dtype_ok(gguf_dtype d)
{
    return d == GGUF_DTYPE_I2_S || d == GGUF_DTYPE_TQ1_0 || d == GGUF_DTYPE_TQ2_0 ||
           d == GGUF_DTYPE_F32 || d == GGUF_DTYPE_F16 || d == GGUF_DTYPE_BF16;
}

/*
 * Finds tensor name, checks its type for its kind and its shape against
 * [ne0, ne1] (ne1 = 1 for vectors). *out = NULL for an absent optional one.
 */
static int claim(loader *l, const char *name, tkind kind, int64_t ne0, int64_t ne1, bool required,
                 const gguf_tensor **out)
{
    const gguf_tensor *t = gguf_tensor_find(l->f, name);
    *out = NULL;
    int64_t want[4] = {ne0, ne1, 1, 1};
    char w[96];
    shape_str(want, ne1 == 1 ? 1 : 2, w, sizeof(w));
    if (!t) {
        if (required)
            return fail(l, BITNET_EMISSING, "tensor '%s' is missing (expected shape %s)", name, w);
        return 0;
    }
    l->used[t - gguf_tensor_at(l->f, 0)] = true;
    const char *type = gguf_tensor_type_name(l->f, t);
    switch (kind) {
    case TK_NORM:
    case TK_SCALE:
    case TK_ROPEFREQ:
        if (t->dtype != GGUF_DTYPE_F32)
            return fail(l, BITNET_ETYPE, "tensor '%s': expected type F32, found %s", name, type);
        break;
    case TK_EMBED:
        if (!embed_dtype_ok(t->dtype))
            return fail(l, BITNET_ETYPE,
                        "tensor '%s': expected type F32, F16, BF16, Q8_0 or Q6_K, found %s", name,
                        type);
        break;
    case TK_MATRIX:
        if (t->dtype == GGUF_DTYPE_TL1 || t->dtype == GGUF_DTYPE_TL2)
            return fail(l, BITNET_ETYPE,
                        "tensor '%s': %s is a lookup-table layout tied to kernels generated for "
                        "one shape; bitnetd does not load it (use I2_S, TQ1_0 or TQ2_0)",
                        name, type);
        if (!matrix_dtype_ok(t->dtype))
            return fail(l, BITNET_ETYPE,
                        "tensor '%s': expected a ternary format (I2_S, TQ1_0, TQ2_0) or "
                        "F32/F16/BF16, found %s",
                        name, type);
        if (l->m->weight_dtype == GGUF_DTYPE_OTHER)
            l->m->weight_dtype = t->dtype;
        else if (l->m->weight_dtype != t->dtype)
            return fail(l, BITNET_ETYPE,
                        "tensor '%s' is %s but earlier weight matrices are %s; mixed ternary "
                        "formats are not supported",
                        name, type, gguf_dtype_name(l->m->weight_dtype));
        break;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        char g[96];
        shape_str(t->ne, tensor_rank(t), g, sizeof(g));
        return fail(l, BITNET_ESHAPE, "tensor '%s': expected shape %s, found %s", name, w, g);
    }
    if (kind == TK_MATRIX) {
        int64_t k_mult = t->dtype == GGUF_DTYPE_I2_S                                    ? 128
                         : t->dtype == GGUF_DTYPE_TQ1_0 || t->dtype == GGUF_DTYPE_TQ2_0 ? 256
                                                                                        : 1;
        if (ne0 % k_mult != 0)
            return fail(l, BITNET_ESHAPE,
                        "tensor '%s': %s needs the input dimension (ne0 = %lld) to be a multiple "
                        "of %lld",
                        name, type, (long long)ne0, (long long)k_mult);
    }
    *out = t;
    return 0;
}

static int claim_layer(loader *l, uint32_t il)
{
    model_meta *m = l->m;
    model_layer *L = &m->layers[il];
    const int64_t E = m->n_embd, KV = m->n_embd_kv, F = m->n_ff;
    const struct {
        const char *suffix;
        tkind kind;
        int64_t ne0, ne1;
        const gguf_tensor **slot;
        const gguf_tensor **scale;
    } spec[] = {
        {"attn_norm", TK_NORM, E, 1, &L->attn_norm, NULL},
        {"attn_q", TK_MATRIX, E, E, &L->wq, &L->wq_scale},
        {"attn_k", TK_MATRIX, E, KV, &L->wk, &L->wk_scale},
        {"attn_v", TK_MATRIX, E, KV, &L->wv, &L->wv_scale},
        {"attn_sub_norm", TK_NORM, E, 1, &L->attn_sub_norm, NULL},
        {"attn_output", TK_MATRIX, E, E, &L->wo, &L->wo_scale},
        {"ffn_norm", TK_NORM, E, 1, &L->ffn_norm, NULL},
        {"ffn_gate", TK_MATRIX, E, F, &L->ffn_gate, &L->ffn_gate_scale},
        {"ffn_up", TK_MATRIX, E, F, &L->ffn_up, &L->ffn_up_scale},
        {"ffn_sub_norm", TK_NORM, F, 1, &L->ffn_sub_norm, NULL},
        {"ffn_down", TK_MATRIX, F, E, &L->ffn_down, &L->ffn_down_scale},
    };
    char name[96];
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
        snprintf(name, sizeof(name), "blk.%u.%s.weight", il, spec[i].suffix);
        int rc = claim(l, name, spec[i].kind, spec[i].ne0, spec[i].ne1, true, spec[i].slot);
        if (rc < 0)
            return rc;
        if (!spec[i].scale)
            continue;
        snprintf(name, sizeof(name), "blk.%u.%s.scale", il, spec[i].suffix);
        if (m->arch == MODEL_ARCH_BITNET) {
            rc = claim(l, name, TK_SCALE, 1, 1, false, spec[i].scale);
            if (rc < 0)
                return rc;
            if (*spec[i].scale)
                m->has_scales = true;
        }
    }
    return 0;
}

static int claim_tensors(loader *l)
{
    model_meta *m = l->m;
    int rc;
    m->weight_dtype = GGUF_DTYPE_OTHER; /* none seen yet */
    if ((rc = claim(l, "token_embd.weight", TK_EMBED, m->n_embd, m->n_vocab, true,
                    &m->token_embd)) < 0 ||
        (rc = claim(l, "output_norm.weight", TK_NORM, m->n_embd, 1, true, &m->output_norm)) < 0 ||
        (rc = claim(l, "output.weight", TK_EMBED, m->n_embd, m->n_vocab, false, &m->output)) < 0 ||
        (rc = claim(l, "rope_freqs.weight", TK_ROPEFREQ, m->n_rot / 2, 1, false, &m->rope_freqs)) <
            0)
        return rc;
    m->tied_output = m->output == NULL;
    for (uint32_t il = 0; il < m->n_layer; il++) {
        rc = claim_layer(l, il);
        if (rc < 0)
            return rc;
    }
    /* A tensor the architecture does not use means a model we would run
     * wrongly (biases, MoE experts, extra layers): refuse it by name. */
    for (int64_t i = 0; i < gguf_tensor_count(l->f); i++) {
        if (!l->used[i])
            return fail(l, BITNET_EFORMAT,
                        "tensor '%s' is not part of the %s architecture with %u layers",
                        gguf_tensor_at(l->f, i)->name, model_arch_name(m->arch), m->n_layer);
    }
    return 0;
}

int model_meta_load(const gguf_file *f, model_meta **out, char *err, size_t err_len)
{
    loader l = {.f = f, .err = err, .err_len = err_len};
    if (err && err_len)
        err[0] = '\0';
    const char *arch = gguf_architecture(f);
    model_arch a;
    if (arch[0] == '\0')
        return fail(&l, BITNET_EMISSING, "general.architecture is missing");
    if (model_arch_parse(arch, &a) < 0)
        return fail(&l, BITNET_EARCH,
                    "architecture '%.64s' is not supported (bitnet, bitnet-b1.58, bitnet-25)",
                    arch);
    snprintf(l.prefix, sizeof(l.prefix), "%s.", arch);

    model_meta *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    l.m = m;
    m->arch = a;
    m->rope_type = MODEL_ROPE_NEOX;
    m->ffn_act = a == MODEL_ARCH_BITNET ? MODEL_FFN_SILU : MODEL_FFN_RELU2;
    int rc = read_hparams(&l);
    if (rc == 0) {
        m->layers = calloc(m->n_layer, sizeof(model_layer));
        l.used = calloc((size_t)gguf_tensor_count(f) + 1, sizeof(bool));
        rc = m->layers && l.used ? claim_tensors(&l) : -ENOMEM;
    }
    free(l.used);
    if (rc < 0) {
        model_meta_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void model_meta_free(model_meta *m)
{
    if (!m)
        return;
    free(m->layers);
    free(m);
}
