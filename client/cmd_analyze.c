/*
 * client/cmd_analyze.c - `bitnetctl analyze-library PATH [--json]`: what a
 * shared library is, from its ELF file (backends/analyze.c). Local: it needs
 * no daemon. The text is a rendering of the same JSON object --json prints.
 */
#include <stdio.h>
#include <string.h>

#include "backends/analyze.h"
#include "client/ctl.h"

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "-";
}

static void print_examples(json_t *group)
{
    size_t i;
    json_t *ex;
    json_array_foreach(json_object_get(group, "examples"), i, ex)
    {
        printf("%s%s", i ? ", " : "  e.g. ", json_string_value(ex));
    }
}

static void print_needed(json_t *needed, const char *indent)
{
    size_t i;
    json_t *n;
    if (json_array_size(needed) == 0)
        printf("%s(none)\n", indent);
    json_array_foreach(needed, i, n)
    {
        const char *path = json_string_value(json_object_get(n, "path"));
        printf("%s%-26s ", indent, str(n, "name"));
        if (path)
            printf("%s (%s)", path, str(n, "found_via"));
        else
            printf("not found");
        printf("%s\n", json_is_true(json_object_get(n, "cuda")) ? "  [CUDA]" : "");
    }
}

static void print_report(json_t *r)
{
    json_t *syms = json_object_get(r, "symbols");
    printf("library:   %s\n", str(r, "resolved_path"));
    printf("  soname:  %s\n", str(r, "soname"));
    printf("  ELF:     %s %s %s (symbols from %s)\n", str(r, "class"), str(r, "machine"),
           str(r, "type"), str(r, "symbol_source"));
    if (json_is_string(json_object_get(r, "runpath")))
        printf("  runpath: %s\n", str(r, "runpath"));
    if (json_is_string(json_object_get(r, "rpath")))
        printf("  rpath:   %s\n", str(r, "rpath"));
    printf("  kind:    %s\n", str(r, "kind_description"));

    printf("needed libraries:\n");
    print_needed(json_object_get(r, "needed"), "  ");

    printf("dynamic symbols: %lld defined, %lld undefined\n",
           (long long)json_integer_value(json_object_get(syms, "defined")),
           (long long)json_integer_value(json_object_get(syms, "undefined")));
    const char *key;
    json_t *g;
    json_object_foreach(json_object_get(syms, "categories"), key, g)
    {
        printf("  %-13s %6lld", key, (long long)json_integer_value(json_object_get(g, "count")));
        print_examples(g);
        printf("\n");
    }
    g = json_object_get(syms, "cuda_imports");
    printf("  %-13s %6lld", "cuda imports",
           (long long)json_integer_value(json_object_get(g, "count")));
    print_examples(g);
    printf("\n");

    json_t *libs = json_object_get(r, "libraries");
    printf("libraries read (DT_NEEDED closure and ggml backends beside it): %zu\n",
           json_array_size(libs));
    size_t i;
    json_t *l;
    json_array_foreach(libs, i, l)
    {
        json_t *c = json_object_get(l, "symbols");
        printf("  %-8s %-30s %-13s", str(l, "role"), str(l, "name"), str(l, "kind"));
        if (json_is_string(json_object_get(l, "error"))) {
            printf(" error: %s\n", str(l, "error"));
            continue;
        }
        printf(" llama %lld ggml %lld cuda %lld",
               (long long)json_integer_value(json_object_get(c, "llama")),
               (long long)json_integer_value(json_object_get(c, "ggml")),
               (long long)json_integer_value(json_object_get(c, "cuda")));
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(l, "cuda_needed"), k, v)
        {
            printf("%s%s", k ? "," : " needs ", json_string_value(v));
        }
        json_array_foreach(json_object_get(l, "quantization"), k, v)
        {
            printf("%s%s", k ? "," : " quant ", json_string_value(v));
        }
        printf("\n");
    }
    if (json_integer_value(json_object_get(r, "libraries_skipped")) > 0)
        printf("  (%lld more not read: limit reached)\n",
               (long long)json_integer_value(json_object_get(r, "libraries_skipped")));

    json_t *cuda = json_object_get(r, "cuda");
    json_t *reasons = json_object_get(cuda, "reasons");
    const char *yes_no = json_is_true(json_object_get(cuda, "inference")) ? "yes" : "no";
    if (json_array_size(reasons) == 1) {
        printf("CUDA inference: %s (%s)\n", yes_no, json_string_value(json_array_get(reasons, 0)));
    } else {
        printf("CUDA inference: %s, because:\n", yes_no);
        json_array_foreach(reasons, i, l)
        {
            printf("  %s\n", json_string_value(l));
        }
    }
    printf("quantization types:");
    json_array_foreach(json_object_get(r, "quantization"), i, l)
    {
        printf(" %s", str(l, "type"));
    }
    printf("%s\n", json_array_size(json_object_get(r, "quantization")) ? "" : " (none)");
    json_array_foreach(json_object_get(r, "quantization"), i, l)
    {
        size_t k;
        json_t *v;
        printf("  %-8s %5lld symbols in", str(l, "type"),
               (long long)json_integer_value(json_object_get(l, "count")));
        json_array_foreach(json_object_get(l, "libraries"), k, v)
        {
            printf("%s%s", k ? ", " : " ", json_string_value(v));
        }
        printf("\n");
    }
    printf("kernel ids:");
    json_array_foreach(json_object_get(r, "kernels"), i, l)
    {
        printf(" %s", str(l, "id"));
    }
    printf("%s\n", json_array_size(json_object_get(r, "kernels")) ? "" : " (none)");
    json_array_foreach(json_object_get(r, "kernels"), i, l)
    {
        printf("  %-15s %s\n", str(l, "id"), str(l, "reason"));
    }
    printf("formats:");
    json_array_foreach(json_object_get(r, "formats"), i, l)
    {
        printf(" %s", json_string_value(l));
    }
    printf("%s\n", json_array_size(json_object_get(r, "formats")) ? "" : " (none)");
}

int cmd_analyze_library(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "Usage: bitnetctl analyze-library PATH [--json]\n");
        return CTL_EXIT_USAGE;
    }
    json_t *report = NULL;
    char err[512];
    if (analyze_library(argv[0], &report, err, sizeof(err)) < 0) {
        fprintf(stderr, "bitnetctl analyze-library: %s\n", err);
        return CTL_EXIT_FAILURE;
    }
    if (opts->json)
        ctl_print_json(report);
    else
        print_report(report);
    json_decref(report);
    return CTL_EXIT_OK;
}
