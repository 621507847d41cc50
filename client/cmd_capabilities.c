/*
 * client/cmd_capabilities.c - `bitnetctl capabilities`: what this build and
 * machine can do.
 *
 * The report comes from the daemon (io.bitnetd.Query.GetCapabilities) when it
 * is reachable, since that is what serves requests. When it is not, or with
 * --local, or when $BITNET_SIMD is set (which only this process would
 * honour), bitnetctl builds the same report from its own copy of the
 * registry; falling back says so on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/client.h"
#include "client/ctl.h"
#include "protocol/report.h"

/* Asks the daemon; returns NULL (after a note on stderr) when it cannot. */
static json_t *daemon_capabilities(const struct ctl_options *opts)
{
    bitnet_client *client;
    json_t *caps = NULL;
    if (ctl_connect(opts, &client, true) != CTL_EXIT_OK) {
        fprintf(stderr, "bitnetctl: bitnetd is not reachable; showing this build's local "
                        "report (--local skips the daemon)\n");
        return NULL;
    }
    if (ctl_call(client, "io.bitnetd.Query.GetCapabilities", NULL, &caps) != CTL_EXIT_OK) {
        fprintf(stderr, "bitnetctl: showing this build's local report instead\n");
        caps = NULL;
    }
    bitnet_client_close(client);
    return caps;
}

static void print_features(json_t *features)
{
    const char *key;
    json_t *v;
    int n = 0;
    printf("  features:      ");
    json_object_foreach(features, key, v)
    {
        if (json_is_true(v))
            printf("%s%s", n++ ? " " : "", key);
    }
    printf("%s\n", n ? "" : "(none)");
}

int cmd_capabilities(const struct ctl_options *opts, int argc, char **argv)
{
    bool local = getenv("BITNET_SIMD") != NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--local") != 0) {
            fprintf(stderr, "bitnetctl capabilities: unexpected argument '%s'\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
        local = true;
    }
    json_t *caps = local ? NULL : daemon_capabilities(opts);
    if (!caps)
        caps = report_capabilities(NULL);
    if (opts->json) {
        ctl_print_json(caps);
        json_decref(caps);
        return CTL_EXIT_OK;
    }
    json_t *build = json_object_get(caps, "build");
    json_t *cpu = json_object_get(caps, "cpu");
    printf("bitnetd %s, %s, %s build for %s\n",
           json_string_value(json_object_get(build, "version")),
           json_string_value(json_object_get(build, "compiler")),
           json_string_value(json_object_get(build, "build_type")),
           json_string_value(json_object_get(build, "target_arch")));
    printf("CPU\n  model:         %s (%s)\n", json_string_value(json_object_get(cpu, "brand")),
           json_string_value(json_object_get(cpu, "vendor")));
    printf("  cores:         %lld physical, %lld logical\n",
           (long long)json_integer_value(json_object_get(cpu, "physical_cores")),
           (long long)json_integer_value(json_object_get(cpu, "logical_cpus")));
    printf("  SIMD:          %s (detected %s)\n",
           json_string_value(json_object_get(cpu, "simd_active")),
           json_string_value(json_object_get(cpu, "simd_detected")));
    const char *override_error = json_string_value(json_object_get(cpu, "simd_override_error"));
    if (override_error)
        printf("  warning:       %s\n", override_error);
    print_features(json_object_get(cpu, "features"));

    printf("Best kernel per format\n");
    const char *fmt;
    json_t *v;
    json_object_foreach(json_object_get(caps, "best_kernel"), fmt, v)
    {
        printf("  %-14s %s\n", fmt, json_is_string(v) ? json_string_value(v) : "(none available)");
    }
    int available = 0, compiled = 0;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(caps, "kernels"), i, k)
    {
        compiled += json_is_true(json_object_get(k, "compiled"));
        available += json_is_true(json_object_get(k, "available"));
    }
    printf("Kernels: %zu known, %d compiled, %d available (bitnetctl kernels for details)\n",
           json_array_size(json_object_get(caps, "kernels")), compiled, available);
    printf("CUDA: %s\n",
           json_string_value(json_object_get(json_object_get(caps, "cuda"), "reason")));
    printf("Backends\n");
    json_array_foreach(json_object_get(caps, "backends"), i, k)
    {
        printf("  %-10s %s\n", json_string_value(json_object_get(k, "id")),
               json_is_true(json_object_get(k, "available")) ? "available" : "unavailable");
    }
    json_decref(caps);
    return CTL_EXIT_OK;
}
