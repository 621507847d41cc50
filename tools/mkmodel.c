/*
 * tools/mkmodel.c - bitnet-mkmodel: writes GGUF model files with random
 * ternary weights and real shapes, for tests and benchmarks.
 *
 *   bitnet-mkmodel --arch bitnet-b1.58 --preset 2b4t --type i2s --seed 1 -o m.gguf
 *
 * Every tensor gets its own random stream, seeded from --seed and the
 * tensor's name, so the same seed gives the same weights whatever --type is:
 * an f32 file holds exactly the ternarized floats that an i2s file packs.
 * The file is streamed tensor by tensor; only the largest weight matrix is
 * held in memory (as floats), and the embedding is written row by row.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/error.h"
#include "bitnet/quant.h"
#include "common/f16.h"
#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/model_meta.h"

/* ---- random numbers: splitmix64 to seed xoshiro256** ---------------------- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* A stream for one tensor: the seed mixed with an FNV-1a hash of its name. */
static void rng_for(rng *r, uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

/* Roughly N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall), centred
 * and scaled. One generator call per value keeps multi-gigabyte models fast. */
static float rng_gauss(rng *r)
{
    uint64_t v = rng_next(r);
    uint32_t sum = (uint32_t)(v & 0xffff) + (uint32_t)((v >> 16) & 0xffff) +
                   (uint32_t)((v >> 32) & 0xffff) + (uint32_t)(v >> 48);
    /* Mean 2*65535, standard deviation 65536 * sqrt(4/12). */
    return ((float)sum - 131070.0f) * (1.0f / 37837.23f);
}

/* ---- model description ---------------------------------------------------- */

typedef enum wtype { WT_I2S, WT_TQ2_0, WT_TQ1_0, WT_F16, WT_F32 } wtype;

static const struct {
    const char *name;
    wtype t;
    uint32_t raw;       /* ggml type id of the ternary matrices */
    uint32_t file_type; /* general.file_type, informational (fork numbering) */
} wtypes[] = {
    {"i2s", WT_I2S, GGML_TYPE_I2_S, 40},      {"tq2_0", WT_TQ2_0, GGML_TYPE_TQ2_0, 37},
    {"tq1_0", WT_TQ1_0, GGML_TYPE_TQ1_0, 36}, {"f16", WT_F16, GGML_TYPE_F16, 1},
    {"f32", WT_F32, GGML_TYPE_F32, 0},
};

typedef struct hparams {
    uint32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base, eps;
} hparams;

static const struct {
    const char *name;
    hparams hp;
} presets[] = {
    /* n_vocab 0: the size of the vocabulary written. */
    {"tiny", {256, 768, 2, 4, 2, 0, 512, 10000.0f, 1e-5f}},
    {"large", {1536, 4096, 24, 16, 16, 32002, 2048, 10000.0f, 1e-5f}},
    {"2b4t", {2560, 6912, 30, 20, 5, 128256, 4096, 500000.0f, 1e-5f}},
};

typedef struct options {
    model_arch arch;
    const char *preset;
    wtype type;
    uint32_t raw_type, file_type;
    uint64_t seed;
    const char *vocab;
    const char *out;
    hparams hp;
} options;

/* ---- the built-in vocabulary ---------------------------------------------- */

/* Merges of the built-in byte-level vocabulary, in rank order. Every part
 * is a byte token or an earlier merge's result, so a BPE tokenizer can use
 * them; 'Ġ' is GPT-2's stand-in for the space byte. */
static const char *const builtin_merges[] = {
    "Ġ t", "h e", "Ġ a", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s",  "a t", "e n", "n d",
    "Ġ w", "Ġ o", "o u", "l l", "Ġ c", "Ġ b", "i s",   "Ġ i", "in g", "e s", "o r", "Ġ f",
};
#define N_BUILTIN_MERGES (sizeof(builtin_merges) / sizeof(builtin_merges[0]))

static const char *const builtin_control[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
#define N_BUILTIN_CONTROL 3
#define BUILTIN_VOCAB     (256 + N_BUILTIN_MERGES + N_BUILTIN_CONTROL)

/* GPT-2's byte-to-character map: printable Latin-1 bytes stand for
 * themselves, the others for U+0100 upwards in byte order. */
static uint32_t gpt2_byte_char(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++) {
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174))
            n++;
    }
    return 256 + n;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2; /* every code point here is below U+0800 */
}

/* Writes the built-in "gpt2" vocabulary, padded with reserved control tokens
 * up to n_vocab. */
static int add_builtin_vocab(gguf_writer *w, uint32_t n_vocab)
{
    char **tok = calloc(n_vocab, sizeof(char *));
    int32_t *type = calloc(n_vocab, sizeof(int32_t));
    int rc = tok && type ? 0 : -ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < n_vocab; i++) {
        tok[i] = calloc(1, 48);
        if (!tok[i]) {
            rc = -ENOMEM;
            break;
        }
        type[i] = 1; /* normal */
        if (i < 256) {
            tok[i][utf8_put(gpt2_byte_char(i), tok[i])] = '\0';
        } else if (i < 256 + N_BUILTIN_MERGES) {
            /* The merged token is the pair without its separating space. */
            const char *m = builtin_merges[i - 256];
            const char *sp = strchr(m, ' ');
            snprintf(tok[i], 48, "%.*s%s", (int)(sp - m), m, sp + 1);
        } else if (i < BUILTIN_VOCAB) {
            snprintf(tok[i], 48, "%s", builtin_control[i - 256 - N_BUILTIN_MERGES]);
            type[i] = 3; /* control */
        } else {
            snprintf(tok[i], 48, "<|reserved_special_token_%u|>", i - (uint32_t)BUILTIN_VOCAB);
            type[i] = 3;
        }
    }
    uint32_t bos = 256 + N_BUILTIN_MERGES;
    if (rc == 0)
        rc = gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    if (rc == 0)
        rc = gguf_writer_add_str(w, "tokenizer.ggml.pre", "default");
    if (rc == 0)
        rc = gguf_writer_add_array_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, NULL,
                                       n_vocab);
    if (rc == 0)
        rc = gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, type, n_vocab);
    if (rc == 0)
        rc = gguf_writer_add_array_str(w, "tokenizer.ggml.merges", builtin_merges, NULL,
                                       N_BUILTIN_MERGES);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", bos);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", bos + 1);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, "tokenizer.ggml.eot_token_id", bos + 2);
    if (rc == 0)
        rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    for (uint32_t i = 0; tok && i < n_vocab; i++)
        free(tok[i]);
    free(tok);
    free(type);
    return rc;
}

/* Opens a vocab GGUF and reads its vocabulary size. */
static int open_vocab(const char *path, gguf_file **out, uint32_t *n_vocab)
{
    char err[512];
    gguf_file *v = NULL;
    int rc = gguf_open(path, &v, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "bitnet-mkmodel: %s\n", err);
        return rc;
    }
    int64_t i = gguf_kv_find(v, "tokenizer.ggml.tokens");
    uint64_t n = gguf_kv_array_count(v, i);
    if (i < 0 || gguf_kv_array_type(v, i) != GGUF_TYPE_STRING || n == 0 || n > UINT32_MAX) {
        fprintf(stderr, "bitnet-mkmodel: %s: no tokenizer.ggml.tokens string array\n", path);
        gguf_close(v);
        return BITNET_EMISSING;
    }
    *out = v;
    *n_vocab = (uint32_t)n;
    return 0;
}

/* Copies every tokenizer.* KV of the vocab file. */
static int add_file_vocab(gguf_writer *w, const gguf_file *v)
{
    int rc = 0;
    for (int64_t k = 0; rc == 0 && k < gguf_kv_count(v); k++) {
        if (strncmp(gguf_kv_key(v, k), "tokenizer.", 10) == 0)
            rc = gguf_writer_copy_kv(w, v, k);
    }
    return rc;
}

/* ---- tensors -------------------------------------------------------------- */

typedef enum tkind { T_EMBED, T_NORM, T_MATRIX } tkind;

typedef struct tdesc {
    char name[64];
    tkind kind;
    int64_t ne0, ne1;
    uint32_t raw;
    uint64_t nbytes;
} tdesc;

static uint64_t matrix_bytes(wtype t, int64_t ne0, int64_t ne1)
{
    switch (t) {
    case WT_I2S:
        return bitnet_i2s_tensor_bytes(ne0, ne1);
    case WT_TQ2_0:
        return bitnet_tq2_0_row_bytes(ne0) * (uint64_t)ne1;
    case WT_TQ1_0:
        return bitnet_tq1_0_row_bytes(ne0) * (uint64_t)ne1;
    case WT_F16:
        return (uint64_t)ne0 * (uint64_t)ne1 * 2;
    case WT_F32:
        return (uint64_t)ne0 * (uint64_t)ne1 * 4;
    }
    return 0;
}

/* The tensor list in file order. Returns the count (<= cap). */
static size_t describe(const options *o, tdesc *t, size_t cap)
{
    const hparams *h = &o->hp;
    const int64_t E = h->n_embd, F = h->n_ff, KV = (int64_t)h->n_embd / h->n_head * h->n_head_kv;
    size_t n = 0;
    bool f32_embed = o->type == WT_F32;
#define ADD(kind_, ne0_, ne1_, ...)                                                                \
    do {                                                                                           \
        if (n < cap) {                                                                             \
            snprintf(t[n].name, sizeof(t[n].name), __VA_ARGS__);                                   \
            t[n].kind = kind_;                                                                     \
            t[n].ne0 = ne0_;                                                                       \
            t[n].ne1 = ne1_;                                                                       \
        }                                                                                          \
        n++;                                                                                       \
    } while (0)
    ADD(T_EMBED, E, h->n_vocab, "token_embd.weight");
    for (uint32_t l = 0; l < h->n_layer; l++) {
        ADD(T_NORM, E, 1, "blk.%u.attn_norm.weight", l);
        ADD(T_MATRIX, E, E, "blk.%u.attn_q.weight", l);
        ADD(T_MATRIX, E, KV, "blk.%u.attn_k.weight", l);
        ADD(T_MATRIX, E, KV, "blk.%u.attn_v.weight", l);
        ADD(T_NORM, E, 1, "blk.%u.attn_sub_norm.weight", l);
        ADD(T_MATRIX, E, E, "blk.%u.attn_output.weight", l);
        ADD(T_NORM, E, 1, "blk.%u.ffn_norm.weight", l);
        ADD(T_MATRIX, E, F, "blk.%u.ffn_gate.weight", l);
        ADD(T_MATRIX, E, F, "blk.%u.ffn_up.weight", l);
        ADD(T_NORM, F, 1, "blk.%u.ffn_sub_norm.weight", l);
        ADD(T_MATRIX, F, E, "blk.%u.ffn_down.weight", l);
    }
    ADD(T_NORM, E, 1, "output_norm.weight");
#undef ADD
    for (size_t i = 0; i < n && i < cap; i++) {
        switch (t[i].kind) {
        case T_EMBED:
            t[i].raw = f32_embed ? GGML_TYPE_F32 : GGML_TYPE_F16;
            t[i].nbytes = (uint64_t)t[i].ne0 * (uint64_t)t[i].ne1 * (f32_embed ? 4 : 2);
            break;
        case T_NORM:
            t[i].raw = GGML_TYPE_F32;
            t[i].nbytes = (uint64_t)t[i].ne0 * 4;
            break;
        case T_MATRIX:
            t[i].raw = o->raw_type;
            t[i].nbytes = matrix_bytes(o->type, t[i].ne0, t[i].ne1);
            break;
        }
    }
    return n;
}

/* Scratch buffers shared by every tensor, sized for the largest. */
typedef struct scratch {
    float *f;   /* one weight matrix as floats */
    uint8_t *b; /* its packed bytes */
    size_t f_len, b_len;
} scratch;

static int write_embedding(const options *o, const tdesc *t, gguf_writer *w, FILE *fp, scratch *s)
{
    rng r;
    rng_for(&r, o->seed, t->name);
    bool f32 = t->raw == GGML_TYPE_F32;
    for (int64_t row = 0; row < t->ne1; row++) {
        /* Rows get a log-normal norm, as trained vocabularies do (frequent
         * tokens differ from rare ones). With equal norms the tied LM head
         * of a random model gives nearly flat logits whose top two are
         * often within rounding of each other, and greedy decoding then
         * depends on the last bit of every engine. */
        float row_scale = 0.02f * expf(0.8f * rng_gauss(&r));
        for (int64_t i = 0; i < t->ne0; i++) {
            float v = row_scale * rng_gauss(&r);
            if (f32) {
                s->f[i] = v;
            } else {
                uint16_t h = f32_to_f16(v);
                memcpy(s->b + 2 * i, &h, 2);
            }
        }
        int rc = gguf_writer_write_data(w, fp, f32 ? (const void *)s->f : s->b,
                                        (size_t)t->ne0 * (f32 ? 4 : 2));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int write_norm(const options *o, const tdesc *t, gguf_writer *w, FILE *fp, scratch *s)
{
    rng r;
    rng_for(&r, o->seed, t->name);
    for (int64_t i = 0; i < t->ne0; i++)
        s->f[i] = 1.0f + 0.05f * rng_gauss(&r);
    return gguf_writer_write_data(w, fp, s->f, (size_t)t->ne0 * 4);
}

/* Random N(0, 1/ne0) weights, ternarized with BitNet's absmean rule. */
static void make_ternary(const options *o, const tdesc *t, float *x)
{
    rng r;
    rng_for(&r, o->seed, t->name);
    size_t n = (size_t)t->ne0 * (size_t)t->ne1;
    float sd = 1.0f / sqrtf((float)t->ne0);
    for (size_t i = 0; i < n; i++)
        x[i] = sd * rng_gauss(&r);
    bitnet_ternarize_absmean(x, n);
}

static int write_matrix(const options *o, const tdesc *t, gguf_writer *w, FILE *fp, scratch *s)
{
    size_t n = (size_t)t->ne0 * (size_t)t->ne1;
    make_ternary(o, t, s->f);
    switch (o->type) {
    case WT_I2S:
        if (bitnet_i2s_pack(s->f, t->ne0, t->ne1, s->b) < 0)
            return -EINVAL;
        break;
    case WT_TQ2_0:
    case WT_TQ1_0: {
        size_t rb =
            o->type == WT_TQ2_0 ? bitnet_tq2_0_row_bytes(t->ne0) : bitnet_tq1_0_row_bytes(t->ne0);
        for (int64_t r = 0; r < t->ne1; r++) {
            const float *x = s->f + (size_t)r * (size_t)t->ne0;
            if (o->type == WT_TQ2_0)
                bitnet_tq2_0_pack_row(x, t->ne0, s->b + (size_t)r * rb);
            else
                bitnet_tq1_0_pack_row(x, t->ne0, s->b + (size_t)r * rb);
        }
        break;
    }
    case WT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = f32_to_f16(s->f[i]);
            memcpy(s->b + 2 * i, &h, 2);
        }
        break;
    case WT_F32:
        return gguf_writer_write_data(w, fp, s->f, n * 4);
    }
    return gguf_writer_write_data(w, fp, s->b, (size_t)t->nbytes);
}

/* ---- the file ------------------------------------------------------------- */

static int add_hparams(gguf_writer *w, const options *o)
{
    const hparams *h = &o->hp;
    const char *a = model_arch_name(o->arch);
    char key[128], name[96];
    int rc = gguf_writer_add_str(w, "general.architecture", a);
    snprintf(name, sizeof(name), "bitnet-mkmodel %s %s seed %llu", o->preset ? o->preset : "custom",
             wtypes[o->type].name, (unsigned long long)o->seed);
    if (rc == 0)
        rc = gguf_writer_add_str(w, "general.name", name);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, "general.file_type", o->file_type);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, "general.quantization_version", 2);
#define KEY(suffix) (snprintf(key, sizeof(key), "%s." suffix, a), key)
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("vocab_size"), h->n_vocab);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("context_length"), h->n_ctx);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("embedding_length"), h->n_embd);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("block_count"), h->n_layer);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("feed_forward_length"), h->n_ff);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("rope.dimension_count"), h->n_embd / h->n_head);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("attention.head_count"), h->n_head);
    if (rc == 0)
        rc = gguf_writer_add_u32(w, KEY("attention.head_count_kv"), h->n_head_kv);
    if (rc == 0)
        rc = gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), h->eps);
    if (rc == 0)
        rc = gguf_writer_add_f32(w, KEY("rope.freq_base"), h->rope_base);
    if (rc == 0 && o->arch == MODEL_ARCH_BITNET) {
        /* As llama.cpp's converter writes them for 1bitLLM models. */
        rc = gguf_writer_add_str(w, KEY("rope.scaling.type"), "linear");
        if (rc == 0)
            rc = gguf_writer_add_f32(w, KEY("rope.scaling.factor"), 1.0f);
    }
#undef KEY
    return rc;
}

static int write_model(const options *o, const char *tmp_path)
{
    hparams hp = o->hp;
    gguf_writer *w = NULL;
    int rc = gguf_writer_new(&w);
    if (rc < 0)
        return rc;

    /* The vocabulary decides n_vocab; its keys follow the hyperparameters. */
    gguf_file *vocab = NULL;
    uint32_t n_vocab = hp.n_vocab ? hp.n_vocab : (uint32_t)BUILTIN_VOCAB;
    bool no_vocab = o->vocab && strcmp(o->vocab, "none") == 0;
    if (no_vocab) {
        if (!hp.n_vocab) {
            fprintf(stderr, "bitnet-mkmodel: --vocab none needs --n-vocab\n");
            rc = -EINVAL;
        }
    } else if (o->vocab) {
        rc = open_vocab(o->vocab, &vocab, &n_vocab);
    } else if (n_vocab < BUILTIN_VOCAB) {
        fprintf(stderr, "bitnet-mkmodel: --n-vocab %u is below the built-in vocabulary (%u)\n",
                n_vocab, (unsigned)BUILTIN_VOCAB);
        rc = -EINVAL;
    }
    hp.n_vocab = n_vocab;
    options eff = *o;
    eff.hp = hp;
    if (rc == 0)
        rc = add_hparams(w, &eff);
    if (rc == 0 && !no_vocab)
        rc = vocab ? add_file_vocab(w, vocab) : add_builtin_vocab(w, n_vocab);
    gguf_close(vocab);

    size_t n_t = describe(&eff, NULL, 0);
    tdesc *t = calloc(n_t, sizeof(*t));
    scratch s = {0};
    FILE *fp = NULL;
    if (!t && rc >= 0)
        rc = -ENOMEM;
    if (rc == 0) {
        describe(&eff, t, n_t);
        for (size_t i = 0; i < n_t && rc >= 0; i++) {
            rc = gguf_writer_add_tensor(w, t[i].name, t[i].kind == T_NORM ? 1 : 2,
                                        (int64_t[2]){t[i].ne0, t[i].ne1}, t[i].raw, t[i].nbytes);
            size_t fl = t[i].kind == T_MATRIX ? (size_t)(t[i].ne0 * t[i].ne1) : (size_t)t[i].ne0;
            size_t bl = t[i].kind == T_MATRIX ? (size_t)t[i].nbytes : (size_t)t[i].ne0 * 4;
            if (fl > s.f_len)
                s.f_len = fl;
            if (bl > s.b_len)
                s.b_len = bl;
        }
    }
    if (rc >= 0) {
        s.f = malloc(s.f_len * sizeof(float));
        s.b = malloc(s.b_len);
        fp = fopen(tmp_path, "wbe");
        if (!s.f || !s.b)
            rc = -ENOMEM;
        else if (!fp)
            rc = -errno;
    }
    if (rc >= 0) {
        setvbuf(fp, NULL, _IOFBF, 1 << 20);
        rc = gguf_writer_write_header(w, fp);
    }
    for (size_t i = 0; i < n_t && rc >= 0; i++) {
        rc = gguf_writer_begin_tensor(w, fp, (int64_t)i);
        if (rc < 0)
            break;
        if (t[i].kind == T_EMBED)
            rc = write_embedding(&eff, &t[i], w, fp, &s);
        else if (t[i].kind == T_NORM)
            rc = write_norm(&eff, &t[i], w, fp, &s);
        else
            rc = write_matrix(&eff, &t[i], w, fp, &s);
    }
    if (rc >= 0)
        rc = gguf_writer_finish(w, fp);
    if (fp && fclose(fp) != 0 && rc >= 0)
        rc = -errno;
    free(s.f);
    free(s.b);
    free(t);
    gguf_writer_free(w);
    return rc < 0 ? rc : 0;
}

/* ---- command line --------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bitnet-mkmodel --arch ARCH --preset PRESET --type TYPE --seed N\n"
            "                      [--vocab VOCAB.gguf] [shape flags] -o OUT.gguf\n\n"
            "Writes a GGUF model with random ternary weights and real shapes.\n\n"
            "  --arch ARCH        bitnet (SiLU FFN) or bitnet-b1.58 (ReLU² FFN)\n"
            "  --preset PRESET    tiny (256/768/2 layers, built-in byte vocab),\n"
            "                     large (1536/4096/24), 2b4t (2560/6912/30, BitNet b1.58 2B4T)\n"
            "  --type TYPE        weight matrices as i2s, tq2_0, tq1_0, f16 or f32\n"
            "  --seed N           random seed (same seed, same bytes)\n"
            "  --vocab FILE       copy the tokenizer.* keys of a vocab GGUF (sets n_vocab);\n"
            "                     'none' writes no tokenizer (needs --n-vocab)\n"
            "  --n-embd N --n-ff N --n-layer N --n-head N --n-head-kv N --n-vocab N --n-ctx N\n"
            "                     override the preset's shape\n"
            "  -o, --output FILE  where to write\n");
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-')
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* Checks the shape against what the formats and the architecture need. */
static int check_shape(const options *o)
{
    const hparams *h = &o->hp;
    if (!h->n_embd || !h->n_ff || !h->n_layer || !h->n_head || !h->n_head_kv || !h->n_ctx) {
        fprintf(stderr, "bitnet-mkmodel: every dimension must be positive\n");
        return -EINVAL;
    }
    if (h->n_embd % h->n_head || h->n_head % h->n_head_kv) {
        fprintf(stderr,
                "bitnet-mkmodel: n_embd %u must divide by n_head %u, and n_head by "
                "n_head_kv %u\n",
                h->n_embd, h->n_head, h->n_head_kv);
        return -EINVAL;
    }
    uint32_t mult = o->type == WT_I2S ? 128 : o->type == WT_TQ1_0 || o->type == WT_TQ2_0 ? 256 : 1;
    if (h->n_embd % mult || h->n_ff % mult) {
        fprintf(stderr,
                "bitnet-mkmodel: --type %s needs n_embd (%u) and n_ff (%u) to be "
                "multiples of %u\n",
                wtypes[o->type].name, h->n_embd, h->n_ff, mult);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_EMBD = 256, O_FF, O_LAYER, O_HEAD, O_HEAD_KV, O_VOCAB_N, O_CTX, O_VOCAB, O_SEED };
    static const struct option longopts[] = {
        {"arch", required_argument, NULL, 'a'},
        {"preset", required_argument, NULL, 'p'},
        {"type", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, O_SEED},
        {"vocab", required_argument, NULL, O_VOCAB},
        {"output", required_argument, NULL, 'o'},
        {"n-embd", required_argument, NULL, O_EMBD},
        {"n-ff", required_argument, NULL, O_FF},
        {"n-layer", required_argument, NULL, O_LAYER},
        {"n-head", required_argument, NULL, O_HEAD},
        {"n-head-kv", required_argument, NULL, O_HEAD_KV},
        {"n-vocab", required_argument, NULL, O_VOCAB_N},
        {"n-ctx", required_argument, NULL, O_CTX},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    options o = {.arch = MODEL_ARCH_COUNT, .type = (wtype)-1};
    const char *arch = NULL, *type = NULL, *seed = NULL;
    struct {
        int opt;
        uint32_t *field;
        const char *val;
    } overrides[] = {{O_EMBD, &o.hp.n_embd, NULL},       {O_FF, &o.hp.n_ff, NULL},
                     {O_LAYER, &o.hp.n_layer, NULL},     {O_HEAD, &o.hp.n_head, NULL},
                     {O_HEAD_KV, &o.hp.n_head_kv, NULL}, {O_VOCAB_N, &o.hp.n_vocab, NULL},
                     {O_CTX, &o.hp.n_ctx, NULL}};
    const size_t n_over = sizeof(overrides) / sizeof(overrides[0]);
    int c;
    while ((c = getopt_long(argc, argv, "a:p:t:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            arch = optarg;
            break;
        case 'p':
            o.preset = optarg;
            break;
        case 't':
            type = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case O_SEED:
            seed = optarg;
            break;
        case O_VOCAB:
            o.vocab = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: {
            bool found = false;
            for (size_t i = 0; i < n_over; i++) {
                if (overrides[i].opt == c) {
                    overrides[i].val = optarg;
                    found = true;
                }
            }
            if (!found) {
                usage(stderr);
                return 2;
            }
        }
        }
    }
    if (optind != argc || !arch || !type || !seed || !o.out || !o.preset) {
        fprintf(stderr, "bitnet-mkmodel: --arch, --preset, --type, --seed and -o are required\n");
        usage(stderr);
        return 2;
    }
    if (model_arch_parse(arch, &o.arch) < 0 || o.arch == MODEL_ARCH_BITNET_25) {
        fprintf(stderr, "bitnet-mkmodel: unknown --arch '%s' (bitnet, bitnet-b1.58)\n", arch);
        return 2;
    }
    for (size_t i = 0; i < sizeof(wtypes) / sizeof(wtypes[0]); i++) {
        if (strcmp(type, wtypes[i].name) == 0) {
            o.type = wtypes[i].t;
            o.raw_type = wtypes[i].raw;
            o.file_type = wtypes[i].file_type;
        }
    }
    if ((int)o.type < 0) {
        fprintf(stderr, "bitnet-mkmodel: unknown --type '%s' (i2s, tq2_0, tq1_0, f16, f32)\n",
                type);
        return 2;
    }
    bool preset_found = false;
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
        if (strcmp(o.preset, presets[i].name) == 0) {
            o.hp = presets[i].hp;
            preset_found = true;
        }
    }
    if (!preset_found) {
        fprintf(stderr, "bitnet-mkmodel: unknown --preset '%s' (tiny, large, 2b4t)\n", o.preset);
        return 2;
    }
    char *end;
    errno = 0;
    o.seed = strtoull(seed, &end, 0);
    if (errno || end == seed || *end) {
        fprintf(stderr, "bitnet-mkmodel: bad --seed '%s'\n", seed);
        return 2;
    }
    for (size_t i = 0; i < n_over; i++) {
        if (overrides[i].val && parse_u32(overrides[i].val, overrides[i].field) < 0) {
            fprintf(stderr, "bitnet-mkmodel: bad number '%s'\n", overrides[i].val);
            return 2;
        }
    }
    if (o.vocab && strcmp(o.vocab, "none") != 0 && overrides[5].val) {
        fprintf(stderr, "bitnet-mkmodel: --n-vocab and --vocab FILE exclude each other\n");
        return 2;
    }
    if (check_shape(&o) < 0)
        return 2;

    /* Write beside the target and rename, so a failed run leaves no half file. */
    size_t plen = strlen(o.out) + 16;
    char *tmp = malloc(plen);
    if (!tmp)
        return 1;
    snprintf(tmp, plen, "%s.tmp%ld", o.out, (long)getpid());
    int rc = write_model(&o, tmp);
    if (rc == 0 && rename(tmp, o.out) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        fprintf(stderr, "bitnet-mkmodel: %s: %s\n", o.out, bitnet_strerror(rc));
        free(tmp);
        return 1;
    }
    free(tmp);
    return 0;
}
