/* client/cmd_status.c - `bitnetctl status`: what the daemon is doing now. */
#include <stdio.h>

#include "bitnet/client.h"
#include "client/ctl.h"

static long long int_of(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

int cmd_status(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "bitnetctl status: unexpected argument '%s'\n", argv[0]);
        return CTL_EXIT_USAGE;
    }
    bitnet_client *client;
    int rc = ctl_connect(opts, &client, false);
    if (rc)
        return rc;
    json_t *st = NULL;
    rc = ctl_call(client, "io.bitnetd.Query.GetStatus", NULL, &st);
    bitnet_client_close(client);
    if (rc)
        return rc;
    if (opts->json) {
        ctl_print_json(st);
        json_decref(st);
        return CTL_EXIT_OK;
    }
    long long up = int_of(st, "uptime_seconds");
    printf("bitnetd %s, pid %lld, up %lldd %02lld:%02lld:%02lld\n", str_of(st, "version"),
           int_of(st, "pid"), up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
    printf("  status:       %s\n", str_of(st, "status"));
    printf("  connections:  %lld\n", int_of(st, "connections"));
    printf("  jobs:         %lld\n", int_of(st, "jobs"));
    json_t *models = json_object_get(st, "models");
    if (json_array_size(models) == 0) {
        printf("  models:       (none loaded)\n");
    } else {
        size_t i;
        json_t *m;
        json_array_foreach(models, i, m)
        {
            printf("  model:        %s (%s, backend %s)\n", str_of(m, "name"), str_of(m, "path"),
                   str_of(m, "backend"));
        }
    }
    printf("  backend:      %s, SIMD %s, %lld threads\n", str_of(st, "backend"), str_of(st, "simd"),
           int_of(st, "threads"));
    json_t *lim = json_object_get(st, "limits");
    printf("  limits:       %lld connections (%lld per user), messages up to %lld bytes, "
           "idle timeout %lld s\n",
           int_of(lim, "max_connections"), int_of(lim, "max_connections_per_uid"),
           int_of(lim, "max_message_size"), int_of(lim, "idle_timeout"));
    json_decref(st);
    return CTL_EXIT_OK;
}
