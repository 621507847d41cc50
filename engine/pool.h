/*
 * engine/pool.h - the compute pool: N threads that run one task together.
 *
 * The engine owns one pool. pool_run() hands the same function to every
 * thread (the caller is thread 0) and returns when all have finished: one
 * barrier per operation. Workers spin briefly and then sleep on a futex, so
 * an idle daemon costs nothing and a busy one wakes within microseconds.
 * Compute threads never touch sockets; the pool is not libuv's.
 */
#ifndef BITNET_ENGINE_POOL_H
#define BITNET_ENGINE_POOL_H

typedef struct pool pool;

/* The work of one thread: ith in [0, nth). */
typedef void (*pool_task_fn)(void *ctx, int ith, int nth);

/* Starts a pool of n_threads (>= 1; the caller counts as one). Returns 0 or
 * -errno. */
int pool_new(int n_threads, pool **out);

/* Stops and joins the workers; NULL is fine. */
void pool_free(pool *p);

int pool_threads(const pool *p);

/* Runs fn(ctx, ith, nth) on every thread and waits for all of them. Not
 * reentrant: one caller thread at a time. */
void pool_run(pool *p, pool_task_fn fn, void *ctx);

/* Splits n items into nth nearly equal ranges, rounded to multiples of
 * `align`; thread ith gets [*begin, *end). */
void pool_split(long n, int ith, int nth, long align, long *begin, long *end);

#endif
