/*
 * tests/engine/test_tokenizer.c - the tokenizers against llama.cpp's own
 * test vectors (models/ggml-vocab-*.gguf with .inp/.out), plus decoding,
 * streaming, special tokens, the chat format and hostile input.
 */
#define _GNU_SOURCE /* memmem, rand_r */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"

#ifndef BITNET_REFERENCE_DIR
#error "BITNET_REFERENCE_DIR must be defined"
#endif
#define MODELS BITNET_REFERENCE_DIR "/llama.cpp/models/"

/* ---- helpers ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = 0;
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static tokenizer *load_vocab_opts(const char *name, const tokenizer_options *opts)
{
    char path[512], err[256] = "";
    snprintf(path, sizeof(path), MODELS "ggml-vocab-%s.gguf", name);
    gguf_file *f;
    int rc = gguf_open(path, &f, err, sizeof(err));
    ck_assert_msg(rc == 0, "gguf_open %s: %s", path, err);
    tokenizer *t;
    rc = tokenizer_load(f, opts, &t, err, sizeof(err));
    ck_assert_msg(rc == 0, "tokenizer_load %s: %d %s", name, rc, err);
    gguf_close(f);
    return t;
}

/* Vocabs loaded once, in main() before the tests fork, and shared: loading
 * the LLaMA-3 vocab takes a few hundred milliseconds. */
static struct {
    const char *name;
    tokenizer *t;
} cache[8];

static tokenizer *load_vocab(const char *name)
{
    size_t i = 0;
    for (; i < 8 && cache[i].name; i++) {
        if (strcmp(cache[i].name, name) == 0)
            return cache[i].t;
    }
    tokenizer *t = load_vocab_opts(name, NULL);
    if (i < 8) {
        cache[i].name = name;
        cache[i].t = t;
    }
    return t;
}

/* Tokenizers from load_vocab() stay cached until the program ends. */
static void release(tokenizer *t)
{
    (void)t;
}

/* One test case of a .inp/.out pair. */
typedef struct vec_case {
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
} vec_case;

typedef struct vec_set {
    char *inp;
    vec_case *cases;
    size_t n;
} vec_set;

/*
 * Parses the test vectors as llama.cpp's test-tokenizer-0 does: the .inp
 * strings are separated by (and end with) "\n__ggml_vocab_test__\n"; each
 * .out line holds the expected ids, space separated.
 */
static vec_set read_vectors(const char *name)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char path[512];
    vec_set vs = {0};
    size_t inp_len, out_len;
    snprintf(path, sizeof(path), MODELS "ggml-vocab-%s.gguf.inp", name);
    vs.inp = read_file(path, &inp_len);
    snprintf(path, sizeof(path), MODELS "ggml-vocab-%s.gguf.out", name);
    char *out = read_file(path, &out_len);

    vs.cases = calloc(256, sizeof(vec_case));
    size_t pos = 0;
    while (pos < inp_len) {
        ck_assert_uint_lt(vs.n, 256);
        char *next = memmem(vs.inp + pos, inp_len - pos, sep, sizeof(sep) - 1);
        size_t end = next ? (size_t)(next - vs.inp) : inp_len;
        vs.cases[vs.n].text = vs.inp + pos;
        vs.cases[vs.n].len = end - pos;
        vs.n++;
        if (!next)
            break;
        pos = end + sizeof(sep) - 1;
    }

    size_t line = 0;
    char *p = out, *stop = out + out_len;
    while (p < stop) {
        char *nl = memchr(p, '\n', (size_t)(stop - p));
        char *e = nl ? nl : stop;
        ck_assert_msg(line < vs.n, "%s: more .out lines than .inp tests", name);
        vec_case *c = &vs.cases[line];
        c->ids = malloc(((size_t)(e - p) / 2 + 1) * sizeof(int32_t));
        for (char *q = p; q < e;) {
            while (q < e && (*q == ' ' || *q == '\r'))
                q++;
            if (q >= e)
                break;
            c->ids[c->n_ids++] = (int32_t)strtol(q, &q, 10);
        }
        line++;
        p = e + 1;
    }
    ck_assert_msg(line == vs.n, "%s: %zu .out lines for %zu tests", name, line, vs.n);
    free(out);
    return vs;
}

static void free_vectors(vec_set *vs)
{
    for (size_t i = 0; i < vs->n; i++)
        free(vs->cases[i].ids);
    free(vs->cases);
    free(vs->inp);
}

/* Encodes into a malloc'ed array, checking the count query on the way. */
static int32_t *encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                       bool parse_special, size_t *n)
{
    size_t need = 0;
    int rc = tokenizer_encode(t, text, len, add_special, parse_special, NULL, 0, &need);
    ck_assert(rc == 0 || rc == -ENOSPC);
    int32_t *ids = malloc((need ? need : 1) * sizeof(int32_t));
    rc = tokenizer_encode(t, text, len, add_special, parse_special, ids, need, n);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(*n, need);
    return ids;
}

static char *decode(const tokenizer *t, const int32_t *ids, size_t n, bool special, size_t *len)
{
    size_t need = 0;
    int rc = tokenizer_decode(t, ids, n, special, NULL, 0, &need);
    ck_assert(rc == 0 || rc == -ENOSPC);
    char *buf = malloc(need + 1);
    rc = tokenizer_decode(t, ids, n, special, buf, need, len);
    ck_assert_int_eq(rc, 0);
    buf[*len] = 0;
    return buf;
}

static void print_case(const char *name, size_t i, const vec_case *c, const int32_t *got, size_t n)
{
    fprintf(stderr, "%s case %zu '%.*s': expected", name, i, (int)c->len, c->text);
    for (size_t k = 0; k < c->n_ids; k++)
        fprintf(stderr, " %d", c->ids[k]);
    fprintf(stderr, "\n    got");
    for (size_t k = 0; k < n; k++)
        fprintf(stderr, " %d", got[k]);
    fprintf(stderr, "\n");
}

/* Encodes every case with add_special=false, parse_special=false (as
 * test-tokenizer-0 does) and returns how many match exactly. */
static size_t run_vectors(const char *name, size_t *total)
{
    tokenizer *t = load_vocab(name);
    vec_set vs = read_vectors(name);
    size_t pass = 0;
    for (size_t i = 0; i < vs.n; i++) {
        size_t n;
        int32_t *got = encode(t, vs.cases[i].text, vs.cases[i].len, false, false, &n);
        if (n == vs.cases[i].n_ids && memcmp(got, vs.cases[i].ids, n * sizeof(int32_t)) == 0)
            pass++;
        else
            print_case(name, i, &vs.cases[i], got, n);
        free(got);
    }
    *total = vs.n;
    free_vectors(&vs);
    release(t);
    return pass;
}

/* ---- llama.cpp test vectors ---- */

START_TEST(vectors_llama_bpe_match_llama_cpp)
{
    size_t total, pass = run_vectors("llama-bpe", &total);
    ck_assert_uint_eq(total, 46);
    ck_assert_uint_eq(pass, total);
}
END_TEST

START_TEST(vectors_llama_spm_match_llama_cpp)
{
    size_t total, pass = run_vectors("llama-spm", &total);
    ck_assert_uint_eq(total, 46);
    ck_assert_uint_eq(pass, total);
}
END_TEST

START_TEST(vectors_gpt2_match_llama_cpp)
{
    size_t total, pass = run_vectors("gpt-2", &total);
    ck_assert_uint_gt(total, 0);
    ck_assert_uint_eq(pass, total);
}
END_TEST

START_TEST(vectors_phi3_match_llama_cpp)
{
    size_t total, pass = run_vectors("phi-3", &total);
    ck_assert_uint_gt(total, 0);
    ck_assert_uint_eq(pass, total);
}
END_TEST

START_TEST(vectors_qwen2_match_llama_cpp)
{
    size_t total, pass = run_vectors("qwen2", &total);
    ck_assert_uint_gt(total, 0);
    ck_assert_uint_eq(pass, total);
}
END_TEST

/* ---- decoding ---- */

/* decode(encode(text)) == text for every test string. */
static void check_round_trip(const char *name)
{
    tokenizer *t = load_vocab(name);
    vec_set vs = read_vectors(name);
    for (size_t i = 0; i < vs.n; i++) {
        size_t n, len;
        int32_t *ids = encode(t, vs.cases[i].text, vs.cases[i].len, false, false, &n);
        char *text = decode(t, ids, n, false, &len);
        ck_assert_msg(len == vs.cases[i].len && memcmp(text, vs.cases[i].text, len) == 0,
                      "%s case %zu: '%.*s' came back as '%s'", name, i, (int)vs.cases[i].len,
                      vs.cases[i].text, text);
        free(text);
        free(ids);
    }
    free_vectors(&vs);
    release(t);
}

START_TEST(decode_inverts_encode_bpe)
{
    check_round_trip("llama-bpe");
    check_round_trip("gpt-2");
    check_round_trip("qwen2");
}
END_TEST

START_TEST(decode_inverts_encode_spm)
{
    check_round_trip("llama-spm");
    check_round_trip("phi-3");
}
END_TEST

/* Random bytes biased towards UTF-8: valid sequences of every length, lone
 * surrogates written as 3-byte sequences, stray and truncated bytes. */
static size_t random_text(unsigned *seed, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 4 < cap) {
        int kind = rand_r(seed) % 10;
        uint32_t cp;
        uint8_t u[4];
        if (kind < 4) {
            buf[n++] = (char)(0x20 + rand_r(seed) % 0x5F);
            continue;
        } else if (kind == 4) {
            buf[n++] = (char)(rand_r(seed) % 256);
            continue;
        } else if (kind == 5) {
            cp = 0xD800 + (uint32_t)rand_r(seed) % 0x800; /* surrogate, encoded by hand */
            buf[n++] = (char)(0xE0 | (cp >> 12));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
            continue;
        } else if (kind == 6) {
            cp = 0x80 + (uint32_t)rand_r(seed) % 0x780;
        } else if (kind == 7) {
            cp = 0x800 + (uint32_t)rand_r(seed) % 0xF800;
        } else if (kind == 8) {
            cp = 0x10000 + (uint32_t)rand_r(seed) % 0x100000;
        } else {
            static const char *const words[] = {" the", "\n\n", "  ", "'s", "123456", "\t"};
            const char *w = words[rand_r(seed) % 6];
            size_t l = strlen(w);
            if (n + l >= cap)
                break;
            memcpy(buf + n, w, l);
            n += l;
            continue;
        }
        size_t l = unicode_utf8_encode(cp, u);
        if (rand_r(seed) % 8 == 0)
            l--; /* truncated sequence */
        memcpy(buf + n, u, l);
        n += l;
    }
    return n;
}

START_TEST(decode_of_random_bytes_is_the_sanitized_text)
{
    tokenizer *t = load_vocab("llama-bpe");
    unsigned seed = 1234;
    char text[600];
    uint8_t clean[1800];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = random_text(&seed, text, 1 + (size_t)(rand_r(&seed) % (int)sizeof(text)));
        size_t clean_len = unicode_utf8_sanitize((const uint8_t *)text, len, clean);
        ck_assert(unicode_utf8_valid(clean, clean_len));
        size_t n, out_len;
        int32_t *ids = encode(t, text, len, false, false, &n);
        char *back = decode(t, ids, n, false, &out_len);
        ck_assert_msg(out_len == clean_len && memcmp(back, clean, out_len) == 0,
                      "iteration %d differs", iter);
        free(back);
        free(ids);
    }
    release(t);
}
END_TEST

START_TEST(sanitize_replaces_each_invalid_byte)
{
    static const struct {
        const char *in;
        size_t n_fffd;  /* U+FFFD expected */
        size_t n_other; /* other bytes kept */
    } cases[] = {
        {"\xED\xA0\x80", 3, 0},     /* lone surrogate U+D800 */
        {"\xC0\xAF", 2, 0},         /* overlong '/' */
        {"\xF4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"a\xE2\x82", 2, 1},        /* truncated euro sign */
        {"\xE2\x82\xAC", 0, 3},     /* the euro sign itself */
        {"\xEF\xBF\xBD", 0, 3},     /* a real U+FFFD is kept */
        {"\x80x", 1, 1},            /* stray continuation byte */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[64];
        size_t len = strlen(cases[i].in);
        size_t n = unicode_utf8_sanitize((const uint8_t *)cases[i].in, len, out);
        ck_assert_uint_eq(n, 3 * cases[i].n_fffd + cases[i].n_other);
        ck_assert(unicode_utf8_valid(out, n));
        ck_assert_int_eq(unicode_utf8_valid((const uint8_t *)cases[i].in, len),
                         cases[i].n_fffd == 0);
    }
}
END_TEST

START_TEST(unicode_classes_follow_the_categories)
{
    ck_assert(unicode_is_letter('a') && unicode_is_letter(0x00E9) && unicode_is_letter(0x4E2D));
    ck_assert(unicode_is_number('7') && unicode_is_number(0x00BD) && unicode_is_number(0x0663));
    ck_assert(unicode_is_punct('!') && unicode_is_punct(0x3002) && !unicode_is_punct('$'));
    ck_assert(unicode_is_space(' ') && unicode_is_space(0x3000) && unicode_is_space(0x0085));
    ck_assert(!unicode_is_space(0x200B) && !unicode_is_space(0x1C));
    ck_assert_int_eq(unicode_class_of(0x10FFFF), UNICODE_UNASSIGNED);
    ck_assert_int_eq(unicode_class_of(0xE000), UNICODE_CONTROL); /* private use */
    ck_assert_int_eq(unicode_class_of(0x0301), UNICODE_MARK);
    ck_assert_int_eq(unicode_class_of(0x20AC), UNICODE_SYMBOL);
}
END_TEST

/* ---- streaming ---- */

/* Feeds ids one at a time; every chunk must be valid UTF-8 on its own. */
static char *stream_all(const tokenizer *t, const int32_t *ids, size_t n, bool strip, size_t *len,
                        size_t *n_empty)
{
    tokenizer_stream s;
    tokenizer_stream_init(&s, t, false, strip);
    size_t cap = tokenizer_stream_bound(t);
    char *out = malloc(cap * (n + 1) + 1);
    char *chunk = malloc(cap);
    size_t o = 0;
    *n_empty = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t k;
        int rc = i < n ? tokenizer_stream_feed(&s, ids[i], chunk, cap, &k)
                       : tokenizer_stream_flush(&s, chunk, cap, &k);
        ck_assert_int_eq(rc, 0);
        ck_assert_msg(unicode_utf8_valid((const uint8_t *)chunk, k), "chunk %zu is not valid UTF-8",
                      i);
        if (k == 0 && i < n)
            (*n_empty)++;
        memcpy(out + o, chunk, k);
        o += k;
    }
    out[o] = 0;
    *len = o;
    free(chunk);
    return out;
}

START_TEST(stream_emits_whole_characters_only)
{
    static const char *const names[] = {"llama-bpe", "llama-spm"};
    for (size_t v = 0; v < 2; v++) {
        tokenizer *t = load_vocab(names[v]);
        vec_set vs = read_vectors(names[v]);
        for (size_t i = 0; i < vs.n; i++) {
            size_t n, len, empty;
            int32_t *ids = encode(t, vs.cases[i].text, vs.cases[i].len, false, false, &n);
            char *text = stream_all(t, ids, n, true, &len, &empty);
            ck_assert_msg(len == vs.cases[i].len && memcmp(text, vs.cases[i].text, len) == 0,
                          "%s case %zu streamed as '%s'", names[v], i, text);
            free(text);
            free(ids);
        }
        free_vectors(&vs);
        release(t);
    }
}
END_TEST

START_TEST(stream_holds_back_split_characters)
{
    /* LLaMA-2 has no token for the llama emoji: it is four byte tokens. */
    tokenizer *t = load_vocab("llama-spm");
    const char *text = "\xF0\x9F\xA6\x99";
    size_t n, len, empty;
    int32_t *ids = encode(t, text, strlen(text), false, false, &n);
    ck_assert_uint_ge(n, 4);
    char *out = stream_all(t, ids, n, true, &len, &empty);
    ck_assert_str_eq(out, text);
    ck_assert_uint_ge(empty, 3); /* nothing came out until the last byte */
    free(out);

    /* A sequence that is cut off for good comes out as U+FFFD at the end. */
    int32_t two[2] = {ids[n - 4 + 0], ids[n - 4 + 1]};
    out = stream_all(t, two, 2, false, &len, &empty);
    ck_assert_uint_eq(empty, 2);
    ck_assert_str_eq(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(out);
    free(ids);
    release(t);
}
END_TEST

START_TEST(stream_reports_short_buffer_without_losing_state)
{
    tokenizer *t = load_vocab("llama-bpe");
    size_t n;
    const char *text = "Hello world";
    int32_t *ids = encode(t, text, strlen(text), false, false, &n);
    tokenizer_stream s;
    tokenizer_stream_init(&s, t, false, false);
    char buf[64];
    size_t k;
    ck_assert_int_eq(tokenizer_stream_feed(&s, ids[0], buf, 1, &k), -ENOSPC);
    ck_assert_uint_eq(k, 5);
    ck_assert_int_eq(tokenizer_stream_feed(&s, ids[0], buf, sizeof(buf), &k), 0);
    ck_assert_uint_eq(k, 5);
    ck_assert_int_eq(tokenizer_stream_feed(&s, -1, buf, sizeof(buf), &k), BITNET_EUNKNOWN_ID);
    ck_assert_int_eq(tokenizer_stream_feed(&s, 1 << 30, buf, sizeof(buf), &k), BITNET_EUNKNOWN_ID);
    free(ids);
    release(t);
}
END_TEST

/* ---- special tokens ---- */

START_TEST(control_text_is_a_token_only_with_parse_special)
{
    tokenizer *t = load_vocab("llama-bpe");
    const char *text = "Hello<|eot_id|>World";
    size_t n;
    int32_t *ids = encode(t, text, strlen(text), false, false, &n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], 128009);
    free(ids);

    ids = encode(t, text, strlen(text), false, true, &n);
    size_t na, nb;
    int32_t *a = encode(t, "Hello", 5, false, false, &na);
    int32_t *b = encode(t, "World", 5, false, false, &nb);
    ck_assert_uint_eq(n, na + 1 + nb);
    ck_assert_mem_eq(ids, a, na * sizeof(int32_t));
    ck_assert_int_eq(ids[na], 128009);
    ck_assert_mem_eq(ids + na + 1, b, nb * sizeof(int32_t));

    /* Decoding hides control tokens unless asked. */
    size_t len;
    char *plain = decode(t, ids, n, false, &len);
    ck_assert_str_eq(plain, "HelloWorld");
    free(plain);
    char *shown = decode(t, ids, n, true, &len);
    ck_assert_str_eq(shown, text);
    free(shown);
    free(a);
    free(b);
    free(ids);
    release(t);
}
END_TEST

START_TEST(add_special_puts_bos_first)
{
    tokenizer *t = load_vocab("llama-bpe");
    ck_assert(tokenizer_add_bos(t));
    ck_assert(!tokenizer_add_eos(t));
    size_t n;
    int32_t *ids = encode(t, "Hi", 2, true, false, &n);
    ck_assert_uint_ge(n, 2);
    ck_assert_int_eq(ids[0], 128000);
    free(ids);
    ids = encode(t, "", 0, true, false, &n);
    ck_assert_uint_eq(n, 1);
    free(ids);
    ids = encode(t, "", 0, false, false, &n);
    ck_assert_uint_eq(n, 0);
    free(ids);
    release(t);
}
END_TEST

START_TEST(eog_set_of_llama3_is_eos_and_eot)
{
    tokenizer *t = load_vocab("llama-bpe");
    size_t count = 0;
    for (int32_t id = 0; id < tokenizer_n_vocab(t); id++)
        count += tokenizer_is_eog(t, id);
    ck_assert_uint_eq(count, 2);
    ck_assert(tokenizer_is_eog(t, 128001));
    ck_assert(tokenizer_is_eog(t, 128009));
    ck_assert(!tokenizer_is_eog(t, -1) && !tokenizer_is_eog(t, 128256));
    ck_assert_int_eq(tokenizer_bos(t), 128000);
    ck_assert_int_eq(tokenizer_eos(t), 128001);
    release(t);
}
END_TEST

START_TEST(encode_reports_short_buffer)
{
    tokenizer *t = load_vocab("llama-bpe");
    const char *text = "Hello world, this is a test";
    size_t need;
    int32_t small[2] = {-7, -7};
    ck_assert_int_eq(tokenizer_encode(t, text, strlen(text), false, false, small, 2, &need),
                     -ENOSPC);
    ck_assert_uint_gt(need, 2);
    ck_assert_int_eq(small[0], -7); /* untouched */
    ck_assert_int_eq(tokenizer_encode(t, NULL, 3, false, false, small, 2, &need), -EINVAL);
    char piece[4];
    size_t len;
    ck_assert_int_eq(tokenizer_token_piece(t, 128000, true, piece, sizeof(piece), &len), -ENOSPC);
    ck_assert_uint_eq(len, strlen("<|begin_of_text|>"));
    ck_assert_int_eq(tokenizer_token_piece(t, 128000, false, piece, sizeof(piece), &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(tokenizer_token_piece(t, 220, false, piece, sizeof(piece), &len), 0);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(piece[0], ' ');
    release(t);
}
END_TEST

/* ---- chat ---- */

static void append(int32_t *dst, size_t *n, const int32_t *src, size_t k)
{
    memcpy(dst + *n, src, k * sizeof(int32_t));
    *n += k;
}

static void append_text(const tokenizer *t, int32_t *dst, size_t *n, const char *s)
{
    size_t k;
    int32_t *ids = encode(t, s, strlen(s), false, false, &k);
    append(dst, n, ids, k);
    free(ids);
}

START_TEST(chat_renders_reference_format)
{
    tokenizer *t = load_vocab("llama-bpe");
    chat_message msgs[2] = {{CHAT_ROLE_SYSTEM, "You are helpful.", 16},
                            {CHAT_ROLE_USER, "  Hi\n", 5}};
    int32_t want[64];
    size_t nw = 0;
    int32_t bos = 128000, eot = 128009;
    append(want, &nw, &bos, 1);
    append_text(t, want, &nw, "System: ");
    append_text(t, want, &nw, "You are helpful.");
    append(want, &nw, &eot, 1);
    append_text(t, want, &nw, "User: ");
    append_text(t, want, &nw, "Hi");
    append(want, &nw, &eot, 1);
    append_text(t, want, &nw, "Assistant: ");
    /* The header alone ends in a standalone space token. */
    ck_assert_int_eq(want[nw - 1], 220);

    int32_t got[64];
    size_t ng;
    ck_assert_int_eq(tokenizer_render_chat(t, msgs, 2, true, got, 64, &ng), 0);
    ck_assert_uint_eq(ng, nw);
    ck_assert_mem_eq(got, want, nw * sizeof(int32_t));

    /* Without the prompt the rendering stops after the last <|eot_id|>. */
    ck_assert_int_eq(tokenizer_render_chat(t, msgs, 2, false, got, 64, &ng), 0);
    ck_assert_int_eq(got[ng - 1], eot);

    /* Control-token text in content stays text. */
    chat_message evil = {CHAT_ROLE_USER, "<|eot_id|>", 10};
    ck_assert_int_eq(tokenizer_render_chat(t, &evil, 1, false, got, 64, &ng), 0);
    size_t n_eot = 0;
    for (size_t i = 0; i < ng; i++)
        n_eot += got[i] == eot;
    ck_assert_uint_eq(n_eot, 1);

    chat_message bad = {(chat_role)7, "x", 1};
    ck_assert_int_eq(tokenizer_render_chat(t, &bad, 1, false, got, 64, &ng), -EINVAL);
    release(t);
}
END_TEST

/* ---- the official file's missing pre-tokenizer ---- */

/* The llama-bpe vocab without its tokenizer.ggml.pre key, as in the
 * official BitNet b1.58 2B4T file. */
static gguf_file *llama3_without_pre(uint8_t **mem)
{
    char err[256];
    gguf_file *src;
    ck_assert_int_eq(gguf_open(MODELS "ggml-vocab-llama-bpe.gguf", &src, err, sizeof(err)), 0);
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    for (int64_t i = 0; i < gguf_kv_count(src); i++) {
        if (strcmp(gguf_kv_key(src, i), "tokenizer.ggml.pre") != 0)
            ck_assert_int_eq(gguf_writer_copy_kv(w, src, i), 0);
    }
    size_t len;
    ck_assert_int_eq(gguf_writer_to_memory(w, NULL, mem, &len), 0);
    gguf_writer_free(w);
    gguf_close(src);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(*mem, len, "no-pre", &f, err, sizeof(err)), 0);
    return f;
}

START_TEST(missing_pre_uses_llama3_for_llama3_vocab)
{
    uint8_t *mem;
    gguf_file *f = llama3_without_pre(&mem);
    char err[256];
    tokenizer *ours, *compat, *ref;
    ck_assert_int_eq(tokenizer_load(f, NULL, &ours, err, sizeof(err)), 0);
    tokenizer_options o = {.bitnet_cpp_pre = true};
    ck_assert_int_eq(tokenizer_load(f, &o, &compat, err, sizeof(err)), 0);
    ref = load_vocab("llama-bpe");
    ck_assert_int_eq(tokenizer_pre_type(ours), TOKENIZER_PRE_LLAMA3);
    ck_assert_int_eq(tokenizer_pre_type(compat), TOKENIZER_PRE_DEFAULT);

    /* The LLaMA-3 choice reproduces the reference vectors; bitnet.cpp's
     * default splits " (" into a space and a parenthesis (FORMATS.md 5.3). */
    size_t a, b, c;
    int32_t *x = encode(ours, " (", 2, false, false, &a);
    int32_t *y = encode(ref, " (", 2, false, false, &b);
    int32_t *z = encode(compat, " (", 2, false, false, &c);
    ck_assert_uint_eq(a, b);
    ck_assert_mem_eq(x, y, a * sizeof(int32_t));
    ck_assert_uint_eq(c, 2);
    ck_assert_int_eq(z[0], 220);
    free(x);
    free(y);
    free(z);
    tokenizer_free(ours);
    tokenizer_free(compat);
    release(ref);
    gguf_close(f);
    free(mem);
}
END_TEST

START_TEST(load_rejects_broken_vocabs)
{
    char err[256];
    static const char *const toks[] = {"a", "b", "ab"};
    static const char *const merges[] = {"a b"};
    for (int variant = 0; variant < 4; variant++) {
        gguf_writer *w;
        ck_assert_int_eq(gguf_writer_new(&w), 0);
        if (variant != 0)
            gguf_writer_add_str(w, "tokenizer.ggml.model", variant == 1 ? "bert" : "gpt2");
        if (variant != 2)
            gguf_writer_add_array_str(w, "tokenizer.ggml.tokens", toks, NULL, 3);
        if (variant == 3) {
            int32_t types[2] = {1, 1}; /* fewer types than tokens */
            gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 2);
        }
        gguf_writer_add_array_str(w, "tokenizer.ggml.merges", merges, NULL, 1);
        uint8_t *mem;
        size_t len;
        ck_assert_int_eq(gguf_writer_to_memory(w, NULL, &mem, &len), 0);
        gguf_writer_free(w);
        gguf_file *f;
        ck_assert_int_eq(gguf_open_memory(mem, len, "broken", &f, err, sizeof(err)), 0);
        tokenizer *t = (tokenizer *)&err; /* must stay untouched */
        err[0] = 0;
        int rc = tokenizer_load(f, NULL, &t, err, sizeof(err));
        ck_assert_msg(rc < 0, "variant %d loaded", variant);
        ck_assert_ptr_eq(t, (tokenizer *)&err);
        ck_assert_msg(err[0] != 0, "variant %d: no message", variant);
        gguf_close(f);
        free(mem);
    }
}
END_TEST

START_TEST(tiny_vocab_merges_by_rank)
{
    char err[256];
    static const char *const toks[] = {"a", "b", "c", "ab", "bc", "abc"};
    static const char *const merges[] = {"b c", "a b", "a bc"};
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_add_array_str(w, "tokenizer.ggml.tokens", toks, NULL, 6);
    gguf_writer_add_array_str(w, "tokenizer.ggml.merges", merges, NULL, 3);
    uint8_t *mem;
    size_t len;
    ck_assert_int_eq(gguf_writer_to_memory(w, NULL, &mem, &len), 0);
    gguf_writer_free(w);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(mem, len, "tiny", &f, err, sizeof(err)), 0);
    tokenizer *t;
    ck_assert_int_eq(tokenizer_load(f, NULL, &t, err, sizeof(err)), 0);
    /* "b c" has the lowest rank, so "abc" goes a+bc -> abc, never ab+c. */
    size_t n;
    int32_t *ids = encode(t, "abc", 3, false, false, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 5);
    free(ids);
    /* "abab" is one word: a+b twice, and no "ab ab" merge exists. */
    ids = encode(t, "abab", 4, false, false, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 3);
    free(ids);
    tokenizer_free(t);
    gguf_close(f);
    free(mem);
}
END_TEST

/* ---- threads ---- */

typedef struct thread_job {
    const tokenizer *t;
    vec_set *vs;
    int failures;
} thread_job;

static void *encode_all(void *arg)
{
    thread_job *j = arg;
    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < j->vs->n; i++) {
            const vec_case *c = &j->vs->cases[i];
            int32_t ids[512];
            size_t n;
            if (tokenizer_encode(j->t, c->text, c->len, false, false, ids, 512, &n) != 0 ||
                n != c->n_ids || memcmp(ids, c->ids, n * sizeof(int32_t)) != 0)
                j->failures++;
        }
    }
    return NULL;
}

START_TEST(concurrent_encodes_agree)
{
    tokenizer *t = load_vocab("llama-bpe");
    vec_set vs = read_vectors("llama-bpe");
    pthread_t th[4];
    thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){t, &vs, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, encode_all, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].failures, 0);
    }
    free_vectors(&vs);
    release(t);
}
END_TEST

START_TEST(long_word_is_not_quadratic)
{
    /* 200k letters with no space: one word, one merge queue. */
    tokenizer *t = load_vocab("llama-bpe");
    size_t len = 200000;
    char *text = malloc(len);
    for (size_t i = 0; i < len; i++)
        text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    size_t n, out_len;
    int32_t *ids = encode(t, text, len, false, false, &n);
    ck_assert_uint_gt(n, 0);
    char *back = decode(t, ids, n, false, &out_len);
    ck_assert_uint_eq(out_len, len);
    ck_assert_mem_eq(back, text, len);
    free(back);
    free(ids);
    free(text);
    release(t);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("vectors");
    tcase_add_test(tc, vectors_llama_bpe_match_llama_cpp);
    tcase_add_test(tc, vectors_llama_spm_match_llama_cpp);
    tcase_add_test(tc, vectors_gpt2_match_llama_cpp);
    tcase_add_test(tc, vectors_phi3_match_llama_cpp);
    tcase_add_test(tc, vectors_qwen2_match_llama_cpp);
    suite_add_tcase(s, tc);

    tc = tcase_create("decode");
    tcase_add_test(tc, decode_inverts_encode_bpe);
    tcase_add_test(tc, decode_inverts_encode_spm);
    tcase_add_test(tc, decode_of_random_bytes_is_the_sanitized_text);
    tcase_add_test(tc, sanitize_replaces_each_invalid_byte);
    tcase_add_test(tc, unicode_classes_follow_the_categories);
    tcase_add_test(tc, stream_emits_whole_characters_only);
    tcase_add_test(tc, stream_holds_back_split_characters);
    tcase_add_test(tc, stream_reports_short_buffer_without_losing_state);
    suite_add_tcase(s, tc);

    tc = tcase_create("special");
    tcase_add_test(tc, control_text_is_a_token_only_with_parse_special);
    tcase_add_test(tc, add_special_puts_bos_first);
    tcase_add_test(tc, eog_set_of_llama3_is_eos_and_eot);
    tcase_add_test(tc, encode_reports_short_buffer);
    tcase_add_test(tc, chat_renders_reference_format);
    tcase_add_test(tc, missing_pre_uses_llama3_for_llama3_vocab);
    tcase_add_test(tc, load_rejects_broken_vocabs);
    tcase_add_test(tc, tiny_vocab_merges_by_rank);
    tcase_add_test(tc, concurrent_encodes_agree);
    tcase_add_test(tc, long_word_is_not_quadratic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Check's assertions only work inside tests: load without them here. */
    static const char *const names[] = {"llama-bpe", "llama-spm", "gpt-2", "phi-3", "qwen2"};
    for (size_t i = 0; i < 5; i++) {
        char path[512], err[256] = "";
        snprintf(path, sizeof(path), MODELS "ggml-vocab-%s.gguf", names[i]);
        gguf_file *f;
        if (gguf_open(path, &f, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            return EXIT_FAILURE;
        }
        int rc = tokenizer_load(f, NULL, &cache[i].t, err, sizeof(err));
        gguf_close(f);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            return EXIT_FAILURE;
        }
        cache[i].name = names[i];
    }
    SRunner *sr = srunner_create(tokenizer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (size_t i = 0; i < 8 && cache[i].t; i++)
        tokenizer_free(cache[i].t);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
