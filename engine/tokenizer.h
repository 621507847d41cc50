/*
 * engine/tokenizer.h - text to tokens and back, from a GGUF vocabulary.
 *
 * Two models (docs/tokenizers.md): byte-level BPE ("gpt2": LLaMA-3, GPT-2,
 * Qwen2 and BitNet b1.58 2B4T) and SentencePiece ("llama": LLaMA-2 style).
 * The tokens match llama.cpp's for the same file, checked against its test
 * vectors. A loaded tokenizer is immutable: any number of threads may encode
 * and decode with it at once.
 */
#ifndef BITNET_ENGINE_TOKENIZER_H
#define BITNET_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

typedef struct tokenizer tokenizer;

typedef enum tokenizer_model {
    TOKENIZER_MODEL_BPE, /* tokenizer.ggml.model = "gpt2" */
    TOKENIZER_MODEL_SPM  /* tokenizer.ggml.model = "llama" */
} tokenizer_model;

/* How BPE text is split into words before merging (FORMATS.md 5.3). */
typedef enum tokenizer_pre {
    TOKENIZER_PRE_NONE,    /* SentencePiece: no pre-tokenizer */
    TOKENIZER_PRE_DEFAULT, /* llama.cpp's "default": four regexes in sequence */
    TOKENIZER_PRE_LLAMA3,  /* LLaMA-3 regex, whole-word vocab hits skip merging */
    TOKENIZER_PRE_GPT2,    /* GPT-2 regex */
    TOKENIZER_PRE_QWEN2,   /* LLaMA-3 regex with single-digit numbers */
    TOKENIZER_PRE_DBRX     /* LLaMA-3 regex without the whole-word shortcut */
} tokenizer_pre;

typedef struct tokenizer_options {
    /*
     * A gpt2 vocab that names no tokenizer.ggml.pre (the official BitNet
     * b1.58 2B4T file) gets LLAMA3 when the vocab is LLaMA-3's, as Microsoft's
     * reference tokenizer does. true selects llama.cpp's "default" instead,
     * which is what bitnet.cpp runs.
     */
    bool bitnet_cpp_pre;
} tokenizer_options;

/*
 * Builds a tokenizer from the tokenizer.ggml.* keys of f. opts may be NULL
 * (defaults). The tokenizer copies what it needs: f may be closed after.
 * Returns 0 and sets *out, or BITNET_ETOKENIZER (unsupported model or
 * pre-tokenizer, inconsistent arrays), BITNET_EMISSING, BITNET_ETYPE,
 * BITNET_ELIMIT or -ENOMEM, with a message in err.
 */
int tokenizer_load(const gguf_file *f, const tokenizer_options *opts, tokenizer **out, char *err,
                   size_t err_len);

/* Frees; NULL is fine. */
void tokenizer_free(tokenizer *t);

tokenizer_model tokenizer_model_type(const tokenizer *t);
tokenizer_pre tokenizer_pre_type(const tokenizer *t);
/* "llama3", "default", ... as in tokenizer.ggml.pre; "none" for SPM. */
const char *tokenizer_pre_name(tokenizer_pre pre);

int32_t tokenizer_n_vocab(const tokenizer *t);
/* Special ids, or -1 when the vocab has none. */
int32_t tokenizer_bos(const tokenizer *t);
int32_t tokenizer_eos(const tokenizer *t);
int32_t tokenizer_eot(const tokenizer *t);
/* Whether encode with add_special puts BOS first / EOS last. */
bool tokenizer_add_bos(const tokenizer *t);
bool tokenizer_add_eos(const tokenizer *t);
/* True for the tokens that end generation (eos, eot, eom and the
 * end-of-turn tokens llama.cpp recognises by text); false for bad ids. */
bool tokenizer_is_eog(const tokenizer *t, int32_t id);
/* The id whose vocab text is exactly text[0..len), or -1. */
int32_t tokenizer_find(const tokenizer *t, const char *text, size_t len);
/* The raw vocab text of id (not NUL-terminated), or NULL for a bad id. */
const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len);

/*
 * Encodes text[0..len) (any bytes: invalid UTF-8 is read as U+FFFD).
 * add_special puts BOS/EOS around the result when the vocab asks for them.
 * parse_special turns literal control-token text such as "<|eot_id|>" into
 * that token; without it only user-defined tokens are matched, so text from
 * a client cannot forge control tokens.
 * Returns 0 and the count in *n_out; -ENOSPC when cap is too small, with
 * the needed count in *n_out and out untouched (cap 0 is a count query);
 * BITNET_ELIMIT for text over 256 MiB; -EINVAL, -ENOMEM.
 */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t *out, size_t cap, size_t *n_out);

/*
 * The bytes token id stands for. Control and unknown tokens give nothing
 * unless special is true; then they give their text. A piece may end in the
 * middle of a UTF-8 sequence (byte tokens, or BPE tokens that split a code
 * point): use tokenizer_stream for text that must be valid UTF-8.
 * Returns 0 and the length in *len, -ENOSPC (needed length in *len, buf
 * untouched) or BITNET_EUNKNOWN_ID.
 */
int tokenizer_token_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t cap,
                          size_t *len);

/* The longest piece of any token, in bytes. */
size_t tokenizer_max_piece(const tokenizer *t);

/*
 * Concatenates the pieces of ids[0..n) as llama.cpp's detokenizer does
 * without its clean-up of spaces: a SentencePiece vocab that adds a space
 * prefix loses one leading space of the first piece. The bytes are raw (see
 * tokenizer_token_piece). Returns 0, -ENOSPC (needed length in *len),
 * BITNET_EUNKNOWN_ID.
 */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, bool special, char *buf,
                     size_t cap, size_t *len);

/*
 * Streaming detokenizer: feed generated tokens one at a time, get back only
 * complete, valid UTF-8. Bytes of a sequence that a later token may complete
 * are held back; bytes that can never be valid come out as U+FFFD (one per
 * byte, as unicode_utf8_decode() reads them). Plain struct, no allocation;
 * one per sequence, not shared between threads.
 */
typedef struct tokenizer_stream {
    const tokenizer *tok;
    bool special;      /* render control tokens as their text */
    bool strip_space;  /* drop one leading space from the next piece */
    uint8_t n_pending; /* held-back bytes of an unfinished sequence */
    uint8_t pending[3];
} tokenizer_stream;

/* Starts a stream. strip_space says the tokens start an encoded text: a
 * vocab that adds a space prefix (SentencePiece) then loses one leading
 * space, as in tokenizer_decode(). Generation passes false. */
void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t, bool special, bool strip_space);

/* Most bytes one feed or flush can write. */
size_t tokenizer_stream_bound(const tokenizer *t);

/*
 * Adds token id and writes the text it completes to out. Returns 0 and the
 * length in *n_out (often 0), -ENOSPC (needed length in *n_out, stream
 * unchanged) or BITNET_EUNKNOWN_ID (stream unchanged).
 */
int tokenizer_stream_feed(tokenizer_stream *s, int32_t id, char *out, size_t cap, size_t *n_out);

/* Ends the stream: held-back bytes come out as U+FFFD. Same returns. */
int tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap, size_t *n_out);

/* ---- chat ---- */

typedef enum chat_role { CHAT_ROLE_SYSTEM, CHAT_ROLE_USER, CHAT_ROLE_ASSISTANT } chat_role;

typedef struct chat_message {
    chat_role role;
    const char *content; /* need not be NUL-terminated */
    size_t content_len;
} chat_message;

/* "system", "user", "assistant"; NULL for other values. */
const char *chat_role_name(chat_role role);
/* Parses a role name (exact, lower case). Returns 0 or -EINVAL. */
int chat_role_parse(const char *name, chat_role *out);

/*
 * Renders a conversation in the BitNet b1.58 2B4T format of Microsoft's
 * reference (FORMATS.md 4.5, item 2): BOS, then for each message its header
 * "System: ", "User: " or "Assistant: " encoded alone, the content with
 * surrounding whitespace trimmed encoded alone (control-token text in it
 * stays text), and <|eot_id|>; add_assistant_prompt appends the
 * "Assistant: " header for the model to continue. Returns like
 * tokenizer_encode(), or -EINVAL for a bad role, BITNET_ETOKENIZER when the
 * vocab has no end-of-turn token.
 */
int tokenizer_render_chat(const tokenizer *t, const chat_message *msgs, size_t n,
                          bool add_assistant_prompt, int32_t *out, size_t cap, size_t *n_out);

#endif
