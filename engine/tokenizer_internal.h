/*
 * engine/tokenizer_internal.h - what the tokenizer's files share: the loaded
 * vocabulary and the per-call scratch space. Not for use outside
 * engine/tokenizer*.c.
 */
#ifndef BITNET_ENGINE_TOKENIZER_INTERNAL_H
#define BITNET_ENGINE_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"

/* Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type
 * (undefined 0, normal 1, unknown 2, control 3, user-defined 4, unused 5,
 * byte 6) plus the flags it sets by token text. */
enum {
    TOK_ATTR_UNDEFINED = 1u << 0,
    TOK_ATTR_UNKNOWN = 1u << 1,
    TOK_ATTR_UNUSED = 1u << 2,
    TOK_ATTR_NORMAL = 1u << 3,
    TOK_ATTR_CONTROL = 1u << 4,
    TOK_ATTR_USER_DEFINED = 1u << 5,
    TOK_ATTR_BYTE = 1u << 6,
    TOK_ATTR_LSTRIP = 1u << 7, /* special-token match eats whitespace on its left */
    TOK_ATTR_RSTRIP = 1u << 8, /* ... and on its right */
    TOK_ATTR_EOG = 1u << 9     /* ends generation */
};

/* One BPE merge "left right", by string id; its array index is its rank. */
typedef struct tok_merge {
    int32_t left;
    int32_t right;
    int32_t result; /* string id of left+right */
} tok_merge;

struct tokenizer {
    tokenizer_model model;
    tokenizer_pre pre;
    bool ignore_merges;    /* a word that is a whole token skips merging */
    bool add_bos, add_eos; /* with add_special */
    bool add_space_prefix; /* SPM: " " before text that starts a fragment */

    int32_t n_vocab;
    int32_t bos, eos, eot, eom, unk; /* -1 when absent */

    /* Strings: ids 0..n_vocab-1 are the vocab; ids up to n_strings-1 are
     * merge parts that are not tokens (only in malformed vocabs). */
    int32_t n_strings;
    char *text;         /* all strings back to back */
    uint64_t *text_at;  /* n_strings + 1 offsets into text */
    int32_t *str_slots; /* open-addressing hash of strings -> id, -1 empty */
    uint64_t str_mask;  /* slots - 1 */

    float *scores;  /* n_vocab */
    uint16_t *attr; /* n_vocab TOK_ATTR_* */

    tok_merge *merges; /* n_merges, by rank */
    int32_t n_merges;
    int32_t *merge_slots; /* hash of (left, right) -> rank, -1 empty */
    uint64_t merge_mask;

    int32_t byte_char[256];   /* BPE: string id of the GPT-2 character of each byte */
    int32_t byte_single[256]; /* BPE fallback: token of the one-byte string, or -1 */
    int32_t byte_token[256];  /* SPM fallback: <0xXX>, else the one-byte string, or -1 */
    uint32_t byte_cp[256];    /* GPT-2 byte -> code point map */
    int16_t cp_byte[324];     /* its inverse for code points below 324, -1 elsewhere */

    char *piece;        /* decoded text of every token, special=true form */
    uint64_t *piece_at; /* n_vocab + 1 offsets */
    size_t max_piece;

    int32_t *specials; /* control, user-defined and unknown ids, longest text first */
    int32_t n_specials;
};

/* A growable array of token ids: the output of one encode call. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

int tok_ids_push(tok_ids *ids, int32_t id);

/* Scratch space for one encode call, grown on demand and freed at the end:
 * no allocation per character or per word. */
typedef struct tok_scratch {
    uint8_t *bytes; /* sanitized / escaped fragment text */
    size_t bytes_cap;
    uint32_t *cps; /* code points of the fragment */
    size_t cps_cap;
    uint8_t *flags; /* unicode_flags() of each */
    size_t flags_cap;
    size_t *ends, *ends2; /* word end positions (in code points) */
    size_t ends_cap, ends2_cap;
    uint8_t *word; /* one byte-encoded word */
    size_t word_cap;
    void *syms; /* symbols of the merge loop */
    size_t syms_cap;
    void *heap; /* its priority queue */
    size_t heap_cap;
} tok_scratch;

void tok_scratch_free(tok_scratch *s);

/* A symbol of the merge loop: a run of the word's bytes, linked to its
 * neighbours. len 0 marks a symbol merged into its left neighbour. */
typedef struct tok_symbol {
    uint32_t start, len;
    int32_t prev, next; /* indices, -1 at the ends */
    int32_t id;         /* string id, or -1 */
} tok_symbol;

/* A candidate merge of symbols left and left's next. The queue pops the
 * smallest key first (BPE: the merge rank; SPM: minus the token score), the
 * leftmost among equal keys. size detects candidates made stale by an
 * earlier merge. */
typedef struct tok_bigram {
    double key;
    int32_t left, right;
    uint32_t size;
    int32_t id; /* string id of the merged symbol */
} tok_bigram;

typedef struct tok_queue {
    tok_bigram *v;
    size_t n;
} tok_queue;

void tok_queue_push(tok_queue *q, tok_bigram b); /* room is reserved by the caller */
tok_bigram tok_queue_pop(tok_queue *q);
/* Makes *p hold at least n elements of size elem. 0 or -ENOMEM. */
int tok_grow(void **p, size_t *cap, size_t n, size_t elem);

/* Longest text one encode call takes: keeps symbol offsets in 32 bits. */
#define TOK_MAX_TEXT (1u << 28)

/* The id of the string s[0..len) (vocab or merge part), or -1. */
int32_t tok_lookup(const tokenizer *t, const char *s, size_t len);
/* The text of string id (not NUL-terminated); id must be valid. */
const char *tok_str(const tokenizer *t, int32_t id, size_t *len);

/* Encodes text[0..len) as tokenizer_encode() does and appends the ids. */
int tok_encode_append(const tokenizer *t, tok_scratch *s, const char *text, size_t len,
                      bool add_special, bool parse_special, tok_ids *ids);
/* Copies ids to the caller's out[cap] and sets *n_out; -ENOSPC (with the
 * needed count in *n_out, out untouched) when they do not fit. */
int tok_deliver(const tok_ids *ids, int32_t *out, size_t cap, size_t *n_out);

/* The hash of a merge pair, shared by the loader and the merge loop. */
uint64_t tok_pair_hash(int32_t a, int32_t b);

/* Encodes one text fragment (no special tokens in it) and appends the ids. */
int tok_bpe_encode(const tokenizer *t, tok_scratch *s, const uint8_t *text, size_t len,
                   tok_ids *out);
int tok_spm_encode(const tokenizer *t, tok_scratch *s, const uint8_t *text, size_t len,
                   bool space_prefix, tok_ids *out);

/* Splits cps[0..n) into words with pre-tokenizer pre: writes word end
 * positions to s->ends and their count to *n_words. */
int tok_pretokenize(tokenizer_pre pre, tok_scratch *s, size_t n, size_t *n_words);

#endif
