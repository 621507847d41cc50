/*
 * daemon/limits.h - every limit on a resource a client controls, with its
 * default. Each is a configuration key (daemon/config.c's table), documented
 * in docs/protocol.md and `bitnetd --help`.
 */
#ifndef BITNETD_LIMITS_H
#define BITNETD_LIMITS_H

/* Longest message accepted, in bytes, without its NUL (key max_message_size). */
#define LIMIT_MAX_MESSAGE_SIZE "16M"
/* Connections served at once, in total (key max_connections). */
#define LIMIT_MAX_CONNECTIONS "256"
/* Connections served at once for one user id (key max_connections_per_uid). */
#define LIMIT_MAX_CONNECTIONS_PER_UID "64"
/* Reply bytes queued for one connection; above it the daemon stops reading
 * that connection until the client catches up (key max_output_buffer). */
#define LIMIT_MAX_OUTPUT_BUFFER "8M"
/* Seconds an idle connection stays open, 0 for forever (key idle_timeout). */
#define LIMIT_IDLE_TIMEOUT "600"

/* Generation jobs waiting for a free sequence of one model; past it
 * Generate answers io.bitnetd.Inference.QueueFull (key max_queued_jobs). */
#define LIMIT_MAX_QUEUED_JOBS "64"
/* The largest max_tokens one Generate may ask for (key max_tokens). */
#define LIMIT_MAX_TOKENS "4096"
/* Generation jobs (queued or running, all models) of one user id; past it
 * Generate answers io.bitnetd.Inference.TooManyJobs (key max_jobs_per_uid).
 * A connection runs at most one job at a time (calls are answered in order). */
#define LIMIT_MAX_JOBS_PER_UID "16"
/* Generations of one model batched together (key n_seq_max). */
#define LIMIT_N_SEQ_MAX "4"

/* Hard bounds the configuration may not leave. */
#define LIMIT_MESSAGE_SIZE_MIN  1024
#define LIMIT_MESSAGE_SIZE_MAX  (1024LL * 1024 * 1024)
#define LIMIT_CONNECTIONS_MAX   65536
#define LIMIT_OUTPUT_BUFFER_MIN 4096
#define LIMIT_OUTPUT_BUFFER_MAX (4096LL * 1024 * 1024)
#define LIMIT_IDLE_TIMEOUT_MAX  (7LL * 24 * 3600)
#define LIMIT_THREADS_MAX       1024
#define LIMIT_SEQ_MAX           64
#define LIMIT_QUEUED_JOBS_MAX   65536
#define LIMIT_TOKENS_MAX        1048576
#define LIMIT_CTX_MAX           131072
/* The longest deadline_ms a Generate may give (a day). */
#define LIMIT_DEADLINE_MS_MAX (24 * 3600 * 1000)
/* Models loaded at once. */
#define LIMIT_MODELS_MAX 16
/* Stop strings per Generate (the batcher's own bound). */
#define LIMIT_STOP_STRINGS 8

/* Bytes read from a socket at a time. */
#define LIMIT_READ_CHUNK 65536

#endif
