/*
 * tools/bitnet_run.c - bitnet-run: load a model, generate, print timings.
 *
 * The local runner over the same engine API the daemon uses (engine,
 * tokenizer, batcher). Prints the text as it is generated, then one line of
 * timings, or with --json one object with the figures benchmarks read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bitnet/config.h"
#include "bitnet/error.h"
#include "engine/batcher.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"

struct run_opts {
    const char *model;
    const char *prompt;
    const char *system;
    const char *kernel;
    const char *dump_logits;
    const char *lm_head;
    const char *kv_type;
    bool chat, json, quiet;
    int n_predict, threads, ctx;
    sampler_params sampling;
    const char *stop[GEN_MAX_STOP];
    int n_stop;
};

struct run_state {
    const struct run_opts *o;
    gen_usage usage;
    gen_finish finish;
    char error[256];
    FILE *dump; /* --dump-logits */
    int n_vocab;
};

static const char usage_text[] =
    "Usage: bitnet-run -m MODEL.gguf [-p PROMPT] [options]\n"
    "  -m, --model FILE       the GGUF model\n"
    "  -p, --prompt TEXT      the prompt (default: \"The\")\n"
    "      --chat             render the prompt as a user message in the model's chat format\n"
    "      --system TEXT      a system message (with --chat)\n"
    "  -n, --n-predict N      tokens to generate (default 32)\n"
    "  -t, --threads N        compute threads (default: physical cores)\n"
    "      --ctx N            context length (default: the model's, at most 4096)\n"
    "      --kernel ID        force a kernel (bitnetctl kernels lists them)\n"
    "      --lm-head KIND     native (as stored) or q8_0 (in-memory Q8_0 copy)\n"
    "      --kv TYPE          KV cache type: f32 (default) or f16 (half the memory)\n"
    "      --seed N           sampling seed (default 0)\n"
    "      --temp X           temperature; 0 = greedy (default 0)\n"
    "      --top-k N, --top-p X, --min-p X, --repeat-penalty X\n"
    "      --stop TEXT        stop string (up to 8)\n"
    "      --dump-logits FILE write the logits of every sampled position (f32, n_vocab each)\n"
    "      --json             print one JSON object of figures instead of text\n"
    "  -q, --quiet            print only the figures line\n"
    "      --version, --help\n";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int parse(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->prompt = "The";
    o->n_predict = 32;
    o->sampling = sampler_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
        if (FLAG("-h", "--help")) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (FLAG("-V", "--version")) {
            printf("bitnet-run %s\n", BITNET_VERSION);
            exit(0);
        } else if (FLAG("--chat", "--chat")) {
            o->chat = true;
            continue;
        } else if (FLAG("--json", "--json")) {
            o->json = true;
            continue;
        } else if (FLAG("-q", "--quiet")) {
            o->quiet = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bitnet-run: %s needs a value\n", a);
            return 2;
        }
        if (FLAG("-m", "--model"))
            o->model = v;
        else if (FLAG("-p", "--prompt"))
            o->prompt = v;
        else if (FLAG("--system", "--system"))
            o->system = v;
        else if (FLAG("-n", "--n-predict"))
            o->n_predict = atoi(v);
        else if (FLAG("-t", "--threads"))
            o->threads = atoi(v);
        else if (FLAG("--ctx", "--ctx"))
            o->ctx = atoi(v);
        else if (FLAG("--kernel", "--kernel"))
            o->kernel = v;
        else if (FLAG("--seed", "--seed"))
            o->sampling.seed = strtoull(v, NULL, 10);
        else if (FLAG("--temp", "--temp"))
            o->sampling.temperature = strtof(v, NULL);
        else if (FLAG("--top-k", "--top-k"))
            o->sampling.top_k = atoi(v);
        else if (FLAG("--top-p", "--top-p"))
            o->sampling.top_p = strtof(v, NULL);
        else if (FLAG("--min-p", "--min-p"))
            o->sampling.min_p = strtof(v, NULL);
        else if (FLAG("--repeat-penalty", "--repeat-penalty"))
            o->sampling.repeat_penalty = strtof(v, NULL);
        else if (FLAG("--lm-head", "--lm-head"))
            o->lm_head = v;
        else if (FLAG("--kv", "--kv"))
            o->kv_type = v;
        else if (FLAG("--dump-logits", "--dump-logits"))
            o->dump_logits = v;
        else if (FLAG("--stop", "--stop")) {
            if (o->n_stop == GEN_MAX_STOP) {
                fprintf(stderr, "bitnet-run: at most %d stop strings\n", GEN_MAX_STOP);
                return 2;
            }
            o->stop[o->n_stop++] = v;
        } else {
            fprintf(stderr, "bitnet-run: unknown option '%s'\n%s", a, usage_text);
            return 2;
        }
#undef FLAG
        i++;
    }
    if (!o->model) {
        fprintf(stderr, "bitnet-run: no model (-m FILE)\n%s", usage_text);
        return 2;
    }
    if (o->n_predict <= 0) {
        fprintf(stderr, "bitnet-run: -n must be > 0\n");
        return 2;
    }
    return 0;
}

static void on_event(void *user, const gen_event *ev)
{
    struct run_state *st = user;
    if (ev->type == GEN_EVENT_TEXT) {
        if (st->dump && ev->logits)
            fwrite(ev->logits, sizeof(float), (size_t)st->n_vocab, st->dump);
        if (!st->o->json && !st->o->quiet) {
            fwrite(ev->text, 1, ev->text_len, stdout);
            fflush(stdout);
        }
        return;
    }
    st->usage = *ev->usage;
    st->finish = ev->finish;
    if (ev->error)
        snprintf(st->error, sizeof(st->error), "%s", ev->error);
}

/* Tokenizes the prompt: plain text with BOS, or one chat turn. */
static int make_prompt(const struct run_opts *o, const tokenizer *tok, int32_t **out, size_t *n)
{
    size_t need = 0;
    chat_message msgs[2];
    size_t n_msgs = 0;
    if (o->chat) {
        if (o->system)
            msgs[n_msgs++] = (chat_message){CHAT_ROLE_SYSTEM, o->system, strlen(o->system)};
        msgs[n_msgs++] = (chat_message){CHAT_ROLE_USER, o->prompt, strlen(o->prompt)};
    }
    for (int pass = 0; pass < 2; pass++) {
        int32_t *buf = pass ? malloc(sizeof(int32_t) * (need + 1)) : NULL;
        size_t cap = pass ? need + 1 : 0;
        int rc = o->chat ? tokenizer_render_chat(tok, msgs, n_msgs, true, buf, cap, &need)
                         : tokenizer_encode(tok, o->prompt, strlen(o->prompt), true, false, buf,
                                            cap, &need);
        if (pass == 0 && rc != -ENOSPC && rc != 0)
            return rc;
        if (pass == 1) {
            if (rc) {
                free(buf);
                return rc;
            }
            *out = buf;
            *n = need;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct run_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;

    char err[512];
    double t0 = now_ms();
    engine *e;
    engine_opts eo = {.n_threads = o.threads,
                      .n_seq_max = 1,
                      .n_ctx = o.ctx,
                      .kernel = o.kernel,
                      .lm_head = o.lm_head,
                      .kv_type = o.kv_type};
    rc = engine_new(o.model, &eo, &e, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bitnet-run: %s\n", err);
        return 1;
    }
    tokenizer *tok;
    rc = tokenizer_load(engine_gguf(e), NULL, &tok, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bitnet-run: %s\n", err);
        engine_free(e);
        return 1;
    }
    double load_ms = now_ms() - t0;
    const engine_info *in = engine_get_info(e);

    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    rc = make_prompt(&o, tok, &prompt, &n_prompt);
    if (rc) {
        fprintf(stderr, "bitnet-run: cannot tokenize the prompt: %s\n", bitnet_strerror(rc));
        return 1;
    }

    batcher *b;
    if (batcher_new(e, tok, 512, &b)) {
        fprintf(stderr, "bitnet-run: out of memory\n");
        return 1;
    }
    struct run_state st = {.o = &o, .n_vocab = in->n_vocab};
    if (o.dump_logits) {
        st.dump = fopen(o.dump_logits, "wb");
        if (!st.dump) {
            fprintf(stderr, "bitnet-run: cannot write %s: %s\n", o.dump_logits, strerror(errno));
            return 1;
        }
    }
    gen_request req = {.prompt = prompt,
                       .n_prompt = n_prompt,
                       .sampling = o.sampling,
                       .max_tokens = o.n_predict,
                       .n_stop = o.n_stop};
    for (int i = 0; i < o.n_stop; i++)
        req.stop[i] = o.stop[i];
    int id;
    rc = batcher_add(b, &req, on_event, &st, &id, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bitnet-run: %s\n", err);
        return 1;
    }
    if (!o.json && !o.quiet) {
        fwrite(o.prompt, 1, strlen(o.prompt), stdout);
        fflush(stdout);
    }
    while (batcher_step(b) > 0)
        ;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double prefill_tps = st.usage.prefill_ms > 0 ? n_prompt / (st.usage.prefill_ms / 1e3) : 0;
    double decode_tps = st.usage.decode_ms > 0 && st.usage.generated_tokens > 1
                            ? (st.usage.generated_tokens - 1) / (st.usage.decode_ms / 1e3)
                            : 0;
    if (o.json) {
        printf("{\"model\": \"%s\", \"arch\": \"%s\", \"weights\": \"%s\", \"kernel\": \"%s\", "
               "\"lm_head\": \"%s\", \"kv_cache\": \"%s\", \"attention\": \"%s\", "
               "\"threads\": %d, \"load_ms\": %.1f, \"prompt_tokens\": %zu, "
               "\"generated_tokens\": %d, \"prefill_ms\": %.2f, \"decode_ms\": %.2f, "
               "\"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, \"peak_rss_kb\": %ld, "
               "\"weight_bytes\": %llu, \"finish\": \"%s\"}\n",
               o.model, in->arch, in->weight_type, in->kernel, in->lm_head, in->kv_cache,
               in->attention, in->n_threads, load_ms, n_prompt, st.usage.generated_tokens,
               st.usage.prefill_ms, st.usage.decode_ms, prefill_tps, decode_tps, ru.ru_maxrss,
               (unsigned long long)in->weight_bytes, gen_finish_name(st.finish));
    } else {
        printf("\n");
        fprintf(o.quiet ? stdout : stderr,
                "load %.0f ms | prompt %zu tok, prefill %.1f tok/s | generated %d tok, decode "
                "%.2f tok/s | kernel %s, attention %s, KV %s, %d threads | peak RSS %ld MiB | "
                "finish %s\n",
                load_ms, n_prompt, prefill_tps, st.usage.generated_tokens, decode_tps, in->kernel,
                in->attention, in->kv_cache, in->n_threads, ru.ru_maxrss / 1024,
                gen_finish_name(st.finish));
    }
    if (st.finish == GEN_FINISH_ERROR)
        fprintf(stderr, "bitnet-run: %s\n", st.error);
    batcher_free(b);
    if (st.dump)
        fclose(st.dump);
    free(prompt);
    tokenizer_free(tok);
    engine_free(e);
    return st.finish == GEN_FINISH_ERROR ? 1 : 0;
}
