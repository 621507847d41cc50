/*
 * client/cmd_capabilities.c - `bitnetctl capabilities`: what this build and
 * machine can do.
 *
 * The report comes from the daemon (io.bitnetd.Query.GetCapabilities) when it
 * is reachable, since that is what serves requests. When it is not, or with
 * --local, or when $BITNET_SIMD is set (which only this process would
 * honour), bitnetctl builds the same report from its own copy of the
 * registry; falling back says so on stderr.
 *
 * --json prints the reply as it is. The tables render the fields this file
 * knows in a fixed order and every other field generically: an unknown
 * scalar field of a kernel or backend becomes a column, an unknown object or
 * array an indented line under its row, and an unknown top-level field a
 * section of its own. The daemon can so grow its reply without this file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/client.h"
#include "client/ctl.h"
#include "protocol/report.h"

#define TEXT_MAX     1024 /* one rendered value */
#define NESTED_MAX   100  /* one string inside a nested value */
#define MAX_COLUMNS  24
#define WRAP_COLUMNS 78

/* A table column: the field it shows and its heading. */
struct column {
    const char *key;
    const char *title;
};

/* Asks the daemon; returns NULL (after a note on stderr) when it cannot. */
static json_t *daemon_capabilities(const struct ctl_options *opts)
{
    bitnet_client *client;
    json_t *caps = NULL;
    if (ctl_connect(opts, &client, true) != CTL_EXIT_OK) {
        fprintf(stderr, "bitnetctl: bitnetd is not reachable; showing this build's local "
                        "report (--local skips the daemon)\n");
        return NULL;
    }
    if (ctl_call(client, "io.bitnetd.Query.GetCapabilities", NULL, &caps) != CTL_EXIT_OK) {
        fprintf(stderr, "bitnetctl: showing this build's local report instead\n");
        caps = NULL;
    }
    bitnet_client_close(client);
    return caps;
}

/*
 * Appends printf-style text to buf (of size len, holding *used bytes),
 * truncating. Control characters become spaces: the text comes from the
 * daemon and must not move the terminal's cursor or break a table row.
 */
static void append(char *buf, size_t len, size_t *used, const char *fmt, const char *s)
{
    if (*used + 1 >= len)
        return;
    int n = snprintf(buf + *used, len - *used, fmt, s);
    if (n <= 0)
        return;
    size_t end = (size_t)n < len - *used ? *used + (size_t)n : len - 1;
    for (size_t i = *used; i < end; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            buf[i] = ' ';
    *used = end;
}

static void value_text_at(json_t *v, int depth, char *buf, size_t len, size_t *used);

/*
 * Renders a value as one line: strings as they are (cut at NESTED_MAX inside
 * nested values), null as "-", booleans as yes/no, arrays joined by ", "
 * (objects in them by their "id", "type" or "name" when they have one),
 * objects as "key=value" pairs.
 */
static void value_text_at(json_t *v, int depth, char *buf, size_t len, size_t *used)
{
    char num[64];
    size_t i;
    json_t *item;
    const char *key;
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        if (depth > 0 && strlen(s) > NESTED_MAX) {
            snprintf(num, sizeof(num), "%%.%ds...", NESTED_MAX);
            append(buf, len, used, num, s);
        } else {
            append(buf, len, used, "%s", s);
        }
        break;
    }
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        append(buf, len, used, "%s", num);
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        append(buf, len, used, "%s", num);
        break;
    case JSON_TRUE:
        append(buf, len, used, "%s", "yes");
        break;
    case JSON_FALSE:
        append(buf, len, used, "%s", "no");
        break;
    case JSON_NULL:
        append(buf, len, used, "%s", "-");
        break;
    case JSON_ARRAY:
        if (json_array_size(v) == 0)
            append(buf, len, used, "%s", "(none)");
        json_array_foreach(v, i, item)
        {
            if (i)
                append(buf, len, used, "%s", ", ");
            json_t *label = json_object_get(item, "id");
            if (!json_is_string(label))
                label = json_object_get(item, "type");
            if (!json_is_string(label))
                label = json_object_get(item, "name");
            value_text_at(json_is_string(label) ? label : item, depth + 1, buf, len, used);
        }
        break;
    case JSON_OBJECT:
        i = 0;
        json_object_foreach(v, key, item)
        {
            append(buf, len, used, i++ ? " %s=" : "%s=", key);
            bool wrap = json_is_object(item) || (json_is_array(item) && json_array_size(item));
            if (wrap)
                append(buf, len, used, "%s", "(");
            value_text_at(item, depth + 1, buf, len, used);
            if (wrap)
                append(buf, len, used, "%s", ")");
        }
        if (i == 0)
            append(buf, len, used, "%s", "(empty)");
        break;
    }
}

static void value_text(json_t *v, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    if (v)
        value_text_at(v, 0, buf, len, &used);
    else
        snprintf(buf, len, "-");
}

/* Prints "  label  text", text wrapped at WRAP_COLUMNS under itself. */
static void print_field(int indent, const char *label, int label_width, const char *raw)
{
    char text[TEXT_MAX];
    size_t used = 0;
    text[0] = '\0';
    append(text, sizeof(text), &used, "%s", raw);
    char name[64];
    size_t name_used = 0;
    name[0] = '\0';
    append(name, sizeof(name), &name_used, "%s", label);
    const char *p = text;
    int col = printf("%*s%-*s ", indent, "", label_width, name);
    int start = col;
    bool first = true;
    for (;;) {
        p += strspn(p, " ");
        size_t word = strcspn(p, " ");
        if (!word)
            break;
        if (!first && col + 1 + (int)word > WRAP_COLUMNS) {
            col = printf("\n%*s", start, "") - 1;
        } else if (!first) {
            col += printf(" ");
        }
        col += printf("%.*s", (int)word, p);
        p += word;
        first = false;
    }
    putchar('\n');
}

static void print_value_field(int indent, const char *label, int label_width, json_t *v)
{
    char text[TEXT_MAX];
    value_text(v, text, sizeof(text));
    print_field(indent, label, label_width, text);
}

/* Prints one table cell, padded to width unless it ends the line. */
static void print_cell(const char *text, size_t width, bool last)
{
    if (last)
        printf("  %s\n", text);
    else
        printf("  %-*s", (int)width, text);
}

static bool listed(const char *key, const struct column *cols, size_t n_cols,
                   const char *const *skip)
{
    for (size_t i = 0; i < n_cols; i++)
        if (strcmp(cols[i].key, key) == 0)
            return true;
    for (; skip && *skip; skip++)
        if (strcmp(*skip, key) == 0)
            return true;
    return false;
}

/*
 * Prints an array of objects as a table: the columns known, then a column for
 * every other scalar field any row has (headed by its key in capitals), and
 * last a known "reason" column, the long one; under each row, one indented
 * line per object or array field not among the columns. Fields named in skip
 * (NULL-terminated, may be NULL) are left out.
 */
static void print_table(json_t *rows, const struct column *known, size_t n_known,
                        const char *const *skip)
{
    struct column cols[MAX_COLUMNS];
    char titles[MAX_COLUMNS][48];
    size_t n_cols = 0;
    const struct column *reason = NULL;
    for (size_t k = 0; k < n_known && n_cols < MAX_COLUMNS - 1; k++) {
        if (strcmp(known[k].key, "reason") == 0)
            reason = &known[k];
        else
            cols[n_cols++] = known[k];
    }
    size_t r, c;
    json_t *row, *v;
    const char *key;
    json_array_foreach(rows, r, row)
    {
        json_object_foreach(row, key, v)
        {
            if (json_is_object(v) || json_is_array(v) || listed(key, cols, n_cols, skip) ||
                (reason && strcmp(key, "reason") == 0) || n_cols == MAX_COLUMNS - 1)
                continue;
            snprintf(titles[n_cols], sizeof(titles[n_cols]), "%s", key);
            for (char *t = titles[n_cols]; *t; t++)
                *t = (char)((unsigned char)*t < 0x20 ? ' '
                            : *t >= 'a' && *t <= 'z' ? *t - 'a' + 'A'
                                                     : *t);
            cols[n_cols].key = key;
            cols[n_cols].title = titles[n_cols];
            n_cols++;
        }
    }
    if (reason)
        cols[n_cols++] = *reason;
    size_t width[MAX_COLUMNS];
    char text[TEXT_MAX];
    for (c = 0; c < n_cols; c++) {
        width[c] = strlen(cols[c].title);
        json_array_foreach(rows, r, row)
        {
            value_text(json_object_get(row, cols[c].key), text, sizeof(text));
            if (strlen(text) > width[c])
                width[c] = strlen(text);
        }
    }
    for (c = 0; c < n_cols; c++)
        print_cell(cols[c].title, width[c], c + 1 == n_cols);
    json_array_foreach(rows, r, row)
    {
        for (c = 0; c < n_cols; c++) {
            value_text(json_object_get(row, cols[c].key), text, sizeof(text));
            print_cell(text, width[c], c + 1 == n_cols);
        }
        json_object_foreach(row, key, v)
        {
            if ((json_is_object(v) || json_is_array(v)) && !listed(key, cols, n_cols, skip))
                print_value_field(4, key, (int)strlen(key) + 1, v);
        }
    }
}

/* Prints the fields of an object as "key  value" lines, skipping skip. */
static void print_fields(json_t *o, int indent, const char *const *skip)
{
    const char *key;
    json_t *v;
    int w = 0;
    json_object_foreach(o, key, v)
    {
        if (!listed(key, NULL, 0, skip) && (int)strlen(key) + 1 > w)
            w = (int)strlen(key) + 1;
    }
    json_object_foreach(o, key, v)
    {
        if (listed(key, NULL, 0, skip))
            continue;
        if (json_is_array(v) && json_array_size(v) && json_is_object(json_array_get(v, 0))) {
            printf("%*s%s\n", indent, "", key);
            print_table(v, NULL, 0, NULL);
        } else {
            print_value_field(indent, key, w, v);
        }
    }
}

/* Prints any value as a section's body. */
static void print_section(const char *title, json_t *v)
{
    printf("\n%s\n", title);
    if (json_is_array(v) && json_array_size(v) && json_is_object(json_array_get(v, 0))) {
        print_table(v, NULL, 0, NULL);
    } else if (json_is_object(v)) {
        print_fields(v, 2, NULL);
    } else {
        char text[TEXT_MAX];
        value_text(v, text, sizeof(text));
        printf("  %s\n", text);
    }
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && s[0] ? s : dflt;
}

/* Prints a {built, reason} object of the build as "built: reason" or "not built: reason". */
static void print_built(const char *label, json_t *o)
{
    char text[TEXT_MAX];
    const char *reason = str_or(o, "reason", NULL);
    snprintf(text, sizeof(text), "%s%s%s",
             json_is_true(json_object_get(o, "built")) ? "built" : "not built", reason ? ": " : "",
             reason ? reason : "");
    print_field(2, label, 16, text);
}

static void print_build(json_t *build)
{
    static const char *const known[] = {"version",      "compiler",   "build_type",
                                        "target_arch",  "sanitize",   "compiled_kernels",
                                        "cuda_backend", "llama_shim", NULL};
    printf("Build\n");
    print_field(2, "version", 16, str_or(build, "version", "?"));
    char text[TEXT_MAX];
    snprintf(text, sizeof(text), "%s, %s, for %s", str_or(build, "compiler", "?"),
             str_or(build, "build_type", "?"), str_or(build, "target_arch", "?"));
    print_field(2, "compiler", 16, text);
    print_field(2, "sanitizers", 16, str_or(build, "sanitize", "none"));
    print_value_field(2, "compiled kernels", 16, json_object_get(build, "compiled_kernels"));
    print_built("CUDA library", json_object_get(build, "cuda_backend"));
    print_built("llama shim", json_object_get(build, "llama_shim"));
    print_fields(build, 2, known);
}

static void print_cpu(json_t *cpu)
{
    static const char *const known[] = {"arch",
                                        "vendor",
                                        "brand",
                                        "logical_cpus",
                                        "physical_cores",
                                        "simd_detected",
                                        "features",
                                        "simd_override",
                                        "simd_override_error",
                                        "simd_active",
                                        NULL};
    char text[TEXT_MAX];
    printf("\nCPU\n");
    snprintf(text, sizeof(text), "%s (%s, %s)", str_or(cpu, "brand", "?"),
             str_or(cpu, "vendor", "?"), str_or(cpu, "arch", "?"));
    print_field(2, "model", 16, text);
    snprintf(text, sizeof(text), "%lld physical, %lld logical",
             (long long)json_integer_value(json_object_get(cpu, "physical_cores")),
             (long long)json_integer_value(json_object_get(cpu, "logical_cpus")));
    print_field(2, "cores", 16, text);
    const char *override = str_or(cpu, "simd_override", NULL);
    snprintf(text, sizeof(text), "%s (detected %s%s%s)", str_or(cpu, "simd_active", "?"),
             str_or(cpu, "simd_detected", "?"), override ? "; BITNET_SIMD=" : "",
             override ? override : "");
    print_field(2, "SIMD level", 16, text);
    const char *override_error = str_or(cpu, "simd_override_error", NULL);
    if (override_error)
        print_field(2, "warning", 16, override_error);
    size_t used = 0;
    const char *key;
    json_t *v;
    text[0] = '\0';
    json_object_foreach(json_object_get(cpu, "features"), key, v)
    {
        if (json_is_true(v))
            append(text, sizeof(text), &used, used ? " %s" : "%s", key);
    }
    print_field(2, "features", 16, used ? text : "(none)");
    print_fields(cpu, 2, known);
}

static void print_cuda(json_t *cuda)
{
    static const char *const known[] = {"devices", "reason", NULL};
    json_t *devices = json_object_get(cuda, "devices");
    printf("\nCUDA\n");
    if (json_array_size(devices)) {
        /* NAME first when devices have one; the rest as they come. */
        static const struct column name[] = {{"name", "NAME"}};
        bool named = json_object_get(json_array_get(devices, 0), "name") != NULL;
        print_table(devices, named ? name : NULL, named ? 1 : 0, NULL);
        if (str_or(cuda, "reason", NULL))
            print_field(2, "note", 16, str_or(cuda, "reason", ""));
    } else {
        print_field(2, "devices", 16, "none");
        print_field(2, "why", 16, str_or(cuda, "reason", "(no reason given)"));
    }
    print_fields(cuda, 2, known);
}

/* Whether any object of rows has the field key. */
static bool any_has(json_t *rows, const char *key)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (json_object_get(row, key))
            return true;
    }
    return false;
}

/* Marks each kernel with "best": whether best_kernel names it for its format. */
static void mark_best(json_t *kernels, json_t *best)
{
    size_t i;
    json_t *k;
    json_array_foreach(kernels, i, k)
    {
        const char *id = json_string_value(json_object_get(k, "id"));
        const char *b = json_string_value(
            json_object_get(best, json_string_value(json_object_get(k, "format"))));
        json_object_set_new(k, "best", json_boolean(id && b && strcmp(id, b) == 0));
    }
}

static void print_kernels(json_t *caps)
{
    static const struct column cols[] = {
        {"id", "ID"},
        {"format", "FORMAT"},
        {"isa", "ISA"},
        {"device", "DEVICE"},
        {"provider", "PROVIDER"},
        {"compiled", "COMPILED"},
        {"supported", "SUPPORTED"},
        {"available", "AVAILABLE"},
        {"selected", "SELECTED"},
        {"best", "BEST"},
    };
    static const char *const skip[] = {"roadmap_name", NULL};
    json_t *kernels = json_object_get(caps, "kernels");
    json_t *best = json_object_get(caps, "best_kernel");
    mark_best(kernels, best);
    size_t n_cols = sizeof(cols) / sizeof(cols[0]);
    /* SELECTED only when the daemon reports it. */
    struct column shown[sizeof(cols) / sizeof(cols[0]) + 1];
    size_t n = 0;
    for (size_t c = 0; c < n_cols; c++) {
        if (strcmp(cols[c].key, "selected") == 0 && !any_has(kernels, "selected"))
            continue;
        shown[n++] = cols[c];
    }
    shown[n++] = (struct column){"reason", "REASON"};
    printf("\nKernels (BEST: the registry's pick for its format here)\n");
    char none[TEXT_MAX] = "";
    size_t used = 0;
    const char *fmt;
    json_t *v;
    json_object_foreach(best, fmt, v)
    {
        if (json_is_null(v))
            append(none, sizeof(none), &used, used ? ", %s" : "%s", fmt);
    }
    if (used)
        print_field(2, "nothing available for", 21, none);
    print_table(kernels, shown, n, skip);
}

static void print_backends(json_t *backends)
{
    static const struct column cols[] = {
        {"id", "ID"},         {"library", "LIBRARY"}, {"version", "VERSION"},
        {"device", "DEVICE"}, {"state", "STATE"},     {"available", "AVAILABLE"},
    };
    struct column shown[sizeof(cols) / sizeof(cols[0]) + 1];
    size_t n = 0;
    for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
        if (any_has(backends, cols[c].key))
            shown[n++] = cols[c];
    }
    printf("\nBackends\n");
    if (!json_array_size(backends)) {
        printf("  (none)\n");
        return;
    }
    shown[n++] = (struct column){"reason", "REASON"};
    print_table(backends, shown, n, NULL);
}

/* The preference list: an array of {id, state, reason}, or an object holding
 * one as "entries" beside other fields. */
static void print_preference(json_t *pref)
{
    static const struct column cols[] = {{"id", "ID"}, {"state", "STATE"}, {"reason", "REASON"}};
    static const char *const known[] = {"entries", NULL};
    json_t *entries = json_is_array(pref) ? pref : json_object_get(pref, "entries");
    printf("\nPreference (first usable entry wins)\n");
    if (json_is_object(pref))
        print_fields(pref, 2, known);
    if (json_array_size(entries))
        print_table(entries, cols, sizeof(cols) / sizeof(cols[0]), NULL);
    else
        printf("  (empty)\n");
}

void ctl_print_backends(json_t *caps)
{
    print_backends(json_object_get(caps, "backends"));
    if (json_object_get(caps, "preference"))
        print_preference(json_object_get(caps, "preference"));
    if (json_object_get(caps, "selected"))
        print_section("selected", json_object_get(caps, "selected"));
}

static void print_capabilities(json_t *caps)
{
    static const char *const known[] = {"build",    "cpu",         "cuda",       "kernels",
                                        "backends", "best_kernel", "preference", NULL};
    print_build(json_object_get(caps, "build"));
    print_cpu(json_object_get(caps, "cpu"));
    print_cuda(json_object_get(caps, "cuda"));
    print_kernels(caps);
    print_backends(json_object_get(caps, "backends"));
    if (json_object_get(caps, "preference"))
        print_preference(json_object_get(caps, "preference"));
    const char *key;
    json_t *v;
    json_object_foreach(caps, key, v)
    {
        if (!listed(key, NULL, 0, known))
            print_section(key, v);
    }
}

int cmd_capabilities(const struct ctl_options *opts, int argc, char **argv)
{
    bool local = getenv("BITNET_SIMD") != NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--local") != 0) {
            fprintf(stderr, "bitnetctl capabilities: unexpected argument '%s'\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
        local = true;
    }
    json_t *caps = local ? NULL : daemon_capabilities(opts);
    if (!caps)
        caps = report_capabilities(NULL);
    if (opts->json)
        ctl_print_json(caps);
    else
        print_capabilities(caps);
    json_decref(caps);
    return CTL_EXIT_OK;
}
