/*
 * backends/runner.h - a backend library run in a child process.
 *
 * A backend library is code bitnetd did not write: a libllama that
 * dereferences a bad pointer inside bitnet_eval() would take the whole
 * daemon, and every client's stream, with it. So the daemon never loads one
 * into its own process. It validates the file and copies it into a sealed
 * memfd (backend_lib_copy()); a runner is a child process (bitnetd started
 * again with --backend-runner) that inherits that memfd, loads the copy
 * (backend_lib_open_copy()), loads one model in it and evaluates batches
 * for it, one request at a time, over a socketpair. When the child dies,
 * every call on its runner fails with BITNET_EBACKEND and a message that
 * names the signal or exit status; the daemon serves on.
 *
 * The daemon side presents the runner to the batcher as a batch_target
 * (engine/batcher.h), exactly like an in-process backend_target. The cost
 * is one round trip per run of a sequence's tokens and a copy of the wanted
 * logits rows (n_vocab floats each) through the socket.
 *
 * A runner is not thread-safe: one thread (the model's scheduler, or the
 * worker while it builds a generation) drives it at a time.
 */
#ifndef BITNET_BACKENDS_RUNNER_H
#define BITNET_BACKENDS_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bitnet/backend.h"
#include "engine/batcher.h"

typedef struct backend_runner backend_runner;

/* What the child needs to load the library: the checked copy and where
 * the original is (messages, and dependencies found beside it). */
typedef struct runner_library {
    int memfd;            /* the sealed copy (backend_lib_copy()) */
    size_t size;          /* its bytes */
    const char *path;     /* the path as configured */
    const char *resolved; /* the path with symlinks resolved */
    const char *dirs;     /* allowed library directories, ':'-separated */
    uid_t uid;            /* the uid that may own libraries besides root */
} runner_library;

/* The library's own description, copied out of the child. */
typedef struct runner_info {
    uint32_t abi_version;
    char name[64], version[64], device[16], detail[1536];
} runner_info;

/*
 * Starts a runner: spawns exe (bitnetd) with --backend-runner, which loads
 * the library. Returns 0 and *out with the library's description in *info,
 * or a negative error with err (the spawn failed, the child could not load
 * the library: its loader message, or it died).
 */
int backend_runner_start(const char *exe, const runner_library *lib, backend_runner **out,
                         runner_info *info, char *err, size_t err_len);

/*
 * Loads the model at path in the runner's library (params as for
 * bitnet_model_new_from_file) with room for params->n_ctx_max sequences,
 * and describes it: *desc gets the counts, arch and kernel (copied into the
 * runner; valid until it is freed). Once per runner. Returns 0 or a
 * negative error with err.
 */
int backend_runner_model(backend_runner *r, const char *path, const bitnet_model_params *params,
                         bitnet_model_desc *desc, char *err, size_t err_len);

/* The runner's model as a batch target (after backend_runner_model()). */
void backend_runner_target(backend_runner *r, batch_target *out);

/* The child's process id. */
pid_t backend_runner_pid(const backend_runner *r);

/* Stops the child (asks it to quit, then kills it if it does not within a
 * second) and frees the runner. NULL is fine. */
void backend_runner_free(backend_runner *r);

/*
 * The child's side: bitnetd's main() calls this when argv[1] is
 * "--backend-runner". Serves requests until the daemon closes the socket
 * or asks it to quit, and returns the process exit status.
 */
int backend_runner_main(int argc, char **argv);

#endif
