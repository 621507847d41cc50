/*
 * client/bitnetctl.c - the bitnetctl command line: option parsing and the
 * subcommand table that drives both dispatch and --help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/config.h"
#include "client/ctl.h"

static const struct ctl_command commands[] = {
    {"analyze-library", cmd_analyze_library, "PATH",
     "what a shared library is: needed libraries, symbols, CUDA, kernels, formats"},
    {"call", cmd_call, "METHOD [JSON]",
     "call a daemon method, print the replies (--more: stream, --oneway: no reply)"},
    {"backends", cmd_backends, "",
     "list the daemon's backends, its preference list and what each model runs"},
    {"capabilities", cmd_capabilities, "[--local]",
     "show what the daemon (or, unreachable or --local, this build) can do on this machine"},
    {"generate", cmd_generate, "[OPTIONS] PROMPT",
     "stream a generation (--chat, --system, -n, --temp, --seed, ...; Ctrl-C cancels)"},
    {"inspect", cmd_inspect, "FILE",
     "show a GGUF model file: architecture, shapes, tensors, kernels; validate it"},
    {"kernels", cmd_kernels, "[ID]",
     "list every kernel id (compiled, supported, available), or check one"},
    {"load", cmd_load, "PATH [--name N]", "load a GGUF model into the daemon (admin)"},
    {"matrix", cmd_matrix, "[--markdown]",
     "the backend compatibility matrix: formats x instruction sets x providers (local)"},
    {"models", cmd_models, "", "list the daemon's models: state, arch, weights, kernel"},
    {"prefer", cmd_prefer, "ID... [--model N] [--strict|--no-strict] | --default",
     "set the preference list of kernel and backend ids (admin)"},
    {"ps", cmd_ps, "", "list generation jobs: state, model, kernel, tokens"},
    {"reload", cmd_reload, "BACKEND [PATH]",
     "load a backend library again and switch its models to it (admin)"},
    {"status", cmd_status, "", "show what the daemon is doing: uptime, connections, jobs, models"},
    {"tokenize", cmd_tokenize, "TEXT", "show a model's token ids for TEXT"},
    {"unload", cmd_unload, "NAME", "unload a model, cancelling its jobs (admin)"},
    {"validate-library", cmd_validate_library, "PATH [--dir DIR]...",
     "run bitnetd's checks on a backend library and load it: what it is, or why it is refused"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "Usage: bitnetctl [--json] [--socket PATH] COMMAND [ARGS...]\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char left[64];
        snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
        fprintf(out, "  %-24s %s\n", left, commands[i].help);
    }
    fprintf(out, "\nOptions:\n"
                 "  --json          print JSON instead of tables\n"
                 "  --socket PATH   the daemon's socket\n"
                 "  --help          show this help (also: bitnetctl COMMAND --help)\n"
                 "  --version       print the version\n"
                 "\nExit codes: 0 ok, 1 failure, 2 usage error, 3 daemon unreachable.\n");
}

void ctl_print_json(json_t *value)
{
    char *s = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
}

int main(int argc, char **argv)
{
    struct ctl_options opts = {.json = false, .socket = NULL};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            opts.json = true;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            opts.socket = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("bitnetctl %s (%s)\n", BITNET_VERSION, BITNET_COMPILER);
            return 0;
        } else {
            fprintf(stderr, "bitnetctl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < N_COMMANDS; c++) {
        if (strcmp(argv[i], commands[c].name) != 0)
            continue;
        /* Options may also follow the subcommand: bitnetctl kernels --json. */
        int sub_argc = 0;
        char **sub_argv = calloc((size_t)argc, sizeof(char *));
        if (!sub_argv)
            return 1;
        for (int j = i + 1; j < argc; j++) {
            if (strcmp(argv[j], "--json") == 0) {
                opts.json = true;
            } else if (strcmp(argv[j], "--socket") == 0 && j + 1 < argc) {
                opts.socket = argv[++j];
            } else if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
                printf("Usage: bitnetctl %s %s\n  %s\n", commands[c].name, commands[c].args,
                       commands[c].help);
                free(sub_argv);
                return 0;
            } else {
                sub_argv[sub_argc++] = argv[j];
            }
        }
        int rc = commands[c].run(&opts, sub_argc, sub_argv);
        free(sub_argv);
        return rc;
    }
    fprintf(stderr, "bitnetctl: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
