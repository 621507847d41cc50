/*
 * engine/tokenizer_bpe.c - byte-level BPE (the "gpt2" model).
 *
 * A fragment is sanitized, split into words by the pre-tokenizer, and each
 * word is byte-encoded (every byte becomes one printable character of the
 * GPT-2 map) and merged: repeatedly join the adjacent pair with the lowest
 * merge rank, leftmost first, until no pair has a rank. A priority queue of
 * candidate pairs over a linked list of symbols keeps this O(n log n) on
 * long words.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "engine/tokenizer_internal.h"
#include "engine/unicode.h"

static bool bigram_before(const tok_bigram *a, const tok_bigram *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    return a->left < b->left;
}

void tok_queue_push(tok_queue *q, tok_bigram b)
{
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &q->v[parent]))
            break;
        q->v[i] = q->v[parent];
        i = parent;
    }
    q->v[i] = b;
}

tok_bigram tok_queue_pop(tok_queue *q)
{
    tok_bigram top = q->v[0];
    tok_bigram last = q->v[--q->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        if (child + 1 < q->n && bigram_before(&q->v[child + 1], &q->v[child]))
            child++;
        if (!bigram_before(&q->v[child], &last))
            break;
        q->v[i] = q->v[child];
        i = child;
    }
    if (q->n > 0)
        q->v[i] = last;
    return top;
}

uint64_t tok_pair_hash(int32_t a, int32_t b)
{
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* The rank of merging string ids a and b, or -1. */
static int32_t merge_rank(const tokenizer *t, int32_t a, int32_t b)
{
    if (a < 0 || b < 0 || !t->merge_slots)
        return -1;
    for (uint64_t h = tok_pair_hash(a, b) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
        int32_t r = t->merge_slots[h];
        if (r < 0)
            return -1;
        if (t->merges[r].left == a && t->merges[r].right == b)
            return r;
    }
}

static void try_pair(const tokenizer *t, const tok_symbol *sym, int32_t left, tok_queue *q)
{
    if (left < 0 || sym[left].next < 0)
        return;
    int32_t right = sym[left].next;
    int32_t rank = merge_rank(t, sym[left].id, sym[right].id);
    if (rank < 0)
        return;
    tok_bigram b = {.key = rank,
                    .left = left,
                    .right = right,
                    .size = sym[left].len + sym[right].len,
                    .id = t->merges[rank].result};
    tok_queue_push(q, b);
}

/* Merges one byte-encoded word s->word[0..len) and appends its tokens. */
static int merge_word(const tokenizer *t, tok_scratch *s, const uint8_t *orig, size_t n_orig,
                      size_t len, tok_ids *out)
{
    const uint8_t *w = s->word;
    if (n_orig == 0)
        return 0;
    if (t->ignore_merges) {
        int32_t id = tok_lookup(t, (const char *)w, len);
        if (id >= 0 && id < t->n_vocab)
            return tok_ids_push(out, id);
    }

    /* One symbol per original byte; each encodes to 1 or 2 bytes. A merge
     * adds at most two candidates, so 3n bounds the queue. */
    if (tok_grow(&s->syms, &s->syms_cap, n_orig, sizeof(tok_symbol)) ||
        tok_grow(&s->heap, &s->heap_cap, 3 * n_orig, sizeof(tok_bigram)))
        return -ENOMEM;
    tok_symbol *sym = s->syms;
    uint32_t at = 0;
    for (size_t i = 0; i < n_orig; i++) {
        uint32_t clen = t->byte_cp[orig[i]] < 0x80 ? 1 : 2;
        sym[i] = (tok_symbol){.start = at,
                              .len = clen,
                              .prev = (int32_t)i - 1,
                              .next = i + 1 < n_orig ? (int32_t)i + 1 : -1,
                              .id = t->byte_char[orig[i]]};
        at += clen;
    }

    tok_queue q = {.v = s->heap, .n = 0};
    for (size_t i = 0; i + 1 < n_orig; i++)
        try_pair(t, sym, (int32_t)i, &q);
    while (q.n > 0) {
        tok_bigram b = tok_queue_pop(&q);
        tok_symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size)
            continue; /* stale: one side changed since the candidate was made */
        l->len += r->len;
        l->id = b.id;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = b.left;
        try_pair(t, sym, l->prev, &q);
        try_pair(t, sym, b.left, &q);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = sym[i].id;
        if (id >= 0 && id < t->n_vocab) {
            if (tok_ids_push(out, id))
                return -ENOMEM;
            continue;
        }
        /* Not a token (only in odd vocabs): its single bytes, where they are. */
        for (uint32_t k = 0; k < sym[i].len; k++) {
            int32_t b = t->byte_single[w[sym[i].start + k]];
            if (b >= 0 && tok_ids_push(out, b))
                return -ENOMEM;
        }
    }
    return 0;
}

int tok_bpe_encode(const tokenizer *t, tok_scratch *s, const uint8_t *text, size_t len,
                   tok_ids *out)
{
    if (len == 0)
        return 0;
    if (len > SIZE_MAX / 3 || tok_grow((void **)&s->bytes, &s->bytes_cap, 3 * len, 1))
        return -ENOMEM;
    size_t n_bytes = unicode_utf8_sanitize(text, len, s->bytes);
    if (tok_grow((void **)&s->cps, &s->cps_cap, n_bytes, sizeof(uint32_t)))
        return -ENOMEM;
    if (tok_grow((void **)&s->flags, &s->flags_cap, n_bytes, 1))
        return -ENOMEM;
    uint8_t *fl = s->flags;

    size_t n = 0;
    uint32_t *cps = s->cps;
    for (size_t i = 0; i < n_bytes;) {
        i += unicode_utf8_decode(s->bytes + i, n_bytes - i, &cps[n]);
        fl[n] = (uint8_t)unicode_flags(cps[n]);
        n++;
    }

    size_t n_words;
    int rc = tok_pretokenize(t->pre, s, n, &n_words);
    if (rc)
        return rc;

    /* Words are contiguous: walk the UTF-8 bytes alongside the code points. */
    const uint8_t *p = s->bytes;
    size_t lo = 0;
    for (size_t wi = 0; wi < n_words; wi++) {
        size_t hi = s->ends[wi];
        const uint8_t *start = p;
        for (size_t i = lo; i < hi; i++)
            p += unicode_utf8_lead_length(*p);
        size_t n_orig = (size_t)(p - start);
        if (tok_grow((void **)&s->word, &s->word_cap, 2 * n_orig, 1))
            return -ENOMEM;
        size_t wl = 0;
        for (size_t i = 0; i < n_orig; i++)
            wl += unicode_utf8_encode(t->byte_cp[start[i]], s->word + wl);
        rc = merge_word(t, s, start, n_orig, wl, out);
        if (rc)
            return rc;
        lo = hi;
    }
    return 0;
}
