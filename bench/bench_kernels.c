/*
 * bench/bench_kernels.c - ternary kernel throughput against this machine's
 * read bandwidth (bench-kernels; a report, never a test).
 *
 * Decode is memory-bound: each token streams every weight byte once. So the
 * benchmark first measures what the machine can stream (a summing pass over
 * a buffer of at least 1 GiB, with 1 and 2 threads), then times every
 * available bitnetd CPU kernel, and llama.cpp's own TQ2_0 dot product when
 * the reference release is present, on the BitNet b1.58 2B4T shapes. Each
 * call works on the next of enough distinct weight matrices to exceed the
 * working set (default 640 MiB), so weights come from DRAM, not the LLC.
 *
 * For each kernel, shape, thread count and batch (activation rows per call)
 * it prints the median time per call over several repeats, the weight bytes
 * streamed per second, that rate as a fraction of the measured bandwidth,
 * and the time relative to one activation row. Batched calls stop being
 * memory-bound: so on CPUs with AVX512_VNNI the bench also measures the
 * machine's int8 multiply-add peak (independent vpdpbusd chains, 64 MACs
 * each, on every thread) and reports each result's MACs per second as a
 * fraction of it; the float FMA peak is printed beside it (what bounds the
 * F16 LM head of a batch). With --out the same table goes to a markdown file.
 *
 * Threads split the weight rows of each call and meet at a spin barrier
 * after it, as the engine's compute pool does. All configurations of a
 * shape are timed round-robin, one repeat each per round, so that on a
 * shared machine they all see the same swings in load.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bitnet/kernels.h"
#include "bitnet/quant.h"

#include "bench/bench_stats.h"

#ifdef BENCH_HAVE_GGML_REF
#include "tests/support/ggml_ref.h"
#endif

#define MAX_THREADS 2
#define MAX_BATCH   16
#define MAX_ENGINES 24
#define MAX_RESULTS 4096

/* ---- options ------------------------------------------------------------- */

struct options {
    const char *out;       /* markdown report path */
    size_t ws_bytes;       /* weight working set per shape */
    size_t bw_bytes;       /* bandwidth buffer */
    int repeats;           /* timed repeats per configuration (median taken) */
    double repeat_seconds; /* minimum length of one repeat */
    const char *only;      /* substring filter on kernel names, or NULL */
    const char *tsv;       /* the results as tab-separated values, or NULL */
};

static void usage(FILE *f)
{
    fprintf(
        f, "usage: bench-kernels [--out FILE] [--ws-mib N] [--bw-mib N] [--repeats N]\n"
           "                     [--min-ms N] [--only SUBSTR] [--quick] [--tsv FILE]\n"
           "  --out FILE    write the table as markdown (default bench/kernels.md)\n"
           "  --tsv FILE    also write the results as tab-separated values (for charts)\n"
           "  --ws-mib N    weight working set per shape in MiB (default 640)\n"
           "  --bw-mib N    bandwidth buffer in MiB (default 1024)\n"
           "  --repeats N   timed repeats per configuration, median reported (default 5)\n"
           "  --min-ms N    minimum milliseconds per repeat (default 30)\n"
           "  --only S      only kernels whose name contains S (llama.cpp's: \"llama.cpp tq2_0\")\n"
           "  --quick       small buffers and few repeats: a smoke run, figures meaningless\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){.out = "bench/kernels.md",
                          .ws_bytes = (size_t)640 << 20,
                          .bw_bytes = (size_t)1024 << 20,
                          .repeats = 5,
                          .repeat_seconds = 0.030};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            o->ws_bytes = (size_t)64 << 20;
            o->bw_bytes = (size_t)64 << 20;
            o->repeats = 2;
            o->repeat_seconds = 0.002;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            usage(stderr);
            return -EINVAL;
        }
        char *end = NULL;
        long n = strtol(v, &end, 10);
        bool num_ok = end && *end == 0 && n > 0;
        if (strcmp(a, "--out") == 0)
            o->out = v;
        else if (strcmp(a, "--only") == 0)
            o->only = v;
        else if (strcmp(a, "--tsv") == 0)
            o->tsv = v;
        else if (strcmp(a, "--ws-mib") == 0 && num_ok)
            o->ws_bytes = (size_t)n << 20;
        else if (strcmp(a, "--bw-mib") == 0 && num_ok)
            o->bw_bytes = (size_t)n << 20;
        else if (strcmp(a, "--repeats") == 0 && num_ok)
            o->repeats = (int)n;
        else if (strcmp(a, "--min-ms") == 0 && num_ok)
            o->repeat_seconds = (double)n / 1000.0;
        else {
            usage(stderr);
            return -EINVAL;
        }
        i++;
    }
    return 0;
}

/* ---- time, randomness, barrier --------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] = (uint8_t)rng_next(&s);
}

/* A sense-reversing spin barrier for a handful of threads. */
struct spin_barrier {
    atomic_int count;
    atomic_int sense;
    int n;
};

static void barrier_wait(struct spin_barrier *b, int *local_sense)
{
    if (b->n == 1)
        return;
    *local_sense = !*local_sense;
    if (atomic_fetch_add(&b->count, 1) == b->n - 1) {
        atomic_store(&b->count, 0);
        atomic_store(&b->sense, *local_sense);
    } else {
        /* Spin briefly, then yield: on a shared machine the partner thread
         * may be descheduled, and pure spinning would burn its time slice. */
        for (int spins = 0; atomic_load_explicit(&b->sense, memory_order_acquire) != *local_sense;
             spins++) {
            if (spins > 2000)
                sched_yield();
        }
    }
}

/* ---- read bandwidth --------------------------------------------------------- */

struct bw_job {
    const uint64_t *p;
    size_t n; /* uint64 words */
    uint64_t sum;
    struct spin_barrier *bar;
    double t0, t1;
    int id;
};

static void *bw_thread(void *arg)
{
    struct bw_job *j = arg;
    int sense = 0;
    barrier_wait(j->bar, &sense);
    double t0 = now_seconds();
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= j->n; i += 4) {
        s0 += j->p[i];
        s1 += j->p[i + 1];
        s2 += j->p[i + 2];
        s3 += j->p[i + 3];
    }
    j->sum = s0 + s1 + s2 + s3;
    barrier_wait(j->bar, &sense);
    j->t0 = t0;
    j->t1 = now_seconds();
    return NULL;
}

/* Streams the whole buffer once with n_threads threads; returns GB/s. */
static double bandwidth_once(const uint64_t *buf, size_t words, int n_threads)
{
    struct spin_barrier bar = {0, 0, n_threads};
    struct bw_job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    size_t per = words / (size_t)n_threads / 4 * 4;
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = (struct bw_job){buf + per * (size_t)i, per, 0, &bar, 0, 0, i};
        if (i)
            pthread_create(&th[i], NULL, bw_thread, &jobs[i]);
    }
    bw_thread(&jobs[0]);
    for (int i = 1; i < n_threads; i++)
        pthread_join(th[i], NULL);
    volatile uint64_t sink = 0;
    for (int i = 0; i < n_threads; i++)
        sink += jobs[i].sum;
    (void)sink;
    return (double)(per * (size_t)n_threads * 8) / (jobs[0].t1 - jobs[0].t0) / 1e9;
}

/* ---- int8 multiply-add peak ------------------------------------------------ */

struct peak_job {
    double seconds; /* how long to run */
    bool fma;       /* float FMA chains instead of vpdpbusd */
    struct spin_barrier *bar;
    double gmacs; /* this thread's rate */
};

#if defined(__x86_64__)
/* Twelve independent vpdpbusd chains, enough to cover the instruction's
 * latency; the empty volatile asm keeps each chain in its register and
 * stops the compiler from folding or dropping it. */
__attribute__((target("avx512f,avx512vnni"))) static inline __m512i peak_step(__m512i a, __m512i b,
                                                                              __m512i c)
{
    a = _mm512_dpbusd_epi32(a, b, c);
    __asm__ volatile("" : "+v"(a));
    return a;
}

__attribute__((target("avx512f"))) static inline __m512 fma_step(__m512 a, __m512 b, __m512 c)
{
    a = _mm512_fmadd_ps(b, c, a);
    __asm__ volatile("" : "+v"(a));
    return a;
}

/* One thread's rate in G multiply-adds per second: 12 chains x 64 int8
 * multiply-adds per vpdpbusd, or 12 x 16 float ones per FMA, run in chunks
 * until j->seconds have passed (a fixed count would take minutes in a
 * sanitizer build). */
#define PEAK_CHUNK 100000
__attribute__((target("avx512f,avx512vnni"))) static void *peak_thread(void *arg)
{
    struct peak_job *j = arg;
    int sense = 0;
    double t0;
    long n = 0;
    if (j->fma) {
        __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
        __m512 f0 = _mm512_setzero_ps(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0;
        __m512 f6 = f0, f7 = f0, f8 = f0, f9 = f0, f10 = f0, f11 = f0;
        barrier_wait(j->bar, &sense);
        t0 = now_seconds();
        do {
            for (long i = 0; i < PEAK_CHUNK; i++) {
                f0 = fma_step(f0, b, c);
                f1 = fma_step(f1, b, c);
                f2 = fma_step(f2, b, c);
                f3 = fma_step(f3, b, c);
                f4 = fma_step(f4, b, c);
                f5 = fma_step(f5, b, c);
                f6 = fma_step(f6, b, c);
                f7 = fma_step(f7, b, c);
                f8 = fma_step(f8, b, c);
                f9 = fma_step(f9, b, c);
                f10 = fma_step(f10, b, c);
                f11 = fma_step(f11, b, c);
            }
            n += PEAK_CHUNK;
        } while (now_seconds() - t0 < j->seconds);
        j->gmacs = (double)n * 12 * 16 / (now_seconds() - t0) / 1e9;
        return NULL;
    }
    __m512i b = _mm512_set1_epi8(3), c = _mm512_set1_epi8(5);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m512i a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    barrier_wait(j->bar, &sense);
    t0 = now_seconds();
    do {
        for (long i = 0; i < PEAK_CHUNK; i++) {
            a0 = peak_step(a0, b, c);
            a1 = peak_step(a1, b, c);
            a2 = peak_step(a2, b, c);
            a3 = peak_step(a3, b, c);
            a4 = peak_step(a4, b, c);
            a5 = peak_step(a5, b, c);
            a6 = peak_step(a6, b, c);
            a7 = peak_step(a7, b, c);
            a8 = peak_step(a8, b, c);
            a9 = peak_step(a9, b, c);
            a10 = peak_step(a10, b, c);
            a11 = peak_step(a11, b, c);
        }
        n += PEAK_CHUNK;
    } while (now_seconds() - t0 < j->seconds);
    j->gmacs = (double)n * 12 * 64 / (now_seconds() - t0) / 1e9;
    return NULL;
}
#endif

/* The int8 (or, with fma, float) multiply-add rate of n_threads threads
 * together in GMAC/s, or 0 where it is not measured (no AVX512_VNNI). */
static double peak_gmacs_of(const bitnet_cpu_features *cpu, int n_threads, bool fma, double seconds)
{
#if defined(__x86_64__)
    if (!cpu->avx512_vnni || cpu->active < BITNET_SIMD_AVX512)
        return 0.0;
    struct spin_barrier bar = {0, 0, n_threads};
    struct peak_job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = (struct peak_job){seconds, fma, &bar, 0.0};
        if (i)
            pthread_create(&th[i], NULL, peak_thread, &jobs[i]);
    }
    peak_thread(&jobs[0]);
    double sum = jobs[0].gmacs;
    for (int i = 1; i < n_threads; i++) {
        pthread_join(th[i], NULL);
        sum += jobs[i].gmacs;
    }
    return sum;
#else
    (void)cpu;
    (void)n_threads;
    (void)fma;
    (void)seconds;
    return 0.0;
#endif
}

/* ---- engines: our kernels and llama.cpp's TQ2_0 ------------------------------ */

/* One thing to time: a bitnetd kernel, or llama.cpp's TQ2_0 vec_dot. */
struct engine {
    char name[48];
    const bitnet_kernel_ops *ops; /* NULL for llama.cpp */
    bitnet_format format;
};

static size_t weight_row_bytes(const struct engine *e, int64_t k)
{
    switch (e->format) {
    case BITNET_FORMAT_I2S:
        return (size_t)k / 4;
    case BITNET_FORMAT_TQ2_0:
        return bitnet_tq2_0_row_bytes(k);
    case BITNET_FORMAT_TQ1_0:
        return bitnet_tq1_0_row_bytes(k);
    case BITNET_FORMAT_TL1:
    case BITNET_FORMAT_TL2:
        return (size_t)k / 4; /* the I2_S rows they are repacked from */
    default:
        return 0;
    }
}

/*
 * Random weights that every engine can use: any bytes are valid I2_S codes,
 * and the f16 block scales of TQ2_0 (66-byte blocks, d last) and TQ1_0
 * (54-byte blocks, d last) are set to bytes 0x00/0x3c at both formats' block
 * positions, so d is always finite (1.0 where the formats do not overlap).
 * A matrix, and each thread's rows, start on a whole block of either format.
 */
static void fill_weights(uint8_t *w, size_t bytes)
{
    fill_random(w, bytes, 0x1234567);
    const size_t blocks[2] = {66, 54};
    for (int f = 0; f < 2; f++) {
        for (size_t b = 0; b + blocks[f] <= bytes; b += blocks[f]) {
            w[b + blocks[f] - 2] = 0x00;
            w[b + blocks[f] - 1] = 0x3c;
        }
    }
}

#ifdef BENCH_HAVE_GGML_REF
#define Q8K_BLOCK_BYTES 292
#endif

static size_t act_row_bytes(const struct engine *e, int64_t k)
{
#ifdef BENCH_HAVE_GGML_REF
    if (!e->ops)
        return (size_t)k / 256 * Q8K_BLOCK_BYTES;
#endif
    return e->ops->act_row_bytes(k);
}

static void quantize_acts(const struct engine *e, const float *x, int64_t k, int n, uint8_t *act)
{
    size_t rb = act_row_bytes(e, k);
    for (int t = 0; t < n; t++) {
#ifdef BENCH_HAVE_GGML_REF
        if (!e->ops) {
            memset(act + (size_t)t * rb, 0, rb);
            ggml_ref_quantize_q8_k(x + (size_t)t * (size_t)k, act + (size_t)t * rb, k);
            continue;
        }
#endif
        e->ops->quantize_act(x + (size_t)t * (size_t)k, k, act + (size_t)t * rb);
    }
}

/* y[t * n_rows_total + r] for rows [0, n_rows) of w (already offset). */
static void engine_matmul(const struct engine *e, const uint8_t *w, size_t w_row_bytes, int64_t k,
                          int64_t n_rows, const uint8_t *act, size_t act_rb, int n_act, float *y,
                          int64_t y_stride)
{
#ifdef BENCH_HAVE_GGML_REF
    if (!e->ops) {
        /* llama.cpp's mul_mat walks 16 x 16 tiles of rows x columns calling
         * vec_dot per pair, so each weight row is read once per 16 columns. */
        for (int64_t r0 = 0; r0 < n_rows; r0 += 16) {
            int64_t r1 = r0 + 16 < n_rows ? r0 + 16 : n_rows;
            for (int t = 0; t < n_act; t++)
                for (int64_t r = r0; r < r1; r++)
                    ggml_ref_vec_dot(GGML_REF_TYPE_TQ2_0, k, &y[t * y_stride + r],
                                     w + (size_t)r * w_row_bytes, act + (size_t)t * act_rb);
        }
        return;
    }
#endif
    bitnet_matmul_args a = {
        .w = w,
        .w_row_bytes = w_row_bytes,
        .w_scale = 1.0f,
        .k = k,
        .n_rows = n_rows,
        .act = act,
        .act_row_bytes = act_rb,
        .n_act = n_act,
        .y = y,
        .y_stride = y_stride,
    };
    e->ops->matmul(&a);
}

/* ---- timing one configuration ------------------------------------------------- */

struct run {
    const struct engine *e;
    const uint8_t *wbuf; /* n_mats matrices, mat_bytes apart */
    size_t mat_bytes;
    int n_mats;
    int64_t n_rows, k;
    size_t w_row_bytes;
    const uint8_t *act;
    size_t act_rb;
    int n_act;
    float *y;
    int n_threads;
    struct spin_barrier bar;
    /* per repeat */
    long first_call, n_calls;
    double t0, t1;
};

struct worker {
    struct run *run;
    int id;
};

/* Rows of thread id: contiguous halves cut at a multiple of 16 rows. */
static void thread_rows(const struct run *r, int id, int64_t *r0, int64_t *r1)
{
    int64_t cut = r->n_rows / r->n_threads / 16 * 16;
    if (cut == 0)
        cut = r->n_rows / r->n_threads;
    *r0 = cut * id;
    *r1 = id == r->n_threads - 1 ? r->n_rows : cut * (id + 1);
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct run *r = wk->run;
    int sense = 0;
    int64_t r0, r1;
    thread_rows(r, wk->id, &r0, &r1);
    barrier_wait(&r->bar, &sense);
    double t0 = now_seconds();
    for (long c = 0; c < r->n_calls; c++) {
        long m = (r->first_call + c) % r->n_mats;
        const uint8_t *w = r->wbuf + (size_t)m * r->mat_bytes + (size_t)r0 * r->w_row_bytes;
        engine_matmul(r->e, w, r->w_row_bytes, r->k, r1 - r0, r->act, r->act_rb, r->n_act,
                      r->y + r0, r->n_rows);
        barrier_wait(&r->bar, &sense);
    }
    if (wk->id == 0) {
        r->t0 = t0;
        r->t1 = now_seconds();
    }
    return NULL;
}

/* Runs n_calls calls (continuing the cycle through the matrices); returns
 * seconds per call. */
static double run_repeat(struct run *r, long n_calls)
{
    r->n_calls = n_calls;
    atomic_store(&r->bar.count, 0);
    atomic_store(&r->bar.sense, 0);
    r->bar.n = r->n_threads;
    struct worker wk[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < r->n_threads; i++) {
        wk[i] = (struct worker){r, i};
        if (i)
            pthread_create(&th[i], NULL, worker_main, &wk[i]);
    }
    worker_main(&wk[0]);
    for (int i = 1; i < r->n_threads; i++)
        pthread_join(th[i], NULL);
    r->first_call += n_calls;
    return (r->t1 - r->t0) / (double)n_calls;
}

/* ---- results -------------------------------------------------------------- */

struct result {
    const struct engine *e;
    int64_t n_rows, k;
    int threads, batch;
    double us;        /* median microseconds per call */
    double gbs;       /* weight bytes per second / 1e9 */
    double bw_frac;   /* gbs / measured bandwidth at this thread count */
    double vs_single; /* us / us at batch 1 */
    double peak_frac; /* multiply-adds per second / int8 peak; 0 if not measured */
};

static struct result results[MAX_RESULTS];
static int n_results;

#define MAX_REPEATS 64
#define MAX_CONFIGS (MAX_ENGINES * MAX_THREADS * 5)

/* One timed configuration of a shape. */
struct config {
    struct run r;
    long calls;            /* calls per repeat */
    double v[MAX_REPEATS]; /* seconds per call, per repeat */
};

static struct config configs[MAX_CONFIGS];

static const struct result *find_result(const char *name, int64_t n_rows, int64_t k, int threads,
                                        int batch)
{
    for (int i = 0; i < n_results; i++) {
        const struct result *x = &results[i];
        if (strcmp(x->e->name, name) == 0 && x->n_rows == n_rows && x->k == k &&
            x->threads == threads && x->batch == batch)
            return x;
    }
    return NULL;
}

/* ---- main ---------------------------------------------------------------- */

static const int64_t shapes[][2] = {{2560, 2560}, {640, 2560}, {6912, 2560}, {2560, 6912}};
static const int batches[] = {1, 2, 4, 8, 16};

static int collect_engines(const struct options *o, struct engine *es)
{
    int n = 0;
    for (int i = 0; i < BITNET_KERNEL_COUNT && n < MAX_ENGINES; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        if (k->provider != BITNET_PROVIDER_BITNETD || k->device != BITNET_DEVICE_CPU)
            continue;
        if (k->format != BITNET_FORMAT_I2S && k->format != BITNET_FORMAT_TQ2_0 &&
            k->format != BITNET_FORMAT_TQ1_0 && k->format != BITNET_FORMAT_TL1 &&
            k->format != BITNET_FORMAT_TL2)
            continue;
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, NULL, &st);
        if (!st.available) {
            if (st.compiled)
                printf("skipping %s: %s\n", k->name, st.reason);
            continue;
        }
        if (o->only && !strstr(k->name, o->only))
            continue;
        snprintf(es[n].name, sizeof(es[n].name), "%s", k->name);
        es[n].ops = k->ops;
        es[n].format = k->format;
        n++;
    }
#ifdef BENCH_HAVE_GGML_REF
    char err[256];
    int rc = ggml_ref_open(BITNET_REFERENCE_LIBDIR, err, sizeof(err));
    if (rc == 0 && n < MAX_ENGINES) {
        snprintf(es[n].name, sizeof(es[n].name), "llama.cpp tq2_0 (%s)", ggml_ref_cpu_variant());
        /* --only matches the whole name, so "tq2_0" keeps llama.cpp's column. */
        if (!o->only || strstr(es[n].name, o->only)) {
            es[n].ops = NULL;
            es[n].format = BITNET_FORMAT_TQ2_0;
            n++;
        }
    } else if (rc != 0) {
        printf("no llama.cpp column: %s\n", err);
    }
#else
    printf("no llama.cpp column: built without tests/support/ggml_ref\n");
#endif
    return n;
}

static void print_row(FILE *f, const struct result *x, bool md)
{
    char shape[32], peak[16] = "-";
    snprintf(shape, sizeof(shape), "%" PRId64 "x%" PRId64, x->n_rows, x->k);
    if (x->peak_frac > 0)
        snprintf(peak, sizeof(peak), "%.0f%%", 100.0 * x->peak_frac);
    if (md)
        fprintf(f, "| %s | %s | %d | %d | %.1f | %.2f | %.0f%% | %.2f | %s |\n", x->e->name, shape,
                x->threads, x->batch, x->us, x->gbs, 100.0 * x->bw_frac, x->vs_single, peak);
    else
        fprintf(f, "%-28s %-10s %3d %5d %10.1f %8.2f %6.0f%% %8.2f %7s\n", x->e->name, shape,
                x->threads, x->batch, x->us, x->gbs, 100.0 * x->bw_frac, x->vs_single, peak);
}

/* The results as tab-separated values with a header line, one row per
 * kernel, shape, thread count and batch: what scripts/bench_charts.py reads. */
static int write_tsv(const char *path, const double *bw_gbs, int repeats)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        fprintf(stderr, "bench-kernels: cannot write %s: %s\n", path, strerror(e));
        return -e;
    }
    fprintf(f, "kernel\trows\tk\tthreads\tbatch\tus_per_call\tgb_s\tbw_gb_s\tbw_frac\tvs_1row\t"
               "repeats\tint8_peak_frac\n");
    for (int i = 0; i < n_results; i++) {
        const struct result *x = &results[i];
        fprintf(f, "%s\t%" PRId64 "\t%" PRId64 "\t%d\t%d\t%.3f\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t%.4f\n",
                x->e->name, x->n_rows, x->k, x->threads, x->batch, x->us, x->gbs,
                bw_gbs[x->threads], x->bw_frac, x->vs_single, repeats, x->peak_frac);
    }
    if (fclose(f)) {
        fprintf(stderr, "bench-kernels: cannot write %s: %s\n", path, strerror(errno));
        return -EIO;
    }
    printf("wrote %s\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o))
        return 2;
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    printf("cpu: %s (%d logical CPUs), SIMD %s%s\n", cpu->brand, cpu->logical_cpus,
           bitnet_simd_level_name(cpu->active), cpu->avx512_vnni ? " + AVX512_VNNI" : "");

    /* Read bandwidth, 1 and 2 threads. */
    size_t words = o.bw_bytes / 8;
    uint64_t *bw = aligned_alloc(64, words * 8);
    if (!bw) {
        fprintf(stderr, "bench-kernels: cannot allocate %zu MiB\n", o.bw_bytes >> 20);
        return 1;
    }
    fill_random((uint8_t *)bw, words * 8, 99);
    double bw_gbs[MAX_THREADS + 1] = {0};
    for (int th = 1; th <= MAX_THREADS; th++) {
        double v[16] = {0}; /* reps >= 1 fills it; cppcheck cannot tell */
        int reps = o.repeats < 16 ? o.repeats : 16;
        for (int i = 0; i < reps; i++)
            v[i] = bandwidth_once(bw, words, th);
        bw_gbs[th] = bench_median(v, reps);
        printf("read bandwidth, %d thread%s: %.2f GB/s (median of %d passes over %zu MiB)\n", th,
               th > 1 ? "s" : "", bw_gbs[th], reps, o.bw_bytes >> 20);
    }
    free(bw);
    double peak_gmacs[MAX_THREADS + 1] = {0}, fma_gmacs[MAX_THREADS + 1] = {0};
    for (int th = 1; th <= MAX_THREADS; th++) {
        double v[16] = {0}, f[16] = {0};
        int reps = o.repeats < 16 ? o.repeats : 16;
        for (int i = 0; i < reps; i++) {
            v[i] = peak_gmacs_of(cpu, th, false, o.repeat_seconds);
            f[i] = peak_gmacs_of(cpu, th, true, o.repeat_seconds);
        }
        peak_gmacs[th] = bench_median(v, reps);
        fma_gmacs[th] = bench_median(f, reps);
        if (peak_gmacs[th] > 0)
            printf("int8 multiply-add peak (vpdpbusd), %d thread%s: %.1f GMAC/s; float (FMA): "
                   "%.1f GMAC/s\n",
                   th, th > 1 ? "s" : "", peak_gmacs[th], fma_gmacs[th]);
    }
    if (peak_gmacs[1] <= 0)
        printf("int8 multiply-add peak: not measured (needs AVX512_VNNI)\n");

    struct engine engines[MAX_ENGINES];
    int n_engines = collect_engines(&o, engines);

    /* One weight buffer, reused for every shape and engine. */
    size_t max_mat = 0;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        size_t tq1 = bitnet_tq1_0_row_bytes(shapes[s][1]) * (size_t)shapes[s][0];
        size_t tq2 = bitnet_tq2_0_row_bytes(shapes[s][1]) * (size_t)shapes[s][0];
        size_t m = tq1 > tq2 ? tq1 : tq2;
        max_mat = m > max_mat ? m : max_mat;
    }
    size_t wbytes = o.ws_bytes + max_mat;
    uint8_t *wbuf = aligned_alloc(64, (wbytes + 63) / 64 * 64);
    float *x = malloc(sizeof(float) * MAX_BATCH * 6912);
    uint8_t *act = aligned_alloc(64, 64 * 1024 * MAX_BATCH / 64 * 64);
    float *y = malloc(sizeof(float) * MAX_BATCH * 6912);
    if (!wbuf || !x || !act || !y) {
        fprintf(stderr, "bench-kernels: out of memory\n");
        return 1;
    }
    const int reps = o.repeats < MAX_REPEATS ? o.repeats : MAX_REPEATS;
    uint64_t s = 7;
    for (int i = 0; i < MAX_BATCH * 6912; i++)
        x[i] = (float)((double)(rng_next(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);

    fill_weights(wbuf, wbytes);

    printf("\n%-28s %-10s %3s %5s %10s %8s %7s %8s %7s\n", "kernel", "rows x k", "thr", "batch",
           "us/call", "GB/s", "of bw", "vs 1 row", "of peak");
    for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
        int64_t n_rows = shapes[si][0], k = shapes[si][1];
        /* Every (engine, threads, batch) of this shape, calibrated once and
         * then timed round-robin, one repeat each per round, so that all of
         * them see the same changes in machine load. */
        int n_cfg = 0;
        uint8_t *packed[MAX_ENGINES] = {NULL};
        for (int ei = 0; ei < n_engines; ei++) {
            const struct engine *e = &engines[ei];
            size_t wrb = weight_row_bytes(e, k);
            size_t mat = wrb * (size_t)n_rows;
            const int n_mats = (int)((o.ws_bytes + mat - 1) / mat);
            const uint8_t *wsrc = wbuf;
            if (e->ops && e->ops->repack) {
                /* Kernels with a load-time layout (tl1/tl2) get the same
                 * I2_S matrices repacked, as one tensor of n_mats * n_rows
                 * rows (each matrix starts on a whole 16-row tile). */
                if (e->ops->repack(wbuf, k, (int64_t)n_mats * n_rows, &packed[ei], &wrb) != 0) {
                    fprintf(stderr, "bench-kernels: %s: repack failed\n", e->name);
                    return 1;
                }
                wsrc = packed[ei];
                mat = wrb * (size_t)n_rows;
            }
            for (int th = 1; th <= MAX_THREADS; th++) {
                for (size_t bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++) {
                    struct config *c = &configs[n_cfg++];
                    c->r = (struct run){.e = e,
                                        .wbuf = wsrc,
                                        .mat_bytes = mat,
                                        .n_mats = n_mats,
                                        .n_rows = n_rows,
                                        .k = k,
                                        .w_row_bytes = wrb,
                                        .act = act,
                                        .act_rb = act_row_bytes(e, k),
                                        .n_act = batches[bi],
                                        .y = y,
                                        .n_threads = th};
                    quantize_acts(e, x, k, batches[bi], act);
                    double per = run_repeat(&c->r, 2); /* warm-up and calibration */
                    c->calls = (long)(o.repeat_seconds / (per > 1e-9 ? per : 1e-9)) + 1;
                }
            }
        }
        for (int rep = 0; rep < reps; rep++) {
            for (int ci = 0; ci < n_cfg; ci++) {
                struct config *c = &configs[ci];
                quantize_acts(c->r.e, x, k, c->r.n_act, act);
                c->v[rep] = run_repeat(&c->r, c->calls);
            }
        }
        for (int ei = 0; ei < n_engines; ei++)
            free(packed[ei]);
        int first = n_results;
        for (int ci = 0; ci < n_cfg && n_results < MAX_RESULTS; ci++) {
            struct config *c = &configs[ci];
            struct result *res = &results[n_results++];
            res->e = c->r.e;
            res->n_rows = n_rows;
            res->k = k;
            res->threads = c->r.n_threads;
            res->batch = c->r.n_act;
            res->us = bench_median(c->v, reps) * 1e6;
            /* Repacked layouts count the I2_S bytes they stand for. */
            size_t counted = c->r.e->ops && c->r.e->ops->repack ? (size_t)k / 4 * (size_t)n_rows
                                                                : c->r.mat_bytes;
            res->gbs = (double)counted / (res->us * 1e-6) / 1e9;
            res->bw_frac = res->gbs / bw_gbs[res->threads];
            double gmacs = (double)n_rows * (double)k * res->batch / (res->us * 1e-6) / 1e9;
            res->peak_frac = peak_gmacs[res->threads] > 0 ? gmacs / peak_gmacs[res->threads] : 0;
        }
        for (int i = first; i < n_results; i++) {
            struct result *res = &results[i];
            const struct result *one = find_result(res->e->name, n_rows, k, res->threads, 1);
            res->vs_single = one ? res->us / one->us : 1.0;
            print_row(stdout, res, false);
        }
        fflush(stdout);
    }

    /* Our best I2_S kernel and our best TQ2_0 kernel (the latter on the very
     * same bytes) against llama.cpp's TQ2_0 on the same shapes. */
    const char *llama = NULL;
    for (int ei = 0; ei < n_engines; ei++)
        if (!engines[ei].ops)
            llama = engines[ei].name;
    char summary[16384] = "";
    size_t sl = 0;
    static const bitnet_format ours[] = {BITNET_FORMAT_I2S, BITNET_FORMAT_TQ2_0};
    for (size_t fi = 0; llama && fi < sizeof(ours) / sizeof(ours[0]); fi++) {
        const char *fname = ours[fi] == BITNET_FORMAT_I2S ? "I2_S" : "TQ2_0";
        bool header = false;
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            for (int th = 1; th <= MAX_THREADS; th++) {
                for (size_t bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++) {
                    const struct result *best = NULL;
                    for (int i = 0; i < n_results; i++) {
                        const struct result *x2 = &results[i];
                        if (x2->e->format == ours[fi] && x2->e->ops &&
                            x2->n_rows == shapes[si][0] && x2->k == shapes[si][1] &&
                            x2->threads == th && x2->batch == batches[bi] &&
                            (!best || x2->us < best->us))
                            best = x2;
                    }
                    const struct result *ref =
                        find_result(llama, shapes[si][0], shapes[si][1], th, batches[bi]);
                    if (!best || !ref || sl >= sizeof(summary))
                        continue;
                    if (!header) {
                        header = true;
                        sl += (size_t)snprintf(summary + sl, sizeof(summary) - sl,
                                               "\nbest %s kernel vs %s (time ratio; > 1 means "
                                               "ours is faster):\n",
                                               fname, llama);
                        if (sl >= sizeof(summary))
                            continue;
                    }
                    sl += (size_t)snprintf(summary + sl, sizeof(summary) - sl,
                                           "  %" PRId64 "x%" PRId64
                                           " threads %d batch %2d: %-18s %8.1f us vs %8.1f us "
                                           "-> %.2fx\n",
                                           shapes[si][0], shapes[si][1], th, batches[bi],
                                           best->e->name, best->us, ref->us, ref->us / best->us);
                }
            }
        }
    }
    if (llama)
        printf("%s", summary);

    FILE *f = fopen(o.out, "w");
    if (!f) {
        fprintf(stderr, "bench-kernels: cannot write %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    fprintf(f, "# Kernel benchmark\n\nCPU: %s, %d logical CPUs, SIMD %s%s.\n\n", cpu->brand,
            cpu->logical_cpus, bitnet_simd_level_name(cpu->active),
            cpu->avx512_vnni ? " + AVX512_VNNI" : "");
    for (int th = 1; th <= MAX_THREADS; th++)
        fprintf(f, "Read bandwidth, %d thread%s: %.2f GB/s.\n", th, th > 1 ? "s" : "", bw_gbs[th]);
    for (int th = 1; th <= MAX_THREADS && peak_gmacs[th] > 0; th++)
        fprintf(f,
                "int8 multiply-add peak (vpdpbusd), %d thread%s: %.1f GMAC/s; float multiply-add "
                "peak (512-bit FMA): %.1f GMAC/s.\n",
                th, th > 1 ? "s" : "", peak_gmacs[th], fma_gmacs[th]);
    fprintf(f,
            "\nWeight working set %zu MiB per shape; median of %d repeats. GB/s counts weight "
            "bytes only.\n\n",
            o.ws_bytes >> 20, o.repeats);
    fprintf(f,
            "\"of int8 peak\" is rows x k x batch multiply-adds per second against the peak above: "
            "a batch of B rows needs B multiply-adds per weight, so once B is large the product is "
            "bound by that peak, not by memory.\n\n"
            "| kernel | rows x k | threads | batch | us/call | GB/s | of bandwidth | vs 1 row | of "
            "int8 "
            "peak |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < n_results; i++)
        print_row(f, &results[i], true);
    if (sl)
        fprintf(f, "\n```%s```\n", summary);
    fclose(f);
    printf("\nwrote %s\n", o.out);
    if (o.tsv && write_tsv(o.tsv, bw_gbs, o.repeats))
        return 1;
    free(wbuf);
    free(x);
    free(act);
    free(y);
    return 0;
}
