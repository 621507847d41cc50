/*
 * client/cmd_generate.c - `bitnetctl generate PROMPT`: streams a generation
 * to the terminal as the daemon sends it. Ctrl-C cancels the job (through a
 * second connection, as any client may) and exits 130 once the daemon's
 * final reply arrived.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/client.h"
#include "client/ctl.h"

/* Exit code after Ctrl-C, as shells report a SIGINT death. */
#define CTL_EXIT_INTERRUPTED 130

struct gen_state {
    const struct ctl_options *opts;
    atomic_llong job;       /* the job id once the first reply came, else 0 */
    atomic_int interrupted; /* Ctrl-C was pressed */
    atomic_int cancel_sent;
    atomic_int done; /* the stream ended: the signal thread returns */
    json_t *final;   /* the last reply */
    bool any_text;
    bool ends_newline;
};

/* Cancels the job through a connection of its own (the first one is busy
 * streaming). Returns 0 or a ctl exit code. */
static int send_cancel(struct gen_state *st)
{
    long long id = atomic_load(&st->job);
    if (id <= 0 || atomic_exchange(&st->cancel_sent, 1))
        return 0;
    bitnet_client *c;
    if (ctl_connect(st->opts, &c, true) != CTL_EXIT_OK)
        return CTL_EXIT_UNAVAILABLE;
    char params[64];
    snprintf(params, sizeof(params), "{\"job\":%lld}", id);
    char *reply = NULL;
    int rc = bitnet_client_call(c, "io.bitnetd.Inference.Cancel", params, &reply);
    bitnet_client_free(reply);
    bitnet_client_close(c);
    return rc == 0 ? 0 : CTL_EXIT_FAILURE;
}

static void *signal_thread(void *arg)
{
    struct gen_state *st = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0 || atomic_load(&st->done))
            return NULL;
        atomic_store(&st->interrupted, 1);
        send_cancel(st);
    }
}

static int on_reply(const char *parameters, int continues, void *user)
{
    struct gen_state *st = user;
    json_t *r = json_loads(parameters, 0, NULL);
    if (!r)
        return CTL_EXIT_FAILURE;
    if (st->opts->json) {
        char *s = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            puts(s);
        free(s);
    }
    json_t *job = json_object_get(r, "job");
    if (json_is_integer(job) && atomic_load(&st->job) == 0) {
        atomic_store(&st->job, (long long)json_integer_value(job));
        if (atomic_load(&st->interrupted))
            send_cancel(st);
    }
    json_t *text = json_object_get(r, "text");
    if (!st->opts->json && json_is_string(text) && json_string_length(text) > 0) {
        size_t n = json_string_length(text);
        fwrite(json_string_value(text), 1, n, stdout);
        st->any_text = true;
        st->ends_newline = json_string_value(text)[n - 1] == '\n';
    }
    fflush(stdout);
    if (!continues)
        st->final = json_incref(r);
    json_decref(r);
    return 0;
}

/* Adds a number option's value to params. Returns false when it is not a number. */
static bool put_number(json_t *params, const char *key, const char *text, bool integer)
{
    char *end;
    if (integer) {
        long long v = strtoll(text, &end, 10);
        if (!*text || *end)
            return false;
        json_object_set_new(params, key, json_integer(v));
    } else {
        double v = strtod(text, &end);
        if (!*text || *end)
            return false;
        json_object_set_new(params, key, json_real(v));
    }
    return true;
}

static const char usage_text[] =
    "Usage: bitnetctl generate [OPTIONS] PROMPT...\n"
    "  -n, --max-tokens N     tokens to generate (daemon default 128)\n"
    "      --chat             send the prompt as a user message (chat format)\n"
    "      --system TEXT      a system message (implies --chat)\n"
    "      --temp X, --top-k N, --top-p X, --min-p X, --repeat-penalty X, --seed N\n"
    "      --stop TEXT        stop string (repeatable)\n"
    "      --model NAME       the model (default: the daemon's first)\n"
    "      --json             print every reply as one JSON line\n"
    "Ctrl-C cancels the job and exits 130.\n";

int cmd_generate(const struct ctl_options *opts, int argc, char **argv)
{
    json_t *params = json_object();
    json_t *stop = json_array();
    const char *system = NULL;
    bool chat = false;
    char prompt[65536] = "";
    size_t plen = 0;
    static const struct {
        const char *flag, *key;
        bool integer;
    } numbers[] = {{"-n", "max_tokens", true},
                   {"--max-tokens", "max_tokens", true},
                   {"--temp", "temperature", false},
                   {"--top-k", "top_k", true},
                   {"--top-p", "top_p", false},
                   {"--min-p", "min_p", false},
                   {"--repeat-penalty", "repeat_penalty", false},
                   {"--seed", "seed", true}};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool matched = false;
        for (size_t k = 0; k < sizeof(numbers) / sizeof(numbers[0]); k++) {
            if (strcmp(a, numbers[k].flag) != 0)
                continue;
            matched = true;
            if (i + 1 >= argc ||
                !put_number(params, numbers[k].key, argv[++i], numbers[k].integer)) {
                fprintf(stderr, "bitnetctl generate: %s needs a number\n%s", a, usage_text);
                json_decref(params);
                json_decref(stop);
                return CTL_EXIT_USAGE;
            }
        }
        if (matched)
            continue;
        if (strcmp(a, "--chat") == 0) {
            chat = true;
        } else if (strcmp(a, "--system") == 0 && i + 1 < argc) {
            system = argv[++i];
            chat = true;
        } else if (strcmp(a, "--stop") == 0 && i + 1 < argc) {
            json_array_append_new(stop, json_string(argv[++i]));
        } else if (strcmp(a, "--model") == 0 && i + 1 < argc) {
            json_object_set_new(params, "model", json_string(argv[++i]));
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "bitnetctl generate: unknown option '%s'\n%s", a, usage_text);
            json_decref(params);
            json_decref(stop);
            return CTL_EXIT_USAGE;
        } else {
            int n = snprintf(prompt + plen, sizeof(prompt) - plen, "%s%s", plen ? " " : "", a);
            if (n < 0 || (size_t)n >= sizeof(prompt) - plen) {
                fprintf(stderr, "bitnetctl generate: the prompt is too long\n");
                json_decref(params);
                json_decref(stop);
                return CTL_EXIT_USAGE;
            }
            plen += (size_t)n;
        }
    }
    if (plen == 0) {
        fputs(usage_text, stderr);
        json_decref(params);
        json_decref(stop);
        return CTL_EXIT_USAGE;
    }
    if (json_array_size(stop) > 0)
        json_object_set(params, "stop", stop);
    json_decref(stop);
    if (chat) {
        json_t *msgs = json_array();
        if (system)
            json_array_append_new(msgs,
                                  json_pack("{s:s, s:s}", "role", "system", "content", system));
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", prompt));
        json_object_set_new(params, "messages", msgs);
    } else {
        json_object_set_new(params, "prompt", json_string(prompt));
    }
    char *ptext = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    if (!ptext)
        return CTL_EXIT_FAILURE;

    bitnet_client *client;
    int rc = ctl_connect(opts, &client, false);
    if (rc) {
        free(ptext);
        return rc;
    }
    struct gen_state st = {.opts = opts};
    /* SIGINT goes to the signal thread alone (threads inherit the mask). */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    pthread_t th;
    bool have_thread = pthread_create(&th, NULL, signal_thread, &st) == 0;
    rc = bitnet_client_call_more(client, "io.bitnetd.Inference.Generate", ptext, on_reply, &st);
    free(ptext);
    atomic_store(&st.done, 1);
    if (have_thread) {
        pthread_kill(th, SIGINT);
        pthread_join(th, NULL);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int exit_code = CTL_EXIT_OK;
    if (rc == BITNET_CLIENT_EVARLINK) {
        fprintf(stderr, "bitnetctl generate: %s %s\n", bitnet_client_error_name(client),
                bitnet_client_error_parameters(client));
        exit_code = CTL_EXIT_FAILURE;
    } else if (rc) {
        fprintf(stderr, "bitnetctl generate: %s\n", bitnet_client_error_message(client));
        exit_code = rc > 0 ? rc : CTL_EXIT_UNAVAILABLE;
    }
    bitnet_client_close(client);
    if (st.final && !opts->json) {
        const char *finish = json_string_value(json_object_get(st.final, "finish_reason"));
        json_t *u = json_object_get(st.final, "usage");
        const char *error = json_string_value(json_object_get(st.final, "error"));
        const char *kernel = json_string_value(json_object_get(st.final, "kernel"));
        if (st.any_text && !st.ends_newline)
            putchar('\n');
        fflush(stdout);
        fprintf(stderr,
                "[job %lld: %s, %lld prompt + %lld generated tokens, %.1f tok/s, backend %s, "
                "kernel %s]\n",
                (long long)json_integer_value(json_object_get(st.final, "job")),
                finish ? finish : "?",
                (long long)json_integer_value(json_object_get(u, "prompt_tokens")),
                (long long)json_integer_value(json_object_get(u, "generated_tokens")),
                json_number_value(json_object_get(u, "decode_tokens_per_s")),
                json_string_value(json_object_get(st.final, "backend"))
                    ? json_string_value(json_object_get(st.final, "backend"))
                    : "?",
                kernel ? kernel : "?");
        if (error)
            fprintf(stderr, "bitnetctl generate: %s\n", error);
        if (finish && strcmp(finish, "error") == 0)
            exit_code = CTL_EXIT_FAILURE;
    }
    json_decref(st.final);
    if (atomic_load(&st.interrupted))
        return CTL_EXIT_INTERRUPTED;
    return exit_code;
}
