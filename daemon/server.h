/*
 * daemon/server.h - the state bitnetd's loop thread owns: the listener, the
 * connections, the configuration in force, and the completion path that
 * brings results of work done off the loop back onto it.
 *
 * Threading: everything here belongs to the loop thread, except
 * work_submit()'s queue, which worker threads share under its mutex.
 */
#ifndef BITNETD_SERVER_H
#define BITNETD_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

#include "daemon/backends.h"
#include "daemon/config.h"
#include "protocol/varlink.h"

struct server;
struct work;
struct model;
struct job;
struct sched_event;

/* One client connection. Calls on it are answered strictly in order: the
 * next message is taken from the reader only once the current call's last
 * reply has been queued. */
struct conn {
    uv_pipe_t pipe;
    uv_timer_t idle;
    struct server *srv;
    struct conn *prev, *next; /* in srv->conns */
    uint64_t id;              /* for logs */
    struct varlink_reader reader;
    uid_t uid; /* peer credentials (SO_PEERCRED) at connect time */
    gid_t gid;
    pid_t pid;
    gid_t groups[64]; /* the peer's supplementary groups, when the kernel reports them */
    int n_groups;
    bool counted;            /* counted in srv->uids */
    size_t out_bytes;        /* reply bytes queued and not yet written */
    bool busy;               /* a call is in progress: its last reply is not sent yet */
    bool call_oneway;        /* the call in progress wants no reply */
    bool call_more;          /* the call in progress accepts several replies */
    bool reading;            /* uv_read_start is in force */
    bool eof;                /* the peer will send nothing more */
    bool closing;            /* uv_close was called */
    bool processing;         /* process() is on the stack: replies must not re-enter it */
    bool close_when_flushed; /* close once out_bytes reaches 0 */
    int refs;                /* open handles (pipe, timer) plus work items in flight; freed at 0 */
    struct job *job;         /* the generation this connection's Generate call runs, if any */
};

/* Per-uid connection count. */
struct uid_count {
    uid_t uid;
    int n;
};

struct server {
    uv_loop_t *loop;
    uv_pipe_t listener;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_async_t done_async; /* wakes the loop when work finished off it */
    struct config cfg;     /* in force */
    int argc;              /* the command line, kept to reload the configuration */
    char **argv;
    uint64_t start_ms; /* uv_now at start, for uptime */
    bool activated;    /* the socket came from systemd */
    bool bound;        /* bitnetd bound the socket and removes it at exit */
    bool stopping;
    bool has_admin_gid;
    gid_t admin_gid;
    struct conn *conns;
    int n_conns;
    uint64_t next_conn_id;
    struct uid_count *uids; /* one entry per uid with connections */
    int n_uids;
    int cap_uids;
    int jobs;         /* generation jobs queued or running */
    int threads;      /* compute threads in force */
    char status[256]; /* the last STATUS= text */
    /* Work done off the loop: a queue for the worker, and finished items. */
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t work_lock;
    pthread_cond_t work_cond;
    struct work *work_head, *work_tail; /* waiting for the worker */
    struct work *done_head;             /* finished, waiting for the loop */
    bool work_quit;
    uv_timer_t drain_timer; /* bounds the time shutdown waits for connections */
    void (*on_drained)(
        struct server *s); /* called when the last connection closed while stopping */
    dev_t sock_dev;        /* the socket file bitnetd bound, removed at exit if still the same */
    ino_t sock_ino;
    /* Models and jobs (models.h). */
    struct model *models; /* loaded or loading, in load order (the first is the default) */
    int n_models;
    struct job *job_list; /* every job not yet finished */
    uint64_t next_job_id;
    int preload_pending; /* --model files still loading; READY=1 waits for them */
    bool preload_failed; /* one of them failed: bitnetd exits 1 */
    int exit_code;
    bool jobs_cancelled; /* shutdown cancelled the jobs still running */
    /* Backends (backends.h). */
    struct backend_slot slots[BACKEND_SLOTS];
    int n_slots;
    struct pref_list pref; /* n 0: the built-in ranking */
    bool pref_from_call;   /* pref was set by SetPreference, not the configuration */
    bool strict;           /* a fallback is an error */
    char exe[4096];        /* this program, which runs backend libraries (--backend-runner) */
    /* Events from the scheduler threads, drained by the loop (scheduler.c). */
    uv_async_t ev_async;
    bool ev_open;
    pthread_mutex_t ev_lock;
    struct sched_event *ev_head, *ev_tail;
};

/* ---- conn.c ---- */

/* Accepts one connection from the listener, or closes it at once when a
 * connection limit is reached (logged). */
void conn_accept(struct server *s);

/*
 * Queues a reply to the call in progress on c. continues: more replies
 * follow (only for calls made with "more"). The last reply ends the call and
 * lets the next pipelined call run. Replies to oneway calls are dropped.
 * Returns 0; BITNET_ELIMIT when a continuing reply finds the output buffer
 * over max_output_buffer (the producer should pause or give up); -ENOMEM.
 * parameters is borrowed and may be NULL.
 */
int conn_reply(struct conn *c, json_t *parameters, bool continues);

/* Ends the call in progress on c with a Varlink error. parameters as above. */
int conn_error(struct conn *c, const char *error, json_t *parameters);

/* Closes c now (pending writes are dropped), logging reason. */
void conn_close(struct conn *c, const char *reason);

/* Takes and releases a reference that keeps c's memory alive while work
 * for it runs off the loop. conn_unref frees a closed connection at 0. */
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Lets c finish its call in progress and flush its replies, then closes it
 * (shutdown). */
void conn_drain(struct conn *c);

/* Closes every connection (shutdown). */
void conn_close_all(struct server *s);

/* ---- dispatch.c ---- */

/* Runs one call on c (c->busy is set). The handler replies now or later. */
void dispatch_call(struct conn *c, struct varlink_call *call);

/* True when c's peer may call io.bitnetd.Admin methods. */
bool dispatch_peer_is_admin(const struct conn *c);

/* ---- work.c ---- */

/*
 * Runs run(arg) on the worker thread, then done(arg) on the loop thread
 * (delivered through srv->done_async). The loop never computes; this is the
 * path the scheduler's results will take. Returns 0 or -errno.
 */
int work_submit(struct server *s, void (*run)(void *arg), void (*done)(void *arg), void *arg);

/* Starts the worker thread and the async handle. Returns 0 or -errno. */
int work_init(struct server *s);

/* Stops the worker (finishing queued items) and closes the async handle. */
void work_shutdown(struct server *s);

/* ---- main.c ---- */

/* Starts the shutdown SIGTERM starts (drain, then exit with s->exit_code). */
void server_stop(struct server *s, const char *why);

/* Sends READY=1 once nothing holds it back (preloaded models). */
void server_maybe_ready(struct server *s);

/* Rebuilds the status line and sends it to systemd as STATUS=. */
void server_update_status(struct server *s);

/* Reloads the configuration (SIGHUP, io.bitnetd.Admin.ReloadConfiguration).
 * Returns 0, or a negative error with err; the old configuration then stays. */
int server_reload(struct server *s, char *err, size_t err_len);

#endif
