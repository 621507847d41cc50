/* bench/bandwidth.c - streaming read bandwidth (see bandwidth.h). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bandwidth.h"
#include "bench/bench_stats.h"

struct bw_part {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
};

#if defined(__x86_64__)
#include <immintrin.h>

/* With AVX-512 loads where the CPU has them: one core then streams as fast
 * as the kernels do (a 16-byte loop underestimates what memory delivers). */
__attribute__((target("avx512f"))) static void *bw_read_avx512(void *arg)
{
    struct bw_part *part = arg;
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                      _mm512_setzero_si512()};
    size_t i = 0;
    for (; i + 32 <= part->n; i += 32)
        for (int j = 0; j < 4; j++)
            acc[j] = _mm512_add_epi64(acc[j], _mm512_loadu_si512(part->p + i + 8 * j));
    uint64_t sum = 0;
    for (; i < part->n; i++)
        sum += part->p[i];
    for (int j = 0; j < 4; j++)
        sum += (uint64_t)_mm512_reduce_add_epi64(acc[j]);
    part->sum = sum;
    return NULL;
}
#endif

static void *bw_read(void *arg)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f"))
        return bw_read_avx512(arg);
#endif
    struct bw_part *part = arg;
    /* Eight independent sums keep enough loads in flight; the compiler
     * vectorises this at -O3 on every target. */
    uint64_t s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= part->n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += part->p[i + j];
    for (; i < part->n; i++)
        s[0] += part->p[i];
    part->sum = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the sums observable so the reads are not optimised away. */
volatile uint64_t bench_bandwidth_sink;

double bench_read_bandwidth(size_t bytes, int n_threads, int passes)
{
    if (n_threads < 1 || n_threads > 64 || passes < 1)
        return 0;
    size_t words = bytes / 8;
    uint64_t *buf = aligned_alloc(4096, words * 8);
    if (!buf)
        return 0;
    for (size_t i = 0; i < words; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    double *gbs = malloc(sizeof(double) * (size_t)passes);
    pthread_t th[64];
    struct bw_part parts[64];
    for (int p = 0; p < passes; p++) {
        double t0 = now_s();
        for (int t = 0; t < n_threads; t++) {
            size_t b = words * (size_t)t / (size_t)n_threads;
            size_t e = words * (size_t)(t + 1) / (size_t)n_threads;
            parts[t] = (struct bw_part){buf + b, e - b, 0};
            if (t > 0)
                pthread_create(&th[t], NULL, bw_read, &parts[t]);
        }
        bw_read(&parts[0]);
        for (int t = 1; t < n_threads; t++)
            pthread_join(th[t], NULL);
        double dt = now_s() - t0;
        for (int t = 0; t < n_threads; t++)
            bench_bandwidth_sink += parts[t].sum;
        gbs[p] = (double)(words * 8) / dt / 1e9;
    }
    qsort(gbs, (size_t)passes, sizeof(double), bench_cmp_double);
    double median = gbs[passes / 2];
    free(gbs);
    free(buf);
    return median;
}
