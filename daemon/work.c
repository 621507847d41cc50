/*
 * daemon/work.c - work done off the loop thread, and the uv_async_t path
 * that brings its results back. Today one worker thread runs the report
 * calls; the scheduler and the engine's compute pool will post their
 * results the same way, so the loop never computes.
 */
#include <errno.h>
#include <stdlib.h>

#include "daemon/log.h"
#include "daemon/server.h"

struct work {
    void (*run)(void *arg);
    void (*done)(void *arg);
    void *arg;
    struct work *next;
};

static void *worker_main(void *p)
{
    struct server *s = p;
    pthread_mutex_lock(&s->work_lock);
    for (;;) {
        while (!s->work_head && !s->work_quit)
            pthread_cond_wait(&s->work_cond, &s->work_lock);
        struct work *w = s->work_head;
        if (!w)
            break; /* quitting with nothing queued */
        s->work_head = w->next;
        if (!s->work_head)
            s->work_tail = NULL;
        pthread_mutex_unlock(&s->work_lock);
        w->run(w->arg);
        pthread_mutex_lock(&s->work_lock);
        w->next = s->done_head;
        s->done_head = w;
        uv_async_send(&s->done_async);
    }
    pthread_mutex_unlock(&s->work_lock);
    return NULL;
}

/* Runs the done callbacks of finished work, in the order it was submitted. */
static void on_done(uv_async_t *a)
{
    struct server *s = a->data;
    pthread_mutex_lock(&s->work_lock);
    struct work *list = s->done_head;
    s->done_head = NULL;
    pthread_mutex_unlock(&s->work_lock);
    struct work *ordered = NULL;
    while (list) {
        struct work *next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered) {
        struct work *next = ordered->next;
        ordered->done(ordered->arg);
        free(ordered);
        ordered = next;
    }
}

int work_init(struct server *s)
{
    int rc = uv_async_init(s->loop, &s->done_async, on_done);
    if (rc < 0)
        return rc;
    s->done_async.data = s;
    pthread_mutex_init(&s->work_lock, NULL);
    pthread_cond_init(&s->work_cond, NULL);
    rc = pthread_create(&s->worker, NULL, worker_main, s);
    if (rc) {
        uv_close((uv_handle_t *)&s->done_async, NULL);
        return -rc;
    }
    s->worker_started = true;
    return 0;
}

int work_submit(struct server *s, void (*run)(void *arg), void (*done)(void *arg), void *arg)
{
    struct work *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct work){.run = run, .done = done, .arg = arg};
    pthread_mutex_lock(&s->work_lock);
    if (s->work_tail)
        s->work_tail->next = w;
    else
        s->work_head = w;
    s->work_tail = w;
    pthread_cond_signal(&s->work_cond);
    pthread_mutex_unlock(&s->work_lock);
    return 0;
}

void work_shutdown(struct server *s)
{
    if (!s->worker_started)
        return;
    pthread_mutex_lock(&s->work_lock);
    s->work_quit = true;
    pthread_cond_signal(&s->work_cond);
    pthread_mutex_unlock(&s->work_lock);
    pthread_join(s->worker, NULL);
    s->worker_started = false;
    /* Deliver what finished, so every done callback runs and frees its item. */
    on_done(&s->done_async);
    uv_close((uv_handle_t *)&s->done_async, NULL);
    pthread_mutex_destroy(&s->work_lock);
    pthread_cond_destroy(&s->work_cond);
}
