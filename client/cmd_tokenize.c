/*
 * client/cmd_tokenize.c - `bitnetctl tokenize TEXT`: the token ids a
 * model's tokenizer gives for a text, as the daemon computes them.
 */
#include <stdio.h>
#include <string.h>

#include "bitnet/client.h"
#include "client/ctl.h"

int cmd_tokenize(const struct ctl_options *opts, int argc, char **argv)
{
    const char *text = NULL;
    json_t *params = json_object();
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--no-special") == 0) {
            json_object_set_new(params, "add_special", json_false());
        } else if (strcmp(argv[i], "--parse-special") == 0) {
            json_object_set_new(params, "parse_special", json_true());
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            json_object_set_new(params, "model", json_string(argv[++i]));
        } else if (!text) {
            text = argv[i];
        } else {
            fprintf(stderr, "bitnetctl tokenize: unexpected argument '%s'\n", argv[i]);
            json_decref(params);
            return CTL_EXIT_USAGE;
        }
    }
    if (!text) {
        fprintf(stderr, "Usage: bitnetctl tokenize TEXT [--no-special] [--parse-special] "
                        "[--model NAME]\n");
        json_decref(params);
        return CTL_EXIT_USAGE;
    }
    json_object_set_new(params, "text", json_string(text));
    bitnet_client *client;
    int rc = ctl_connect(opts, &client, false);
    json_t *r = NULL;
    if (rc == 0) {
        rc = ctl_call(client, "io.bitnetd.Inference.Tokenize", params, &r);
        bitnet_client_close(client);
    }
    json_decref(params);
    if (rc)
        return rc;
    json_t *tokens = json_object_get(r, "tokens");
    if (opts->json) {
        ctl_print_json(tokens);
    } else {
        size_t i;
        json_t *t;
        json_array_foreach(tokens, i, t)
        {
            printf("%s%lld", i ? " " : "", (long long)json_integer_value(t));
        }
        printf("\n");
    }
    json_decref(r);
    return CTL_EXIT_OK;
}
