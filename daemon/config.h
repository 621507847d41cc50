/*
 * daemon/config.h - bitnetd's configuration. One table (config.c) drives the
 * command line, the BITNETD_* environment variables, the config file and
 * --help. Precedence: command line > environment > config file > defaults.
 */
#ifndef BITNETD_CONFIG_H
#define BITNETD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The default socket of the system instance. */
#define CONFIG_DEFAULT_SOCKET "/run/bitnetd/bitnetd.sock"

struct config {
    char socket[108];                  /* the Unix socket path (fits sun_path) */
    char config_file[4096];            /* the file read, or "" when the default one is absent */
    bool user;                         /* --user: a per-user instance under $XDG_RUNTIME_DIR */
    bool foreground;                   /* --foreground: never detach (systemd always wants this) */
    long long threads;                 /* compute threads; 0 means one per physical core */
    long long socket_mode;             /* permission bits of a socket bitnetd binds itself */
    char admin_group[64];              /* group (name or number) allowed to call io.bitnetd.Admin */
    char log_level[16];                /* error, warning, notice, info or debug */
    long long max_message_size;        /* daemon/limits.h */
    long long max_connections;         /* daemon/limits.h */
    long long max_connections_per_uid; /* daemon/limits.h */
    long long max_output_buffer;       /* daemon/limits.h */
    long long idle_timeout;            /* seconds, 0 = none; daemon/limits.h */
    char model[8192];                  /* models to load at start, ':'-separated */
    long long n_seq_max;               /* generations batched together per model */
    long long n_ctx;            /* positions per generation, 0 = the model's (at most 4096) */
    char kv_type[8];            /* the native engine's KV cache: f32 or f16 */
    long long max_queued_jobs;  /* jobs waiting per model; daemon/limits.h */
    long long max_tokens;       /* largest max_tokens a Generate may ask; daemon/limits.h */
    long long max_jobs_per_uid; /* jobs of one user at once; daemon/limits.h */
    char backends[8192];        /* backend libraries, "id=path, id=path" */
    char backend_dirs[4096];    /* directories backend libraries may come from, ':'-separated */
    char preference[2048];      /* kernel and backend ids, best first; "" = built-in ranking */
    bool strict;                /* a fallback from the preferred entry is an error */
};

/* What config_load() found on the command line besides a configuration. */
enum config_action {
    CONFIG_RUN = 0,  /* serve with the configuration */
    CONFIG_HELP = 1, /* --help: print config_print_help() and exit 0 */
    CONFIG_VERSION = 2
};

/*
 * Builds a configuration from defaults, the config file (--config,
 * $BITNETD_CONFIG, or the default file when it exists), the BITNETD_*
 * environment and argv, in increasing precedence. Returns a config_action
 * (>= 0) and fills *out, or a negative error with err naming the source
 * ("--threads", "BITNETD_THREADS", "FILE:LINE") and what is wrong; *out is
 * untouched on failure, so a reload can keep the old configuration.
 */
int config_load(struct config *out, int argc, char **argv, char *err, size_t err_len);

/* Prints the usage and every option with its variable, default and help. */
void config_print_help(FILE *out);

#endif
