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

int models_load(struct server *s, const char *path, const char *name, struct model **out, char *err,
                size_t err_len)
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
    if (!m) {
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
    int rc = sched_start(m);
    if (rc < 0) {
        snprintf(err, err_len, "cannot start a scheduler thread: %s", strerror(-rc));
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
    tokenizer_free(m->tok_owned);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    free(m);
}

json_t *model_json(const struct model *m)
{
    bool ready = m->state == MODEL_READY;
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:i, s:o}", "name", m->name,
                     "path", m->path, "backend", "native", "state", model_state_name(m->state),
                     "arch", ready ? json_string(m->arch) : json_null(), "weights",
                     ready ? json_string(m->weights) : json_null(), "kernel",
                     ready ? json_string(m->kernel) : json_null(), "n_ctx",
                     ready ? json_integer(m->info_ctx) : json_null(), "threads",
                     ready ? json_integer(m->info_threads) : json_null(), "n_seq_max", m->n_seq_max,
                     "queued", json_integer(m->queued));
}

void models_on_loaded(struct model *m, const engine_info *info)
{
    struct server *s = m->srv;
    snprintf(m->arch, sizeof(m->arch), "%s", info->arch);
    snprintf(m->weights, sizeof(m->weights), "%s", info->weight_type);
    snprintf(m->kernel, sizeof(m->kernel), "%s", info->kernel);
    snprintf(m->lm_head, sizeof(m->lm_head), "%s", info->lm_head);
    m->info_ctx = info->n_ctx;
    m->info_threads = info->n_threads;
    m->info_seq_max = info->n_seq_max;
    m->tok = m->tok_owned;
    if (m->state == MODEL_LOADING)
        m->state = MODEL_READY;
    log_event(LOG_INFO, "model-loaded",
              "name=%s arch=%s weights=%s kernel=%s n_ctx=%d threads=%d n_seq_max=%d", m->name,
              m->arch, m->weights, m->kernel, m->info_ctx, m->info_threads, m->info_seq_max);
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
    int rc = models_load(c->srv, path, name, &m, err, sizeof(err));
    if (rc == -EEXIST) {
        json_t *p = json_pack("{s:s}", "name", name);
        conn_error(c, "io.bitnetd.Admin.ModelExists", p);
        json_decref(p);
        return;
    }
    if (rc < 0) {
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
