/*
 * daemon/models.h - loaded models, their scheduler threads and the jobs they
 * run.
 *
 * Each model has one scheduler thread (scheduler.c) that loads it, owns its
 * engine and batcher, takes jobs from the model's bounded queue and runs
 * batcher_step() while jobs are active. The scheduler never touches a
 * socket: it posts events (a job started, text, a job ended, the model is
 * loaded or gone) to a queue that the loop thread drains through one
 * uv_async_t. The loop never computes: it validates calls, queues jobs and
 * turns events into replies (jobs.c).
 *
 * Threading: fields marked [loop] belong to the loop thread, [sched] to the
 * model's scheduler thread, [lock] are shared under the model's mutex, and
 * [const] are set before the scheduler sees the object and never change.
 */
#ifndef BITNETD_MODELS_H
#define BITNETD_MODELS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

#include "daemon/backends.h"
#include "engine/batcher.h"

struct server;
struct conn;
struct varlink_call;

enum model_state {
    MODEL_LOADING,  /* the scheduler is reading the file */
    MODEL_READY,    /* serving */
    MODEL_UNLOADING /* jobs are being cancelled; the scheduler is about to exit */
};

/* "loading", "ready", "unloading". */
const char *model_state_name(enum model_state st);

enum job_state {
    JOB_QUEUED,  /* waiting in its model's queue */
    JOB_PREFILL, /* in the batcher, evaluating its prompt */
    JOB_DECODE   /* generating */
};

/* "queued", "prefill", "decode". */
const char *job_state_name(enum job_state st);

/* A generation request, as the client gave it. */
struct job {
    uint64_t id;                  /* [const] daemon-assigned, never reused */
    struct model *model;          /* [const] holds a model reference */
    char *prompt;                 /* [const] plain text, or NULL for messages */
    size_t prompt_len;            /* [const] */
    chat_message *messages;       /* [const] chat, rendered by the scheduler */
    size_t n_messages;            /* [const] */
    json_t *message_json;         /* [const] owns the messages' strings */
    gen_request req;              /* [const] prompt fields are filled by the scheduler */
    char *stop_buf[GEN_MAX_STOP]; /* [const] copies of the stop strings */
    bool cancel;                  /* [lock] cancellation requested */
    struct job *qnext;            /* [lock] in the model's queue */
    int gen_id;                   /* [sched] batcher id once added */
    struct gen *gen;              /* [sched] the generation running it, NULL once ended */
    /* [loop] */
    struct conn *conn;            /* the Generate call's connection (referenced), NULL once gone */
    uid_t uid;                    /* the caller */
    enum job_state state;         /* as last reported */
    int prompt_tokens;            /* known once started */
    int tokens;                   /* generated so far */
    char *held;                   /* text a full output buffer could not take yet */
    char backend[BACKEND_ID_MAX]; /* where it runs, known once started */
    char kernel[64];
    int generation;
    char *fallback;       /* why the backend or kernel the call asked for is not the one used */
    int deadline_ms;      /* [const] 0, or the job's time limit from the call */
    uv_timer_t *deadline; /* [loop] fires deadline_ms after the call, or NULL */
    bool deadline_hit;    /* [loop] it fired: the job was cancelled for it */
    size_t n_held;
    struct job *prev, *next; /* in srv->jobs */
};

struct model {
    char name[64];          /* [const] how calls name it */
    char path[4096];        /* [const] the GGUF file */
    struct server *srv;     /* [const] */
    int n_seq_max;          /* [const] generations batched together */
    int n_ctx;              /* [const] requested context, 0 = the model's */
    int threads;            /* [const] compute threads */
    bool preload;           /* [loop] READY=1 waits for it */
    enum model_state state; /* [loop] */
    struct gen_facts f;     /* [loop] the current generation, once loaded */
    struct pref_list pref;  /* [loop] the model's own preference list (n 0: the global one) */
    bool strict;            /* [loop] the model's own strict mode (the daemon's applies too) */
    struct plan *plan;      /* [loop] built at load, carried out by the scheduler, then [loop] */
    json_t *preference;     /* [loop] the last plan: each entry's state and reason */
    char requested[BACKEND_ID_MAX]; /* [loop] the plan's first entry */
    bool fallback;                  /* [loop] the active entry is not the first */
    json_t *self_check;             /* [loop] the last switch's comparison, or NULL */
    bool switching;                 /* [loop] a switch is being prepared */
    bitnet_format format;           /* [loop] of the ternary weights */
    const bitnet_kernel *forced;    /* [loop] the kernel the active entry forced, or NULL */
    const tokenizer *tok;           /* [loop] usable once MODEL_READY; freed with the model */
    tokenizer *tok_owned;           /* [sched] until loaded, then [loop] */
    struct gguf_file *gguf_owned;   /* [sched] until loaded, then [loop]: the tokenizer's file */
    int refs;                       /* [loop] jobs, Tokenize work and the list itself */
    int queued;                     /* [loop] jobs in JOB_QUEUED */
    struct conn *load_call;         /* [loop] the LoadModel call waiting for the load, if any */
    struct conn *unload_call;       /* [loop] the UnloadModel call waiting for the exit */
    char load_error[1024]; /* [sched] why the load failed, read by the loop after the exit */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *qhead, *qtail; /* [lock] jobs not yet taken by the scheduler */
    bool quit;                 /* [lock] cancel everything and exit */
    struct gen *pending;       /* [lock] a generation to switch to */
    bool hold;                 /* [lock] pause: a new generation is loading (reload.c) */
    struct selfcheck check;    /* [lock] the current generation's self-check */
    struct sched_event *held;  /* [sched] DONE events kept until the jobs left the run list */
    struct model *next;        /* [loop] in srv->models */
};

/* ---- scheduler.c ---- */

/* Starts the event path (one uv_async_t) on the loop. Returns 0 or -errno. */
int sched_init(struct server *s);

/* Closes the event path once no model is left; called by models.c. */
void sched_close(struct server *s);

/* Starts m's scheduler thread, which loads the model and then serves its
 * queue. Returns 0 or -errno (the model is then not started). */
int sched_start(struct model *m);

/* Queues job j on its model (the caller checked the queue depth). */
void sched_submit(struct model *m, struct job *j);

/* Asks for job j to end as cancelled; its DONE event follows. */
void sched_cancel(struct model *m, struct job *j);

/* Asks m's scheduler to cancel its jobs and exit; an UNLOADED event follows. */
void sched_stop(struct model *m);

/* ---- models.c ---- */

/* Starts loading path as model name (NULL: the file's base name without
 * .gguf), under its own preference list pref (NULL or empty: the global
 * one) and strict (or the global strict). Returns 0 and the model, or a
 * negative error with err (a name in use, too many models, the file
 * unreadable, no applicable preference entry, no memory). */
int models_load(struct server *s, const char *path, const char *name, const struct pref_list *pref,
                bool strict, struct model **out, char *err, size_t err_len);

/* Hands generation g to m's scheduler: new jobs go to it (loop). When m is
 * no longer ready, g is freed instead. Returns true when handed over. */
bool models_switch(struct model *m, struct gen *g, const struct plan *p);

/* The model called name, or the first model when name is NULL; NULL when
 * there is none or it is being unloaded. */
struct model *models_find(struct server *s, const char *name);

/* Drops a reference; the last one frees the model (after its thread exited). */
void model_unref(struct model *m);

/* The model as a Model object of the Query interface. */
json_t *model_json(const struct model *m);

/* Loop side of scheduler events about the model itself. */
void models_on_loaded(struct model *m, const struct gen_facts *f);
void models_on_exited(struct model *m);

/* Stops every model (shutdown); the event path closes when the last is gone. */
void models_stop_all(struct server *s);

/* Method handlers. */
void models_list(struct conn *c, const struct varlink_call *call);
void models_load_call(struct conn *c, const struct varlink_call *call);
void models_unload_call(struct conn *c, const struct varlink_call *call);

/* ---- jobs.c ---- */

/* Loop side of scheduler events about a job. */
void jobs_on_started(struct job *j, int prompt_tokens, const struct gen_facts *f);
void jobs_on_text(struct job *j, const char *text, size_t len, int n_tokens);
void jobs_on_done(struct job *j, gen_finish finish, const char *error, const gen_usage *usage);

/* c is closing: cancel its job, if any. */
void jobs_conn_closed(struct conn *c);

/* Method handlers. */
void jobs_generate(struct conn *c, const struct varlink_call *call);
void jobs_cancel(struct conn *c, const struct varlink_call *call);
void jobs_list(struct conn *c, const struct varlink_call *call);
void jobs_tokenize(struct conn *c, const struct varlink_call *call);
void jobs_detokenize(struct conn *c, const struct varlink_call *call);

/* Frees a job (loop). */
void job_free(struct job *j);

#endif
