/*
 * engine/tokenizer_vocab.c - building a tokenizer from the tokenizer.ggml.*
 * keys of a GGUF file: the string table and its hash index, merges, special
 * ids, token attributes, end-of-generation tokens and decoded pieces.
 *
 * Everything is copied out of the file and never changes after
 * tokenizer_load(), which is what makes a tokenizer safe to share between
 * threads. docs/tokenizers.md describes what is read and why.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/tokenizer_internal.h"
#include "engine/unicode.h"

/* Limits on what a file may ask for (tokens, merges, bytes per token). */
#define TOK_MAX_VOCAB     (1 << 24)
#define TOK_MAX_MERGES    (1 << 24)
#define TOK_MAX_TOKEN_LEN 65535

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

int tok_grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return 0;
    size_t want = *cap ? *cap : 16;
    while (want < n) {
        if (want > SIZE_MAX / 2)
            return -ENOMEM;
        want *= 2;
    }
    if (want > SIZE_MAX / elem)
        return -ENOMEM;
    void *q = realloc(*p, want * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = want;
    return 0;
}

int tok_ids_push(tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap && tok_grow((void **)&ids->v, &ids->cap, ids->n + 1, sizeof(int32_t)))
        return -ENOMEM;
    ids->v[ids->n++] = id;
    return 0;
}

void tok_scratch_free(tok_scratch *s)
{
    free(s->bytes);
    free(s->cps);
    free(s->flags);
    free(s->ends);
    free(s->ends2);
    free(s->word);
    free(s->syms);
    free(s->heap);
}

/* ---- the string table ---- */

static uint64_t str_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

const char *tok_str(const tokenizer *t, int32_t id, size_t *len)
{
    *len = (size_t)(t->text_at[id + 1] - t->text_at[id]);
    return t->text + t->text_at[id];
}

/* The slot holding s, or the empty slot where it would go. */
static uint64_t str_slot(const tokenizer *t, const char *s, size_t len)
{
    for (uint64_t h = str_hash(s, len) & t->str_mask;; h = (h + 1) & t->str_mask) {
        int32_t id = t->str_slots[h];
        if (id < 0)
            return h;
        size_t l;
        const char *x = tok_str(t, id, &l);
        if (l == len && memcmp(x, s, len) == 0)
            return h;
    }
}

int32_t tok_lookup(const tokenizer *t, const char *s, size_t len)
{
    return t->str_slots[str_slot(t, s, len)];
}

/* Build state: capacities of the growing arrays of a tokenizer under load. */
typedef struct loader {
    tokenizer *t;
    size_t text_len, text_cap, at_cap;
} loader;

static int rehash(tokenizer *t, uint64_t slots)
{
    int32_t *v = malloc(slots * sizeof(int32_t));
    if (!v)
        return -ENOMEM;
    memset(v, 0xff, slots * sizeof(int32_t));
    free(t->str_slots);
    t->str_slots = v;
    t->str_mask = slots - 1;
    for (int32_t id = 0; id < t->n_strings; id++) {
        size_t len;
        const char *s = tok_str(t, id, &len);
        /* A duplicate text takes the slot over: the later id wins, as in
         * llama.cpp's token_to_id map. */
        t->str_slots[str_slot(t, s, len)] = id;
    }
    return 0;
}

/* Appends a string and indexes it; a duplicate text takes over the slot.
 * Stores the new id in *id. */
static int add_string(loader *ld, const char *s, size_t len, int32_t *id)
{
    tokenizer *t = ld->t;
    if (tok_grow((void **)&t->text, &ld->text_cap, ld->text_len + len + 1, 1) ||
        tok_grow((void **)&t->text_at, &ld->at_cap, (size_t)t->n_strings + 2, sizeof(uint64_t)))
        return -ENOMEM;
    if (t->n_strings == 0)
        t->text_at[0] = 0;
    memcpy(t->text + ld->text_len, s, len);
    ld->text_len += len;
    int32_t nid = t->n_strings++;
    t->text_at[nid + 1] = ld->text_len;
    if ((uint64_t)t->n_strings * 2 > t->str_mask + 1) {
        int rc = rehash(t, (t->str_mask + 1) * 2);
        if (rc)
            return rc;
    } else {
        t->str_slots[str_slot(t, s, len)] = nid;
    }
    *id = nid;
    return 0;
}

/* The id of s, adding it as a non-token string when it is new. */
static int intern(loader *ld, const char *s, size_t len, int32_t *id)
{
    int32_t found = tok_lookup(ld->t, s, len);
    if (found >= 0) {
        *id = found;
        return 0;
    }
    return add_string(ld, s, len, id);
}

/* ---- loading ---- */

typedef struct gguf_numbers {
    gguf_type type;
    uint64_t count;
    const uint8_t *data;
} gguf_numbers;

/* An optional numeric array: 1 and *a when present, 0 when absent, <0 on error. */
static int get_numbers(const gguf_file *f, const char *key, gguf_numbers *a)
{
    const void *data;
    int rc = gguf_get_array(f, key, &a->type, &a->count, &data);
    if (rc == BITNET_EMISSING)
        return 0;
    if (rc)
        return rc;
    a->data = data;
    return 1;
}

static int load_tokens(loader *ld, const gguf_file *f, char *err, size_t err_len)
{
    tokenizer *t = ld->t;
    int64_t ki = gguf_kv_find(f, "tokenizer.ggml.tokens");
    if (ki < 0) {
        set_err(err, err_len, "tokenizer.ggml.tokens is missing");
        return BITNET_EMISSING;
    }
    if (gguf_kv_type(f, ki) != GGUF_TYPE_ARRAY || gguf_kv_array_type(f, ki) != GGUF_TYPE_STRING) {
        set_err(err, err_len, "tokenizer.ggml.tokens is not an array of strings");
        return BITNET_ETYPE;
    }
    uint64_t n = gguf_kv_array_count(f, ki);
    if (n == 0 || n > TOK_MAX_VOCAB) {
        set_err(err, err_len, "tokenizer.ggml.tokens has %llu entries (1..%d allowed)",
                (unsigned long long)n, TOK_MAX_VOCAB);
        return n == 0 ? BITNET_ETOKENIZER : BITNET_ELIMIT;
    }
    t->n_vocab = (int32_t)n;
    uint64_t slots = 1024;
    while (slots < n * 2)
        slots *= 2;
    int rc = rehash(t, slots);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        rc = gguf_get_array_str(f, "tokenizer.ggml.tokens", i, &s, &len);
        if (rc) {
            set_err(err, err_len, "tokenizer.ggml.tokens[%llu] cannot be read",
                    (unsigned long long)i);
            return rc;
        }
        if (len > TOK_MAX_TOKEN_LEN) {
            set_err(err, err_len, "tokenizer.ggml.tokens[%llu] is %zu bytes long (limit %d)",
                    (unsigned long long)i, len, TOK_MAX_TOKEN_LEN);
            return BITNET_ELIMIT;
        }
        char empty[32];
        if (len == 0) {
            /* llama.cpp gives empty tokens a placeholder text so that they
             * stay distinct; do the same so ids match. */
            len = (size_t)snprintf(empty, sizeof(empty), "[EMPTY_%llu]", (unsigned long long)i);
            s = empty;
        }
        int32_t id;
        rc = add_string(ld, s, len, &id);
        if (rc)
            return rc;
    }

    t->scores = calloc(n, sizeof(float));
    t->attr = calloc(n, sizeof(uint16_t));
    if (!t->scores || !t->attr)
        return -ENOMEM;

    gguf_numbers a;
    rc = get_numbers(f, "tokenizer.ggml.scores", &a);
    if (rc < 0 ||
        (rc == 1 && ((a.type != GGUF_TYPE_FLOAT32 && a.type != GGUF_TYPE_INT32) || a.count < n))) {
        set_err(err, err_len, "tokenizer.ggml.scores must be f32 or i32 with %llu entries",
                (unsigned long long)n);
        return rc < 0 ? rc : BITNET_ETOKENIZER;
    }
    for (uint64_t i = 0; rc == 1 && i < n; i++) {
        if (a.type == GGUF_TYPE_FLOAT32) {
            memcpy(&t->scores[i], a.data + 4 * i, 4);
        } else {
            int32_t v;
            memcpy(&v, a.data + 4 * i, 4);
            t->scores[i] = (float)v;
        }
    }

    rc = get_numbers(f, "tokenizer.ggml.token_type", &a);
    if (rc < 0 || (rc == 1 && (a.type != GGUF_TYPE_INT32 || a.count < n))) {
        set_err(err, err_len, "tokenizer.ggml.token_type must be i32 with %llu entries",
                (unsigned long long)n);
        return rc < 0 ? rc : BITNET_ETOKENIZER;
    }
    for (uint64_t i = 0; i < n; i++) {
        int32_t type = 1; /* normal when the file has no types */
        if (rc == 1)
            memcpy(&type, a.data + 4 * i, 4);
        static const uint16_t attr_of_type[] = {
            TOK_ATTR_UNDEFINED,    TOK_ATTR_NORMAL, TOK_ATTR_UNKNOWN, TOK_ATTR_CONTROL,
            TOK_ATTR_USER_DEFINED, TOK_ATTR_UNUSED, TOK_ATTR_BYTE};
        t->attr[i] = type >= 0 && type <= 6 ? attr_of_type[type] : TOK_ATTR_UNDEFINED;
    }
    return 0;
}

static int load_merges(loader *ld, const gguf_file *f, char *err, size_t err_len)
{
    tokenizer *t = ld->t;
    int64_t ki = gguf_kv_find(f, "tokenizer.ggml.merges");
    if (ki < 0) {
        set_err(err, err_len, "tokenizer.ggml.merges is missing (needed by a gpt2 vocab)");
        return BITNET_EMISSING;
    }
    if (gguf_kv_type(f, ki) != GGUF_TYPE_ARRAY || gguf_kv_array_type(f, ki) != GGUF_TYPE_STRING) {
        set_err(err, err_len, "tokenizer.ggml.merges is not an array of strings");
        return BITNET_ETYPE;
    }
    uint64_t n = gguf_kv_array_count(f, ki);
    if (n > TOK_MAX_MERGES) {
        set_err(err, err_len, "tokenizer.ggml.merges has %llu entries (limit %d)",
                (unsigned long long)n, TOK_MAX_MERGES);
        return BITNET_ELIMIT;
    }
    t->n_merges = (int32_t)n;
    uint64_t slots = 1024;
    while (slots < n + n / 2)
        slots *= 2;
    t->merges = malloc((n ? n : 1) * sizeof(tok_merge));
    t->merge_slots = malloc(slots * sizeof(int32_t));
    char *joined = malloc(2 * TOK_MAX_TOKEN_LEN + 2);
    if (!t->merges || !t->merge_slots || !joined) {
        free(joined);
        return -ENOMEM;
    }
    memset(t->merge_slots, 0xff, slots * sizeof(int32_t));
    t->merge_mask = slots - 1;

    int rc = 0;
    for (uint64_t i = 0; i < n; i++) {
        tok_merge *m = &t->merges[i];
        *m = (tok_merge){-1, -1, -1};
        const char *s;
        size_t len;
        rc = gguf_get_array_str(f, "tokenizer.ggml.merges", i, &s, &len);
        if (rc) {
            set_err(err, err_len, "tokenizer.ggml.merges[%llu] cannot be read",
                    (unsigned long long)i);
            break;
        }
        /* "left right", split at the first space after the first byte. A
         * merge without one can never apply; it keeps its rank slot. */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || len > 2 * TOK_MAX_TOKEN_LEN)
            continue;
        size_t ll = (size_t)(sp - s), rl = len - ll - 1;
        memcpy(joined, s, ll);
        memcpy(joined + ll, sp + 1, rl);
        if ((rc = intern(ld, s, ll, &m->left)) || (rc = intern(ld, sp + 1, rl, &m->right)) ||
            (rc = intern(ld, joined, ll + rl, &m->result)))
            break;
        /* The first (lowest) rank of a repeated pair wins. */
        uint64_t h = tok_pair_hash(m->left, m->right) & t->merge_mask;
        for (;; h = (h + 1) & t->merge_mask) {
            int32_t r = t->merge_slots[h];
            if (r < 0) {
                t->merge_slots[h] = (int32_t)i;
                break;
            }
            if (t->merges[r].left == m->left && t->merges[r].right == m->right)
                break;
        }
    }
    free(joined);
    return rc;
}

/* A special id from key, ignored when absent or out of range. */
static void load_special(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id)
{
    if (*id >= n_vocab)
        *id = -1;
    uint32_t v;
    if (gguf_get_u32(f, key, &v) == 0 && v < (uint32_t)n_vocab)
        *id = (int32_t)v;
}

static void load_bool(const gguf_file *f, const char *key, bool *b)
{
    bool v;
    if (gguf_get_bool(f, key, &v) == 0)
        *b = v;
}

static bool str_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static bool str_in(const char *s, size_t len, const char *const *list)
{
    for (; *list; list++) {
        if (str_is(s, len, *list))
            return true;
    }
    return false;
}

static bool is_llama3_vocab(const tokenizer *t)
{
    size_t len;
    if (t->n_vocab != 128256)
        return false;
    const char *s = tok_str(t, 128000, &len);
    return str_is(s, len, "<|begin_of_text|>");
}

static int choose_pre(tokenizer *t, const gguf_file *f, const tokenizer_options *opts, char *err,
                      size_t err_len)
{
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", NULL};
    static const char *const gpt2[] = {"gpt-2", "phi-2", "mpt", "olmo", "jais", NULL};
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", NULL};
    static const char *const dbrx[] = {"dbrx", "smaug-bpe", NULL};
    const char *pre = "";
    size_t len = 0;
    if (gguf_get_str(f, "tokenizer.ggml.pre", &pre, &len) != 0)
        len = 0;

    if (len == 0) {
        /* The official BitNet file names no pre-tokenizer (FORMATS.md 5.3). */
        if (!opts->bitnet_cpp_pre && is_llama3_vocab(t)) {
            t->pre = TOKENIZER_PRE_LLAMA3;
            t->ignore_merges = true;
            t->add_bos = true;
        } else {
            t->pre = TOKENIZER_PRE_DEFAULT;
        }
    } else if (str_is(pre, len, "default")) {
        t->pre = TOKENIZER_PRE_DEFAULT;
    } else if (str_in(pre, len, llama3)) {
        t->pre = TOKENIZER_PRE_LLAMA3;
        t->ignore_merges = true;
        t->add_bos = true;
    } else if (str_in(pre, len, gpt2)) {
        t->pre = TOKENIZER_PRE_GPT2;
    } else if (str_in(pre, len, qwen2)) {
        t->pre = TOKENIZER_PRE_QWEN2;
    } else if (str_in(pre, len, dbrx)) {
        t->pre = TOKENIZER_PRE_DBRX;
    } else {
        set_err(err, err_len, "unsupported pre-tokenizer '%.*s'", (int)(len > 64 ? 64 : len), pre);
        return BITNET_ETOKENIZER;
    }
    return 0;
}

/* The GPT-2 byte map: printable bytes stand for themselves, the other 68
 * take the code points from U+0100 up, in byte order. */
static void build_byte_maps(loader *ld)
{
    tokenizer *t = ld->t;
    uint32_t next = 256;
    for (int i = 0; i < 324; i++)
        t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        t->byte_cp[b] = printable ? (uint32_t)b : next++;
        t->cp_byte[t->byte_cp[b]] = (int16_t)b;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t n = unicode_utf8_encode(t->byte_cp[b], u);
        t->byte_char[b] = tok_lookup(t, (const char *)u, n);
        char one = (char)b;
        int32_t id = tok_lookup(t, &one, 1);
        t->byte_single[b] = id < t->n_vocab ? id : -1;
        char hex[8];
        snprintf(hex, sizeof(hex), "<0x%02X>", b);
        id = tok_lookup(t, hex, 6);
        t->byte_token[b] = id >= 0 && id < t->n_vocab ? id : t->byte_single[b];
    }
}

/*
 * End-of-turn tokens found by text, as llama.cpp does (llama-vocab.cpp
 * "auto-detect special tokens"): the first of eot_texts present becomes eot
 * when the file names none; every token in eog_texts ends generation. Both
 * are forced to CONTROL so that user text cannot produce them.
 */
static void detect_eog(tokenizer *t)
{
    static const char *const eot_texts[] = {
        "<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>",      "<|endoftext|>",
        "<|end_of_text|>", "<EOT>",      "_<EOT>",  "<end_of_utterance>", NULL};
    static const char *const eog_texts[] = {
        "<|eot_id|>",      "<|im_end|>",         "<|end|>", "<end_of_turn>",
        "<|endoftext|>",   "<|eom_id|>",         "<EOT>",   "_<EOT>",
        "<|end_of_text|>", "<end_of_utterance>", "</s>",    NULL};
    if (t->eot < 0) {
        for (const char *const *p = eot_texts; *p && t->eot < 0; p++)
            t->eot = tok_lookup(t, *p, strlen(*p));
        if (t->eot >= t->n_vocab)
            t->eot = -1;
    }
    if (t->eom < 0) {
        int32_t id = tok_lookup(t, "<|eom_id|>", 10);
        t->eom = id < t->n_vocab ? id : -1;
    }
    for (const char *const *p = eog_texts; *p; p++) {
        int32_t id = tok_lookup(t, *p, strlen(*p));
        if (id >= 0 && id < t->n_vocab)
            t->attr[id] |= TOK_ATTR_EOG | TOK_ATTR_CONTROL;
    }
    int32_t ids[3] = {t->eos, t->eot, t->eom};
    for (int i = 0; i < 3; i++) {
        if (ids[i] >= 0)
            t->attr[ids[i]] |= TOK_ATTR_EOG | (i > 0 ? TOK_ATTR_CONTROL : 0);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_special_candidate(uint16_t attr)
{
    return attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN);
}

/* Candidates for special-token matching: longest text first, then by id. */
static int collect_specials(tokenizer *t)
{
    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        n += is_special_candidate(t->attr[id]);
    t->specials = malloc((n ? n : 1) * sizeof(int32_t));
    uint64_t *keys = malloc((n ? n : 1) * sizeof(uint64_t));
    if (!t->specials || !keys) {
        free(keys);
        return -ENOMEM;
    }
    /* Sort key: (longest first) in the high half, the id in the low half.
     * Token texts are at most TOK_MAX_TOKEN_LEN bytes. */
    size_t k = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (is_special_candidate(t->attr[id])) {
            uint64_t len = t->text_at[id + 1] - t->text_at[id];
            keys[k++] = ((uint64_t)(TOK_MAX_TOKEN_LEN + 64 - len) << 32) | (uint32_t)id;
        }
    }
    qsort(keys, n, sizeof(uint64_t), cmp_u64);
    for (size_t i = 0; i < n; i++)
        t->specials[i] = (int32_t)(keys[i] & 0xFFFFFFFFu);
    t->n_specials = (int32_t)n;
    free(keys);
    return 0;
}

/* Phi-3 vocabs: llama.cpp strips whitespace after its special tokens. */
static void apply_model_quirks(tokenizer *t, const gguf_file *f)
{
    const char *name;
    size_t len;
    if (gguf_get_str(f, "general.name", &name, &len) != 0)
        return;
    char lower[256];
    size_t n = len < sizeof(lower) - 1 ? len : sizeof(lower) - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    lower[n] = 0;
    if (!strstr(lower, "phi-3") && !strstr(lower, "phi3"))
        return;
    for (int32_t i = 0; i < t->n_specials; i++)
        t->attr[t->specials[i]] |= TOK_ATTR_RSTRIP;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    int32_t id = tok_lookup(t, "</s>", 4);
    if (id >= 0 && id < t->n_vocab)
        t->attr[id] |= TOK_ATTR_RSTRIP;
    for (size_t i = 0; i < 3; i++) {
        id = tok_lookup(t, keep[i], strlen(keep[i]));
        if (id >= 0 && id < t->n_vocab)
            t->attr[id] &= (uint16_t)~TOK_ATTR_RSTRIP;
    }
}

/* Writes the special=true piece of token id to out (room for 4 bytes per
 * byte of its text) and returns its length. */
static size_t render_piece(const tokenizer *t, int32_t id, char *out)
{
    size_t len;
    const char *s = tok_str(t, id, &len);
    uint16_t a = t->attr[id];
    if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN | TOK_ATTR_USER_DEFINED)) {
        memcpy(out, s, len);
        return len;
    }
    /* Exactly two hex digits: sscanf("%2x") would also take "-1" or " 1". */
    if ((a & TOK_ATTR_BYTE) && len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
        isxdigit((unsigned char)s[3]) && isxdigit((unsigned char)s[4])) {
        char hex[3] = {s[3], s[4], '\0'};
        out[0] = (char)strtoul(hex, NULL, 16);
        return 1;
    }
    if (!(a & (TOK_ATTR_NORMAL | TOK_ATTR_BYTE)))
        return 0; /* undefined and unused tokens render as nothing */
    size_t o = 0;
    if (t->model == TOKENIZER_MODEL_SPM) {
        for (size_t i = 0; i < len; i++) {
            if (i + 2 < len && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                out[o++] = ' ';
                i += 2;
            } else {
                out[o++] = s[i];
            }
        }
        return o;
    }
    /* Byte-level BPE: each character stands for one byte. A character outside
     * the map (a malformed vocab) is kept as its own UTF-8. */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = unicode_utf8_decode((const uint8_t *)s + i, len - i, &cp);
        if (cp < 324 && t->cp_byte[cp] >= 0) {
            out[o++] = (char)t->cp_byte[cp];
        } else {
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n;
    }
    return o;
}

static int build_pieces(tokenizer *t)
{
    size_t total = t->text_at[t->n_vocab];
    t->piece_at = malloc(((size_t)t->n_vocab + 1) * sizeof(uint64_t));
    t->piece = malloc(total + 1);
    if (!t->piece_at || !t->piece)
        return -ENOMEM;
    /* A piece is never longer than its text: each character gives at most
     * its own bytes. */
    size_t o = 0;
    t->max_piece = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->piece_at[id] = o;
        size_t n = render_piece(t, id, t->piece + o);
        o += n;
        if (n > t->max_piece)
            t->max_piece = n;
    }
    t->piece_at[t->n_vocab] = o;
    return 0;
}

int tokenizer_load(const gguf_file *f, const tokenizer_options *opts, tokenizer **out, char *err,
                   size_t err_len)
{
    static const tokenizer_options defaults = {0};
    if (!f || !out)
        return -EINVAL;
    if (!opts)
        opts = &defaults;

    const char *model;
    size_t model_len;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model, &model_len);
    if (rc) {
        set_err(err, err_len, "tokenizer.ggml.model is %s",
                rc == BITNET_EMISSING ? "missing" : "not a string");
        return rc;
    }
    tokenizer *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    loader ld = {.t = t};
    t->bos = t->eos = t->eot = t->eom = t->unk = -1;

    if (str_is(model, model_len, "gpt2")) {
        t->model = TOKENIZER_MODEL_BPE;
        t->bos = t->eos = 11;
    } else if (str_is(model, model_len, "llama")) {
        t->model = TOKENIZER_MODEL_SPM;
        t->pre = TOKENIZER_PRE_NONE;
        t->bos = 1;
        t->eos = 2;
        t->unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else {
        set_err(err, err_len, "unsupported tokenizer model '%.*s'",
                (int)(model_len > 64 ? 64 : model_len), model);
        rc = BITNET_ETOKENIZER;
        goto fail;
    }

    if ((rc = load_tokens(&ld, f, err, err_len)))
        goto fail;
    if (t->model == TOKENIZER_MODEL_BPE) {
        if ((rc = choose_pre(t, f, opts, err, err_len)) || (rc = load_merges(&ld, f, err, err_len)))
            goto fail;
    } else {
        load_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    }

    load_special(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos);
    load_special(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos);
    load_special(f, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot);
    load_special(f, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom);
    load_special(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk);
    load_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos);
    load_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos);

    build_byte_maps(&ld);
    detect_eog(t);
    if ((rc = collect_specials(t)))
        goto fail;
    apply_model_quirks(t, f);
    if ((rc = build_pieces(t)))
        goto fail;
    *out = t;
    return 0;

fail:
    if (rc == -ENOMEM)
        set_err(err, err_len, "out of memory loading the tokenizer");
    tokenizer_free(t);
    return rc;
}

void tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->text_at);
    free(t->str_slots);
    free(t->scores);
    free(t->attr);
    free(t->merges);
    free(t->merge_slots);
    free(t->piece);
    free(t->piece_at);
    free(t->specials);
    free(t);
}
