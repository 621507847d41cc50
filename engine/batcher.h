/*
 * engine/batcher.h - generations in progress, advanced together.
 *
 * The batcher owns the generations running on one engine, or on another
 * batch target (below: a model in a backend library). Each step builds one
 * batch: prompt chunks of generations still in prefill and one token of
 * each generation that is decoding, evaluates it (the native engine does so
 * in one pass over the weights: continuous batching), samples, and reports
 * text through each generation's callback. Generations join and leave
 * between steps.
 *
 * Not thread-safe: the target's driver thread (the daemon's scheduler or
 * bitnet-run) calls everything here. Callbacks run on that thread.
 */
#ifndef BITNET_ENGINE_BATCHER_H
#define BITNET_ENGINE_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

typedef enum gen_finish {
    GEN_FINISH_NONE = 0,
    GEN_FINISH_STOP,      /* an end-of-generation token or a stop string */
    GEN_FINISH_LENGTH,    /* max_tokens reached, or the context is full */
    GEN_FINISH_CANCELLED, /* batcher_cancel() */
    GEN_FINISH_ERROR      /* the engine failed; see the event's error */
} gen_finish;

/* "stop", "length", "cancelled", "error". */
const char *gen_finish_name(gen_finish f);

#define GEN_MAX_STOP 8

typedef struct gen_request {
    const int32_t *prompt; /* tokens, copied by batcher_add() */
    size_t n_prompt;
    sampler_params sampling;
    int max_tokens;                 /* > 0 */
    const char *stop[GEN_MAX_STOP]; /* stop strings (NUL-terminated), copied */
    int n_stop;
    bool ignore_eog; /* keep going past end-of-generation tokens */
} gen_request;

/* Figures of a generation, final in its GEN_EVENT_DONE. */
typedef struct gen_usage {
    int prompt_tokens;
    int generated_tokens;
    double prefill_ms; /* from start until the first token was sampled */
    double decode_ms;  /* from then until the end */
    double queue_ms;   /* from batcher_add() until the first step that included it */
} gen_usage;

typedef enum gen_event_type {
    GEN_EVENT_TEXT, /* a piece of text (valid UTF-8, maybe empty) and its token */
    GEN_EVENT_DONE  /* the end: finish reason and usage; nothing follows */
} gen_event_type;

typedef struct gen_event {
    gen_event_type type;
    int id;           /* the generation's id from batcher_add() */
    const char *text; /* TEXT: not NUL-terminated */
    size_t text_len;
    int32_t token;       /* TEXT: the token sampled (-1 for a final flush) */
    const float *logits; /* TEXT: the n_vocab logits it was sampled from, or NULL */
    gen_finish finish;   /* DONE */
    const char *error;   /* DONE with GEN_FINISH_ERROR */
    const gen_usage *usage;
} gen_event;

typedef void (*gen_callback)(void *user, const gen_event *ev);

typedef struct batcher batcher;

/*
 * What a batcher evaluates on: the native engine (batch_target_from_engine()) or
 * anything else that keeps sequences and evaluates batches of their tokens,
 * such as a backend library seen through backends/target.h. The functions
 * mean what engine_seq_new(), engine_seq_free() and engine_eval() mean in
 * engine/engine.h, with impl in place of the engine and a message in err on
 * failure: seq_new returns 0 and a sequence id, or BITNET_ELIMIT when
 * n_seq_max sequences exist (or another negative code); eval writes
 * the logits of the tokens that want them in batch order and returns 0,
 * BITNET_ECONTEXT when a sequence would pass n_ctx, BITNET_EPARAM for an
 * unknown sequence or a token out of range, or another negative code, with
 * err set.
 */
typedef struct batch_target {
    void *impl;
    int (*seq_new)(void *impl, int *seq, char *err, size_t err_len);
    void (*seq_free)(void *impl, int seq);
    int (*eval)(void *impl, const engine_batch *batch, float *out_logits, char *err,
                size_t err_len);
    int n_vocab;   /* logits per token that wants them */
    int n_ctx;     /* positions per sequence */
    int n_seq_max; /* sequences at once (the batcher's generation slots) */
} batch_target;

/* The native engine as a batch target (impl is e; e must outlive it). */
void batch_target_from_engine(engine *e, batch_target *out);

/*
 * A batcher over target t (copied; t->impl must outlive the batcher) and the
 * model's tokenizer tok (not owned). max_batch bounds the tokens of one step
 * (prefill chunks are cut to fit); <= 0 means 256. Returns 0 and *out,
 * BITNET_EPARAM for a target without functions or with a size <= 0, or
 * -ENOMEM.
 */
int batcher_new_target(const batch_target *t, const tokenizer *tok, int max_batch, batcher **out);

/* A batcher over the native engine e and its tokenizer t (neither owned):
 * batcher_new_target() on batch_target_from_engine(e). */
int batcher_new(engine *e, const tokenizer *t, int max_batch, batcher **out);

/* Cancels everything still running (their DONE events fire) and frees. */
void batcher_free(batcher *b);

/*
 * Starts a generation. Returns 0 and its id (>= 0), BITNET_EBUSY when the
 * target has no free sequence, BITNET_EPARAM for a bad request (empty
 * prompt, bad sampling, prompt longer than the context), -ENOMEM, or the
 * target's own code when it could not start a sequence, with a message in
 * err. The callback receives every event of this generation.
 */
int batcher_add(batcher *b, const gen_request *req, gen_callback cb, void *user, int *id, char *err,
                size_t err_len);

/* Ends generation id at the next step boundary with GEN_FINISH_CANCELLED.
 * Its DONE event fires inside this call. Unknown ids are ignored. */
void batcher_cancel(batcher *b, int id);

/* Generations in progress. */
int batcher_active(const batcher *b);

/* Runs one step. Returns the number of generations still active after it. */
int batcher_step(batcher *b);

#endif
