/*
 * tests/engine/tok_ref_llama.c - the reference libllama tokenizer behind a
 * tiny interface, for test_tokenizer_crossval.c, which cannot include
 * llama.h next to engine/gguf.h (both declare gguf_* names).
 */
#include <stdbool.h>
#include <stddef.h>

#include "llama.h"

void *ref_vocab_open(const char *path);
void ref_vocab_close(void *model);
int ref_tokenize(void *model, const char *text, int len, int *ids, int cap, bool add_special,
                 bool parse_special);

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)level;
    (void)text;
    (void)user;
}

/* Loads only the vocabulary of a GGUF file; NULL on failure. */
void *ref_vocab_open(const char *path)
{
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    return llama_model_load_from_file(path, mp);
}

void ref_vocab_close(void *model)
{
    llama_model_free(model);
}

/* llama_tokenize(): the count, or minus the needed count when cap is short. */
int ref_tokenize(void *model, const char *text, int len, int *ids, int cap, bool add_special,
                 bool parse_special)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    return llama_tokenize(vocab, text, len, ids, cap, add_special, parse_special);
}
