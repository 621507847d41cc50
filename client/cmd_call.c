/*
 * client/cmd_call.c - `bitnetctl call METHOD [JSON] [--more|--oneway]`: the
 * raw escape hatch. Prints each reply's parameters as JSON; a Varlink error
 * goes to stderr as "NAME PARAMETERS" with exit code 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/client.h"
#include "client/ctl.h"

static int print_reply(const char *parameters, int continues, void *user)
{
    const struct ctl_options *opts = user;
    json_t *v = json_loads(parameters, 0, NULL);
    if (!v)
        return CTL_EXIT_FAILURE;
    if (opts->json) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            puts(s);
        free(s);
    } else {
        ctl_print_json(v);
    }
    json_decref(v);
    fflush(stdout);
    return 0;
}

int cmd_call(const struct ctl_options *opts, int argc, char **argv)
{
    const char *method = NULL, *params = NULL;
    bool more = false, oneway = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--more") == 0) {
            more = true;
        } else if (strcmp(argv[i], "--oneway") == 0) {
            oneway = true;
        } else if (!method) {
            method = argv[i];
        } else if (!params) {
            params = argv[i];
        } else {
            fprintf(stderr, "bitnetctl call: unexpected argument '%s'\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
    }
    if (!method || (more && oneway)) {
        fprintf(stderr, "Usage: bitnetctl call METHOD [JSON] [--more|--oneway]\n");
        return CTL_EXIT_USAGE;
    }
    bitnet_client *client;
    int rc = ctl_connect(opts, &client, false);
    if (rc)
        return rc;
    if (oneway)
        rc = bitnet_client_call_oneway(client, method, params);
    else if (more)
        rc = bitnet_client_call_more(client, method, params, print_reply, (void *)opts);
    else {
        char *reply = NULL;
        rc = bitnet_client_call(client, method, params, &reply);
        if (rc == 0)
            rc = print_reply(reply, 0, (void *)opts);
        bitnet_client_free(reply);
    }
    int exit_code = CTL_EXIT_OK;
    if (rc == BITNET_CLIENT_EVARLINK) {
        fprintf(stderr, "%s %s\n", bitnet_client_error_name(client),
                bitnet_client_error_parameters(client));
        exit_code = CTL_EXIT_FAILURE;
    } else if (rc == BITNET_CLIENT_EINVAL) {
        fprintf(stderr, "bitnetctl call: %s\n", bitnet_client_error_message(client));
        exit_code = CTL_EXIT_USAGE;
    } else if (rc > 0) {
        exit_code = rc;
    } else if (rc < 0) {
        fprintf(stderr, "bitnetctl call: %s\n", bitnet_client_error_message(client));
        exit_code = CTL_EXIT_UNAVAILABLE;
    }
    bitnet_client_close(client);
    return exit_code;
}
