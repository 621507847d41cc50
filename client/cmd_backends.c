/*
 * client/cmd_backends.c - bitnetctl backends, prefer and reload: the
 * daemon's backends and preference list (io.bitnetd.Query.GetCapabilities),
 * setting the list and hot reload of backend libraries
 * (io.bitnetd.Admin.SetPreference and ReloadLibrary).
 */
#include <stdio.h>
#include <string.h>

#include "bitnet/client.h"
#include "client/ctl.h"

/* One line per model a call switched. */
static void print_switched(const json_t *models)
{
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const json_t *sc = json_object_get(m, "self_check");
        char check[96] = "self-check: not compared";
        if (json_is_true(json_object_get(sc, "compared")))
            snprintf(check, sizeof(check), "self-check: %s (cosine %.6f, max |diff| %.3g)",
                     json_is_true(json_object_get(sc, "match")) ? "match" : "MISMATCH",
                     json_real_value(json_object_get(sc, "cosine")),
                     json_real_value(json_object_get(sc, "max_abs_diff")));
        printf("  %s -> %s, kernel %s, generation %lld; %s\n", ctl_str(m, "name", "?"),
               ctl_str(m, "backend", "?"), ctl_str(m, "kernel", "?"),
               (long long)json_integer_value(json_object_get(m, "generation")), check);
    }
}

int cmd_backends(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "bitnetctl backends: unexpected argument '%s'\n", argv[0]);
        return CTL_EXIT_USAGE;
    }
    json_t *r = NULL;
    int rc = ctl_call_once(opts, "io.bitnetd.Query.GetCapabilities", NULL, &r);
    if (rc)
        return rc;
    if (opts->json) {
        json_t *o =
            json_pack("{s:O, s:O*, s:O*}", "backends", json_object_get(r, "backends"), "preference",
                      json_object_get(r, "preference"), "selected", json_object_get(r, "selected"));
        ctl_print_json(o);
        json_decref(o);
    } else {
        ctl_print_backends(r);
    }
    json_decref(r);
    return CTL_EXIT_OK;
}

int cmd_prefer(const struct ctl_options *opts, int argc, char **argv)
{
    json_t *list = json_array();
    json_t *params = json_pack("{s:o}", "preference", list);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            json_object_set_new(params, "model", json_string(argv[++i]));
        } else if (strcmp(argv[i], "--strict") == 0) {
            json_object_set_new(params, "strict", json_true());
        } else if (strcmp(argv[i], "--no-strict") == 0) {
            json_object_set_new(params, "strict", json_false());
        } else if (strcmp(argv[i], "--default") == 0) {
            json_array_clear(list);
        } else if (argv[i][0] != '-') {
            json_array_append_new(list, json_string(argv[i]));
        } else {
            fprintf(stderr, "bitnetctl prefer: unexpected argument '%s'\n", argv[i]);
            json_decref(params);
            return CTL_EXIT_USAGE;
        }
    }
    if (argc == 0) {
        fprintf(stderr, "Usage: bitnetctl prefer ID... [--model NAME] [--strict|--no-strict]\n"
                        "       bitnetctl prefer --default [--model NAME]\n");
        json_decref(params);
        return CTL_EXIT_USAGE;
    }
    json_t *r = NULL;
    int rc = ctl_call_once(opts, "io.bitnetd.Admin.SetPreference", params, &r);
    if (rc)
        return rc;
    if (opts->json) {
        ctl_print_json(r);
    } else {
        const json_t *p = json_object_get(r, "preference");
        printf("preference (%s%s):", ctl_str(p, "source", "?"),
               json_is_true(json_object_get(p, "strict")) ? ", strict" : "");
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(p, "entries"), i, e)
        {
            printf(" %s%s", ctl_str(e, "id", "?"),
                   strcmp(ctl_str(e, "state", ""), "available") == 0 ? "" : " (unavailable)");
        }
        printf("\n");
        const json_t *models = json_object_get(r, "models");
        if (json_array_size(models) == 0)
            printf("  no model changes backend or kernel\n");
        print_switched(models);
    }
    json_decref(r);
    return CTL_EXIT_OK;
}

int cmd_reload(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc < 1 || argc > 2 || argv[0][0] == '-') {
        fprintf(stderr, "Usage: bitnetctl reload BACKEND [PATH]\n");
        return CTL_EXIT_USAGE;
    }
    json_t *params = json_pack("{s:s}", "backend", argv[0]);
    if (argc == 2)
        json_object_set_new(params, "path", json_string(argv[1]));
    json_t *r = NULL;
    int rc = ctl_call_once(opts, "io.bitnetd.Admin.ReloadLibrary", params, &r);
    if (rc)
        return rc;
    if (opts->json) {
        ctl_print_json(r);
    } else {
        const json_t *b = json_object_get(r, "backend");
        const json_t *t = json_object_get(r, "timings");
        printf("reloaded %s: %s %s (%s), generation %lld, in %.1f ms\n", ctl_str(b, "id", "?"),
               ctl_str(b, "library", "?"), ctl_str(b, "version", "?"), ctl_str(b, "device", "?"),
               (long long)json_integer_value(json_object_get(b, "generation")),
               json_real_value(json_object_get(t, "total_ms")));
        print_switched(json_object_get(r, "models"));
    }
    json_decref(r);
    return CTL_EXIT_OK;
}
