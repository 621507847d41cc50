/*
 * daemon/backends.h - the backends a model can run in, the preference list
 * that chooses among them, and model generations.
 *
 * A backend is bitnetd's native engine (always there) or a backend library
 * named in the configuration (`backends = llama=/usr/lib/bitnetd/libbitnet-llama.so`),
 * validated and loaded at start (backends/loader.h) and replaced at run time
 * by io.bitnetd.Admin.ReloadLibrary. Each load of a library is one library
 * generation (struct libgen), referenced by the model generations made with
 * it and freed when the last is gone, so a reload never pulls code from
 * under a running job.
 *
 * The preference list orders kernel ids ("i2s_qk256.avx512": the native
 * engine with that kernel, or the CUDA library for a ".cuda" kernel),
 * backend ids ("llama": that library with its own kernel choice) and
 * "native" (the engine with the registry's choice). A model runs in the
 * first entry that applies to its weight format and loads; every entry
 * before it is reported with the reason it was skipped (docs/backends.md).
 *
 * A model generation (struct gen) is one loaded instance of a model in one
 * backend: its engine or library model, its batcher, and the logits of a
 * short self-check. A model has one current generation; a switch
 * (SetPreference, ReloadLibrary) makes a new one, new jobs go to it, and the
 * old one is freed by the scheduler when its last job ends.
 *
 * Threading: slots and the global preference belong to the loop thread.
 * libgen references are atomic. A plan is built on the loop and then owned
 * by the thread that carries it out; a gen belongs to the thread that made
 * it until it is handed to the model's scheduler.
 */
#ifndef BITNETD_BACKENDS_H
#define BITNETD_BACKENDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backends/loader.h"
#include "backends/runner.h"
#include "bitnet/kernels.h"
#include "engine/batcher.h"
#include "engine/engine.h"

struct server;
struct conn;
struct varlink_call;

#define BACKEND_ID_MAX  48 /* bytes of an id, with its NUL */
#define PREF_MAX        32 /* entries of a preference list */
#define BACKEND_SLOTS   8  /* configured backend libraries */
#define PREF_REASON_MAX 640

/* One load of a backend library: its checked bytes in a sealed memfd,
 * which every runner of this generation loads (so all of them run the same
 * code, whatever happens to the file meanwhile), and what it says about
 * itself. bitnetd never loads a library into its own process
 * (backends/runner.h). */
struct libgen {
    int memfd;
    size_t size;
    char path[4096], resolved[4096];
    char dirs[4096];         /* allowed directories, for its dependencies */
    char exe[4096];          /* the bitnetd that runs it (--backend-runner) */
    runner_info info;        /* name, version, device, detail, ABI */
    char id[BACKEND_ID_MAX]; /* the configured id, e.g. "llama" */
    int number;              /* 1 for the load at start, then one more per reload */
    int refs;                /* atomic: the slot's, and each gen made with it */
};

void libgen_ref(struct libgen *lg);
/* Drops a reference; the last one closes the library (any thread). */
void libgen_unref(struct libgen *lg);

/* A configured backend library [loop]. */
struct backend_slot {
    char id[BACKEND_ID_MAX];
    char path[4096];
    struct libgen *cur; /* NULL while refused */
    int generations;    /* loads so far, successful or not */
    char reason[512];   /* why the last load failed, "" when cur is set */
    bool busy;          /* a ReloadLibrary is in flight */
    json_t *analysis;   /* summary of the ELF analysis of path (backends/analyze.h) */
};

/* An ordered list of ids. */
struct pref_list {
    int n;
    char id[PREF_MAX][BACKEND_ID_MAX];
};

/* Splits text at spaces and commas into out. Each id must be "native", a
 * kernel id of the registry or a syntactically valid backend id. Returns 0,
 * or BITNET_EPARAM with err. */
int pref_parse(const char *text, struct pref_list *out, char *err, size_t err_len);

/* Reads a JSON array of ids (a SetPreference or LoadModel parameter);
 * every id must be known (pref_check_known). Returns 0 or an error with err. */
int pref_from_json(const struct server *s, const json_t *array, struct pref_list *out, char *err,
                   size_t err_len);

/* The built-in order: every available CUDA kernel, then the available
 * native SIMD kernels from the widest instruction set down, then the loaded
 * backend libraries in configuration order, then the scalar kernels, which
 * are always there. */
void pref_default(const struct server *s, struct pref_list *out);

/* The list in force: the model's own (when set), else the configured or set
 * one, else the default. */
const struct pref_list *pref_effective(const struct server *s, const struct pref_list *model_pref,
                                       struct pref_list *scratch);

/* Whether id names something a preference list may hold here (a kernel id,
 * "native", or a configured backend id). Returns 0 or BITNET_EUNKNOWN_ID
 * with err. */
int pref_check_known(const struct server *s, const char *id, char *err, size_t err_len);

/* One entry of a plan, in preference order. */
enum plan_kind { PLAN_NATIVE, PLAN_LIBRARY, PLAN_SKIP };

struct plan_entry {
    char id[BACKEND_ID_MAX];
    enum plan_kind kind;
    const bitnet_kernel *kernel; /* forced kernel, or NULL for the backend's choice */
    struct libgen *lg;           /* PLAN_LIBRARY: a reference */
    char state[12];              /* "active", "skipped", "untried" */
    char reason[PREF_REASON_MAX];
};

/* How to load a model: the entries to try, in order. */
struct plan {
    char path[4096];
    int n_seq_max, n_ctx, threads;
    char kv_type[8]; /* the native engine's KV cache type (config kv_type) */
    bool strict;
    bitnet_format format; /* of the model's ternary weights */
    bool has_format;
    int n;
    struct plan_entry e[PREF_MAX];
    int active; /* index of the entry that loaded, or -1 */
    char error[1024];
};

/*
 * Builds the plan for the model at path under list [loop]: reads the
 * file's weight format, drops kernel entries of other formats, and fills the
 * reasons of entries that cannot apply (not compiled, not supported, library
 * refused or not configured). replace, when not NULL, stands for the
 * library of its id (the new generation of a reload). Returns
 * 0, or a negative error with err (the file cannot be read).
 */
int plan_build(struct server *s, const char *path, const struct pref_list *list, bool strict,
               struct libgen *replace, struct plan *p, char *err, size_t err_len);

/* Drops the plan's library references. */
void plan_release(struct plan *p);

/* The plan's entries as Preference objects [{id, state, reason}]. */
json_t *plan_json(const struct plan *p);

/* The self-check: the logits after a fixed short prompt. */
struct selfcheck {
    int n_vocab;
    float *logits; /* n_vocab */
    int argmax;
};

/* What a generation is, as the loop reports it. */
struct gen_facts {
    int number;                   /* 1 for the first load, then one more per switch */
    char backend[BACKEND_ID_MAX]; /* "native" or a library id */
    char kernel[64];              /* kernel id, or what the library says runs */
    char library[160];            /* the library's name, version, device, generation; or "" */
    int lib_number;               /* the library generation, 0 for native */
    char arch[32], weights[16], lm_head[96];
    char kv_cache[16], attention[16]; /* native: the engine's; "" for a library */
    int n_vocab, n_ctx, threads, n_seq_max;
};

/* A model's generation in one backend. */
struct gen {
    struct gen_facts f;
    engine *e;              /* native */
    struct libgen *lg;      /* library */
    backend_runner *runner; /* library: the process running it */
    batch_target bt;
    batcher *b;
    struct selfcheck check;
    double load_ms, check_ms; /* how long the load and the self-check took */
    int jobs;                 /* [sched] jobs in its batcher */
    struct gen *next;
};

/*
 * Carries out plan p (any thread but the loop): tries each entry in order
 * until one loads, recording why each failed, runs the self-check on the
 * one that loaded (tok tokenizes its prompt), and returns it in *out.
 * Returns 0, or a negative error with p->error (every entry failed, or
 * strict and the first entry did not load).
 */
int gen_create(struct plan *p, const tokenizer *tok, struct gen **out);

/* Milliseconds of CLOCK_MONOTONIC. */
double backends_now_ms(void);

/* Frees a gen whose batcher holds no job (any thread). NULL is fine. */
void gen_free(struct gen *g);

/* Compares two self-checks: *cosine and *max_diff; true when the argmax is
 * the same and the cosine is at least 0.999. */
bool selfcheck_compare(const struct selfcheck *a, const struct selfcheck *b, double *cosine,
                       double *max_diff);

/* Copies a self-check (for the model's record). Returns 0 or -ENOMEM. */
int selfcheck_copy(struct selfcheck *dst, const struct selfcheck *src);
void selfcheck_free(struct selfcheck *c);

/* ---- the manager [loop] ---- */

/* Loads every configured library; failures are logged and reported, not
 * fatal. Returns 0 or a negative error with err for a bad configuration. */
int backends_init(struct server *s, char *err, size_t err_len);

/* Validates the library at path and copies it as generation number of
 * id, allowed from the ':'-separated dir_list (any thread), then starts a
 * runner of it once (exe --backend-runner) to check that it loads and to
 * read its description. A library whose id ends in ".cpu" or ".cuda" must
 * compute on that device. Returns 0 and *out (one reference), or a
 * negative error with err. */
int backends_load_library(const char *exe, const char *dir_list, const char *id, const char *path,
                          int number, struct libgen **out, char *err, size_t err_len);

/* Starts a runner of lg's library (any thread). */
int libgen_runner(const struct libgen *lg, backend_runner **out, runner_info *info, char *err,
                  size_t err_len);

/* Drops every slot's library reference (shutdown). */
void backends_shutdown(struct server *s);

/* The slot of id, or NULL. */
struct backend_slot *backends_find(struct server *s, const char *id);

/* A summary of the ELF analysis of the library at path (kind, cuda,
 * inference, formats, kernels, quantization), or {error} (any thread). */
json_t *backends_analysis(const char *path);

/* Whether the analysis of the library at path agrees with the device its
 * id names: an id ending in ".cpu" whose symbols say CUDA, or in ".cuda"
 * whose symbols say CPU only, is a mismatch. Returns 0 or BITNET_EBACKEND
 * with err. */
int backends_check_analysis(const char *id, const char *path, const json_t *analysis, char *err,
                            size_t err_len);

/* The backends array of GetCapabilities: native, then each slot. */
json_t *backends_json(const struct server *s);

/* The preference list in force with each entry's global availability. */
json_t *backends_preference_json(const struct server *s);

/* Method handlers. */
void backends_set_preference_call(struct conn *c, const struct varlink_call *call);
void backends_reload_library_call(struct conn *c, const struct varlink_call *call);

#endif
