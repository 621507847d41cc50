/*
 * bench/bandwidth.h - this machine's memory read bandwidth, measured.
 *
 * Benchmarks state their figures as a fraction of what the memory can
 * deliver, measured in the same run: n threads stream a buffer far larger
 * than the last-level cache and sum it.
 */
#ifndef BITNET_BENCH_BANDWIDTH_H
#define BITNET_BENCH_BANDWIDTH_H

#include <stddef.h>

/* Median GB/s (1e9 bytes/s) of `passes` reads of a buffer of `bytes` with
 * n_threads threads. Returns 0 when the buffer cannot be allocated. */
double bench_read_bandwidth(size_t bytes, int n_threads, int passes);

#endif
