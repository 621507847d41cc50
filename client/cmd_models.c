/*
 * client/cmd_models.c - `bitnetctl models`, `load PATH [--name N]` and
 * `unload NAME`: the daemon's models.
 */
#include <stdio.h>
#include <string.h>

#include "bitnet/client.h"
#include "client/ctl.h"

int cmd_models(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "bitnetctl models: unexpected argument '%s'\n", argv[0]);
        return CTL_EXIT_USAGE;
    }
    json_t *r = NULL;
    int rc = ctl_call_once(opts, "io.bitnetd.Query.ListModels", NULL, &r);
    if (rc)
        return rc;
    json_t *models = json_object_get(r, "models");
    if (opts->json) {
        ctl_print_json(models);
    } else if (json_array_size(models) == 0) {
        printf("no model loaded\n");
    } else {
        printf("%-16s %-10s %-14s %-7s %-20s %6s %7s %4s  %s\n", "NAME", "STATE", "ARCH", "WEIGHTS",
               "KERNEL", "CTX", "THREADS", "SEQ", "PATH");
        size_t i;
        json_t *m;
        json_array_foreach(models, i, m)
        {
            printf("%-16s %-10s %-14s %-7s %-20s %6lld %7lld %4lld  %s\n", ctl_str(m, "name", "?"),
                   ctl_str(m, "state", "?"), ctl_str(m, "arch", "-"), ctl_str(m, "weights", "-"),
                   ctl_str(m, "kernel", "-"),
                   (long long)json_integer_value(json_object_get(m, "n_ctx")),
                   (long long)json_integer_value(json_object_get(m, "threads")),
                   (long long)json_integer_value(json_object_get(m, "n_seq_max")),
                   ctl_str(m, "path", "?"));
        }
    }
    json_decref(r);
    return CTL_EXIT_OK;
}

int cmd_load(const struct ctl_options *opts, int argc, char **argv)
{
    const char *path = NULL, *name = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name = argv[++i];
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            fprintf(stderr, "bitnetctl load: unexpected argument '%s'\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "Usage: bitnetctl load PATH [--name NAME]\n");
        return CTL_EXIT_USAGE;
    }
    json_t *params = json_pack("{s:s}", "path", path);
    if (name)
        json_object_set_new(params, "name", json_string(name));
    json_t *r = NULL;
    int rc = ctl_call_once(opts, "io.bitnetd.Admin.LoadModel", params, &r);
    if (rc)
        return rc;
    json_t *m = json_object_get(r, "model");
    if (opts->json)
        ctl_print_json(m);
    else
        printf("loaded %s: %s %s, kernel %s, n_ctx %lld\n", ctl_str(m, "name", "?"),
               ctl_str(m, "arch", "?"), ctl_str(m, "weights", "?"), ctl_str(m, "kernel", "?"),
               (long long)json_integer_value(json_object_get(m, "n_ctx")));
    json_decref(r);
    return CTL_EXIT_OK;
}

int cmd_unload(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "Usage: bitnetctl unload NAME\n");
        return CTL_EXIT_USAGE;
    }
    json_t *r = NULL;
    int rc = ctl_call_once(opts, "io.bitnetd.Admin.UnloadModel",
                           json_pack("{s:s}", "name", argv[0]), &r);
    if (rc)
        return rc;
    json_decref(r);
    if (!opts->json)
        printf("unloaded %s\n", argv[0]);
    return CTL_EXIT_OK;
}
