/*
 * daemon/scheduler.c - one thread per model: it loads the model, owns its
 * engine and batcher, takes jobs from the model's queue as sequences free
 * up, and steps the batcher while generations are active. Everything it
 * learns goes back to the loop as events through one uv_async_t; the loop
 * drains the whole event queue on each wake-up, so a burst of tokens costs
 * one wake-up, and consecutive text of one job is merged into one event.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/gguf.h"
#include "daemon/backends.h"
#include "daemon/log.h"
#include "daemon/models.h"
#include "daemon/server.h"

enum sched_event_type {
    EV_LOADED,  /* the model is usable; info filled */
    EV_STARTED, /* a job entered the batcher */
    EV_TEXT,    /* text of a job */
    EV_DONE,    /* a job ended; nothing more comes for it */
    EV_EXITED   /* the scheduler thread is about to return */
};

struct sched_event {
    enum sched_event_type type;
    struct model *model;
    struct job *job;
    char *text;
    size_t len, cap;
    int n; /* STARTED: prompt tokens; TEXT: tokens */
    gen_finish finish;
    char *error;
    gen_usage usage;
    struct gen_facts facts; /* LOADED, STARTED: the generation */
    struct sched_event *next;
};

/* ---- the event path ---- */

static void ev_push(struct server *s, struct sched_event *ev)
{
    pthread_mutex_lock(&s->ev_lock);
    if (s->ev_tail)
        s->ev_tail->next = ev;
    else
        s->ev_head = ev;
    s->ev_tail = ev;
    pthread_mutex_unlock(&s->ev_lock);
    uv_async_send(&s->ev_async);
}

static struct sched_event *ev_new(enum sched_event_type type, struct model *m, struct job *j)
{
    /* Out of memory on the scheduler thread cannot be answered; a job whose
     * events are lost would hang, so abort as any allocation failure in a
     * thread without an error path must. */
    struct sched_event *ev = calloc(1, sizeof(*ev));
    if (!ev) {
        log_event(LOG_CRIT, "out-of-memory", "where=scheduler");
        abort();
    }
    ev->type = type;
    ev->model = m;
    ev->job = j;
    return ev;
}

/* Posts text of job j, merged into the last queued event when that is text
 * of the same job. */
static void ev_text(struct model *m, struct job *j, const char *text, size_t len, int n_tokens)
{
    struct server *s = m->srv;
    pthread_mutex_lock(&s->ev_lock);
    struct sched_event *t = s->ev_tail;
    if (t && t->type == EV_TEXT && t->job == j && t->len + len <= t->cap) {
        memcpy(t->text + t->len, text, len);
        t->len += len;
        t->n += n_tokens;
        pthread_mutex_unlock(&s->ev_lock);
        return;
    }
    pthread_mutex_unlock(&s->ev_lock);
    struct sched_event *ev = ev_new(EV_TEXT, m, j);
    ev->cap = len < 4096 ? 4096 : len;
    ev->text = malloc(ev->cap);
    if (!ev->text) {
        log_event(LOG_CRIT, "out-of-memory", "where=scheduler");
        abort();
    }
    memcpy(ev->text, text, len);
    ev->len = len;
    ev->n = n_tokens;
    ev_push(s, ev);
}

static struct sched_event *ev_done_new(struct model *m, struct job *j, gen_finish finish,
                                       const char *error, const gen_usage *usage)
{
    struct sched_event *ev = ev_new(EV_DONE, m, j);
    ev->finish = finish;
    ev->error = error ? strdup(error) : NULL;
    if (usage)
        ev->usage = *usage;
    return ev;
}

static void ev_done(struct model *m, struct job *j, gen_finish finish, const char *error,
                    const gen_usage *usage)
{
    ev_push(m->srv, ev_done_new(m, j, finish, error, usage));
}

/* Posts the DONE events that on_gen_event() held back, in order. */
static void ev_flush_done(struct model *m)
{
    struct sched_event *ev = m->held;
    m->held = NULL;
    while (ev) {
        struct sched_event *next = ev->next;
        ev->next = NULL;
        ev_push(m->srv, ev);
        ev = next;
    }
}

static void on_events(uv_async_t *a)
{
    struct server *s = a->data;
    pthread_mutex_lock(&s->ev_lock);
    struct sched_event *ev = s->ev_head;
    s->ev_head = s->ev_tail = NULL;
    pthread_mutex_unlock(&s->ev_lock);
    while (ev) {
        struct sched_event *next = ev->next;
        switch (ev->type) {
        case EV_LOADED:
            models_on_loaded(ev->model, &ev->facts);
            break;
        case EV_STARTED:
            jobs_on_started(ev->job, ev->n, &ev->facts);
            break;
        case EV_TEXT:
            jobs_on_text(ev->job, ev->text, ev->len, ev->n);
            break;
        case EV_DONE:
            jobs_on_done(ev->job, ev->finish, ev->error, &ev->usage);
            break;
        case EV_EXITED:
            models_on_exited(ev->model);
            break;
        }
        free(ev->text);
        free(ev->error);
        free(ev);
        ev = next;
    }
}

int sched_init(struct server *s)
{
    int rc = uv_async_init(s->loop, &s->ev_async, on_events);
    if (rc < 0)
        return rc;
    s->ev_async.data = s;
    pthread_mutex_init(&s->ev_lock, NULL);
    s->ev_open = true;
    return 0;
}

void sched_close(struct server *s)
{
    if (!s->ev_open)
        return;
    s->ev_open = false;
    uv_close((uv_handle_t *)&s->ev_async, NULL);
    pthread_mutex_destroy(&s->ev_lock);
}

/* ---- the thread ---- */

/* State of one scheduler thread. */
struct sched {
    struct model *m;
    gguf_file *gguf; /* the model file, for the tokenizer */
    tokenizer *tok;
    struct gen *cur;  /* new jobs go here */
    struct gen *old;  /* earlier generations finishing their jobs */
    struct job **run; /* jobs in a batcher */
    int n_run, cap_run;
};

static void on_gen_event(void *user, const gen_event *ev)
{
    struct job *j = user;
    if (ev->type == GEN_EVENT_TEXT) {
        if (ev->text_len > 0 || ev->token >= 0)
            ev_text(j->model, j, ev->text, ev->text_len, ev->token >= 0 ? 1 : 0);
        return;
    }
    if (j->gen) {
        j->gen->jobs--;
        j->gen = NULL;
    }
    /* The loop frees the job on DONE, and the scheduler still reads it until
     * prune_run() has dropped it from the running list: the event is held
     * until then (ev_flush_done()), in order behind the job's text. */
    struct model *m = j->model;
    struct sched_event *done = ev_done_new(m, j, ev->finish, ev->error, ev->usage);
    struct sched_event **tail = &m->held;
    while (*tail)
        tail = &(*tail)->next;
    *tail = done;
}

/* Drops jobs that ended (their gen was cleared) from the running list;
 * their DONE events are still held, so they are not freed yet. */
static void prune_run(struct sched *st)
{
    int n = 0;
    for (int i = 0; i < st->n_run; i++) {
        if (st->run[i]->gen)
            st->run[n++] = st->run[i];
    }
    st->n_run = n;
}

/* Tokenizes or renders job j's prompt. */
static int encode(const tokenizer *tok, const struct job *j, int32_t *buf, size_t cap, size_t *n)
{
    if (j->messages)
        return tokenizer_render_chat(tok, j->messages, j->n_messages, true, buf, cap, n);
    /* Client text is never parsed for control tokens (parse_special false). */
    return tokenizer_encode(tok, j->prompt, j->prompt_len, true, false, buf, cap, n);
}

/* Tokenizes job j's prompt into a new array. Returns 0 or a negative error
 * with err. */
static int make_prompt(const tokenizer *tok, const struct job *j, int32_t **out, size_t *n,
                       char *err, size_t err_len)
{
    size_t need = 0;
    int rc = encode(tok, j, NULL, 0, &need);
    if (rc == 0 || rc == -ENOSPC) {
        int32_t *buf = malloc(sizeof(int32_t) * (need ? need : 1));
        if (!buf)
            return -ENOMEM;
        rc = encode(tok, j, buf, need, &need);
        if (rc == 0) {
            *out = buf;
            *n = need;
            return 0;
        }
        free(buf);
    }
    snprintf(err, err_len, "cannot tokenize the %s: %s", j->messages ? "messages" : "prompt",
             bitnet_strerror(rc));
    return rc;
}

/* Puts job j into the current generation's batcher, or ends it with an
 * error. */
static void start_job(struct sched *st, struct job *j)
{
    char err[512];
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    int rc = 0;
    if (st->n_run == st->cap_run) {
        int cap = st->cap_run ? 2 * st->cap_run : 16;
        struct job **r = realloc(st->run, sizeof(*r) * (size_t)cap);
        if (!r) {
            snprintf(err, sizeof(err), "out of memory");
            rc = -ENOMEM;
        } else {
            st->run = r;
            st->cap_run = cap;
        }
    }
    if (rc == 0)
        rc = make_prompt(st->tok, j, &prompt, &n_prompt, err, sizeof(err));
    if (rc == 0 && n_prompt == 0) {
        snprintf(err, sizeof(err), "the prompt is empty");
        rc = BITNET_EPARAM;
    }
    if (rc == 0) {
        gen_request req = j->req;
        req.prompt = prompt;
        req.n_prompt = n_prompt;
        struct sched_event *ev = ev_new(EV_STARTED, st->m, j);
        ev->n = (int)n_prompt;
        ev->facts = st->cur->f;
        /* STARTED goes first: batcher_add does not emit events, but the
         * first step does. */
        ev_push(st->m->srv, ev);
        rc = batcher_add(st->cur->b, &req, on_gen_event, j, &j->gen_id, err, sizeof(err));
    }
    free(prompt);
    if (rc) {
        gen_usage u = {.prompt_tokens = (int)n_prompt};
        ev_done(st->m, j, GEN_FINISH_ERROR, err, &u);
        return;
    }
    j->gen = st->cur;
    st->cur->jobs++;
    st->run[st->n_run++] = j;
}

/* Records g's self-check as the model's reference for the next switch. */
static void keep_check(struct model *m, const struct gen *g)
{
    pthread_mutex_lock(&m->lock);
    if (selfcheck_copy(&m->check, &g->check) != 0)
        selfcheck_free(&m->check); /* no reference: the next switch reports "not compared" */
    pthread_mutex_unlock(&m->lock);
}

static int load(struct sched *st)
{
    struct model *m = st->m;
    int rc = gguf_open(m->path, &st->gguf, m->load_error, sizeof(m->load_error));
    if (rc == 0)
        rc = tokenizer_load(st->gguf, NULL, &st->tok, m->load_error, sizeof(m->load_error));
    if (rc == 0) {
        rc = gen_create(m->plan, st->tok, &st->cur);
        if (rc)
            snprintf(m->load_error, sizeof(m->load_error), "%s", m->plan->error);
    }
    if (rc && !m->load_error[0])
        snprintf(m->load_error, sizeof(m->load_error), "%s", bitnet_strerror(rc));
    if (rc == 0) {
        st->cur->f.number = 1;
        keep_check(m, st->cur);
    }
    return rc;
}

static void post_loaded(struct sched *st)
{
    struct sched_event *ev = ev_new(EV_LOADED, st->m, NULL);
    ev->facts = st->cur->f;
    /* The loop takes the tokenizer over for Tokenize and Detokenize; it is
     * immutable, so both threads may use it. */
    st->m->tok_owned = st->tok;
    st->m->gguf_owned = st->gguf;
    ev_push(st->m->srv, ev);
}

/* Frees the old generations whose last job ended. */
static void release_old(struct sched *st)
{
    for (struct gen **pp = &st->old; *pp;) {
        struct gen *g = *pp;
        if (g->jobs > 0) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        log_event(LOG_INFO, "generation-released", "model=%s generation=%d backend=%s", st->m->name,
                  g->f.number, g->f.backend);
        gen_free(g);
    }
}

static void *sched_main(void *arg)
{
    struct sched st = {.m = arg};
    struct model *m = st.m;
    bool loaded = load(&st) == 0;
    if (loaded)
        post_loaded(&st);

    pthread_mutex_lock(&m->lock);
    while (loaded && !m->quit) {
        /* Paused while a new generation loads beside this one. */
        if (m->hold) {
            pthread_cond_wait(&m->cond, &m->lock);
            continue;
        }
        /* A switch: new jobs go to the new generation from now on. */
        if (m->pending) {
            st.cur->next = st.old;
            st.old = st.cur;
            st.cur = m->pending;
            m->pending = NULL;
        }
        /* Cancelled jobs still in the queue end here; running ones below. */
        for (struct job **pp = &m->qhead; *pp;) {
            struct job *j = *pp;
            if (!j->cancel) {
                pp = &j->qnext;
                continue;
            }
            *pp = j->qnext;
            if (m->qtail == j)
                m->qtail = NULL;
            ev_done(m, j, GEN_FINISH_CANCELLED, NULL, NULL);
        }
        if (!m->qhead)
            m->qtail = NULL;
        else if (!m->qtail)
            for (m->qtail = m->qhead; m->qtail->qnext; m->qtail = m->qtail->qnext)
                ;
        struct job *cancel[64];
        int n_cancel = 0;
        for (int i = 0; i < st.n_run; i++) {
            if (st.run[i]->cancel && n_cancel < 64)
                cancel[n_cancel++] = st.run[i];
        }
        struct job *take[64];
        int n_take = 0;
        int free_slots = st.cur->f.n_seq_max - st.cur->jobs;
        while (m->qhead && n_take < free_slots && n_take < 64) {
            struct job *j = m->qhead;
            m->qhead = j->qnext;
            if (!m->qhead)
                m->qtail = NULL;
            take[n_take++] = j;
        }
        if (n_cancel == 0 && n_take == 0 && st.n_run == 0) {
            release_old(&st);
            pthread_cond_wait(&m->cond, &m->lock);
            continue;
        }
        pthread_mutex_unlock(&m->lock);
        for (int i = 0; i < n_cancel; i++) {
            struct job *j = cancel[i];
            if (j->gen)
                batcher_cancel(j->gen->b, j->gen_id); /* its DONE fires in here */
        }
        for (int i = 0; i < n_take; i++)
            start_job(&st, take[i]);
        if (batcher_active(st.cur->b) > 0)
            batcher_step(st.cur->b);
        for (struct gen *g = st.old; g; g = g->next) {
            if (batcher_active(g->b) > 0)
                batcher_step(g->b);
        }
        prune_run(&st);
        ev_flush_done(m);
        release_old(&st);
        pthread_mutex_lock(&m->lock);
    }
    /* Unloading, shutting down, or the load failed: end every job. */
    struct job *queued = m->qhead;
    m->qhead = m->qtail = NULL;
    struct gen *pending = m->pending;
    m->pending = NULL;
    pthread_mutex_unlock(&m->lock);
    for (struct job *j = queued, *next; j; j = next) {
        next = j->qnext;
        if (loaded)
            ev_done(m, j, GEN_FINISH_CANCELLED, NULL, NULL);
        else
            ev_done(m, j, GEN_FINISH_ERROR, m->load_error, NULL);
    }
    /* Freeing a batcher ends its jobs (DONE, cancelled). */
    gen_free(pending);
    gen_free(st.cur);
    for (struct gen *g = st.old, *next; g; g = next) {
        next = g->next;
        gen_free(g);
    }
    free(st.run);
    ev_flush_done(m);
    if (!loaded) {
        tokenizer_free(st.tok);
        gguf_close(st.gguf);
    }
    ev_push(m->srv, ev_new(EV_EXITED, m, NULL));
    return NULL;
}

int sched_start(struct model *m)
{
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    int rc = pthread_create(&m->thread, NULL, sched_main, m);
    if (rc) {
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->cond);
        return -rc;
    }
    return 0;
}

void sched_submit(struct model *m, struct job *j)
{
    pthread_mutex_lock(&m->lock);
    j->qnext = NULL;
    if (m->qtail)
        m->qtail->qnext = j;
    else
        m->qhead = j;
    m->qtail = j;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

void sched_cancel(struct model *m, struct job *j)
{
    pthread_mutex_lock(&m->lock);
    j->cancel = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

void sched_stop(struct model *m)
{
    pthread_mutex_lock(&m->lock);
    m->quit = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}
