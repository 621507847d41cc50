/* protocol/varlink.c - Varlink framing, call and reply parsing, message building. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "protocol/varlink.h"

/* The buffer grows by at least this much, so small chunks do not reallocate often. */
#define READER_MIN_GROW 4096

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

void varlink_reader_init(struct varlink_reader *r, size_t max_message)
{
    memset(r, 0, sizeof(*r));
    r->max_message = max_message;
}

void varlink_reader_free(struct varlink_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    r->buf = NULL;
    r->start = r->len = r->cap = r->scanned = 0;
}

int varlink_reader_feed(struct varlink_reader *r, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    /* Drop what was taken before growing, so the buffer holds one message. */
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    if (n > r->cap - r->len) {
        size_t want = r->len + n;
        size_t cap = r->cap ? r->cap : READER_MIN_GROW;
        while (cap < want)
            cap = cap > SIZE_MAX / 2 ? want : cap * 2;
        char *nb = realloc(r->buf, cap);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

int varlink_reader_next(struct varlink_reader *r, const char **msg, size_t *len)
{
    size_t avail = r->len - r->start;
    if (avail == 0) { /* nothing buffered yet: r->buf may still be NULL */
        r->scanned = 0;
        return 0;
    }
    const char *base = r->buf + r->start;
    const char *nul =
        avail > r->scanned ? memchr(base + r->scanned, '\0', avail - r->scanned) : NULL;
    if (!nul) {
        r->scanned = avail;
        return avail > r->max_message ? BITNET_ELIMIT : 0;
    }
    size_t n = (size_t)(nul - base);
    if (n > r->max_message)
        return BITNET_ELIMIT;
    *msg = base;
    *len = n;
    r->start += n + 1;
    r->scanned = 0;
    return 1;
}

size_t varlink_reader_pending(const struct varlink_reader *r)
{
    return r->len - r->start;
}

/* Loads one JSON object from msg. Returns 0, BITNET_EJSON or BITNET_EPROTOCOL. */
static int load_object(const char *msg, size_t len, json_t **out, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_loadb(msg, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        set_err(err, err_len, "malformed JSON at byte %d: %s", jerr.position, jerr.text);
        return BITNET_EJSON;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        set_err(err, err_len, "a message must be a JSON object");
        return BITNET_EPROTOCOL;
    }
    *out = root;
    return 0;
}

/* Reads an optional boolean field. Returns 0 or BITNET_EPROTOCOL. */
static int get_flag(json_t *root, const char *key, bool *out, char *err, size_t err_len)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = false;
        return 0;
    }
    if (!json_is_boolean(v)) {
        set_err(err, err_len, "field '%s' must be a boolean", key);
        return BITNET_EPROTOCOL;
    }
    *out = json_is_true(v);
    return 0;
}

/* Reads the optional "parameters" object; returns a new reference in *out. */
static int get_parameters(json_t *root, json_t **out, char *err, size_t err_len)
{
    json_t *p = json_object_get(root, "parameters");
    if (!p || json_is_null(p)) {
        *out = json_object();
        return *out ? 0 : -ENOMEM;
    }
    if (!json_is_object(p)) {
        set_err(err, err_len, "field 'parameters' must be an object");
        return BITNET_EPROTOCOL;
    }
    *out = json_incref(p);
    return 0;
}

int varlink_call_parse(const char *msg, size_t len, struct varlink_call *out, char *err,
                       size_t err_len)
{
    json_t *root = NULL;
    int rc = load_object(msg, len, &root, err, err_len);
    if (rc)
        return rc;
    struct varlink_call call = {0};
    json_t *m = json_object_get(root, "method");
    if (!m) {
        set_err(err, err_len, "a call needs a 'method' field");
        rc = BITNET_EPROTOCOL;
        goto out;
    }
    if (!json_is_string(m) || json_string_length(m) == 0) {
        set_err(err, err_len, "field 'method' must be a non-empty string");
        rc = BITNET_EPROTOCOL;
        goto out;
    }
    if ((rc = get_flag(root, "more", &call.more, err, err_len)) ||
        (rc = get_flag(root, "oneway", &call.oneway, err, err_len)) ||
        (rc = get_flag(root, "upgrade", &call.upgrade, err, err_len)))
        goto out;
    if (call.more && call.oneway) {
        set_err(err, err_len, "a call cannot be both 'more' and 'oneway'");
        rc = BITNET_EPROTOCOL;
        goto out;
    }
    if ((rc = get_parameters(root, &call.parameters, err, err_len)))
        goto out;
    call.method = strdup(json_string_value(m));
    if (!call.method) {
        json_decref(call.parameters);
        rc = -ENOMEM;
        goto out;
    }
    *out = call;
out:
    json_decref(root);
    return rc;
}

void varlink_call_free(struct varlink_call *call)
{
    if (!call)
        return;
    free(call->method);
    json_decref(call->parameters);
    call->method = NULL;
    call->parameters = NULL;
}

int varlink_method_split(const char *name, char *iface, size_t iface_len, const char **method)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || dot[1] == '\0')
        return BITNET_EPROTOCOL;
    size_t n = (size_t)(dot - name);
    if (n >= iface_len)
        return BITNET_ELIMIT;
    memcpy(iface, name, n);
    iface[n] = '\0';
    *method = dot + 1;
    return 0;
}

int varlink_reply_parse(const char *msg, size_t len, struct varlink_reply *out, char *err,
                        size_t err_len)
{
    json_t *root = NULL;
    int rc = load_object(msg, len, &root, err, err_len);
    if (rc)
        return rc;
    struct varlink_reply reply = {0};
    json_t *e = json_object_get(root, "error");
    if (e && !json_is_null(e) && (!json_is_string(e) || json_string_length(e) == 0)) {
        set_err(err, err_len, "field 'error' must be a non-empty string");
        rc = BITNET_EPROTOCOL;
        goto out;
    }
    if ((rc = get_flag(root, "continues", &reply.continues, err, err_len)))
        goto out;
    if ((rc = get_parameters(root, &reply.parameters, err, err_len)))
        goto out;
    if (json_is_string(e)) {
        reply.error = strdup(json_string_value(e));
        if (!reply.error) {
            json_decref(reply.parameters);
            rc = -ENOMEM;
            goto out;
        }
    }
    *out = reply;
out:
    json_decref(root);
    return rc;
}

void varlink_reply_free(struct varlink_reply *reply)
{
    if (!reply)
        return;
    free(reply->error);
    json_decref(reply->parameters);
    reply->error = NULL;
    reply->parameters = NULL;
}

/* Serialises msg (stolen) compactly and appends the NUL terminator. */
static int finish(json_t *msg, char **out, size_t *out_len)
{
    if (!msg)
        return -ENOMEM;
    char *s = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(msg);
    if (!s)
        return BITNET_EJSON;
    /* json_dumps' string ends in a NUL already: it is the Varlink terminator. */
    *out = s;
    *out_len = strlen(s) + 1;
    return 0;
}

/* Returns a new reference to parameters, or a new empty object for NULL. */
static json_t *params_ref(json_t *parameters)
{
    if (parameters && !json_is_object(parameters))
        return NULL;
    return parameters ? json_incref(parameters) : json_object();
}

int varlink_reply_build(json_t *parameters, bool continues, char **out, size_t *out_len)
{
    json_t *p = params_ref(parameters);
    if (!p)
        return BITNET_EJSON;
    json_t *msg = json_object();
    if (!msg) {
        json_decref(p);
        return -ENOMEM;
    }
    json_object_set_new(msg, "parameters", p);
    if (continues)
        json_object_set_new(msg, "continues", json_true());
    return finish(msg, out, out_len);
}

int varlink_error_build(const char *error, json_t *parameters, char **out, size_t *out_len)
{
    json_t *p = params_ref(parameters);
    if (!p)
        return BITNET_EJSON;
    json_t *msg = json_object();
    if (!msg) {
        json_decref(p);
        return -ENOMEM;
    }
    if (json_object_set_new(msg, "error", json_string(error))) {
        json_decref(p);
        json_decref(msg);
        return BITNET_EJSON;
    }
    json_object_set_new(msg, "parameters", p);
    return finish(msg, out, out_len);
}

int varlink_call_build(const char *method, json_t *parameters, bool more, bool oneway, char **out,
                       size_t *out_len)
{
    json_t *p = params_ref(parameters);
    if (!p)
        return BITNET_EJSON;
    json_t *msg = json_object();
    if (!msg) {
        json_decref(p);
        return -ENOMEM;
    }
    if (json_object_set_new(msg, "method", json_string(method))) {
        json_decref(p);
        json_decref(msg);
        return BITNET_EJSON;
    }
    json_object_set_new(msg, "parameters", p);
    if (more)
        json_object_set_new(msg, "more", json_true());
    if (oneway)
        json_object_set_new(msg, "oneway", json_true());
    return finish(msg, out, out_len);
}
