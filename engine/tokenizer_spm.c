/*
 * engine/tokenizer_spm.c - SentencePiece BPE (the "llama" model).
 *
 * Spaces become U+2581 ("▁"), with one more in front of a fragment that
 * starts the text or follows a special token. Starting from single
 * characters, the adjacent pair whose concatenation is the vocab token with
 * the highest score is merged first (the leftmost among equal scores), until
 * no adjacent pair forms a token. Symbols that are not tokens come out as
 * byte tokens <0xXX>.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "engine/tokenizer_internal.h"
#include "engine/unicode.h"

/* Bytes of the character at w[i]; the text is valid UTF-8 by now, the
 * clamps only keep a broken invariant from reading past the end. */
static size_t char_len(const uint8_t *w, size_t i, size_t wl)
{
    size_t n = unicode_utf8_lead_length(w[i]);
    if (n == 0)
        n = 1;
    return n < wl - i ? n : wl - i;
}

static void try_pair(const tokenizer *t, const tok_symbol *sym, const uint8_t *text, int32_t left,
                     tok_queue *q)
{
    if (left < 0 || sym[left].next < 0)
        return;
    int32_t right = sym[left].next;
    uint32_t size = sym[left].len + sym[right].len;
    /* Adjacent symbols are adjacent in the text: no copy needed. */
    int32_t id = tok_lookup(t, (const char *)text + sym[left].start, size);
    if (id < 0 || id >= t->n_vocab)
        return;
    tok_bigram b = {
        .key = -(double)t->scores[id], .left = left, .right = right, .size = size, .id = id};
    tok_queue_push(q, b);
}

int tok_spm_encode(const tokenizer *t, tok_scratch *s, const uint8_t *text, size_t len,
                   bool space_prefix, tok_ids *out)
{
    if (len == 0)
        return 0;
    /* Sanitizing at most triples the text; every space then becomes 3 bytes. */
    if (len > SIZE_MAX / 9 - 1 || tok_grow((void **)&s->bytes, &s->bytes_cap, 3 * len, 1) ||
        tok_grow((void **)&s->word, &s->word_cap, 9 * len + 3, 1))
        return -ENOMEM;
    size_t n_clean = unicode_utf8_sanitize(text, len, s->bytes);
    uint8_t *w = s->word;
    size_t wl = 0;
    static const uint8_t lower_block[3] = {0xE2, 0x96, 0x81}; /* U+2581 */
    if (space_prefix) {
        memcpy(w, lower_block, 3);
        wl = 3;
    }
    for (size_t i = 0; i < n_clean; i++) {
        if (s->bytes[i] == ' ') {
            memcpy(w + wl, lower_block, 3);
            wl += 3;
        } else {
            w[wl++] = s->bytes[i];
        }
    }

    /* One symbol per character; a merge adds at most two candidates. */
    size_t n_sym = 0;
    for (size_t i = 0; i < wl; i += char_len(w, i, wl))
        n_sym++;
    if (tok_grow(&s->syms, &s->syms_cap, n_sym, sizeof(tok_symbol)) ||
        tok_grow(&s->heap, &s->heap_cap, 3 * n_sym, sizeof(tok_bigram)))
        return -ENOMEM;
    tok_symbol *sym = s->syms;
    size_t k = 0;
    for (size_t i = 0; i < wl; k++) {
        uint32_t n = (uint32_t)char_len(w, i, wl);
        sym[k] = (tok_symbol){.start = (uint32_t)i,
                              .len = n,
                              .prev = (int32_t)k - 1,
                              .next = k + 1 < n_sym ? (int32_t)k + 1 : -1,
                              .id = -1};
        i += n;
    }

    tok_queue q = {.v = s->heap, .n = 0};
    for (size_t i = 0; i + 1 < n_sym; i++)
        try_pair(t, sym, w, (int32_t)i, &q);
    while (q.n > 0) {
        tok_bigram b = tok_queue_pop(&q);
        tok_symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size)
            continue;
        l->len += r->len;
        l->id = b.id;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = b.left;
        try_pair(t, sym, w, l->prev, &q);
        try_pair(t, sym, w, b.left, &q);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = sym[i].id;
        if (id < 0)
            id = tok_lookup(t, (const char *)w + sym[i].start, sym[i].len);
        if (id >= 0 && id < t->n_vocab) {
            if (tok_ids_push(out, id))
                return -ENOMEM;
            continue;
        }
        for (uint32_t j = 0; j < sym[i].len; j++) {
            int32_t b = t->byte_token[w[sym[i].start + j]];
            if (b >= 0 && tok_ids_push(out, b))
                return -ENOMEM;
        }
    }
    return 0;
}
