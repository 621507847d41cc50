/* client/cmd_ps.c - `bitnetctl ps`: the daemon's generation jobs. */
#include <stdio.h>

#include "bitnet/client.h"
#include "client/ctl.h"

int cmd_ps(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "bitnetctl ps: unexpected argument '%s'\n", argv[0]);
        return CTL_EXIT_USAGE;
    }
    bitnet_client *client;
    int rc = ctl_connect(opts, &client, false);
    if (rc)
        return rc;
    json_t *r = NULL;
    rc = ctl_call(client, "io.bitnetd.Query.ListJobs", NULL, &r);
    bitnet_client_close(client);
    if (rc)
        return rc;
    json_t *jobs = json_object_get(r, "jobs");
    if (opts->json) {
        ctl_print_json(jobs);
    } else {
        printf("%-6s %-8s %-16s %-8s %-20s %7s %7s %6s\n", "JOB", "STATE", "MODEL", "BACKEND",
               "KERNEL", "PROMPT", "TOKENS", "UID");
        size_t i;
        json_t *j;
        json_array_foreach(jobs, i, j)
        {
            const char *kernel = json_string_value(json_object_get(j, "kernel"));
            printf("%-6lld %-8s %-16s %-8s %-20s %7lld %7lld %6lld\n",
                   (long long)json_integer_value(json_object_get(j, "id")),
                   json_string_value(json_object_get(j, "state")),
                   json_string_value(json_object_get(j, "model")),
                   json_string_value(json_object_get(j, "backend")), kernel ? kernel : "-",
                   (long long)json_integer_value(json_object_get(j, "prompt_tokens")),
                   (long long)json_integer_value(json_object_get(j, "tokens")),
                   (long long)json_integer_value(json_object_get(j, "uid")));
        }
    }
    json_decref(r);
    return CTL_EXIT_OK;
}
