/* client/cmd_kernels.c - `bitnetctl kernels`: the kernel registry, locally. */
#include <stdio.h>
#include <string.h>

#include "bitnet/error.h"
#include "bitnet/kernels.h"
#include "client/ctl.h"
#include "protocol/report.h"

static const char *yes_no(json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key)) ? "yes" : "no";
}

/* `bitnetctl kernels ID`: reports one kernel; exits 0 when it can run here,
 * 1 when it cannot (saying why: the build option or CPU feature missing), 2
 * for an unknown id. */
static int kernel_check(const struct ctl_options *opts, const char *id)
{
    const bitnet_kernel *k = NULL;
    char err[1024];
    int rc = bitnet_kernel_require(id, &k, err, sizeof(err));
    if (rc == BITNET_EUNKNOWN_ID) {
        fprintf(stderr, "bitnetctl kernels: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    if (opts->json) {
        json_t *all = report_kernels(NULL);
        size_t i;
        json_t *o;
        json_array_foreach(all, i, o)
        {
            if (strcmp(json_string_value(json_object_get(o, "id")), id) == 0)
                ctl_print_json(o);
        }
        json_decref(all);
    } else if (rc == 0) {
        printf("%s is available\n", id);
    }
    if (rc) {
        fprintf(stderr, "bitnetctl kernels: %s\n", err);
        return CTL_EXIT_FAILURE;
    }
    return CTL_EXIT_OK;
}

int cmd_kernels(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc == 1)
        return kernel_check(opts, argv[0]);
    if (argc > 1) {
        fprintf(stderr, "bitnetctl kernels: unexpected argument '%s'\n", argv[1]);
        return CTL_EXIT_USAGE;
    }
    json_t *kernels = report_kernels(NULL);
    if (opts->json) {
        ctl_print_json(kernels);
        json_decref(kernels);
        return CTL_EXIT_OK;
    }
    printf("%-18s %-6s %-8s %-6s %-14s %-8s %-9s %-9s %s\n", "ID", "FORMAT", "ISA", "DEVICE",
           "PROVIDER", "COMPILED", "SUPPORTED", "AVAILABLE", "REASON");
    size_t i;
    json_t *k;
    json_array_foreach(kernels, i, k)
    {
        const char *reason = json_string_value(json_object_get(k, "reason"));
        printf("%-18s %-6s %-8s %-6s %-14s %-8s %-9s %-9s %s\n",
               json_string_value(json_object_get(k, "id")),
               json_string_value(json_object_get(k, "format")),
               json_string_value(json_object_get(k, "isa")),
               json_string_value(json_object_get(k, "device")),
               json_string_value(json_object_get(k, "provider")), yes_no(k, "compiled"),
               yes_no(k, "supported"), yes_no(k, "available"), reason ? reason : "");
    }
    json_decref(kernels);
    return CTL_EXIT_OK;
}
