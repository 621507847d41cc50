/*
 * backends/target.h - a model loaded in a backend, seen by the batcher as a
 * batch target (engine/batcher.h), so that generations run the same way on
 * a backend library (the llama shim, cuda) as on the native engine.
 *
 * A backend_target holds a backend_api table, a model loaded through it and
 * up to n_seq_max contexts of that model, one per batcher sequence. The ABI
 * evaluates one context at a time, so a batch is split: each run of
 * consecutive tokens of one sequence is one bitnet_eval() call, cut after
 * every token whose logits are wanted. A backend library gets no one-pass
 * batching from this; the native engine keeps its own (batcher_new()).
 *
 * Threading: the ABI's rule holds. A model and its contexts are driven by one
 * thread at a time, so the target and the batcher over it belong to one
 * thread (the daemon's scheduler thread for that model).
 */
#ifndef BITNET_BACKENDS_TARGET_H
#define BITNET_BACKENDS_TARGET_H

#include <stddef.h>

#include "backends/api.h"
#include "engine/batcher.h"

typedef struct backend_target backend_target;

/*
 * A target over model, which was loaded by api (the table is copied; model
 * is borrowed and must outlive the target, as must the library behind api).
 * n_seq_max is the number of sequences at once; load the model with
 * bitnet_model_params.n_ctx_max >= n_seq_max, since contexts are made
 * lazily, when a sequence first needs one, and the backend refuses more
 * than its n_ctx_max (a sequence then fails to start with BITNET_ELIMIT).
 * Returns 0 and *out, BITNET_EPARAM for a missing argument, an incomplete
 * table or n_seq_max outside 1..BACKEND_TARGET_MAX_SEQ, the code of
 * api->model_describe(), BITNET_EBACKEND when the model describes itself
 * with a size <= 0, or -ENOMEM; with a message in err.
 */
int backend_target_new(const backend_api *api, bitnet_model *model, int n_seq_max,
                       backend_target **out, char *err, size_t err_len);

/* Frees the target's contexts and the target (not the model). Sequences
 * still open are ended. NULL is fine. */
void backend_target_free(backend_target *t);

/*
 * Fills *out with the target's functions, sizes (n_vocab and n_ctx as the
 * model describes itself, the n_seq_max given) and t itself as impl, for
 * batcher_new_target(). The target must outlive every batcher made on it.
 */
void backend_target_get(backend_target *t, batch_target *out);

/* The most sequences one target holds. */
#define BACKEND_TARGET_MAX_SEQ 1024

#endif
