/*
 * engine/pool.c - compute threads with a spin-then-futex barrier.
 *
 * The caller publishes a task by bumping `generation`; each worker runs its
 * share and increments `done`. Both sides spin for a short while before
 * sleeping in futex(2), which keeps the per-operation overhead near a
 * microsecond when the machine is busy with us and near zero CPU when idle.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/pool.h"

/* How long a waiting thread spins before it sleeps. Long enough to cover
 * the gap between two operations of a forward pass, short enough that a
 * busy machine (more runnable threads than cores) does not lose whole
 * time slices to spinning while the thread it waits for is descheduled. */
#define POOL_SPIN_NS 30000

struct pool_worker {
    pool *p;
    int ith;
    pthread_t thread;
};

struct pool {
    int n_threads;
    struct pool_worker *workers; /* n_threads - 1 of them */
    _Atomic unsigned generation; /* bumped once per task (and at shutdown) */
    _Atomic unsigned done;       /* workers finished with the current task */
    _Atomic int stop;
    _Atomic int gen_sleepers;  /* workers asleep on generation */
    _Atomic int done_sleepers; /* the caller asleep on done */
    pool_task_fn fn;
    void *ctx;
};

static void futex_wait(_Atomic unsigned *addr, unsigned expected)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic unsigned *addr, int n)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/*
 * Waits until *addr != seen and returns the new value. A thread about to
 * sleep first counts itself in *sleepers (sequentially consistent), so the
 * writer, which changes *addr and then reads *sleepers, issues the wake only
 * when someone may be asleep; futex_wait rechecks *addr, so no wake is lost.
 */
static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static unsigned wait_change(_Atomic unsigned *addr, unsigned seen, _Atomic int *sleepers)
{
    long deadline = 0;
    for (int i = 1;; i++) {
        unsigned v = atomic_load_explicit(addr, memory_order_acquire);
        if (v != seen)
            return v;
        cpu_relax();
        if ((i & 63) == 0) {
            long t = now_ns();
            if (!deadline)
                deadline = t + POOL_SPIN_NS;
            else if (t > deadline)
                break;
        }
    }
    for (;;) {
        atomic_fetch_add(sleepers, 1);
        unsigned v = atomic_load(addr);
        if (v == seen)
            futex_wait(addr, seen);
        atomic_fetch_sub(sleepers, 1);
        if (v != seen)
            return v;
    }
}

/* Publishes a change of *addr to sleepers, if any. */
static void wake_if_sleeping(_Atomic unsigned *addr, _Atomic int *sleepers, int n)
{
    if (atomic_load(sleepers) > 0)
        futex_wake(addr, n);
}

static void *worker_main(void *arg)
{
    struct pool_worker *w = arg;
    pool *p = w->p;
    unsigned seen = 0;
    for (;;) {
        seen = wait_change(&p->generation, seen, &p->gen_sleepers);
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        p->fn(p->ctx, w->ith, p->n_threads);
        unsigned d = atomic_fetch_add(&p->done, 1) + 1;
        if (d == (unsigned)(p->n_threads - 1))
            wake_if_sleeping(&p->done, &p->done_sleepers, 1);
    }
}

int pool_new(int n_threads, pool **out)
{
    if (n_threads < 1 || n_threads > 1024)
        return -EINVAL;
    pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->n_threads = n_threads;
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof(*p->workers));
        if (!p->workers) {
            free(p);
            return -ENOMEM;
        }
    }
    for (int i = 0; i < n_threads - 1; i++) {
        p->workers[i].p = p;
        p->workers[i].ith = i + 1;
        int rc = pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]);
        if (rc) {
            p->n_threads = i + 1; /* only these workers exist */
            pool_free(p);
            return -rc;
        }
    }
    *out = p;
    return 0;
}

void pool_free(pool *p)
{
    if (!p)
        return;
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    futex_wake(&p->generation, INT_MAX);
    for (int i = 0; i < p->n_threads - 1; i++)
        pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
    free(p);
}

int pool_threads(const pool *p)
{
    return p->n_threads;
}

void pool_run(pool *p, pool_task_fn fn, void *ctx)
{
    if (p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1);
    wake_if_sleeping(&p->generation, &p->gen_sleepers, INT_MAX);
    fn(ctx, 0, p->n_threads);
    unsigned want = (unsigned)(p->n_threads - 1);
    unsigned d = atomic_load_explicit(&p->done, memory_order_acquire);
    while (d != want)
        d = wait_change(&p->done, d, &p->done_sleepers);
}

void pool_split(long n, int ith, int nth, long align, long *begin, long *end)
{
    if (align < 1)
        align = 1;
    long units = (n + align - 1) / align;
    long per = units / nth, extra = units % nth;
    long b = ith * per + (ith < extra ? ith : extra);
    long e = b + per + (ith < extra ? 1 : 0);
    b *= align;
    e *= align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}
