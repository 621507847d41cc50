/* client/ctl_daemon.c - bitnetctl's connection to bitnetd, through libbitnet-client. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bitnet/client.h"
#include "client/ctl.h"

/*
 * The socket to use: --socket, else $BITNETD_SOCKET, else the system
 * daemon's, unless it does not exist and a user instance's
 * ($XDG_RUNTIME_DIR/bitnetd.sock, what `bitnetd --user` binds) does.
 */
static const char *socket_path(const struct ctl_options *opts, char *buf, size_t len)
{
    if (opts->socket)
        return opts->socket;
    const char *env = getenv("BITNETD_SOCKET");
    if (env && *env)
        return env;
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (access(BITNET_CLIENT_DEFAULT_SOCKET, F_OK) != 0 && xdg && *xdg) {
        snprintf(buf, len, "%s/bitnetd.sock", xdg);
        if (access(buf, F_OK) == 0)
            return buf;
    }
    return BITNET_CLIENT_DEFAULT_SOCKET;
}

int ctl_connect(const struct ctl_options *opts, struct bitnet_client **out, bool quiet)
{
    char buf[4096];
    const char *path = socket_path(opts, buf, sizeof(buf));
    int rc = bitnet_client_connect(path, out);
    if (rc == 0)
        return CTL_EXIT_OK;
    if (!quiet)
        fprintf(stderr, "bitnetctl: cannot reach bitnetd at %s: %s\n", path,
                bitnet_client_strerror(rc));
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

int ctl_call_once(const struct ctl_options *opts, const char *method, json_t *parameters,
                  json_t **reply)
{
    bitnet_client *client;
    int rc = ctl_connect(opts, &client, false);
    if (rc == 0) {
        rc = ctl_call(client, method, parameters, reply);
        bitnet_client_close(client);
    }
    json_decref(parameters);
    return rc;
}

const char *ctl_str(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}
