/*
 * daemon/jobs.c - generation jobs on the loop side: io.bitnetd.Inference
 * (Generate, Cancel, Tokenize, Detokenize) and io.bitnetd.Query.ListJobs.
 *
 * A Generate call becomes a job: checked here, queued on its model's
 * scheduler, answered at once with its id, then with text as the scheduler's
 * events arrive, and last with the finish reason and usage. Cancellation is
 * per job: Cancel(job) from any connection, or the Generate connection
 * closing. Calls on a connection are answered in order, so a connection
 * runs at most one job at a time.
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

const char *job_state_name(enum job_state st)
{
    switch (st) {
    case JOB_QUEUED:
        return "queued";
    case JOB_PREFILL:
        return "prefill";
    case JOB_DECODE:
        return "decode";
    }
    return "?";
}

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

static void invalid(struct conn *c, const char *parameter)
{
    error_with(c, "org.varlink.service.InvalidParameter", "parameter", json_string(parameter));
}

static void model_not_found(struct conn *c, const char *name)
{
    error_with(c, "io.bitnetd.Inference.ModelNotFound", "model",
               name ? json_string(name) : json_null());
}

void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->prompt);
    free(j->messages);
    json_decref(j->message_json);
    for (int i = 0; i < GEN_MAX_STOP; i++)
        free(j->stop_buf[i]);
    free(j->held);
    free(j->fallback);
    free(j);
}

/* ---- events from the scheduler ---- */

void jobs_on_started(struct job *j, int prompt_tokens, const struct gen_facts *f)
{
    snprintf(j->backend, sizeof(j->backend), "%s", f->backend);
    snprintf(j->kernel, sizeof(j->kernel), "%s", f->kernel);
    j->generation = f->number;
    if (j->state == JOB_QUEUED)
        j->model->queued--;
    j->state = JOB_PREFILL;
    j->prompt_tokens = prompt_tokens;
}

/* Keeps text the connection's output buffer could not take. */
static int hold(struct job *j, const char *text, size_t len)
{
    char *n = realloc(j->held, j->n_held + len + 1);
    if (!n)
        return -ENOMEM;
    memcpy(n + j->n_held, text, len);
    j->held = n;
    j->n_held += len;
    return 0;
}

void jobs_on_text(struct job *j, const char *text, size_t len, int n_tokens)
{
    j->tokens += n_tokens;
    if (j->state == JOB_QUEUED)
        j->model->queued--;
    j->state = JOB_DECODE;
    if (!j->conn || len == 0)
        return;
    if (hold(j, text, len) < 0) {
        conn_close(j->conn, "out of memory");
        return;
    }
    json_t *p = json_pack("{s:s%}", "text", j->held, j->n_held);
    if (!p) {
        conn_close(j->conn, "out of memory");
        return;
    }
    /* A slow reader's text waits in held and goes out with the next piece
     * or the final reply; generation does not wait for the client. */
    if (conn_reply(j->conn, p, true) == 0)
        j->n_held = 0;
    json_decref(p);
}

static void unlink_job(struct server *s, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        s->job_list = j->next;
    if (j->next)
        j->next->prev = j->prev;
    s->jobs--;
}

/* A job's deadline passed before it ended: cancel it; its DONE says why. */
static void on_deadline(uv_timer_t *t)
{
    struct job *j = t->data;
    j->deadline_hit = true;
    log_event(LOG_INFO, "job-deadline", "job=%llu deadline_ms=%d", (unsigned long long)j->id,
              j->deadline_ms);
    sched_cancel(j->model, j);
}

void jobs_on_done(struct job *j, gen_finish finish, const char *error, const gen_usage *u)
{
    struct model *m = j->model;
    struct server *s = m->srv;
    if (j->state == JOB_QUEUED)
        m->queued--;
    double tps = u->decode_ms > 0 && u->generated_tokens > 1
                     ? (u->generated_tokens - 1) / (u->decode_ms / 1e3)
                     : 0.0;
    int prompt_tokens = u->prompt_tokens ? u->prompt_tokens : j->prompt_tokens;
    json_t *usage =
        json_pack("{s:i, s:i, s:f, s:f, s:f, s:f}", "prompt_tokens", prompt_tokens,
                  "generated_tokens", u->generated_tokens, "prefill_ms", u->prefill_ms, "decode_ms",
                  u->decode_ms, "decode_tokens_per_s", tps, "queue_ms", u->queue_ms);
    json_t *p = json_pack("{s:I, s:s, s:o, s:o, s:o}", "job", (json_int_t)j->id, "finish_reason",
                          gen_finish_name(finish), "usage", usage, "backend",
                          j->backend[0] ? json_string(j->backend) : json_null(), "kernel",
                          j->kernel[0] ? json_string(j->kernel) : json_null());
    if (p && j->generation)
        json_object_set_new(p, "generation", json_integer(j->generation));
    if (p && j->fallback)
        json_object_set_new(p, "fallback", json_string(j->fallback));
    if (p && j->n_held)
        json_object_set_new(p, "text", json_stringn(j->held, j->n_held));
    if (j->deadline) {
        uv_timer_stop(j->deadline);
        uv_close((uv_handle_t *)j->deadline, (uv_close_cb)free);
        j->deadline = NULL;
    }
    char why[96];
    if (j->deadline_hit && finish == GEN_FINISH_CANCELLED && !error) {
        snprintf(why, sizeof(why), "the job's deadline of %d ms passed", j->deadline_ms);
        error = why;
    }
    if (p && error)
        json_object_set_new(p, "error", json_string(error));
    char q[300];
    log_event(finish == GEN_FINISH_ERROR ? LOG_WARNING : LOG_INFO, "job-done",
              "job=%llu model=%s finish=%s prompt_tokens=%d generated=%d decode_ms=%.1f%s%s",
              (unsigned long long)j->id, m->name, gen_finish_name(finish), prompt_tokens,
              u->generated_tokens, u->decode_ms, error ? " error=" : "",
              error ? log_quote(error, q, sizeof(q)) : "");
    if (j->conn) {
        struct conn *c = j->conn;
        c->job = NULL;
        j->conn = NULL;
        if (p)
            conn_reply(c, p, false);
        else
            conn_close(c, "out of memory");
        conn_unref(c);
    }
    json_decref(p);
    unlink_job(s, j);
    job_free(j);
    model_unref(m);
    server_update_status(s);
}

void jobs_conn_closed(struct conn *c)
{
    struct job *j = c->job;
    if (!j)
        return;
    c->job = NULL;
    j->conn = NULL;
    sched_cancel(j->model, j);
    conn_unref(c);
}

/* ---- Generate ---- */

/* Reads a number parameter that may be an integer or a real. Returns false
 * when present and not a number. */
static bool get_number(json_t *params, const char *key, float *out)
{
    json_t *v = json_object_get(params, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return false;
    *out = (float)json_number_value(v);
    return true;
}

/* Copies the messages parameter into j. Returns false when it is not a
 * non-empty array of {role, content} with known roles. */
static bool take_messages(struct job *j, json_t *msgs)
{
    size_t n = json_array_size(msgs);
    if (!json_is_array(msgs) || n == 0)
        return false;
    j->messages = calloc(n, sizeof(*j->messages));
    if (!j->messages)
        return false;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *role = json_object_get(m, "role");
        json_t *content = json_object_get(m, "content");
        if (!json_is_object(m) || json_object_size(m) != 2 || !json_is_string(role) ||
            !json_is_string(content) ||
            chat_role_parse(json_string_value(role), &j->messages[i].role) < 0)
            return false;
        j->messages[i].content = json_string_value(content);
        j->messages[i].content_len = json_string_length(content);
    }
    j->n_messages = n;
    j->message_json = json_incref(msgs);
    return true;
}

/* Fills j from the call's parameters. Returns NULL, or the name of the
 * parameter that is wrong. */
static const char *parse_request(struct server *s, struct job *j, json_t *params)
{
    json_t *prompt = json_object_get(params, "prompt");
    json_t *msgs = json_object_get(params, "messages");
    bool has_prompt = prompt && !json_is_null(prompt);
    bool has_msgs = msgs && !json_is_null(msgs);
    if (!has_prompt && !has_msgs)
        return "prompt";
    if (has_prompt && has_msgs)
        return "messages";
    if (has_prompt) {
        j->prompt_len = json_string_length(prompt);
        j->prompt = malloc(j->prompt_len + 1);
        if (!j->prompt)
            return "prompt";
        memcpy(j->prompt, json_string_value(prompt), j->prompt_len + 1);
    } else if (!take_messages(j, msgs)) {
        return "messages";
    }
    j->req.sampling = sampler_params_default();
    sampler_params *sp = &j->req.sampling;
    j->req.max_tokens = 128;
    json_t *v = json_object_get(params, "max_tokens");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > s->cfg.max_tokens)
            return "max_tokens";
        j->req.max_tokens = (int)json_integer_value(v);
    }
    v = json_object_get(params, "deadline_ms");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > LIMIT_DEADLINE_MS_MAX)
            return "deadline_ms";
        j->deadline_ms = (int)json_integer_value(v);
    }
    v = json_object_get(params, "top_k");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 30)
            return "top_k";
        sp->top_k = (int)json_integer_value(v);
    }
    v = json_object_get(params, "seed");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return "seed";
        sp->seed = (uint64_t)json_integer_value(v);
    }
    if (!get_number(params, "temperature", &sp->temperature))
        return "temperature";
    if (!get_number(params, "top_p", &sp->top_p))
        return "top_p";
    if (!get_number(params, "min_p", &sp->min_p))
        return "min_p";
    if (!get_number(params, "repeat_penalty", &sp->repeat_penalty))
        return "repeat_penalty";
    char err[128];
    if (sampler_params_check(sp, err, sizeof(err)) < 0) {
        /* The message starts with the parameter's name. */
        static const char *names[] = {"temperature", "top_p", "min_p", "repeat_penalty"};
        for (size_t i = 0; i < 4; i++) {
            if (strncmp(err, names[i], strlen(names[i])) == 0)
                return names[i];
        }
        return "temperature";
    }
    json_t *stop = json_object_get(params, "stop");
    if (stop && !json_is_null(stop)) {
        if (!json_is_array(stop) || json_array_size(stop) > GEN_MAX_STOP)
            return "stop";
        size_t i;
        json_t *e;
        json_array_foreach(stop, i, e)
        {
            if (!json_is_string(e) || json_string_length(e) == 0 ||
                strlen(json_string_value(e)) != json_string_length(e))
                return "stop";
            j->stop_buf[i] = strdup(json_string_value(e));
            if (!j->stop_buf[i])
                return "stop";
            j->req.stop[i] = j->stop_buf[i];
        }
        j->req.n_stop = (int)json_array_size(stop);
    }
    return NULL;
}

/* A Generate that names a backend or kernel: the model's current
 * generation either is that, or the job runs anyway with the reason in its
 * final reply (logged), or, strict, the call fails with BackendMismatch.
 * Returns 0, or -1 when the call was answered with the error. */
static int check_selection(struct conn *c, struct job *j, const struct model *m,
                           const json_t *params)
{
    const char *want_b = json_string_value(json_object_get(params, "backend"));
    const char *want_k = json_string_value(json_object_get(params, "kernel"));
    if ((!want_b && !want_k) || m->state != MODEL_READY)
        return 0;
    if ((!want_b || strcmp(want_b, m->f.backend) == 0) &&
        (!want_k || strcmp(want_k, m->f.kernel) == 0))
        return 0;
    char reason[512];
    snprintf(reason, sizeof(reason),
             "asked for backend %s kernel %s, but model %s runs in %s with kernel %s (generation "
             "%d); a request does not load another backend (use SetPreference)",
             want_b ? want_b : "(any)", want_k ? want_k : "(any)", m->name, m->f.backend,
             m->f.kernel, m->f.number);
    bool strict = json_is_true(json_object_get(params, "strict")) || m->strict || c->srv->strict;
    if (strict) {
        json_t *p = json_pack("{s:s, s:s, s:s}", "requested", want_k ? want_k : want_b, "active",
                              m->f.kernel, "reason", reason);
        conn_error(c, "io.bitnetd.Inference.BackendMismatch", p);
        json_decref(p);
        return -1;
    }
    log_event(LOG_WARNING, "fallback", "model=%s request=%s reason=\"%s\"", m->name,
              want_k ? want_k : want_b, reason);
    j->fallback = strdup(reason);
    return 0;
}

void jobs_generate(struct conn *c, const struct varlink_call *call)
{
    struct server *s = c->srv;
    if (!call->more) {
        /* Generate streams: a client that cannot take several replies
         * would lose all but the first. Varlink's own error for this is
         * ExpectedMore; InvalidParameter must name a declared parameter,
         * and "more" is a field of the call, not a parameter. */
        conn_error(c, "org.varlink.service.ExpectedMore", NULL);
        return;
    }
    const char *name = json_string_value(json_object_get(call->parameters, "model"));
    struct model *m = models_find(s, name);
    if (!m) {
        model_not_found(c, name);
        return;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        conn_close(c, "out of memory");
        conn_error(c, "io.bitnetd.Query.ProtocolError", NULL);
        return;
    }
    const char *bad = parse_request(s, j, call->parameters);
    if (bad) {
        job_free(j);
        invalid(c, bad);
        return;
    }
    if (check_selection(c, j, m, call->parameters) < 0) {
        job_free(j);
        return;
    }

    int mine = 0, of_model = 0;
    for (const struct job *o = s->job_list; o; o = o->next) {
        mine += o->uid == c->uid;
        of_model += o->model == m;
    }
    if (mine >= s->cfg.max_jobs_per_uid) {
        job_free(j);
        error_with(c, "io.bitnetd.Inference.TooManyJobs", "max_jobs_per_uid",
                   json_integer(s->cfg.max_jobs_per_uid));
        return;
    }
    /* The queue is full when every sequence is busy and max_queued_jobs
     * wait besides. Jobs that ended but whose end is not processed yet
     * still count, which errs on the side of refusing. */
    if (of_model >= m->n_seq_max + s->cfg.max_queued_jobs) {
        job_free(j);
        error_with(c, "io.bitnetd.Inference.QueueFull", "max_queued_jobs",
                   json_integer(s->cfg.max_queued_jobs));
        return;
    }
    j->id = ++s->next_job_id;
    j->model = m;
    m->refs++;
    j->conn = c;
    conn_ref(c);
    c->job = j;
    j->uid = c->uid;
    j->state = JOB_QUEUED;
    m->queued++;
    j->next = s->job_list;
    if (s->job_list)
        s->job_list->prev = j;
    s->job_list = j;
    s->jobs++;
    log_event(LOG_INFO, "job-queued", "job=%llu model=%s conn=%llu uid=%u max_tokens=%d",
              (unsigned long long)j->id, m->name, (unsigned long long)c->id, (unsigned)c->uid,
              j->req.max_tokens);
    json_t *p = json_pack("{s:I, s:s}", "job", (json_int_t)j->id, "model", m->name);
    conn_reply(c, p, true);
    json_decref(p);
    if (j->deadline_ms > 0 && !(j->deadline = malloc(sizeof(*j->deadline))))
        log_event(LOG_ERR, "out-of-memory", "where=deadline job=%llu (it runs without one)",
                  (unsigned long long)j->id);
    if (j->deadline) {
        uv_timer_init(s->loop, j->deadline);
        j->deadline->data = j;
        uv_timer_start(j->deadline, on_deadline, (uint64_t)j->deadline_ms, 0);
    }
    sched_submit(m, j);
    server_update_status(s);
}

void jobs_cancel(struct conn *c, const struct varlink_call *call)
{
    json_t *id = json_object_get(call->parameters, "job");
    for (struct job *j = c->srv->job_list; j; j = j->next) {
        if ((json_int_t)j->id == json_integer_value(id)) {
            log_event(LOG_INFO, "job-cancel", "job=%llu by_uid=%u", (unsigned long long)j->id,
                      (unsigned)c->uid);
            sched_cancel(j->model, j);
            conn_reply(c, NULL, false);
            return;
        }
    }
    error_with(c, "io.bitnetd.Inference.JobNotFound", "job", json_incref(id));
}

void jobs_list(struct conn *c, const struct varlink_call *call)
{
    json_t *list = json_array();
    /* Oldest first: the list is kept newest first. */
    struct job *last = c->srv->job_list;
    while (last && last->next)
        last = last->next;
    for (struct job *j = last; j; j = j->prev) {
        const struct model *m = j->model;
        json_array_append_new(list, json_pack("{s:I, s:s, s:s, s:s, s:o, s:i, s:i, s:I}", "id",
                                              (json_int_t)j->id, "state", job_state_name(j->state),
                                              "model", m->name, "backend",
                                              j->backend[0] ? j->backend : m->f.backend, "kernel",
                                              j->kernel[0]     ? json_string(j->kernel)
                                              : m->f.kernel[0] ? json_string(m->f.kernel)
                                                               : json_null(),
                                              "prompt_tokens", j->prompt_tokens, "tokens",
                                              j->tokens, "uid", (json_int_t)j->uid));
    }
    json_t *p = json_pack("{s:o}", "jobs", list);
    conn_reply(c, p, false);
    json_decref(p);
}

/* ---- Tokenize and Detokenize: on the worker thread ---- */

struct tok_work {
    struct conn *c;
    struct model *m;
    char *text; /* Tokenize */
    size_t len;
    bool add_special, parse_special;
    int32_t *ids; /* Detokenize */
    size_t n_ids;
    json_t *result;
    const char *error;   /* a Varlink error instead of result */
    const char *err_key; /* its parameter */
    json_int_t err_value;
};

static void tokenize_run(void *arg)
{
    struct tok_work *w = arg;
    size_t n = 0;
    int rc =
        tokenizer_encode(w->m->tok, w->text, w->len, w->add_special, w->parse_special, NULL, 0, &n);
    int32_t *ids = NULL;
    if (rc == 0 || rc == -ENOSPC) {
        ids = malloc(sizeof(int32_t) * (n ? n : 1));
        rc = ids ? tokenizer_encode(w->m->tok, w->text, w->len, w->add_special, w->parse_special,
                                    ids, n, &n)
                 : -ENOMEM;
    }
    if (rc == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_integer(ids[i]));
        w->result = json_pack("{s:o}", "tokens", arr);
    }
    free(ids);
}

static void detokenize_run(void *arg)
{
    struct tok_work *w = arg;
    /* The streaming decoder yields valid UTF-8 (JSON strings must be), with
     * unfinished sequences as U+FFFD, and drops one leading space like
     * tokenizer_decode. */
    tokenizer_stream st;
    tokenizer_stream_init(&st, w->m->tok, false, true);
    size_t bound = tokenizer_stream_bound(w->m->tok);
    size_t cap = (w->n_ids + 1) * bound + 1, len = 0;
    char *out = malloc(cap);
    if (!out)
        return;
    for (size_t i = 0; i < w->n_ids; i++) {
        size_t n = 0;
        if (tokenizer_stream_feed(&st, w->ids[i], out + len, cap - len, &n) < 0) {
            free(out);
            w->error = "org.varlink.service.InvalidParameter";
            w->err_key = "parameter";
            return;
        }
        len += n;
    }
    size_t n = 0;
    if (tokenizer_stream_flush(&st, out + len, cap - len, &n) == 0)
        len += n;
    w->result = json_pack("{s:s%}", "text", out, len);
    free(out);
}

static void tok_done(void *arg)
{
    struct tok_work *w = arg;
    if (w->error)
        error_with(w->c, w->error, w->err_key, json_string("tokens"));
    else if (w->result)
        conn_reply(w->c, w->result, false);
    else {
        conn_close(w->c, "out of memory");
        conn_error(w->c, "io.bitnetd.Query.ProtocolError", NULL);
    }
    json_decref(w->result);
    conn_unref(w->c);
    model_unref(w->m);
    free(w->text);
    free(w->ids);
    free(w);
}

/* Finds the model a Tokenize or Detokenize call names and checks that it
 * is ready. Replies with the error and returns NULL otherwise. */
static struct model *tok_model(struct conn *c, const struct varlink_call *call)
{
    const char *name = json_string_value(json_object_get(call->parameters, "model"));
    struct model *m = models_find(c->srv, name);
    if (!m || !m->tok) {
        model_not_found(c, name);
        return NULL;
    }
    return m;
}

static void tok_submit(struct conn *c, struct tok_work *w, void (*run)(void *))
{
    w->c = c;
    conn_ref(c);
    w->m->refs++;
    if (work_submit(c->srv, run, tok_done, w) == 0)
        return;
    w->result = NULL;
    tok_done(w);
}

void jobs_tokenize(struct conn *c, const struct varlink_call *call)
{
    struct model *m = tok_model(c, call);
    if (!m)
        return;
    json_t *text = json_object_get(call->parameters, "text");
    json_t *as = json_object_get(call->parameters, "add_special");
    json_t *ps = json_object_get(call->parameters, "parse_special");
    struct tok_work *w = calloc(1, sizeof(*w));
    if (w) {
        w->len = json_string_length(text);
        w->text = malloc(w->len + 1);
    }
    if (!w || !w->text) {
        free(w);
        conn_close(c, "out of memory");
        conn_error(c, "io.bitnetd.Query.ProtocolError", NULL);
        return;
    }
    memcpy(w->text, json_string_value(text), w->len + 1);
    w->m = m;
    w->add_special = as && !json_is_null(as) ? json_is_true(as) : true;
    w->parse_special = ps && !json_is_null(ps) ? json_is_true(ps) : false;
    tok_submit(c, w, tokenize_run);
}

void jobs_detokenize(struct conn *c, const struct varlink_call *call)
{
    json_t *tokens = json_object_get(call->parameters, "tokens");
    if (!json_is_array(tokens)) {
        invalid(c, "tokens");
        return;
    }
    struct model *m = tok_model(c, call);
    if (!m)
        return;
    size_t n = json_array_size(tokens);
    int32_t n_vocab = tokenizer_n_vocab(m->tok);
    struct tok_work *w = calloc(1, sizeof(*w));
    if (w)
        w->ids = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!w || !w->ids) {
        free(w);
        conn_close(c, "out of memory");
        conn_error(c, "io.bitnetd.Query.ProtocolError", NULL);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(tokens, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab) {
            free(w->ids);
            free(w);
            invalid(c, "tokens");
            return;
        }
        w->ids[i] = (int32_t)json_integer_value(v);
    }
    w->n_ids = n;
    w->m = m;
    tok_submit(c, w, detokenize_run);
}
