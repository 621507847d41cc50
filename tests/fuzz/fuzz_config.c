/*
 * tests/fuzz/fuzz_config.c - libFuzzer target for bitnetd's configuration
 * file parser. The input is the text of a config file; it is written to a
 * memfd and handed to config_load() as `bitnetd --config /proc/self/fd/N`,
 * the path a user's file takes through the real code (fopen, the 1 MiB cap,
 * NUL bytes, line splitting, every key's value parser).
 *
 * Checks what the daemon relies on: config_load() returns CONFIG_RUN or a
 * negative error with a NUL-terminated message; on failure the output is left
 * untouched (a SIGHUP reload keeps the old configuration); on success every
 * number is within its key's bounds and every string is terminated. Nothing
 * is left behind between runs: the memfd is closed and config_load() keeps
 * no global state.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/limits.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern char **environ;

/* The BITNETD_* environment would override the file: drop it, once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "BITNETD_", 8) != 0)
            e++;
        if (!*e)
            break;
        char name[256];
        size_t n = strcspn(*e, "=");
        snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1), *e);
        if (unsetenv(name) != 0)
            abort();
    }
    return 0;
}

static int write_all(int fd, const uint8_t *data, size_t size)
{
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n <= 0)
            return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

static void check_terminated(const char *s, size_t size)
{
    if (memchr(s, '\0', size) == NULL)
        abort();
}

static void check_range(long long v, long long lo, long long hi)
{
    if (v < lo || v > hi)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write_all(fd, data, size) != 0) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char arg0[] = "bitnetd", arg1[] = "--config";
    char *argv[] = {arg0, arg1, path, NULL};

    /* A recognisable pattern, to see whether a failed load wrote to it
     * (compared as bytes: padding included, nothing may change). */
    static struct config cfg;
    static unsigned char before[sizeof(cfg)];
    memset(&cfg, 0xA5, sizeof(cfg));
    memset(before, 0xA5, sizeof(before));
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = config_load(&cfg, 3, argv, err, sizeof(err));
    close(fd);

    if (rc < 0) {
        check_terminated(err, sizeof(err));
        if (memcmp((const unsigned char *)&cfg, before, sizeof(before)) != 0)
            abort();
        return 0;
    }
    if (rc != CONFIG_RUN)
        abort(); /* only the command line can ask for --help or --version */
    check_terminated(cfg.socket, sizeof(cfg.socket));
    check_terminated(cfg.config_file, sizeof(cfg.config_file));
    check_terminated(cfg.admin_group, sizeof(cfg.admin_group));
    check_terminated(cfg.log_level, sizeof(cfg.log_level));
    check_terminated(cfg.model, sizeof(cfg.model));
    if (cfg.socket[0] == '\0')
        abort();
    check_range(cfg.threads, 0, LIMIT_THREADS_MAX);
    check_range(cfg.socket_mode, 0, 0777);
    check_range(cfg.max_message_size, LIMIT_MESSAGE_SIZE_MIN, LIMIT_MESSAGE_SIZE_MAX);
    check_range(cfg.max_connections, 1, LIMIT_CONNECTIONS_MAX);
    check_range(cfg.max_connections_per_uid, 1, LIMIT_CONNECTIONS_MAX);
    check_range(cfg.max_output_buffer, LIMIT_OUTPUT_BUFFER_MIN, LIMIT_OUTPUT_BUFFER_MAX);
    check_range(cfg.idle_timeout, 0, LIMIT_IDLE_TIMEOUT_MAX);
    check_range(cfg.n_seq_max, 1, LIMIT_SEQ_MAX);
    check_range(cfg.n_ctx, 0, LIMIT_CTX_MAX);
    check_range(cfg.max_queued_jobs, 0, LIMIT_QUEUED_JOBS_MAX);
    check_range(cfg.max_jobs_per_uid, 1, LIMIT_QUEUED_JOBS_MAX);
    check_range(cfg.max_tokens, 1, LIMIT_TOKENS_MAX);
    return 0;
}
