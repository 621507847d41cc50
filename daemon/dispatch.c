/*
 * daemon/dispatch.c - the method table: which calls bitnetd answers, the
 * parameters each takes, who may call it, and the handlers.
 *
 * Every method listed in a protocol/ *.varlink file has an entry here, and
 * nothing else does (tests/integration checks both directions).
 */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/analyze.h"
#include "bitnet/config.h"
#include "bitnet/kernels.h"
#include "daemon/log.h"
#include "daemon/models.h"
#include "daemon/server.h"
#include "protocol/report.h"

#ifndef BITNETD_URL
#define BITNETD_URL ""
#endif

enum param_type { PT_STRING, PT_INT, PT_BOOL, PT_NUMBER, PT_ARRAY };

struct param {
    const char *name;
    enum param_type type;
    bool required; /* else nullable: absent and null mean the same */
};

struct method {
    const char *name;           /* "interface.Method" */
    const struct param *params; /* terminated by a NULL name */
    bool admin;                 /* only root, bitnetd's user, the admin group */
    void (*run)(struct conn *c, const struct varlink_call *call);
};

/* Sends an error whose parameters are {key: value}. */
static void error_with(struct conn *c, const char *error, const char *key, json_t *value)
{
    json_t *p = json_object();
    if (p)
        json_object_set_new(p, key, value);
    else
        json_decref(value);
    conn_error(c, error, p);
    json_decref(p);
}

/* Sends the last reply and releases parameters (which may be NULL for {}). */
static void reply_new(struct conn *c, json_t *parameters)
{
    conn_reply(c, parameters, false);
    json_decref(parameters);
}

/* ---- org.varlink.service ---- */

static void get_info(struct conn *c, const struct varlink_call *call)
{
    size_t n;
    const struct varlink_interface *ifs = varlink_interfaces(&n);
    json_t *names = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(names, json_string(ifs[i].name));
    reply_new(c, json_pack("{s:s, s:s, s:s, s:s, s:o}", "vendor", "bitnetd", "product",
                           "bitnetd ternary LLM daemon", "version", BITNET_VERSION, "url",
                           BITNETD_URL, "interfaces", names));
}

static void get_interface_description(struct conn *c, const struct varlink_call *call)
{
    const char *name = json_string_value(json_object_get(call->parameters, "interface"));
    const struct varlink_interface *iface = varlink_interface_find(name);
    if (!iface) {
        error_with(c, "org.varlink.service.InterfaceNotFound", "interface", json_string(name));
        return;
    }
    reply_new(c, json_pack("{s:s}", "description", iface->description));
}

/* ---- io.bitnetd.Query ---- */

static void get_status(struct conn *c, const struct varlink_call *call)
{
    struct server *s = c->srv;
    const struct config *cfg = &s->cfg;
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    json_t *limits = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "max_message_size",
        (json_int_t)cfg->max_message_size, "max_connections", (json_int_t)cfg->max_connections,
        "max_connections_per_uid", (json_int_t)cfg->max_connections_per_uid, "max_output_buffer",
        (json_int_t)cfg->max_output_buffer, "idle_timeout", (json_int_t)cfg->idle_timeout,
        "max_queued_jobs", (json_int_t)cfg->max_queued_jobs, "max_tokens",
        (json_int_t)cfg->max_tokens, "max_jobs_per_uid", (json_int_t)cfg->max_jobs_per_uid);
    json_t *models = json_array();
    for (struct model *m = s->models; m; m = m->next)
        json_array_append_new(models, model_json(m));
    reply_new(c, json_pack("{s:s, s:I, s:I, s:s, s:i, s:i, s:o, s:s, s:s, s:i, s:o}", "version",
                           BITNET_VERSION, "pid", (json_int_t)getpid(), "uptime_seconds",
                           (json_int_t)((uv_now(s->loop) - s->start_ms) / 1000), "status",
                           s->status, "connections", s->n_conns, "jobs", s->jobs, "models", models,
                           "backend", s->models ? s->models->f.backend : "native", "simd",
                           bitnet_simd_level_name(cpu->active), "threads", s->threads, "limits",
                           limits));
}

/* A report built on the worker thread, for a connection on the loop. */
struct report_work {
    struct conn *c;
    json_t *(*build)(void);
    void (*finish)(struct server *s, json_t *result); /* on the loop, may be NULL */
    json_t *result;
};

static void report_run(void *arg)
{
    struct report_work *w = arg;
    w->result = w->build();
}

static void report_done(void *arg)
{
    struct report_work *w = arg;
    if (w->result && w->finish)
        w->finish(w->c->srv, w->result);
    if (w->result) {
        conn_reply(w->c, w->result, false);
        json_decref(w->result);
    } else {
        /* Out of memory: end the call (its reply is dropped) and the connection. */
        conn_close(w->c, "out of memory");
        conn_error(w->c, "io.bitnetd.Query.ProtocolError", NULL);
    }
    conn_unref(w->c);
    free(w);
}

/* Builds a report off the loop and replies with it when it is ready; the
 * connection takes no other call meanwhile, so replies stay in order. */
static void run_report(struct conn *c, json_t *(*build)(void),
                       void (*finish)(struct server *s, json_t *result))
{
    struct report_work *w = calloc(1, sizeof(*w));
    if (w) {
        w->c = c;
        w->build = build;
        w->finish = finish;
        conn_ref(c);
        if (work_submit(c->srv, report_run, report_done, w) == 0)
            return;
        conn_unref(c);
        free(w);
    }
    conn_close(c, "out of memory");
    conn_error(c, "io.bitnetd.Query.ProtocolError", NULL);
}

static json_t *build_capabilities(void)
{
    return report_capabilities(NULL);
}

static json_t *build_kernels(void)
{
    return json_pack("{s:o}", "kernels", report_kernels(NULL));
}

/* The parts of the capabilities that only the loop may read: the backends,
 * the preference list, which kernel each model runs, and the limits. */
static void finish_capabilities(struct server *s, json_t *r)
{
    json_object_set_new(r, "backends", backends_json(s));
    json_object_set_new(r, "preference", backends_preference_json(s));
    json_t *selected = json_array();
    json_t *limits = json_array();
    for (const struct model *m = s->models; m; m = m->next) {
        if (m->state != MODEL_READY)
            continue;
        json_array_append_new(selected, json_pack("{s:s, s:s, s:s, s:i}", "model", m->name,
                                                  "backend", m->f.backend, "kernel", m->f.kernel,
                                                  "generation", m->f.number));
        json_array_append_new(limits, json_pack("{s:s, s:i, s:i}", "model", m->name, "n_ctx",
                                                m->f.n_ctx, "n_seq_max", m->f.n_seq_max));
    }
    json_object_set_new(r, "selected", selected);
    /* A loaded CUDA library says what its driver probe found: the driver
     * version and each device's name and memory, or why there is none. */
    json_t *libs = json_array();
    for (int i = 0; i < s->n_slots; i++) {
        const struct libgen *lg = s->slots[i].cur;
        if (lg && strcmp(lg->info.device, "cuda") == 0)
            json_array_append_new(libs, json_pack("{s:s, s:s}", "backend", s->slots[i].id, "detail",
                                                  lg->info.detail));
    }
    json_object_set_new(json_object_get(r, "cuda"), "libraries", libs);
    json_object_set_new(r, "model_limits", limits);
    /* Mark the kernels the loaded models run. */
    json_t *ks = json_object_get(r, "kernels");
    size_t i;
    json_t *k;
    json_array_foreach(ks, i, k)
    {
        const char *id = json_string_value(json_object_get(k, "id"));
        bool sel = false;
        for (const struct model *m = s->models; m && id; m = m->next)
            sel = sel || (m->state == MODEL_READY && strcmp(m->f.kernel, id) == 0);
        json_object_set_new(k, "selected", json_boolean(sel));
    }
}

static void get_capabilities(struct conn *c, const struct varlink_call *call)
{
    run_report(c, build_capabilities, finish_capabilities);
}

static void list_kernels(struct conn *c, const struct varlink_call *call)
{
    run_report(c, build_kernels, NULL);
}

/* ---- io.bitnetd.Admin ---- */

static void reload_configuration(struct conn *c, const struct varlink_call *call)
{
    char err[512];
    log_event(LOG_INFO, "reload-requested", "uid=%u pid=%d", (unsigned)c->uid, (int)c->pid);
    if (server_reload(c->srv, err, sizeof(err)) < 0) {
        error_with(c, "io.bitnetd.Admin.ConfigurationInvalid", "reason", json_string(err));
        return;
    }
    reply_new(c, NULL);
}

/* An analysis of a library file, run on the worker thread: it reads the
 * library and its DT_NEEDED closure from disk, which can take a while. */
struct analyze_work {
    struct conn *c;
    char *path;
    json_t *result;
    int rc;
    char err[512];
};

static void analyze_run(void *arg)
{
    struct analyze_work *w = arg;
    w->rc = analyze_library(w->path, &w->result, w->err, sizeof(w->err));
}

static void analyze_done(void *arg)
{
    struct analyze_work *w = arg;
    if (w->rc < 0) {
        json_t *p = json_pack("{s:s, s:s}", "path", w->path, "reason", w->err);
        conn_error(w->c, "io.bitnetd.Admin.LibraryAnalysisFailed", p);
        json_decref(p);
    } else {
        reply_new(w->c, json_pack("{s:o}", "analysis", w->result));
    }
    conn_unref(w->c);
    free(w->path);
    free(w);
}

static void analyze_library_call(struct conn *c, const struct varlink_call *call)
{
    const char *path = json_string_value(json_object_get(call->parameters, "path"));
    log_event(LOG_INFO, "analyze-library", "uid=%u pid=%d path=%s", (unsigned)c->uid, (int)c->pid,
              path);
    struct analyze_work *w = calloc(1, sizeof(*w));
    if (w && (w->path = strdup(path)) != NULL) {
        w->c = c;
        conn_ref(c);
        if (work_submit(c->srv, analyze_run, analyze_done, w) == 0)
            return;
        conn_unref(c);
    }
    if (w)
        free(w->path);
    free(w);
    conn_close(c, "out of memory");
    conn_error(c, "io.bitnetd.Query.ProtocolError", NULL);
}

/* ---- the table ---- */

static const struct param no_params[] = {{NULL, PT_STRING, false}};
static const struct param interface_param[] = {{"interface", PT_STRING, true},
                                               {NULL, PT_STRING, false}};
static const struct param job_param[] = {{"job", PT_INT, true}, {NULL, PT_STRING, false}};
static const struct param generate_params[] = {
    {"prompt", PT_STRING, false},   {"messages", PT_ARRAY, false},
    {"max_tokens", PT_INT, false},  {"temperature", PT_NUMBER, false},
    {"top_k", PT_INT, false},       {"top_p", PT_NUMBER, false},
    {"min_p", PT_NUMBER, false},    {"repeat_penalty", PT_NUMBER, false},
    {"seed", PT_INT, false},        {"stop", PT_ARRAY, false},
    {"model", PT_STRING, false},    {"backend", PT_STRING, false},
    {"kernel", PT_STRING, false},   {"strict", PT_BOOL, false},
    {"deadline_ms", PT_INT, false}, {NULL, PT_STRING, false}};
static const struct param tokenize_params[] = {{"text", PT_STRING, true},
                                               {"add_special", PT_BOOL, false},
                                               {"parse_special", PT_BOOL, false},
                                               {"model", PT_STRING, false},
                                               {NULL, PT_STRING, false}};
static const struct param detokenize_params[] = {
    {"tokens", PT_ARRAY, true}, {"model", PT_STRING, false}, {NULL, PT_STRING, false}};
static const struct param load_params[] = {{"path", PT_STRING, true},
                                           {"name", PT_STRING, false},
                                           {"preference", PT_ARRAY, false},
                                           {"strict", PT_BOOL, false},
                                           {NULL, PT_STRING, false}};
static const struct param preference_params[] = {{"preference", PT_ARRAY, true},
                                                 {"model", PT_STRING, false},
                                                 {"strict", PT_BOOL, false},
                                                 {NULL, PT_STRING, false}};
static const struct param reload_params[] = {
    {"backend", PT_STRING, true}, {"path", PT_STRING, false}, {NULL, PT_STRING, false}};
static const struct param unload_params[] = {{"name", PT_STRING, true}, {NULL, PT_STRING, false}};
static const struct param path_param[] = {{"path", PT_STRING, true}, {NULL, PT_STRING, false}};

static const struct method methods[] = {
    {"org.varlink.service.GetInfo", no_params, false, get_info},
    {"org.varlink.service.GetInterfaceDescription", interface_param, false,
     get_interface_description},
    {"io.bitnetd.Query.GetStatus", no_params, false, get_status},
    {"io.bitnetd.Query.GetCapabilities", no_params, false, get_capabilities},
    {"io.bitnetd.Query.ListKernels", no_params, false, list_kernels},
    {"io.bitnetd.Query.ListModels", no_params, false, models_list},
    {"io.bitnetd.Query.ListJobs", no_params, false, jobs_list},
    {"io.bitnetd.Inference.Generate", generate_params, false, jobs_generate},
    {"io.bitnetd.Inference.Cancel", job_param, false, jobs_cancel},
    {"io.bitnetd.Inference.Tokenize", tokenize_params, false, jobs_tokenize},
    {"io.bitnetd.Inference.Detokenize", detokenize_params, false, jobs_detokenize},
    {"io.bitnetd.Admin.ReloadConfiguration", no_params, true, reload_configuration},
    {"io.bitnetd.Admin.LoadModel", load_params, true, models_load_call},
    {"io.bitnetd.Admin.UnloadModel", unload_params, true, models_unload_call},
    {"io.bitnetd.Admin.AnalyzeLibrary", path_param, true, analyze_library_call},
    {"io.bitnetd.Admin.SetPreference", preference_params, true, backends_set_preference_call},
    {"io.bitnetd.Admin.ReloadLibrary", reload_params, true, backends_reload_library_call},
};

bool dispatch_peer_is_admin(const struct conn *c)
{
    const struct server *s = c->srv;
    if (c->uid == 0 || c->uid == geteuid())
        return true;
    if (!s->has_admin_gid)
        return false;
    if (c->gid == s->admin_gid)
        return true;
    for (int i = 0; i < c->n_groups; i++) {
        if (c->groups[i] == s->admin_gid)
            return true;
    }
    return false;
}

static bool type_ok(json_t *v, enum param_type t)
{
    switch (t) {
    case PT_STRING:
        return json_is_string(v);
    case PT_INT:
        return json_is_integer(v);
    case PT_BOOL:
        return json_is_boolean(v);
    case PT_NUMBER:
        return json_is_number(v);
    case PT_ARRAY:
        return json_is_array(v);
    }
    return false;
}

/* Checks call parameters against the method's list. Returns the name of the
 * first unknown, mistyped or missing parameter, or NULL when all are fine. */
static const char *check_params(const struct method *m, json_t *params)
{
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v)
    {
        const struct param *p = m->params;
        while (p->name && strcmp(p->name, key) != 0)
            p++;
        if (!p->name)
            return key;
        if (json_is_null(v) ? p->required : !type_ok(v, p->type))
            return key;
    }
    for (const struct param *p = m->params; p->name; p++) {
        if (p->required && !json_object_get(params, p->name))
            return p->name;
    }
    return NULL;
}

void dispatch_call(struct conn *c, struct varlink_call *call)
{
    char iface[256];
    const char *name;
    if (varlink_method_split(call->method, iface, sizeof(iface), &name) < 0) {
        error_with(c, "org.varlink.service.MethodNotFound", "method", json_string(call->method));
        return;
    }
    if (!varlink_interface_find(iface)) {
        error_with(c, "org.varlink.service.InterfaceNotFound", "interface", json_string(iface));
        return;
    }
    const struct method *m = NULL;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(methods[i].name, call->method) == 0)
            m = &methods[i];
    }
    if (!m) {
        error_with(c, "org.varlink.service.MethodNotFound", "method", json_string(call->method));
        return;
    }
    if (m->admin && !dispatch_peer_is_admin(c)) {
        log_event(LOG_NOTICE, "permission-denied", "conn=%llu uid=%u pid=%d method=%s",
                  (unsigned long long)c->id, (unsigned)c->uid, (int)c->pid, m->name);
        conn_error(c, "io.bitnetd.Admin.PermissionDenied", NULL);
        return;
    }
    const char *bad = check_params(m, call->parameters);
    if (bad) {
        error_with(c, "org.varlink.service.InvalidParameter", "parameter", json_string(bad));
        return;
    }
    m->run(c, call);
}
