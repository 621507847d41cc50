/*
 * engine/tokenizer_pre.c - BPE pre-tokenizers: split text into words.
 *
 * The splitters are hand-written matchers for the regular expressions of
 * FORMATS.md 5.3, working on code points and their unicode_flags(). A
 * splitter sees one segment [lo, hi) of the text at a time; positions
 * outside it read as "nothing" (flags 0), which is how the regexes' look-
 * aheads stop at a segment's end. Every character lands in exactly one word.
 */
#include <errno.h>
#include <string.h>

#include "engine/tokenizer_internal.h"
#include "engine/unicode.h"

#define NO_CP 0xFFFFFFFFu

/* One segment being split, and where its word ends go. */
typedef struct splitter {
    const uint32_t *cp;
    const uint8_t *fl;
    size_t lo, hi;
    size_t *ends; /* room for one end per code point, so never full */
    size_t n;
    size_t last; /* end of the last word written */
} splitter;

static unsigned flags_at(const splitter *sp, size_t pos)
{
    return pos >= sp->lo && pos < sp->hi ? sp->fl[pos] : 0;
}

static uint32_t cp_at(const splitter *sp, size_t pos)
{
    return pos >= sp->lo && pos < sp->hi ? sp->cp[pos] : NO_CP;
}

/* Ends a word at end; empty words are not written. */
static void emit(splitter *sp, size_t end)
{
    if (end > sp->last) {
        sp->ends[sp->n++] = end;
        sp->last = end;
    }
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/*
 * 's 't 're 've 'm 'll 'd at pos: returns the length (2 or 3) or 0. The
 * GPT-2 regex is case-sensitive, LLaMA-3's is not.
 */
static size_t match_contraction(const splitter *sp, size_t pos, bool any_case)
{
    if (sp->cp[pos] != '\'' || pos + 1 >= sp->hi)
        return 0;
    uint32_t a = cp_at(sp, pos + 1), b = cp_at(sp, pos + 2);
    if (any_case) {
        a = ascii_lower(a);
        b = ascii_lower(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (pos + 2 < sp->hi &&
        ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')))
        return 3;
    return 0;
}

#define LNS (UNICODE_F_LETTER | UNICODE_F_NUMBER | UNICODE_F_SPACE)

/* How many whitespace characters start at pos. */
static size_t count_space(const splitter *sp, size_t pos)
{
    size_t k = 0;
    while (flags_at(sp, pos + k) & UNICODE_F_SPACE)
        k++;
    return k;
}

/*
 * GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 */
static void split_gpt2(splitter *sp)
{
    size_t pos = sp->lo;
    while (pos < sp->hi) {
        uint32_t c = sp->cp[pos];
        size_t k = match_contraction(sp, pos, false);
        if (k) {
            pos += k;
            emit(sp, pos);
            continue;
        }
        /* An optional leading space, then a run of one class. */
        unsigned f = c == ' ' ? flags_at(sp, pos + 1) : flags_at(sp, pos);
        unsigned cls = 0;
        if (f & UNICODE_F_LETTER)
            cls = UNICODE_F_LETTER;
        else if (f & UNICODE_F_NUMBER)
            cls = UNICODE_F_NUMBER;
        if (cls) {
            pos += c == ' ';
            while (flags_at(sp, pos) & cls)
                pos++;
            emit(sp, pos);
            continue;
        }
        if (f && !(f & LNS)) {
            pos += c == ' ';
            unsigned g;
            while ((g = flags_at(sp, pos)) && !(g & LNS))
                pos++;
            emit(sp, pos);
            continue;
        }
        size_t n = count_space(sp, pos);
        if (n > 1 && pos + n < sp->hi) {
            /* \s+(?!\S): leave the last space to lead the next word. */
            pos += n - 1;
        } else if (n > 0) {
            pos += n;
        } else {
            pos++;
        }
        emit(sp, pos);
    }
}

/*
 * LLaMA-3 (digits 3) and Qwen2 (digits 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static void split_llama3(splitter *sp, size_t digits)
{
    size_t pos = sp->lo;
    while (pos < sp->hi) {
        uint32_t c = sp->cp[pos];
        unsigned f = sp->fl[pos];
        size_t k = match_contraction(sp, pos, true);
        if (k) {
            pos += k;
            emit(sp, pos);
            continue;
        }
        /* One optional non-letter (not CR, LF or a digit), then letters. */
        if (c != '\r' && c != '\n' && !(f & UNICODE_F_NUMBER) &&
            ((f & UNICODE_F_LETTER) || (flags_at(sp, pos + 1) & UNICODE_F_LETTER))) {
            pos++;
            while (flags_at(sp, pos) & UNICODE_F_LETTER)
                pos++;
            emit(sp, pos);
            continue;
        }
        /* Numbers in chunks of at most `digits`, left to right. */
        if (f & UNICODE_F_NUMBER) {
            size_t start = pos;
            while (flags_at(sp, pos) & UNICODE_F_NUMBER) {
                pos++;
                if (pos - start == digits) {
                    emit(sp, pos);
                    start = pos;
                }
            }
            emit(sp, pos);
            continue;
        }
        /* Optional space, symbols/punctuation, then any CR/LF. */
        unsigned f2 = c == ' ' ? flags_at(sp, pos + 1) : f;
        if (!(f2 & LNS)) {
            pos += c == ' ';
            unsigned g;
            while ((g = flags_at(sp, pos)) && !(g & LNS))
                pos++;
            uint32_t d;
            while ((d = cp_at(sp, pos)) == '\r' || d == '\n')
                pos++;
            emit(sp, pos);
            continue;
        }
        /* Whitespace: up to the last CR/LF in the run if there is one. */
        size_t n = 0, after_newline = 0;
        while (flags_at(sp, pos + n) & UNICODE_F_SPACE) {
            uint32_t d = sp->cp[pos + n];
            n++;
            if (d == '\r' || d == '\n')
                after_newline = pos + n;
        }
        if (after_newline)
            pos = after_newline;
        else if (n > 1 && pos + n < sp->hi)
            pos += n - 1;
        else if (n > 0)
            pos += n;
        else
            pos++;
        emit(sp, pos);
    }
}

/* [\p{P}\$\+<=>\^~\|]+ as llama.cpp matches it: ASCII punctuation except the
 * backtick, the listed symbols, and non-ASCII punctuation. */
static bool is_default_punct(uint32_t c, unsigned f)
{
    if (f & UNICODE_F_PUNCT)
        return true;
    return c < 128 && c != 0 && strchr("$+<=>^~|", (int)c) != NULL;
}

/* A regex of the form [class]+: the text splits into the runs of the class
 * and the gaps between them. */
static void split_runs(splitter *sp, bool punct)
{
    bool prev = false;
    for (size_t pos = sp->lo; pos < sp->hi; pos++) {
        bool in = punct ? is_default_punct(sp->cp[pos], sp->fl[pos])
                        : (sp->fl[pos] & UNICODE_F_NUMBER) != 0;
        if (pos > sp->lo && in != prev)
            emit(sp, pos);
        prev = in;
    }
    emit(sp, sp->hi);
}

static bool is_ascii_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

/* [0-9][0-9][0-9]: leftmost non-overlapping triples, and the gaps. */
static void split_triples(splitter *sp)
{
    size_t pos = sp->lo;
    while (pos + 3 <= sp->hi) {
        if (is_ascii_digit(sp->cp[pos]) && is_ascii_digit(sp->cp[pos + 1]) &&
            is_ascii_digit(sp->cp[pos + 2])) {
            emit(sp, pos);
            pos += 3;
            emit(sp, pos);
        } else {
            pos++;
        }
    }
    emit(sp, sp->hi);
}

enum pass { PASS_GPT2, PASS_LLAMA3, PASS_QWEN2, PASS_PUNCT, PASS_NUMBERS, PASS_TRIPLES };

/* Applies one splitter to every segment in ends[0..n) (segment i runs from
 * the previous end to ends[i]), writing the refined ends to out. */
static size_t run_pass(const tok_scratch *s, enum pass pass, const size_t *ends, size_t n,
                       size_t *out)
{
    splitter sp = {.cp = s->cps, .fl = s->flags, .ends = out, .n = 0, .last = 0};
    size_t lo = 0;
    for (size_t i = 0; i < n; i++) {
        sp.lo = lo;
        sp.hi = ends[i];
        sp.last = lo;
        switch (pass) {
        case PASS_GPT2:
            split_gpt2(&sp);
            break;
        case PASS_LLAMA3:
            split_llama3(&sp, 3);
            break;
        case PASS_QWEN2:
            split_llama3(&sp, 1);
            break;
        case PASS_PUNCT:
            split_runs(&sp, true);
            break;
        case PASS_NUMBERS:
            split_runs(&sp, false);
            break;
        case PASS_TRIPLES:
            split_triples(&sp);
            break;
        }
        lo = ends[i];
    }
    return sp.n;
}

int tok_pretokenize(tokenizer_pre pre, tok_scratch *s, size_t n, size_t *n_words)
{
    if (n == 0) {
        *n_words = 0;
        return 0;
    }
    /* Each pass writes at most one end per code point. */
    if (tok_grow((void **)&s->ends, &s->ends_cap, n, sizeof(size_t)) ||
        tok_grow((void **)&s->ends2, &s->ends2_cap, n, sizeof(size_t)))
        return -ENOMEM;

    static const enum pass default_passes[] = {PASS_PUNCT, PASS_GPT2, PASS_NUMBERS, PASS_TRIPLES};
    enum pass one[1];
    const enum pass *passes = one;
    size_t n_passes = 1;
    switch (pre) {
    case TOKENIZER_PRE_GPT2:
        one[0] = PASS_GPT2;
        break;
    case TOKENIZER_PRE_QWEN2:
        one[0] = PASS_QWEN2;
        break;
    case TOKENIZER_PRE_LLAMA3:
    case TOKENIZER_PRE_DBRX:
        one[0] = PASS_LLAMA3;
        break;
    default:
        passes = default_passes;
        n_passes = sizeof(default_passes) / sizeof(default_passes[0]);
        break;
    }

    size_t *cur = s->ends2, *next = s->ends;
    cur[0] = n;
    size_t count = 1;
    for (size_t p = 0; p < n_passes; p++) {
        count = run_pass(s, passes[p], cur, count, next);
        size_t *tmp = cur;
        cur = next;
        next = tmp;
    }
    if (cur != s->ends)
        memcpy(s->ends, cur, count * sizeof(size_t));
    *n_words = count;
    return 0;
}
