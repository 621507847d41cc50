/*
 * daemon/backends.c - configured backend libraries, the preference list and
 * the plans built from it (daemon/backends.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/analyze.h"
#include "bitnet/config.h"
#include "bitnet/error.h"
#include "daemon/backends.h"
#include "daemon/log.h"
#include "daemon/server.h"
#include "engine/gguf.h"
#include "engine/model_meta.h"

/* ---- library generations ---- */

void libgen_ref(struct libgen *lg)
{
    __atomic_add_fetch(&lg->refs, 1, __ATOMIC_RELAXED);
}

void libgen_unref(struct libgen *lg)
{
    if (!lg || __atomic_sub_fetch(&lg->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    log_event(LOG_INFO, "backend-released", "backend=%s generation=%d", lg->id, lg->number);
    close(lg->memfd);
    free(lg);
}

/* ---- preference lists ---- */

/* Backend ids: letters, digits, '_', '-' and '.', starting with a letter. */
static bool id_valid(const char *id)
{
    if (!isalpha((unsigned char)id[0]))
        return false;
    for (const char *p = id; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return false;
    }
    return true;
}

int pref_parse(const char *text, struct pref_list *out, char *err, size_t err_len)
{
    struct pref_list l = {0};
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, " ,\t");
        if (n == 0)
            break;
        if (l.n == PREF_MAX) {
            snprintf(err, err_len, "a preference list has at most %d entries", PREF_MAX);
            return BITNET_EPARAM;
        }
        if (n >= BACKEND_ID_MAX) {
            snprintf(err, err_len, "preference entry '%.*s...' is longer than %d bytes", 16, p,
                     BACKEND_ID_MAX - 1);
            return BITNET_EPARAM;
        }
        memcpy(l.id[l.n], p, n);
        l.id[l.n][n] = '\0';
        if (!id_valid(l.id[l.n])) {
            snprintf(err, err_len,
                     "preference entry '%s' is not an id (letters, digits, '_', '-', '.')",
                     l.id[l.n]);
            return BITNET_EPARAM;
        }
        for (int i = 0; i < l.n; i++) {
            if (strcmp(l.id[i], l.id[l.n]) == 0) {
                snprintf(err, err_len, "preference entry '%s' appears twice", l.id[i]);
                return BITNET_EPARAM;
            }
        }
        l.n++;
        p += n;
    }
    *out = l;
    return 0;
}

static void pref_add(struct pref_list *l, const char *id)
{
    for (int i = 0; i < l->n; i++) {
        if (strcmp(l->id[i], id) == 0)
            return;
    }
    if (l->n < PREF_MAX)
        snprintf(l->id[l->n++], BACKEND_ID_MAX, "%s", id);
}

/* Adds every available kernel of bitnetd's own (native or its CUDA
 * library) with instruction set isa, in registry order. */
static void pref_add_isa(struct pref_list *l, bitnet_isa isa)
{
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        if (k->isa != isa || k->provider == BITNET_PROVIDER_EXTERNAL)
            continue;
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, NULL, &st);
        if (st.available)
            pref_add(l, k->name);
    }
}

void pref_default(const struct server *s, struct pref_list *out)
{
    struct pref_list l = {0};
    for (int i = 0; i < s->n_slots; i++) {
        const struct backend_slot *b = &s->slots[i];
        if (b->cur && strcmp(b->cur->info.device, "cuda") == 0)
            pref_add(&l, b->id);
    }
    pref_add_isa(&l, BITNET_ISA_AVX512);
    pref_add_isa(&l, BITNET_ISA_AVX2);
    pref_add_isa(&l, BITNET_ISA_NEON);
    for (int i = 0; i < s->n_slots; i++) {
        if (s->slots[i].cur)
            pref_add(&l, s->slots[i].id);
    }
    pref_add_isa(&l, BITNET_ISA_SCALAR);
    *out = l;
}

const struct pref_list *pref_effective(const struct server *s, const struct pref_list *model_pref,
                                       struct pref_list *scratch)
{
    if (model_pref && model_pref->n > 0)
        return model_pref;
    if (s->pref.n > 0)
        return &s->pref;
    pref_default(s, scratch);
    return scratch;
}

struct backend_slot *backends_find(struct server *s, const char *id)
{
    for (int i = 0; i < s->n_slots; i++) {
        if (strcmp(s->slots[i].id, id) == 0)
            return &s->slots[i];
    }
    return NULL;
}

int pref_check_known(const struct server *s, const char *id, char *err, size_t err_len)
{
    const bitnet_kernel *k;
    if (strcmp(id, "native") == 0 || bitnet_kernel_lookup(id, &k, NULL, 0) == 0 ||
        backends_find((struct server *)s, id))
        return 0;
    char ids[BACKEND_SLOTS * BACKEND_ID_MAX] = " none";
    for (int i = 0, n = 0; i < s->n_slots; i++)
        n += snprintf(ids + n, sizeof(ids) - (size_t)n, " %s", s->slots[i].id);
    snprintf(err, err_len,
             "'%s' is neither a kernel id (bitnetctl kernels), 'native', nor a configured "
             "backend library (configured:%s)",
             id, ids);
    return BITNET_EUNKNOWN_ID;
}

int pref_from_json(const struct server *s, const json_t *array, struct pref_list *out, char *err,
                   size_t err_len)
{
    struct pref_list l = {0};
    if (!json_is_array(array)) {
        snprintf(err, err_len, "preference is not an array of ids");
        return BITNET_EPARAM;
    }
    char text[PREF_MAX * BACKEND_ID_MAX];
    size_t n = 0;
    text[0] = '\0';
    for (size_t i = 0; i < json_array_size(array); i++) {
        const char *id = json_string_value(json_array_get(array, i));
        if (!id || !id[0] || strpbrk(id, " ,\t") || n + strlen(id) + 2 > sizeof(text)) {
            snprintf(err, err_len, "preference entry %zu is not an id", i);
            return BITNET_EPARAM;
        }
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s ", id);
    }
    int rc = pref_parse(text, &l, err, err_len);
    for (int i = 0; rc == 0 && i < l.n; i++)
        rc = pref_check_known(s, l.id[i], err, err_len);
    if (rc == 0)
        *out = l;
    return rc;
}

/* ---- plans ---- */

/* Reads the weight format of the model at path. */
static int model_format(const char *path, bitnet_format *out, char *err, size_t err_len)
{
    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, err, err_len);
    if (rc)
        return rc;
    model_meta *meta = NULL;
    rc = model_meta_load(f, &meta, err, err_len);
    if (rc == 0) {
        if (!model_dtype_format(meta->weight_dtype, out)) {
            snprintf(err, err_len, "%s: the ternary matrices are %s, which no ternary kernel reads",
                     path, gguf_dtype_name(meta->weight_dtype));
            rc = BITNET_ETYPE;
        }
        model_meta_free(meta);
    }
    gguf_close(f);
    return rc;
}

/* Whether a native kernel of format kf can run weights of format mf (the
 * TL kernels run I2_S weights repacked at load). */
static bool format_applies(bitnet_format kf, bitnet_format mf)
{
    if (kf == mf || kf == BITNET_FORMAT_ANY)
        return true;
    return mf == BITNET_FORMAT_I2S && (kf == BITNET_FORMAT_TL1 || kf == BITNET_FORMAT_TL2);
}

static void entry_skip(struct plan_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void entry_skip(struct plan_entry *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
    e->kind = PLAN_SKIP;
    snprintf(e->state, sizeof(e->state), "skipped");
}

/* Points e at library slot b (or at replace, when it stands for b). */
static void entry_library(struct plan_entry *e, const struct backend_slot *b,
                          struct libgen *replace)
{
    struct libgen *lg = replace && strcmp(replace->id, b->id) == 0 ? replace : b->cur;
    if (!lg) {
        entry_skip(e, "backend library refused: %s", b->reason);
        return;
    }
    e->kind = PLAN_LIBRARY;
    e->lg = lg;
    libgen_ref(lg);
}

/* The slot that provides external kernel k ("llama.cuda"): one configured
 * under that id, or one under the family's id ("llama") whose library
 * computes on k's device. */
static const struct backend_slot *external_slot(const struct server *s, const bitnet_kernel *k)
{
    char family[BACKEND_ID_MAX];
    snprintf(family, sizeof(family), "%s", k->name);
    char *dot = strchr(family, '.');
    if (dot)
        *dot = '\0';
    const char *dev = bitnet_device_name(k->device);
    for (int i = 0; i < s->n_slots; i++) {
        const struct backend_slot *b = &s->slots[i];
        if (strcmp(b->id, k->name) == 0)
            return b;
    }
    for (int i = 0; i < s->n_slots; i++) {
        const struct backend_slot *b = &s->slots[i];
        if (strcmp(b->id, family) == 0 && b->cur && strcmp(b->cur->info.device, dev) == 0)
            return b;
    }
    return NULL;
}

/* Fills entry e for id; returns false when the entry does not apply to the
 * model's format and is left out of the plan. */
static bool plan_entry_fill(struct server *s, struct plan *p, struct plan_entry *e, const char *id,
                            struct libgen *replace)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->state, sizeof(e->state), "untried");
    if (strcmp(id, "native") == 0) {
        e->kind = PLAN_NATIVE;
        return true;
    }
    const struct backend_slot *b = backends_find(s, id);
    if (b) {
        entry_library(e, b, replace);
        return true;
    }
    const bitnet_kernel *k;
    if (bitnet_kernel_lookup(id, &k, NULL, 0) != 0) {
        entry_skip(e, "not a kernel id and no backend library is configured under this id");
        return true;
    }
    if (!format_applies(k->format, p->format))
        return false;
    e->kernel = k;
    if (k->provider == BITNET_PROVIDER_EXTERNAL) {
        const struct backend_slot *xb = external_slot(s, k);
        if (!xb) {
            entry_skip(e,
                       "provided by an external library, and no backend library configured "
                       "(backends = ID=PATH) computes on %s under this id or '%.*s'",
                       bitnet_device_name(k->device), (int)strcspn(k->name, "."), k->name);
            return true;
        }
        e->kernel = NULL; /* the library chooses its own kernels */
        entry_library(e, xb, replace);
        return true;
    }
    bitnet_kernel_status st;
    bitnet_kernel_status_get(k, NULL, &st);
    if (k->provider == BITNET_PROVIDER_CUDA_LIBRARY) {
        const struct backend_slot *cb = backends_find(s, "cuda");
        if (!cb) {
            entry_skip(e, "runs in bitnetd's CUDA backend library, and none is configured "
                          "(backends = cuda=PATH/libbitnet-cuda.so)");
            return true;
        }
        entry_library(e, cb, replace);
        return true;
    }
    if (!st.available) {
        entry_skip(e, "%s", st.reason);
        return true;
    }
    e->kind = PLAN_NATIVE;
    return true;
}

int plan_build(struct server *s, const char *path, const struct pref_list *list, bool strict,
               struct libgen *replace, struct plan *p, char *err, size_t err_len)
{
    memset(p, 0, sizeof(*p));
    p->active = -1;
    snprintf(p->path, sizeof(p->path), "%s", path);
    snprintf(p->kv_type, sizeof(p->kv_type), "%s", s->cfg.kv_type);
    p->strict = strict;
    int rc = model_format(path, &p->format, err, err_len);
    if (rc)
        return rc;
    p->has_format = true;
    for (int i = 0; i < list->n; i++) {
        if (plan_entry_fill(s, p, &p->e[p->n], list->id[i], replace))
            p->n++;
    }
    if (p->n == 0) {
        snprintf(err, err_len,
                 "no entry of the preference list applies to %s weights (the list:%s); add a "
                 "kernel id of that format, a backend library or 'native'",
                 bitnet_format_name(p->format), list->n ? "" : " empty");
        for (int i = 0; i < list->n; i++) {
            size_t n = strlen(err);
            snprintf(err + n, err_len - n, " %s", list->id[i]);
        }
        return BITNET_EPARAM;
    }
    return 0;
}

void plan_release(struct plan *p)
{
    for (int i = 0; i < p->n; i++) {
        libgen_unref(p->e[i].lg);
        p->e[i].lg = NULL;
    }
}

json_t *plan_json(const struct plan *p)
{
    json_t *a = json_array();
    for (int i = 0; i < p->n; i++) {
        const struct plan_entry *e = &p->e[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:s*}", "id", e->id, "state", e->state,
                                           "reason", e->reason[0] ? e->reason : NULL));
    }
    return a;
}

/* ---- the manager ---- */

int backends_load_library(const char *exe, const char *dir_list, const char *id, const char *path,
                          int number, struct libgen **out, char *err, size_t err_len)
{
    const char *dirs[17] = {0};
    char dirbuf[4096];
    snprintf(dirbuf, sizeof(dirbuf), "%s", dir_list);
    int nd = 0;
    for (char *save = NULL, *d = strtok_r(dirbuf, ":", &save); d && nd < 16;
         d = strtok_r(NULL, ":", &save))
        dirs[nd++] = d;
    validate_opts o = {.dirs = dirs, .uid = geteuid()};
    struct libgen *lg = calloc(1, sizeof(*lg));
    if (!lg) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    int rc = backend_lib_copy(path, &o, &lg->memfd, &lg->size, lg->resolved, sizeof(lg->resolved),
                              err, err_len);
    if (rc) {
        free(lg);
        return rc;
    }
    snprintf(lg->id, sizeof(lg->id), "%s", id);
    snprintf(lg->path, sizeof(lg->path), "%s", path);
    snprintf(lg->dirs, sizeof(lg->dirs), "%s", dir_list);
    snprintf(lg->exe, sizeof(lg->exe), "%s", exe);
    lg->number = number;
    lg->refs = 1;
    /* Load it once in a runner: the symbols, the ABI version and what it
     * says about itself; the runner quits again. */
    backend_runner *r = NULL;
    rc = libgen_runner(lg, &r, &lg->info, err, err_len);
    backend_runner_free(r);
    if (rc) {
        libgen_unref(lg);
        return rc;
    }
    /* A library that says it computes on another device than its id names
     * is a mismatch: "llama.cuda" must be a CUDA build, "llama.cpu" not. */
    const char *dot = strrchr(id, '.');
    const char *dev = lg->info.device;
    if (dot && (strcmp(dot + 1, "cpu") == 0 || strcmp(dot + 1, "cuda") == 0) &&
        strcmp(dot + 1, dev) != 0) {
        snprintf(err, err_len, "%s: configured as %s but the library computes on %s (it says: %s)",
                 path, id, dev, lg->info.detail);
        libgen_unref(lg);
        return BITNET_EBACKEND;
    }
    *out = lg;
    return 0;
}

int libgen_runner(const struct libgen *lg, backend_runner **out, runner_info *info, char *err,
                  size_t err_len)
{
    runner_library rl = {.memfd = lg->memfd,
                         .size = lg->size,
                         .path = lg->path,
                         .resolved = lg->resolved,
                         .dirs = lg->dirs,
                         .uid = geteuid()};
    return backend_runner_start(lg->exe, &rl, out, info, err, err_len);
}

/* Parses `backends` ("id=path, id=path") into the slots. */
static int slots_parse(struct server *s, char *err, size_t err_len)
{
    char buf[sizeof(s->cfg.backends)];
    snprintf(buf, sizeof(buf), "%s", s->cfg.backends);
    s->n_slots = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        char *eq = strchr(t, '=');
        if (!*t)
            continue;
        if (!eq) {
            snprintf(err, err_len, "backends: '%s' is not ID=PATH", t);
            return BITNET_EPARAM;
        }
        *eq = '\0';
        char *path = eq + 1;
        size_t pl = strlen(path);
        while (pl && path[pl - 1] == ' ')
            path[--pl] = '\0';
        if (!id_valid(t) || strlen(t) >= BACKEND_ID_MAX || strcmp(t, "native") == 0) {
            snprintf(err, err_len, "backends: '%s' is not a backend id (or is 'native')", t);
            return BITNET_EPARAM;
        }
        const bitnet_kernel *k;
        if (bitnet_kernel_lookup(t, &k, NULL, 0) == 0 && k->provider != BITNET_PROVIDER_EXTERNAL) {
            snprintf(err, err_len, "backends: '%s' is a native kernel id", t);
            return BITNET_EPARAM;
        }
        if (path[0] != '/' || pl >= sizeof(s->slots[0].path)) {
            snprintf(err, err_len, "backends: the path of %s must be absolute", t);
            return BITNET_EPARAM;
        }
        if (s->n_slots == BACKEND_SLOTS || backends_find(s, t)) {
            snprintf(err, err_len, "backends: %s",
                     s->n_slots == BACKEND_SLOTS ? "too many libraries" : "an id appears twice");
            return BITNET_EPARAM;
        }
        struct backend_slot *b = &s->slots[s->n_slots++];
        memset(b, 0, sizeof(*b));
        snprintf(b->id, sizeof(b->id), "%s", t);
        snprintf(b->path, sizeof(b->path), "%s", path);
    }
    return 0;
}

int backends_init(struct server *s, char *err, size_t err_len)
{
    int rc = slots_parse(s, err, err_len);
    if (rc)
        return rc;
    if (s->cfg.preference[0]) {
        rc = pref_parse(s->cfg.preference, &s->pref, err, err_len);
        if (rc)
            return rc;
        for (int i = 0; i < s->pref.n; i++) {
            rc = pref_check_known(s, s->pref.id[i], err, err_len);
            if (rc)
                return rc;
        }
    }
    for (int i = 0; i < s->n_slots; i++) {
        struct backend_slot *b = &s->slots[i];
        b->generations = 1;
        b->analysis = backends_analysis(b->path);
        rc = backends_check_analysis(b->id, b->path, b->analysis, b->reason, sizeof(b->reason));
        if (rc == 0)
            rc = backends_load_library(s->exe, s->cfg.backend_dirs, b->id, b->path, 1, &b->cur,
                                       b->reason, sizeof(b->reason));
        char q[600];
        if (rc) {
            log_event(LOG_WARNING, "backend-refused", "backend=%s path=%s reason=%s", b->id,
                      log_quote(b->path, q, sizeof(q)), b->reason);
            continue;
        }
        const runner_info *d = &b->cur->info;
        log_event(LOG_INFO, "backend-loaded", "backend=%s path=%s version=%s device=%s", b->id,
                  log_quote(b->path, q, sizeof(q)), d->version, d->device);
    }
    return 0;
}

void backends_shutdown(struct server *s)
{
    for (int i = 0; i < s->n_slots; i++) {
        libgen_unref(s->slots[i].cur);
        s->slots[i].cur = NULL;
        json_decref(s->slots[i].analysis);
        s->slots[i].analysis = NULL;
    }
}

int backends_check_analysis(const char *id, const char *path, const json_t *analysis, char *err,
                            size_t err_len)
{
    const char *dot = strrchr(id, '.');
    const json_t *cuda = json_object_get(analysis, "cuda");
    if (!dot || !json_is_object(cuda))
        return 0;
    bool says_cuda = json_is_true(json_object_get(cuda, "inference"));
    const char *why = json_string_value(json_array_get(json_object_get(cuda, "reasons"), 0));
    if (strcmp(dot + 1, "cpu") == 0 && says_cuda) {
        snprintf(err, err_len,
                 "%s: configured as %s (CPU) but its symbols say CUDA: %s; configure it under a "
                 "CUDA id",
                 path, id, why ? why : "");
        return BITNET_EBACKEND;
    }
    if (strcmp(dot + 1, "cuda") == 0 && !says_cuda) {
        snprintf(err, err_len,
                 "%s: configured as %s (CUDA) but its symbols say CPU only: %s; configure it "
                 "under a CPU id",
                 path, id, why ? why : "");
        return BITNET_EBACKEND;
    }
    return 0;
}

json_t *backends_analysis(const char *path)
{
    json_t *an = NULL;
    char e[256];
    if (analyze_library(path, &an, e, sizeof(e)) != 0)
        return json_pack("{s:s}", "error", e);
    json_t *sum = json_object();
    const char *keys[] = {"kind", "cuda", "inference", "formats", "kernels", "quantization"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_t *v = json_object_get(an, keys[k]);
        if (v)
            json_object_set(sum, keys[k], v);
    }
    json_decref(an);
    return sum;
}

json_t *backends_json(const struct server *s)
{
    json_t *a = json_array();
    json_array_append_new(a,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:b}", "id", "native",
                                    "provider", "bitnetd", "library", "(built in)", "version",
                                    BITNET_VERSION, "device", "cpu", "abi", (int)BITNET_ABI_VERSION,
                                    "state", "loaded", "generation", 1, "available", 1));
    for (int i = 0; i < s->n_slots; i++) {
        const struct backend_slot *b = &s->slots[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:b}", "id", b->id, "provider",
                              "backend library", "library", b->path, "generation",
                              b->cur ? b->cur->number : 0, "available", b->cur != NULL);
        if (b->cur) {
            const struct libgen *l = b->cur;
            json_object_set_new(o, "state", json_string(b->busy ? "reloading" : "loaded"));
            json_object_set_new(o, "resolved", json_string(l->resolved));
            json_object_set_new(o, "version", json_string(l->info.version));
            json_object_set_new(o, "device", json_string(l->info.device));
            json_object_set_new(o, "detail", json_string(l->info.detail));
            json_object_set_new(o, "abi", json_integer(l->info.abi_version));
            json_object_set_new(o, "isolation", json_string("process"));
        } else {
            json_object_set_new(o, "state", json_string("refused"));
        }
        json_object_set_new(o, "reason", b->reason[0] ? json_string(b->reason) : json_null());
        if (b->analysis)
            json_object_set(o, "analysis", b->analysis);
        json_array_append_new(a, o);
    }
    return a;
}

json_t *backends_preference_json(const struct server *s)
{
    struct pref_list scratch;
    const struct pref_list *l = pref_effective(s, NULL, &scratch);
    json_t *a = json_array();
    for (int i = 0; i < l->n; i++) {
        const char *id = l->id[i];
        const char *state = "available";
        char reason[PREF_REASON_MAX] = "";
        const struct backend_slot *b = backends_find((struct server *)s, id);
        const bitnet_kernel *k;
        if (b) {
            if (!b->cur) {
                state = "unavailable";
                snprintf(reason, sizeof(reason), "library refused: %s", b->reason);
            }
        } else if (strcmp(id, "native") != 0 && bitnet_kernel_lookup(id, &k, NULL, 0) == 0 &&
                   k->provider == BITNET_PROVIDER_BITNETD) {
            bitnet_kernel_status st;
            bitnet_kernel_status_get(k, NULL, &st);
            if (!st.available) {
                state = "unavailable";
                snprintf(reason, sizeof(reason), "%s", st.reason);
            }
        }
        json_array_append_new(a, json_pack("{s:s, s:s, s:s*}", "id", id, "state", state, "reason",
                                           reason[0] ? reason : NULL));
    }
    return json_pack("{s:o, s:s, s:b}", "entries", a, "source",
                     s->pref.n ? (s->pref_from_call ? "SetPreference" : "configuration")
                               : "built-in ranking",
                     "strict", s->strict);
}
