/*
 * daemon/reload.c - switching models to new generations at run time:
 * io.bitnetd.Admin.SetPreference (a new preference list: models whose
 * choice changes get a new generation) and io.bitnetd.Admin.ReloadLibrary
 * (a new load of a backend library: models running in it get a generation
 * in the new load).
 *
 * Both follow the same steps. On the loop: check the call, note the models
 * concerned and what each needs (a plan). On the worker thread: load the
 * library (a reload), make each new generation, run its self-check and
 * compare it with the model's current one. Back on the loop: when every
 * step worked, hand each generation to its model's scheduler (new jobs go
 * there; running jobs finish on the old one, which the scheduler frees after
 * its last job), and answer. When a step failed, free what was made: the
 * old generations keep serving, and the answer says which step failed and
 * why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/error.h"
#include "daemon/backends.h"
#include "daemon/log.h"
#include "daemon/models.h"
#include "daemon/server.h"

/* One model to switch. */
struct switch_item {
    struct model *m; /* referenced */
    struct plan plan;
    struct gen *g; /* made by the worker */
    int rc;
    bool compared, match;
    double cosine, max_diff;
    int ref_argmax; /* the current generation's self-check argmax */
};

struct switch_op {
    struct conn *c;
    struct server *s;
    bool reload; /* ReloadLibrary, else SetPreference */
    /* ReloadLibrary */
    char id[BACKEND_ID_MAX];
    char path[4096];
    char dirs[4096];
    char exe[4096];
    int number;
    struct libgen *lg; /* the new load */
    json_t *analysis;
    /* SetPreference: the lists to restore when a strict switch fails */
    bool restore;
    struct model *pref_model; /* the list changed was this model's, else the global one */
    struct pref_list old_pref;
    bool old_strict, old_from_call;
    /* both */
    int n;
    struct switch_item *items;
    int rc;
    double t_start, validate_ms, work_ms; /* the call's start; the worker's steps */
    char stage[16]; /* where it failed: "validate", "load", "self-check", "switch" */
    char error[1024];
};

static void error_reply(struct conn *c, const char *error, json_t *params)
{
    conn_error(c, error, params);
    json_decref(params);
}

static void op_free(struct switch_op *op)
{
    for (int i = 0; i < op->n; i++) {
        struct switch_item *it = &op->items[i];
        gen_free(it->g);
        plan_release(&it->plan);
        model_unref(it->m);
    }
    free(op->items);
    libgen_unref(op->lg);
    json_decref(op->analysis);
    conn_unref(op->c);
    free(op);
}

/* Makes and checks item it's generation (worker thread). */
static int make_gen(struct switch_item *it, char *err, size_t err_len)
{
    struct model *m = it->m;
    int rc = gen_create(&it->plan, m->tok, &it->g);
    if (rc) {
        snprintf(err, err_len, "model %s: %.900s", m->name, it->plan.error);
        return rc;
    }
    struct selfcheck ref = {0};
    pthread_mutex_lock(&m->lock);
    int crc = selfcheck_copy(&ref, &m->check);
    pthread_mutex_unlock(&m->lock);
    if (crc == 0 && ref.logits) {
        it->compared = true;
        it->ref_argmax = ref.argmax;
        it->match = selfcheck_compare(&ref, &it->g->check, &it->cosine, &it->max_diff);
    }
    selfcheck_free(&ref);
    return 0;
}

/*
 * Pauses (on) or resumes m's scheduler while its new generation loads and
 * runs its self-check, when the two generations' compute threads would not
 * fit the machine's CPUs side by side: sharing the cores, each slows the
 * other far more than a pause costs (llama.cpp's threads spin while they
 * wait for each other), and a streaming client waited seconds between
 * tokens. A pause costs it the load and self-check time instead
 * (bench/bench_reload.py measures both).
 */
static void hold(struct model *m, bool on)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (on && 2L * m->threads <= cpus)
        return;
    pthread_mutex_lock(&m->lock);
    m->hold = on;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

static void op_run(void *arg)
{
    struct switch_op *op = arg;
    double t0 = backends_now_ms();
    if (op->reload) {
        snprintf(op->stage, sizeof(op->stage), "validate");
        op->analysis = backends_analysis(op->path);
        op->rc =
            backends_check_analysis(op->id, op->path, op->analysis, op->error, sizeof(op->error));
        if (op->rc == 0)
            op->rc = backends_load_library(op->exe, op->dirs, op->id, op->path, op->number, &op->lg,
                                           op->error, sizeof(op->error));
        op->validate_ms = backends_now_ms() - t0;
        if (op->rc)
            return;
        for (int i = 0; i < op->n; i++) {
            struct plan_entry *e = &op->items[i].plan.e[0];
            e->kind = PLAN_LIBRARY;
            e->lg = op->lg;
            libgen_ref(op->lg);
        }
    }
    snprintf(op->stage, sizeof(op->stage), "load");
    for (int i = 0; i < op->n; i++) {
        struct switch_item *it = &op->items[i];
        hold(it->m, true);
        it->rc = make_gen(it, op->error, sizeof(op->error));
        hold(it->m, false);
        if (it->rc) {
            op->rc = it->rc;
            return;
        }
        if (it->compared && !it->match && it->plan.strict) {
            snprintf(op->stage, sizeof(op->stage), "self-check");
            snprintf(op->error, sizeof(op->error),
                     "model %s: the new generation's self-check logits differ from the current "
                     "one's (cosine %.6f, max |diff| %.4g, argmax %d vs %d) and strict mode "
                     "refuses the switch",
                     it->m->name, it->cosine, it->max_diff, it->g->check.argmax, it->ref_argmax);
            op->rc = BITNET_EBACKEND;
            return;
        }
    }
    op->work_ms = backends_now_ms() - t0;
}

static json_t *item_json(const struct switch_item *it, bool switched)
{
    json_t *o = json_pack("{s:s, s:b}", "name", it->m->name, "switched", switched);
    if (it->g) {
        json_object_set_new(o, "backend", json_string(it->g->f.backend));
        json_object_set_new(o, "kernel", json_string(it->g->f.kernel));
    }
    if (it->g)
        json_object_set_new(
            o, "timings",
            json_pack("{s:f, s:f}", "load_ms", it->g->load_ms, "self_check_ms", it->g->check_ms));
    if (it->compared)
        json_object_set_new(o, "self_check",
                            json_pack("{s:b, s:b, s:f, s:f}", "compared", 1, "match", it->match,
                                      "cosine", it->cosine, "max_abs_diff", it->max_diff));
    else
        json_object_set_new(o, "self_check", json_pack("{s:b}", "compared", 0));
    return o;
}

/* Hands every generation over (loop). */
static json_t *switch_all(struct switch_op *op)
{
    json_t *models = json_array();
    for (int i = 0; i < op->n; i++) {
        struct switch_item *it = &op->items[i];
        struct model *m = it->m;
        m->switching = false;
        json_t *ij = item_json(it, m->state == MODEL_READY);
        struct gen *g = it->g;
        it->g = NULL;
        if (models_switch(m, g, &it->plan)) {
            json_object_set_new(ij, "generation", json_integer(m->f.number));
            json_decref(m->self_check);
            m->self_check = json_incref(json_object_get(ij, "self_check"));
            if (it->compared && !it->match)
                log_event(LOG_WARNING, "self-check-mismatch",
                          "model=%s generation=%d cosine=%.6f max_abs_diff=%.4g", m->name,
                          m->f.number, it->cosine, it->max_diff);
        }
        json_array_append_new(models, ij);
    }
    return models;
}

static void op_done(void *arg)
{
    struct switch_op *op = arg;
    struct server *s = op->s;
    for (int i = 0; i < op->n; i++)
        op->items[i].m->switching = false;
    if (op->reload) {
        struct backend_slot *b = backends_find(s, op->id);
        b->busy = false;
        if (op->rc == 0) {
            libgen_unref(b->cur);
            b->cur = op->lg;
            op->lg = NULL;
            b->reason[0] = '\0';
            snprintf(b->path, sizeof(b->path), "%s", op->path);
            json_decref(b->analysis);
            b->analysis = op->analysis;
            op->analysis = NULL;
            json_t *models = switch_all(op);
            const runner_info *d = &b->cur->info;
            log_event(LOG_NOTICE, "backend-reloaded",
                      "backend=%s generation=%d version=%s models=%d", b->id, b->cur->number,
                      d->version, op->n);
            json_t *p =
                json_pack("{s:{s:s, s:s, s:i, s:s, s:s, s:s}, s:o}", "backend", "id", b->id,
                          "library", b->path, "generation", b->cur->number, "version", d->version,
                          "device", d->device, "detail", d->detail, "models", models);
            json_object_set_new(p, "timings",
                                json_pack("{s:f, s:f, s:f}", "validate_ms", op->validate_ms,
                                          "worker_ms", op->work_ms, "total_ms",
                                          backends_now_ms() - op->t_start));
            conn_reply(op->c, p, false);
            json_decref(p);
        } else {
            char q[1100];
            log_event(LOG_WARNING, "reload-failed", "backend=%s stage=%s reason=%s keeping=%s",
                      op->id, op->stage, log_quote(op->error, q, sizeof(q)),
                      b->cur ? "old-generation" : "nothing");
            error_reply(op->c, "io.bitnetd.Admin.ReloadFailed",
                        json_pack("{s:s, s:s, s:s, s:s}", "backend", op->id, "path", op->path,
                                  "stage", op->stage, "reason", op->error));
        }
    } else if (op->rc == 0) {
        json_t *models = switch_all(op);
        json_t *p =
            json_pack("{s:o, s:o}", "preference", backends_preference_json(s), "models", models);
        conn_reply(op->c, p, false);
        json_decref(p);
    } else {
        bool strict = s->strict || (op->pref_model && op->pref_model->strict);
        if (op->restore) {
            if (op->pref_model) {
                op->pref_model->pref = op->old_pref;
                op->pref_model->strict = op->old_strict;
            } else {
                s->pref = op->old_pref;
                s->strict = op->old_strict;
                s->pref_from_call = op->old_from_call;
            }
        }
        const char *error = strcmp(op->stage, "plan") == 0 ? "io.bitnetd.Admin.PreferenceInvalid"
                            : strict                       ? "io.bitnetd.Admin.FallbackRefused"
                                                           : "io.bitnetd.Admin.SwitchFailed";
        error_reply(op->c, error, json_pack("{s:s}", "reason", op->error));
    }
    server_update_status(s);
    op_free(op);
}

/* Ends c's call and the connection: out of memory, no answer is possible. */
static void out_of_memory(struct conn *c)
{
    conn_close(c, "out of memory");
    conn_error(c, "io.bitnetd.Query.ProtocolError", NULL);
}

static void submit(struct switch_op *op)
{
    for (int i = 0; i < op->n; i++)
        op->items[i].m->switching = true;
    if (work_submit(op->s, op_run, op_done, op) == 0)
        return;
    for (int i = 0; i < op->n; i++)
        op->items[i].m->switching = false;
    out_of_memory(op->c);
    op_free(op);
}

/* A new operation for the call on c, or NULL after ending the call (out of
 * memory). */
static struct switch_op *op_new(struct conn *c, int max_items)
{
    struct switch_op *op = calloc(1, sizeof(*op));
    if (op)
        op->items = calloc((size_t)(max_items > 0 ? max_items : 1), sizeof(*op->items));
    if (!op || !op->items) {
        free(op);
        out_of_memory(c);
        return NULL;
    }
    op->c = c;
    op->s = c->srv;
    op->t_start = backends_now_ms();
    conn_ref(c);
    return op;
}

static void add_item(struct switch_op *op, struct model *m)
{
    struct switch_item *it = &op->items[op->n++];
    it->m = m;
    m->refs++;
}

/* ---- SetPreference ---- */

/* Whether plan p's first entry that may load is what m runs now, so no
 * switch is needed. */
static bool plan_keeps(const struct model *m, const struct plan *p)
{
    for (int i = 0; i < p->n; i++) {
        const struct plan_entry *e = &p->e[i];
        if (e->kind == PLAN_SKIP)
            continue;
        if (e->kind == PLAN_LIBRARY)
            return strcmp(m->f.backend, e->lg->id) == 0 && m->f.lib_number == e->lg->number &&
                   e->kernel == m->forced;
        if (strcmp(m->f.backend, "native") != 0)
            return false;
        if (e->kernel)
            return strcmp(e->kernel->name, m->f.kernel) == 0;
        const bitnet_kernel *k = bitnet_kernel_select(m->format, NULL);
        return k && strcmp(k->name, m->f.kernel) == 0;
    }
    return false;
}

void backends_set_preference_call(struct conn *c, const struct varlink_call *call)
{
    struct server *s = c->srv;
    char err[1024];
    struct pref_list list = {0};
    if (pref_from_json(s, json_object_get(call->parameters, "preference"), &list, err,
                       sizeof(err)) != 0) {
        error_reply(c, "io.bitnetd.Admin.PreferenceInvalid", json_pack("{s:s}", "reason", err));
        return;
    }
    const char *name = json_string_value(json_object_get(call->parameters, "model"));
    json_t *js = json_object_get(call->parameters, "strict");
    struct model *only = NULL;
    if (name && !(only = models_find(s, name))) {
        error_reply(c, "io.bitnetd.Inference.ModelNotFound", json_pack("{s:s}", "model", name));
        return;
    }
    struct switch_op *op = op_new(c, s->n_models);
    if (!op)
        return;
    op->restore = true;
    op->pref_model = only;
    if (only) {
        op->old_pref = only->pref;
        op->old_strict = only->strict;
        only->pref = list;
        if (js)
            only->strict = json_is_true(js);
    } else {
        op->old_pref = s->pref;
        op->old_strict = s->strict;
        op->old_from_call = s->pref_from_call;
        s->pref = list;
        s->pref_from_call = true;
        if (js)
            s->strict = json_is_true(js);
    }
    log_event(LOG_NOTICE, "preference-set", "model=%s entries=%d strict=%s uid=%u",
              only ? only->name : "(all)", list.n, (only ? only->strict : s->strict) ? "yes" : "no",
              (unsigned)c->uid);
    for (struct model *m = s->models; m; m = m->next) {
        if (m->state != MODEL_READY || (only && m != only) || (!only && m->pref.n > 0))
            continue;
        if (m->switching) {
            snprintf(err, sizeof(err), "model %s is being switched already; try again", m->name);
            op->rc = -EBUSY;
            break;
        }
        struct pref_list scratch;
        struct plan p;
        int rc = plan_build(s, m->path, pref_effective(s, &m->pref, &scratch),
                            m->strict || s->strict, NULL, &p, err, sizeof(err));
        if (rc) {
            op->rc = rc;
            break;
        }
        p.n_seq_max = m->n_seq_max;
        p.n_ctx = m->n_ctx;
        p.threads = m->threads;
        if (plan_keeps(m, &p)) {
            plan_release(&p);
            continue;
        }
        add_item(op, m);
        op->items[op->n - 1].plan = p;
    }
    if (op->rc) {
        snprintf(op->error, sizeof(op->error), "%s", err);
        snprintf(op->stage, sizeof(op->stage), "plan");
        op_done(op); /* restores the lists and answers */
        return;
    }
    submit(op);
}

/* ---- ReloadLibrary ---- */

void backends_reload_library_call(struct conn *c, const struct varlink_call *call)
{
    struct server *s = c->srv;
    const char *id = json_string_value(json_object_get(call->parameters, "backend"));
    const char *path = json_string_value(json_object_get(call->parameters, "path"));
    struct backend_slot *b = backends_find(s, id);
    if (!b) {
        error_reply(c, "io.bitnetd.Admin.BackendNotFound", json_pack("{s:s}", "backend", id));
        return;
    }
    if (b->busy) {
        error_reply(c, "io.bitnetd.Admin.ReloadInProgress", json_pack("{s:s}", "backend", id));
        return;
    }
    if (!path)
        path = b->path;
    if (path[0] != '/' || strlen(path) >= sizeof(b->path)) {
        error_reply(c, "io.bitnetd.Admin.ReloadFailed",
                    json_pack("{s:s, s:s, s:s, s:s}", "backend", id, "path", path, "stage",
                              "validate", "reason", "the path must be absolute"));
        return;
    }
    for (struct model *m = s->models; m; m = m->next) {
        if (m->switching && strcmp(m->f.backend, id) == 0) {
            error_reply(c, "io.bitnetd.Admin.ReloadInProgress", json_pack("{s:s}", "backend", id));
            return;
        }
    }
    struct switch_op *op = op_new(c, s->n_models);
    if (!op)
        return;
    op->reload = true;
    snprintf(op->id, sizeof(op->id), "%s", id);
    snprintf(op->path, sizeof(op->path), "%s", path);
    snprintf(op->dirs, sizeof(op->dirs), "%s", s->cfg.backend_dirs);
    snprintf(op->exe, sizeof(op->exe), "%s", s->exe);
    op->number = ++b->generations;
    for (struct model *m = s->models; m; m = m->next) {
        if (m->state != MODEL_READY || strcmp(m->f.backend, id) != 0)
            continue;
        add_item(op, m);
        struct plan *p = &op->items[op->n - 1].plan;
        p->active = -1;
        snprintf(p->path, sizeof(p->path), "%s", m->path);
        p->n_seq_max = m->n_seq_max;
        p->n_ctx = m->n_ctx;
        p->threads = m->threads;
        p->strict = m->strict || s->strict;
        p->format = m->format;
        p->has_format = true;
        p->n = 1;
        snprintf(p->e[0].id, sizeof(p->e[0].id), "%s", id);
        snprintf(p->e[0].state, sizeof(p->e[0].state), "untried");
        p->e[0].kernel = m->forced;
    }
    b->busy = true;
    char q[600];
    log_event(LOG_NOTICE, "reload-requested", "backend=%s path=%s generation=%d models=%d uid=%u",
              id, log_quote(path, q, sizeof(q)), op->number, op->n, (unsigned)c->uid);
    submit(op);
}
