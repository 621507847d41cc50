/*
 * daemon/models.c - the models bitnetd serves: loading them in the
 * background (each by its own scheduler thread), naming them, listing them,
 * and unloading them. Unloading cancels the model's jobs, queued and running
 * (their final replies say finish_reason "cancelled"), then waits for the
 * scheduler thread to exit before it answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "daemon/limits.h"
#include "daemon/log.h"
#include "daemon/models.h"
#include "daemon/server.h"

const char *model_state_name(enum model_state st)
{
    switch (st) {
    case MODEL_LOADING:
        return "loading";
    case MODEL_READY:
        return "ready";
    case MODEL_UNLOADING:
        return "unloading";
    }
    return "?";
}

/* The default name of a model: its file name without directories and .gguf. */
static void name_from_path(const char *path, char *name, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".gguf") == 0)
        len -= 5;
    if (len >= n)
        len = n - 1;
    memcpy(name, base, len);
    name[len] = '\0';
}

static struct model *find_any(struct server *s, const char *name)
{
    for (struct model *m = s->models; m; m = m->next) {
        if (strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

struct model *models_find(struct server *s, const char *name)
{
    for (struct model *m = s->models; m; m = m->next) {
        if (m->state == MODEL_UNLOADING)
            continue;
        if (!name || strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

int models_load(struct server *s, const char *path, const char *name, const struct pref_list *pref,
                bool strict, struct model **out, char *err, size_t err_len)
{
    char def[64];
    if (!name) {
        name_from_path(path, def, sizeof(def));
        name = def;
    }
    if (!name[0] || strlen(name) >= sizeof(def)) {
        snprintf(err, err_len, "a model name has 1 to %zu bytes", sizeof(def) - 1);
        return BITNET_EPARAM;
    }
    if (!path[0] || strlen(path) >= sizeof(((struct model *)0)->path)) {
        snprintf(err, err_len, "the path is empty or too long");
        return BITNET_EPARAM;
    }
    if (find_any(s, name)) {
        snprintf(err, err_len, "a model named '%s' is already loaded", name);
        return -EEXIST;
    }
    if (s->n_models >= LIMIT_MODELS_MAX) {
        snprintf(err, err_len, "%d models are loaded already", LIMIT_MODELS_MAX);
        return BITNET_ELIMIT;
    }
    struct model *m = calloc(1, sizeof(*m));
    struct plan *plan = calloc(1, sizeof(*plan));
    if (!m || !plan) {
        free(m);
        free(plan);
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->path, sizeof(m->path), "%s", path);
    m->srv = s;
    m->n_seq_max = (int)s->cfg.n_seq_max;
    m->n_ctx = (int)s->cfg.n_ctx;
    m->threads = s->threads;
    m->state = MODEL_LOADING;
    m->refs = 1; /* the list's */
    if (pref)
        m->pref = *pref;
    m->strict = strict;
    struct pref_list scratch;
    int rc = plan_build(s, path, pref_effective(s, &m->pref, &scratch), m->strict || s->strict,
                        NULL, plan, err, err_len);
    if (rc == 0) {
        plan->n_seq_max = m->n_seq_max;
        plan->n_ctx = m->n_ctx;
        plan->threads = m->threads;
        snprintf(m->requested, sizeof(m->requested), "%s", plan->e[0].id);
        m->plan = plan;
        rc = sched_start(m);
        if (rc < 0)
            snprintf(err, err_len, "cannot start a scheduler thread: %s", strerror(-rc));
    }
    if (rc) {
        plan_release(plan);
        free(plan);
        free(m);
        return rc;
    }
    struct model **tail = &s->models;
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
    s->n_models++;
    char q[600];
    log_event(LOG_INFO, "model-loading", "name=%s path=%s", m->name,
              log_quote(m->path, q, sizeof(q)));
    *out = m;
    return 0;
}

void model_unref(struct model *m)
{
    if (--m->refs > 0)
        return;
    if (m->plan) {
        plan_release(m->plan);
        free(m->plan);
    }
    json_decref(m->preference);
    json_decref(m->self_check);
    selfcheck_free(&m->check);
    tokenizer_free(m->tok_owned);
    gguf_close(m->gguf_owned);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    free(m);
}

json_t *model_json(const struct model *m)
{
    bool ready = m->state == MODEL_READY;
    const struct gen_facts *f = &m->f;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:i, s:o}", "name", m->name,
                  "path", m->path, "backend", ready ? f->backend : "", "state",
                  model_state_name(m->state), "arch", ready ? json_string(f->arch) : json_null(),
                  "weights", ready ? json_string(f->weights) : json_null(), "kernel",
                  ready ? json_string(f->kernel) : json_null(), "n_ctx",
                  ready ? json_integer(f->n_ctx) : json_null(), "threads",
                  ready ? json_integer(f->threads) : json_null(), "n_seq_max", m->n_seq_max,
                  "queued", json_integer(m->queued));
    if (!ready)
        return o;
    json_object_set_new(o, "generation", json_integer(f->number));
    json_object_set_new(o, "library", f->library[0] ? json_string(f->library) : json_null());
    json_object_set_new(o, "lm_head", f->lm_head[0] ? json_string(f->lm_head) : json_null());
    json_object_set_new(o, "kv_cache", f->kv_cache[0] ? json_string(f->kv_cache) : json_null());
    json_object_set_new(o, "attention", f->attention[0] ? json_string(f->attention) : json_null());
    json_object_set_new(o, "requested", json_string(m->requested));
    json_object_set_new(o, "fallback", json_boolean(m->fallback));
    json_object_set_new(o, "strict", json_boolean(m->strict || m->srv->strict));
    if (m->preference)
        json_object_set(o, "preference", m->preference);
    if (m->self_check)
        json_object_set(o, "self_check", m->self_check);
    return o;
}

/* Takes plan p's outcome as m's: the preference report, the requested and
 * active entries, and a loud line when it fell back. */
static void take_plan(struct model *m, const struct plan *p, const struct gen_facts *f)
{
    json_decref(m->preference);
    m->preference = plan_json(p);
    snprintf(m->requested, sizeof(m->requested), "%s", p->e[0].id);
    m->fallback = p->active > 0;
    m->f = *f;
    m->format = p->format;
    m->forced = p->active >= 0 ? p->e[p->active].kernel : NULL;
    if (!m->fallback)
        return;
    char why[1200];
    size_t n = 0;
    why[0] = '\0';
    for (int i = 0; i < p->active && n < sizeof(why); i++)
        n += (size_t)snprintf(why + n, sizeof(why) - n, "%s%s: %s", i ? "; " : "", p->e[i].id,
                              p->e[i].reason);
    char q[1300];
    log_event(LOG_WARNING, "fallback", "model=%s requested=%s active=%s kernel=%s reason=%s",
              m->name, p->e[0].id, p->e[p->active].id, f->kernel, log_quote(why, q, sizeof(q)));
}

void models_on_loaded(struct model *m, const struct gen_facts *f)
{
    struct server *s = m->srv;
    take_plan(m, m->plan, f);
    plan_release(m->plan);
    free(m->plan);
    m->plan = NULL;
    m->tok = m->tok_owned;
    if (m->state == MODEL_LOADING)
        m->state = MODEL_READY;
    log_event(LOG_INFO, "model-loaded",
              "name=%s arch=%s weights=%s backend=%s kernel=%s n_ctx=%d threads=%d n_seq_max=%d",
              m->name, f->arch, f->weights, f->backend, f->kernel, f->n_ctx, f->threads,
              f->n_seq_max);
    if (m->load_call) {
        json_t *p = json_pack("{s:o}", "model", model_json(m));
        conn_reply(m->load_call, p, false);
        json_decref(p);
        conn_unref(m->load_call);
        m->load_call = NULL;
    }
    if (m->preload) {
        m->preload = false;
        s->preload_pending--;
        server_maybe_ready(s);
    }
    server_update_status(s);
}

bool models_switch(struct model *m, struct gen *g, const struct plan *p)
{
    if (m->state != MODEL_READY) {
        gen_free(g);
        return false;
    }
    g->f.number = m->f.number + 1;
    struct gen_facts f = g->f;
    pthread_mutex_lock(&m->lock);
    gen_free(m->pending); /* a switch the scheduler has not taken yet is superseded */
    m->pending = g;
    if (selfcheck_copy(&m->check, &g->check) != 0)
        selfcheck_free(&m->check);
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    take_plan(m, p, &f);
    log_event(LOG_NOTICE, "model-switched", "name=%s generation=%d backend=%s kernel=%s", m->name,
              f.number, f.backend, f.kernel);
    server_update_status(m->srv);
    return true;
}

/* The scheduler thread has returned: the load failed, or the model was
 * unloaded (or the daemon stops). */
void models_on_exited(struct model *m)
{
    struct server *s = m->srv;
    pthread_join(m->thread, NULL);
    bool failed = m->tok == NULL;
    char q[700];
    if (failed)
        log_event(LOG_ERR, "model-load-failed", "name=%s path=%s error=%s", m->name,
                  log_quote(m->path, q, sizeof(q)), log_quote(m->load_error, q + 400, 300));
    else
        log_event(LOG_INFO, "model-unloaded", "name=%s", m->name);
    if (m->load_call) {
        json_t *p = json_pack("{s:s, s:s}", "path", m->path, "reason", m->load_error);
        conn_error(m->load_call, "io.bitnetd.Admin.ModelLoadFailed", p);
        json_decref(p);
        conn_unref(m->load_call);
        m->load_call = NULL;
    }
    if (m->unload_call) {
        conn_reply(m->unload_call, NULL, false);
        conn_unref(m->unload_call);
        m->unload_call = NULL;
    }
    if (m->preload) {
        m->preload = false;
        s->preload_pending--;
        s->preload_failed = true;
    }
    for (struct model **pp = &s->models; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    s->n_models--;
    model_unref(m);
    if (s->preload_failed && s->preload_pending == 0 && !s->stopping) {
        s->exit_code = 1;
        server_stop(s, "a --model failed to load");
    }
    server_update_status(s);
    if (s->stopping && !s->models)
        sched_close(s);
}

void models_stop_all(struct server *s)
{
    if (!s->models) {
        sched_close(s);
        return;
    }
    for (struct model *m = s->models; m; m = m->next) {
        m->state = MODEL_UNLOADING;
        sched_stop(m);
    }
}

/* ---- methods ---- */

void models_list(struct conn *c, const struct varlink_call *call)
{
    json_t *list = json_array();
    for (struct model *m = c->srv->models; m; m = m->next)
        json_array_append_new(list, model_json(m));
    json_t *p = json_pack("{s:o}", "models", list);
    conn_reply(c, p, false);
    json_decref(p);
}

void models_load_call(struct conn *c, const struct varlink_call *call)
{
    const char *path = json_string_value(json_object_get(call->parameters, "path"));
    const char *name = json_string_value(json_object_get(call->parameters, "name"));
    char err[512], def[64];
    struct model *m;
    if (!name) {
        name_from_path(path, def, sizeof(def));
        name = def;
    }
    log_event(LOG_INFO, "load-requested", "name=%s uid=%u pid=%d", name, (unsigned)c->uid,
              (int)c->pid);
    struct pref_list pref = {0};
    json_t *pa = json_object_get(call->parameters, "preference");
    if (pa && pref_from_json(c->srv, pa, &pref, err, sizeof(err)) != 0) {
        json_t *p = json_pack("{s:s}", "reason", err);
        conn_error(c, "io.bitnetd.Admin.PreferenceInvalid", p);
        json_decref(p);
        return;
    }
    bool strict = json_is_true(json_object_get(call->parameters, "strict"));
    int rc = models_load(c->srv, path, name, &pref, strict, &m, err, sizeof(err));
    if (rc == -EEXIST) {
        json_t *p = json_pack("{s:s}", "name", name);
        conn_error(c, "io.bitnetd.Admin.ModelExists", p);
        json_decref(p);
        return;
    }
    if (rc != 0) { /* m is set only on success */
        json_t *p = json_pack("{s:s, s:s}", "path", path, "reason", err);
        conn_error(c, "io.bitnetd.Admin.ModelLoadFailed", p);
        json_decref(p);
        return;
    }
    conn_ref(c);
    m->load_call = c;
    server_update_status(c->srv);
}

void models_unload_call(struct conn *c, const struct varlink_call *call)
{
    const char *name = json_string_value(json_object_get(call->parameters, "name"));
    struct model *m = models_find(c->srv, name);
    if (!m || m->unload_call) {
        json_t *p = json_pack("{s:s}", "model", name);
        conn_error(c, "io.bitnetd.Inference.ModelNotFound", p);
        json_decref(p);
        return;
    }
    log_event(LOG_INFO, "unload-requested", "name=%s uid=%u pid=%d", m->name, (unsigned)c->uid,
              (int)c->pid);
    m->state = MODEL_UNLOADING;
    conn_ref(c);
    m->unload_call = c;
    sched_stop(m);
    server_update_status(c->srv);
}
