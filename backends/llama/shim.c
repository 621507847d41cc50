/*
 * backends/llama/shim.c - the backend ABI over an external libllama
 * (llama.cpp or bitnet.cpp): libbitnet-llama.so.
 *
 * libllama is found by this library's RUNPATH. On first use the shim loads
 * ggml's compute backends from libllama's own directory (the CPU variants,
 * and CUDA in a CUDA build), once per process. Attention runs in full
 * precision (an F32 KV cache, no flash attention), as in our crossval, so
 * its greedy tokens can be compared with the native engine's.
 *
 * llama.cpp logs through a callback: the shim keeps the last error line of
 * the calling thread and puts it in the caller's message instead of
 * printing it (libraries do not log; the daemon does, once).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#include "backends/llama/check.h"
#include "bitnet/backend.h"
#include "bitnet/config.h"
#include "bitnet/error.h"

/* The version bitnet_backend_info() reports; a test build sets another. */
#ifndef BITNET_SHIM_VERSION
#define BITNET_SHIM_VERSION BITNET_VERSION
#endif

struct bitnet_model {
    struct llama_model *lm;
    const struct llama_vocab *vocab;
    int32_t n_vocab;
    int32_t n_ctx;     /* positions per context */
    int32_t n_ctx_max; /* contexts at once */
    int32_t n_live;    /* contexts now */
    int32_t n_threads; /* <= 0: llama.cpp's default */
    char arch[64];
};

struct bitnet_context {
    bitnet_model *model;
    struct llama_context *lc;
    int32_t n_past;
};

/* What the one-time set-up found. */
static struct {
    pthread_once_t once;
    char libdir[1024];  /* where libllama and ggml's backends are */
    char detail[1536];  /* bitnet_backend_desc.detail */
    const char *device; /* "cpu" or "cuda" */
    const char *kernel; /* kernel registry id: "llama.cpu" or "llama.cuda" */
} shim = {.once = PTHREAD_ONCE_INIT, .device = "cpu", .kernel = "llama.cpu"};

/* The last error line llama.cpp logged on this thread. */
static _Thread_local char last_log[256];

static void log_cb(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level != GGML_LOG_LEVEL_ERROR || !text)
        return;
    snprintf(last_log, sizeof(last_log), "%s", text);
    size_t n = strlen(last_log);
    while (n && (last_log[n - 1] == '\n' || last_log[n - 1] == '\r'))
        last_log[--n] = '\0';
}

static int32_t fail(int32_t code, char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        /* clang 14's analyzer loses track of va_start here (a false positive). */
        /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
        int n = vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
        if (last_log[0] && n >= 0 && (size_t)n < err_len)
            snprintf(err + n, err_len - (size_t)n, " (llama.cpp: %s)", last_log);
    }
    last_log[0] = '\0';
    return code;
}

/* Looks a symbol up in libllama and its dependencies by name, so that a
 * libllama without it (an older bitnet.cpp) still loads this shim. */
static void *llama_sym(const char *name)
{
    Dl_info info;
    if (!dladdr((void *)llama_backend_init, &info) || !info.dli_fname)
        return NULL;
    void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h)
        return NULL;
    void *sym = dlsym(h, name);
    dlclose(h);
    return sym;
}

static void shim_init(void)
{
    llama_log_set(log_cb, NULL);
    Dl_info info;
    snprintf(shim.libdir, sizeof(shim.libdir), "%s", BITNET_LLAMA_LIBDIR);
    if (dladdr((void *)llama_backend_init, &info) && info.dli_fname &&
        strrchr(info.dli_fname, '/')) {
        snprintf(shim.libdir, sizeof(shim.libdir), "%s", info.dli_fname);
        *strrchr(shim.libdir, '/') = '\0';
    }
    ggml_backend_load_all_from_path(shim.libdir);
    llama_backend_init();

    const char *(*version)(void) = (const char *(*)(void))llama_sym("llama_version");
    const char *(*gversion)(void) = (const char *(*)(void))llama_sym("ggml_version");
    const char *(*gcommit)(void) = (const char *(*)(void))llama_sym("ggml_commit");

    char cuda_lib[1100];
    snprintf(cuda_lib, sizeof(cuda_lib), "%s/libggml-cuda.so", shim.libdir);
    ggml_backend_reg_t cuda = ggml_backend_reg_by_name("CUDA");
    bool cuda_build = cuda || access(cuda_lib, F_OK) == 0;
    /* ggml skips a backend library that does not load without saying why;
     * ask the dynamic loader (RTLD_NOLOAD-free but lazy: it fails on the
     * same missing dependency, such as the CUDA driver's libcuda.so.1). */
    char why[400] = "";
    if (cuda_build && !cuda) {
        void *h = dlopen(cuda_lib, RTLD_LAZY | RTLD_LOCAL);
        if (h)
            dlclose(h);
        else
            snprintf(why, sizeof(why), ": %s", dlerror());
    }
    size_t cuda_devices = cuda ? ggml_backend_reg_dev_count(cuda) : 0;
    if (cuda_devices > 0) {
        shim.device = "cuda";
        shim.kernel = "llama.cuda";
    }
    snprintf(shim.detail, sizeof(shim.detail), "libllama %s (ggml %s %s) in %s, %s%s%s",
             version ? version() : "(version unknown)", gversion ? gversion() : "?",
             gcommit ? gcommit() : "?", shim.libdir, cuda_build ? "CUDA build" : "CPU build",
             !cuda_build        ? ""
             : cuda_devices > 0 ? ", CUDA devices found"
             : cuda             ? ", no CUDA device"
                                : ", its CUDA backend did not load",
             why);
}

uint32_t bitnet_abi_version(void)
{
    return BITNET_ABI_VERSION;
}

int32_t bitnet_backend_info(bitnet_backend_desc *out)
{
    if (!out)
        return -EINVAL;
    pthread_once(&shim.once, shim_init);
    *out = (bitnet_backend_desc){
        .abi_version = BITNET_ABI_VERSION,
        .struct_size = sizeof(bitnet_backend_desc),
        .name = "llama",
        .version = BITNET_SHIM_VERSION,
        .device = shim.device,
        .detail = shim.detail,
    };
    return 0;
}

int32_t bitnet_model_new_from_file(const char *path, const bitnet_model_params *params,
                                   bitnet_model **out, char *err, size_t err_len)
{
    if (!path || !out)
        return fail(BITNET_EPARAM, err, err_len, "llama: no model path or output");
    if (params && params->struct_size < sizeof(bitnet_model_params))
        return fail(BITNET_EPARAM, err, err_len,
                    "llama: bitnet_model_params.struct_size is %u, need %zu", params->struct_size,
                    sizeof(bitnet_model_params));
    if (params && params->kernel && params->kernel[0] && strncmp(params->kernel, "llama.", 6) != 0)
        return fail(BITNET_EPARAM, err, err_len,
                    "llama: kernel %s cannot be forced in libllama (it picks its own)",
                    params->kernel);
    pthread_once(&shim.once, shim_init);
    if (access(path, R_OK) != 0)
        return fail(-errno, err, err_len, "llama: %s: %s", path, strerror(errno));
    /* libllama asserts on some malformed files: our reader sees them first. */
    char why[512];
    int rc = llama_shim_check_gguf(path, why, sizeof(why));
    if (rc)
        return fail(rc, err, err_len, "llama: refused before libllama: %s", why);

    last_log[0] = '\0';
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *lm = llama_model_load_from_file(path, mp);
    if (!lm)
        return fail(BITNET_EFORMAT, err, err_len, "llama: libllama could not load %s", path);
    bitnet_model *m = calloc(1, sizeof(*m));
    if (!m) {
        llama_model_free(lm);
        return -ENOMEM;
    }
    m->lm = lm;
    m->vocab = llama_model_get_vocab(lm);
    m->n_vocab = llama_vocab_n_tokens(m->vocab);
    int32_t train = llama_model_n_ctx_train(lm);
    m->n_ctx =
        params && params->n_ctx > 0 ? params->n_ctx : (train > 0 && train < 4096 ? train : 4096);
    m->n_ctx_max = params && params->n_ctx_max > 0 ? params->n_ctx_max : 1;
    m->n_threads = params ? params->n_threads : 0;
    if (llama_model_meta_val_str(lm, "general.architecture", m->arch, sizeof(m->arch)) < 0)
        snprintf(m->arch, sizeof(m->arch), "unknown");
    *out = m;
    return 0;
}

void bitnet_model_free(bitnet_model *m)
{
    if (!m)
        return;
    llama_model_free(m->lm);
    free(m);
}

int32_t bitnet_model_describe(const bitnet_model *m, bitnet_model_desc *out)
{
    if (!m || !out)
        return -EINVAL;
    *out = (bitnet_model_desc){
        .struct_size = sizeof(bitnet_model_desc),
        .n_vocab = m->n_vocab,
        .n_ctx = m->n_ctx,
        .bos = llama_vocab_bos(m->vocab),
        .eos = llama_vocab_eos(m->vocab),
        .arch = m->arch,
        .kernel = shim.kernel,
    };
    return 0;
}

int32_t bitnet_context_new(bitnet_model *m, bitnet_context **out, char *err, size_t err_len)
{
    if (!m || !out)
        return fail(BITNET_EPARAM, err, err_len, "llama: no model or output");
    if (m->n_live >= m->n_ctx_max)
        return fail(BITNET_ELIMIT, err, err_len,
                    "llama: every context of this model is in use (%d)", m->n_ctx_max);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)m->n_ctx;
    cp.n_batch = (uint32_t)m->n_ctx;
    cp.n_seq_max = 1;
    /* Full-precision attention: see the top of this file. */
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    if (m->n_threads > 0) {
        cp.n_threads = m->n_threads;
        cp.n_threads_batch = m->n_threads;
    }
    bitnet_context *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    last_log[0] = '\0';
    c->lc = llama_init_from_model(m->lm, cp);
    if (!c->lc) {
        free(c);
        return fail(BITNET_EBACKEND, err, err_len, "llama: libllama could not make a context");
    }
    c->model = m;
    m->n_live++;
    *out = c;
    return 0;
}

void bitnet_context_free(bitnet_context *c)
{
    if (!c)
        return;
    llama_free(c->lc);
    c->model->n_live--;
    free(c);
}

int32_t bitnet_tokenize(bitnet_model *m, const char *text, size_t len, uint32_t flags,
                        int32_t *tokens, size_t cap, size_t *n_out, char *err, size_t err_len)
{
    if (!m || (!text && len) || !n_out || (!tokens && cap))
        return fail(BITNET_EPARAM, err, err_len, "llama: bad tokenize arguments");
    if (len > INT32_MAX / 2 || cap > INT32_MAX)
        return fail(BITNET_ELIMIT, err, err_len, "llama: text of %zu bytes is too long", len);
    int32_t n =
        llama_tokenize(m->vocab, text ? text : "", (int32_t)len, tokens, (int32_t)cap,
                       flags & BITNET_TOKENIZE_ADD_SPECIAL, flags & BITNET_TOKENIZE_PARSE_SPECIAL);
    if (n == INT32_MIN)
        return fail(BITNET_ELIMIT, err, err_len, "llama: too many tokens");
    if (n < 0) {
        *n_out = (size_t)-n;
        return -ENOSPC;
    }
    *n_out = (size_t)n;
    return 0;
}

/* Appends tokens to the context; the last one's logits are then at
 * llama_get_logits_ith(lc, -1). On failure the sequence is as before. */
static int32_t append(bitnet_context *c, const int32_t *tokens, size_t n, char *err, size_t err_len)
{
    bitnet_model *m = c->model;
    if (n > (size_t)(m->n_ctx - c->n_past))
        return fail(BITNET_ECONTEXT, err, err_len,
                    "llama: %zu more tokens do not fit (%d of %d positions used)", n, c->n_past,
                    m->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->n_vocab)
            return fail(BITNET_EPARAM, err, err_len, "llama: token %d is out of range (vocab %d)",
                        tokens[i], m->n_vocab);
    last_log[0] = '\0';
    /* llama_batch_get_one() takes a non-const pointer but only reads it. */
    int rc = llama_decode(c->lc, llama_batch_get_one((llama_token *)tokens, (int32_t)n));
    if (rc != 0) {
        llama_memory_seq_rm(llama_get_memory(c->lc), 0, c->n_past, -1);
        return fail(BITNET_EBACKEND, err, err_len, "llama: llama_decode failed (%d)", rc);
    }
    c->n_past += (int32_t)n;
    return 0;
}

#ifdef BITNET_SHIM_CRASH_TEST
/* The fault tests' build: a segmentation fault, as a buggy library would
 * have one, when the batch holds the token named by the environment. */
static void maybe_crash(const int32_t *tokens, size_t n)
{
    const char *t = getenv("BITNET_SHIM_CRASH_TOKEN");
    for (size_t i = 0; t && i < n; i++) {
        /* NOLINTNEXTLINE(cert-err34-c): a test's own setting; garbage means token 0. */
        if (tokens[i] == atoi(t))
            raise(SIGSEGV);
    }
}
#endif

int32_t bitnet_eval(bitnet_context *c, const int32_t *tokens, size_t n, float *logits,
                    size_t logits_cap, char *err, size_t err_len)
{
#ifdef BITNET_SHIM_CRASH_TEST
    maybe_crash(tokens, n);
#endif
    if (!c || !tokens || n == 0 || !logits)
        return fail(BITNET_EPARAM, err, err_len, "llama: bad eval arguments");
    if (logits_cap < (size_t)c->model->n_vocab)
        return fail(BITNET_EPARAM, err, err_len, "llama: logits buffer holds %zu floats, need %d",
                    logits_cap, c->model->n_vocab);
    int32_t rc = append(c, tokens, n, err, err_len);
    if (rc)
        return rc;
    const float *l = llama_get_logits_ith(c->lc, -1);
    if (!l)
        return fail(BITNET_EBACKEND, err, err_len, "llama: no logits");
    memcpy(logits, l, sizeof(float) * (size_t)c->model->n_vocab);
    return 0;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

int32_t bitnet_decode_greedy(bitnet_context *c, const int32_t *prompt, size_t n_prompt,
                             uint32_t flags, int32_t *out, size_t cap, size_t *n_out, char *err,
                             size_t err_len)
{
    if (!c || !prompt || n_prompt == 0 || !n_out || (!out && cap))
        return fail(BITNET_EPARAM, err, err_len, "llama: bad decode arguments");
    int32_t rc = append(c, prompt, n_prompt, err, err_len);
    if (rc)
        return rc;
    size_t n = 0;
    while (n < cap) {
        const float *l = llama_get_logits_ith(c->lc, -1);
        if (!l)
            return fail(BITNET_EBACKEND, err, err_len, "llama: no logits");
        int32_t t = argmax(l, c->model->n_vocab);
        out[n++] = t;
        if ((flags & BITNET_DECODE_STOP_AT_EOG) && llama_vocab_is_eog(c->model->vocab, t))
            break;
        if (c->n_past >= c->model->n_ctx)
            break;
        rc = append(c, &t, 1, err, err_len);
        if (rc)
            return rc;
    }
    *n_out = n;
    return 0;
}

int32_t bitnet_context_reset(bitnet_context *c)
{
    if (!c)
        return -EINVAL;
    llama_memory_clear(llama_get_memory(c->lc), true);
    c->n_past = 0;
    return 0;
}
