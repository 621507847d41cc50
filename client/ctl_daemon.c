/* client/ctl_daemon.c - bitnetctl's connection to bitnetd, through libbitnet-client. */
#include <stdio.h>
#include <stdlib.h>

#include "bitnet/client.h"
#include "client/ctl.h"

int ctl_connect(const struct ctl_options *opts, struct bitnet_client **out, bool quiet)
{
    int rc = bitnet_client_connect(opts->socket, out);
    if (rc == 0)
        return CTL_EXIT_OK;
    if (!quiet) {
        const char *path = opts->socket ? opts->socket : getenv("BITNETD_SOCKET");
        fprintf(stderr, "bitnetctl: cannot reach bitnetd at %s: %s\n",
                path && *path ? path : BITNET_CLIENT_DEFAULT_SOCKET, bitnet_client_strerror(rc));
    }
    return CTL_EXIT_UNAVAILABLE;
}

int ctl_call(struct bitnet_client *client, const char *method, json_t *parameters, json_t **reply)
{
    char *params = parameters ? json_dumps(parameters, JSON_COMPACT) : NULL;
    char *text = NULL;
    int rc = bitnet_client_call(client, method, params, &text);
    free(params);
    if (rc == BITNET_CLIENT_EVARLINK) {
        fprintf(stderr, "bitnetctl: %s: %s %s\n", method, bitnet_client_error_name(client),
                bitnet_client_error_parameters(client));
        return CTL_EXIT_FAILURE;
    }
    if (rc) {
        fprintf(stderr, "bitnetctl: %s: %s\n", method, bitnet_client_error_message(client));
        return rc == BITNET_CLIENT_EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_UNAVAILABLE;
    }
    json_error_t jerr;
    *reply = json_loads(text, 0, &jerr);
    bitnet_client_free(text);
    if (!*reply) {
        fprintf(stderr, "bitnetctl: %s: unreadable reply: %s\n", method, jerr.text);
        return CTL_EXIT_FAILURE;
    }
    return CTL_EXIT_OK;
}
