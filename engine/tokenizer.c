/*
 * engine/tokenizer.c - the tokenizer's entry points: queries, encoding with
 * special-token partitioning, decoding and the streaming detokenizer.
 *
 * Loading lives in tokenizer_vocab.c, the merge loops in tokenizer_bpe.c
 * and tokenizer_spm.c, the pre-tokenizers in tokenizer_pre.c and the chat
 * format in tokenizer_chat.c. docs/tokenizers.md explains the algorithms
 * and where they follow or leave llama.cpp.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/tokenizer_internal.h"
#include "engine/unicode.h"

/* ---- queries ---- */

tokenizer_model tokenizer_model_type(const tokenizer *t)
{
    return t->model;
}

tokenizer_pre tokenizer_pre_type(const tokenizer *t)
{
    return t->pre;
}

const char *tokenizer_pre_name(tokenizer_pre pre)
{
    switch (pre) {
    case TOKENIZER_PRE_NONE:
        return "none";
    case TOKENIZER_PRE_DEFAULT:
        return "default";
    case TOKENIZER_PRE_LLAMA3:
        return "llama3";
    case TOKENIZER_PRE_GPT2:
        return "gpt-2";
    case TOKENIZER_PRE_QWEN2:
        return "qwen2";
    case TOKENIZER_PRE_DBRX:
        return "dbrx";
    }
    return "unknown";
}

int32_t tokenizer_n_vocab(const tokenizer *t)
{
    return t->n_vocab;
}

int32_t tokenizer_bos(const tokenizer *t)
{
    return t->bos;
}

int32_t tokenizer_eos(const tokenizer *t)
{
    return t->eos;
}

int32_t tokenizer_eot(const tokenizer *t)
{
    return t->eot;
}

bool tokenizer_add_bos(const tokenizer *t)
{
    return t->add_bos;
}

bool tokenizer_add_eos(const tokenizer *t)
{
    return t->add_eos;
}

bool tokenizer_is_eog(const tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_EOG);
}

int32_t tokenizer_find(const tokenizer *t, const char *text, size_t len)
{
    if (!text && len)
        return -1;
    int32_t id = tok_lookup(t, text ? text : "", len);
    return id < t->n_vocab ? id : -1;
}

const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    return tok_str(t, id, len);
}

/* ---- encoding ---- */

/* A piece of the input: raw text, or a special token found in it. */
typedef struct fragment {
    size_t off, len;
    int32_t id; /* -1 for text */
} fragment;

typedef struct fragments {
    fragment *v;
    size_t n, cap;
} fragments;

static int frag_push(fragments *fs, size_t off, size_t len, int32_t id)
{
    if (fs->n == fs->cap && tok_grow((void **)&fs->v, &fs->cap, fs->n + 1, sizeof(fragment)))
        return -ENOMEM;
    fs->v[fs->n++] = (fragment){off, len, id};
    return 0;
}

static bool c_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Splits text fragment f at every occurrence of special token id into out. */
static int split_on(const tokenizer *t, const char *text, fragment f, int32_t id, fragments *out)
{
    size_t slen;
    const char *s = tok_str(t, id, &slen);
    uint16_t a = t->attr[id];
    size_t pos = f.off, end = f.off + f.len;
    while (pos < end) {
        const char *m = memmem(text + pos, end - pos, s, slen);
        if (!m)
            break;
        size_t at = (size_t)(m - text), left = at;
        if (a & TOK_ATTR_LSTRIP) {
            while (left > pos && c_isspace(text[left - 1]))
                left--;
        }
        if (left > pos && frag_push(out, pos, left - pos, -1))
            return -ENOMEM;
        if (frag_push(out, 0, 0, id))
            return -ENOMEM;
        pos = at + slen;
        if (a & TOK_ATTR_RSTRIP) {
            while (pos < end && c_isspace(text[pos]))
                pos++;
        }
    }
    if (pos < end && frag_push(out, pos, end - pos, -1))
        return -ENOMEM;
    return 0;
}

/*
 * Special-token partitioning as llama.cpp does it: each candidate in turn,
 * longest first, splits every remaining text fragment at its literal
 * occurrences. Control and unknown tokens only take part with parse_special.
 */
static int partition(const tokenizer *t, const char *text, size_t len, bool parse_special,
                     fragments *fs)
{
    fragments other = {0};
    int rc = frag_push(fs, 0, len, -1);
    bool present[256] = {false};
    for (size_t i = 0; i < len; i++)
        present[(uint8_t)text[i]] = true;

    for (int32_t k = 0; rc == 0 && k < t->n_specials; k++) {
        int32_t id = t->specials[k];
        if (!parse_special && (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
            continue;
        size_t slen;
        const char *s = tok_str(t, id, &slen);
        if (slen > len || !present[(uint8_t)s[0]])
            continue;
        other.n = 0;
        for (size_t i = 0; rc == 0 && i < fs->n; i++) {
            if (fs->v[i].id >= 0)
                rc = frag_push(&other, 0, 0, fs->v[i].id);
            else
                rc = split_on(t, text, fs->v[i], id, &other);
        }
        fragments tmp = *fs;
        *fs = other;
        other = tmp;
    }
    free(other.v);
    return rc;
}

int tok_encode_append(const tokenizer *t, tok_scratch *s, const char *text, size_t len,
                      bool add_special, bool parse_special, tok_ids *ids)
{
    int rc = 0;
    if (add_special && t->add_bos && t->bos >= 0 && (rc = tok_ids_push(ids, t->bos)))
        return rc;
    if (len > 0) {
        fragments fs = {0};
        rc = partition(t, text, len, parse_special, &fs);
        bool prev_special = true;
        for (size_t i = 0; rc == 0 && i < fs.n; i++) {
            const fragment *f = &fs.v[i];
            if (f->id >= 0) {
                rc = tok_ids_push(ids, f->id);
                prev_special = true;
                continue;
            }
            const uint8_t *p = (const uint8_t *)text + f->off;
            if (t->model == TOKENIZER_MODEL_BPE)
                rc = tok_bpe_encode(t, s, p, f->len, ids);
            else
                rc = tok_spm_encode(t, s, p, f->len, t->add_space_prefix && prev_special, ids);
            prev_special = false;
        }
        free(fs.v);
        if (rc)
            return rc;
    }
    if (add_special && t->add_eos && t->eos >= 0)
        rc = tok_ids_push(ids, t->eos);
    return rc;
}

int tok_deliver(const tok_ids *ids, int32_t *out, size_t cap, size_t *n_out)
{
    *n_out = ids->n;
    if (ids->n > cap || (ids->n > 0 && !out))
        return -ENOSPC;
    if (ids->n)
        memcpy(out, ids->v, ids->n * sizeof(int32_t));
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t *out, size_t cap, size_t *n_out)
{
    if (!t || !n_out || (!text && len))
        return -EINVAL;
    if (len > TOK_MAX_TEXT)
        return BITNET_ELIMIT;
    tok_ids ids = {0};
    tok_scratch s = {0};
    int rc = tok_encode_append(t, &s, text, len, add_special, parse_special, &ids);
    if (rc == 0)
        rc = tok_deliver(&ids, out, cap, n_out);
    tok_scratch_free(&s);
    free(ids.v);
    return rc;
}

/* ---- decoding ---- */

/* The piece of id for this mode, or NULL for a bad id. */
static const char *piece_of(const tokenizer *t, int32_t id, bool special, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (!special && (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) {
        *len = 0;
        return "";
    }
    *len = (size_t)(t->piece_at[id + 1] - t->piece_at[id]);
    return t->piece + t->piece_at[id];
}

int tokenizer_token_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t cap,
                          size_t *len)
{
    size_t n;
    const char *p = piece_of(t, id, special, &n);
    if (!p)
        return BITNET_EUNKNOWN_ID;
    *len = n;
    if (n > cap)
        return -ENOSPC;
    if (n)
        memcpy(buf, p, n);
    return 0;
}

size_t tokenizer_max_piece(const tokenizer *t)
{
    return t->max_piece;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, bool special, char *buf,
                     size_t cap, size_t *len)
{
    size_t total = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = piece_of(t, ids[i], special, &pl);
            if (!p)
                return BITNET_EUNKNOWN_ID;
            if (i == 0 && t->add_space_prefix && pl > 0 && p[0] == ' ') {
                p++;
                pl--;
            }
            if (pass == 1 && pl)
                memcpy(buf + o, p, pl);
            o += pl;
        }
        total = o;
        if (pass == 0) {
            *len = total;
            if (total > cap)
                return -ENOSPC;
        }
    }
    return 0;
}

/* ---- streaming ---- */

void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t, bool special, bool strip_space)
{
    memset(s, 0, sizeof(*s));
    s->tok = t;
    s->special = special;
    s->strip_space = strip_space && t->add_space_prefix;
}

size_t tokenizer_stream_bound(const tokenizer *t)
{
    /* Held-back bytes plus a piece, each byte at worst a 3-byte U+FFFD. */
    return 3 * (t->max_piece + 3);
}

/* True when s[0..k) can still grow into a valid sequence. */
static bool could_complete(const uint8_t *s, size_t k)
{
    size_t need = unicode_utf8_lead_length(s[0]);
    if (need < 2 || k >= need)
        return false;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return false;
    }
    if (k >= 2) {
        /* The second byte rules out overlong forms, surrogates and > U+10FFFF. */
        if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
            (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
            return false;
    }
    return true;
}

/*
 * Walks pending ++ piece. Complete sequences go to out (when out is not
 * NULL), invalid bytes as U+FFFD; an unfinished tail goes to *tail unless
 * final. Returns the output length.
 */
static size_t stream_scan(const uint8_t *pending, size_t np, const uint8_t *piece, size_t pl,
                          bool final, uint8_t *out, uint8_t tail[3], size_t *n_tail)
{
    uint8_t head[8];
    size_t hl = np;
    memcpy(head, pending, np);
    for (size_t i = 0; i < pl && i < 4; i++)
        head[hl++] = piece[i];
    size_t total = np + pl, pos = 0, o = 0;
    *n_tail = 0;
    while (pos < total) {
        const uint8_t *base = pos < np ? head + pos : piece + (pos - np);
        size_t avail = pos < np ? hl - pos : total - pos;
        if (!final && total - pos < 4 && could_complete(base, total - pos)) {
            *n_tail = total - pos;
            memcpy(tail, base, *n_tail);
            break;
        }
        uint32_t cp;
        size_t n = unicode_utf8_decode(base, avail, &cp);
        if (cp == UNICODE_REPLACEMENT && n == 1) {
            if (out)
                unicode_utf8_encode(cp, out + o);
            o += 3;
        } else {
            if (out)
                memcpy(out + o, base, n);
            o += n;
        }
        pos += n;
    }
    return o;
}

static int stream_step(tokenizer_stream *s, const char *p, size_t pl, bool final, char *out,
                       size_t cap, size_t *n_out)
{
    uint8_t tail[3];
    size_t n_tail;
    size_t need =
        stream_scan(s->pending, s->n_pending, (const uint8_t *)p, pl, final, NULL, tail, &n_tail);
    *n_out = need;
    if (need > cap)
        return -ENOSPC;
    stream_scan(s->pending, s->n_pending, (const uint8_t *)p, pl, final, (uint8_t *)out, tail,
                &n_tail);
    memcpy(s->pending, tail, n_tail);
    s->n_pending = (uint8_t)n_tail;
    return 0;
}

int tokenizer_stream_feed(tokenizer_stream *s, int32_t id, char *out, size_t cap, size_t *n_out)
{
    size_t pl;
    const char *p = piece_of(s->tok, id, s->special, &pl);
    if (!p)
        return BITNET_EUNKNOWN_ID;
    bool strip = s->strip_space && pl > 0 && p[0] == ' ';
    int rc = stream_step(s, p + strip, pl - strip, false, out, cap, n_out);
    if (rc == 0)
        s->strip_space = false;
    return rc;
}

int tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap, size_t *n_out)
{
    return stream_step(s, "", 0, true, out, cap, n_out);
}
