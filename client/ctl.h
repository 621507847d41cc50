/* client/ctl.h - what bitnetctl's subcommands share. */
#ifndef BITNET_CLIENT_CTL_H
#define BITNET_CLIENT_CTL_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

/* Exit codes scripts can rely on (documented in docs/bitnetctl.md). */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAILURE = 1,    /* the operation failed (message on stderr) */
    CTL_EXIT_USAGE = 2,      /* bad command line */
    CTL_EXIT_UNAVAILABLE = 3 /* the daemon could not be reached */
};

/* Options every subcommand accepts. */
struct ctl_options {
    bool json;          /* --json: machine-readable output */
    const char *socket; /* --socket PATH */
};

struct ctl_command {
    const char *name;
    int (*run)(const struct ctl_options *opts, int argc, char **argv);
    const char *args; /* argument synopsis */
    const char *help; /* one line */
};

/* Prints a JSON value to stdout, indented, followed by a newline. */
void ctl_print_json(json_t *value);

/* ---- talking to bitnetd (ctl_daemon.c) ---- */

struct bitnet_client;

/* Connects to the daemon at opts->socket (NULL: $BITNETD_SOCKET or the
 * default). Returns CTL_EXIT_OK, or CTL_EXIT_UNAVAILABLE after printing why
 * unless quiet. */
int ctl_connect(const struct ctl_options *opts, struct bitnet_client **out, bool quiet);

/* Calls method with parameters (borrowed, NULL for {}) and parses the reply
 * into *reply. Returns CTL_EXIT_OK, CTL_EXIT_FAILURE after printing the
 * daemon's error, or CTL_EXIT_UNAVAILABLE when the connection broke. */
int ctl_call(struct bitnet_client *client, const char *method, json_t *parameters, json_t **reply);

/* Calls method with parameters (taken; NULL for {}) on a new connection,
 * as ctl_call() does, and closes it again. */
int ctl_call_once(const struct ctl_options *opts, const char *method, json_t *parameters,
                  json_t **reply);

/* The string member key of o, or def when it is absent or not a string. */
const char *ctl_str(const json_t *o, const char *key, const char *def);

/* Prints the backends, the preference list and what each model runs, from
 * a GetCapabilities reply, as `bitnetctl capabilities` shows them. */
void ctl_print_backends(json_t *caps);

/* Subcommands, one file each. */
int cmd_kernels(const struct ctl_options *opts, int argc, char **argv);
int cmd_capabilities(const struct ctl_options *opts, int argc, char **argv);
int cmd_status(const struct ctl_options *opts, int argc, char **argv);
int cmd_call(const struct ctl_options *opts, int argc, char **argv);
int cmd_analyze_library(const struct ctl_options *opts, int argc, char **argv);
int cmd_validate_library(const struct ctl_options *opts, int argc, char **argv);
int cmd_inspect(const struct ctl_options *opts, int argc, char **argv);
int cmd_generate(const struct ctl_options *opts, int argc, char **argv);
int cmd_ps(const struct ctl_options *opts, int argc, char **argv);
int cmd_models(const struct ctl_options *opts, int argc, char **argv);
int cmd_load(const struct ctl_options *opts, int argc, char **argv);
int cmd_unload(const struct ctl_options *opts, int argc, char **argv);
int cmd_tokenize(const struct ctl_options *opts, int argc, char **argv);
int cmd_matrix(const struct ctl_options *opts, int argc, char **argv);
int cmd_prefer(const struct ctl_options *opts, int argc, char **argv);
int cmd_reload(const struct ctl_options *opts, int argc, char **argv);
int cmd_backends(const struct ctl_options *opts, int argc, char **argv);

#endif
