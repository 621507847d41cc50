/*
 * client/cmd_matrix.c - `bitnetctl matrix`: the backend compatibility matrix.
 *
 * The data is report_matrix() (protocol/report.c): weight formats x
 * instruction sets x providers, each cell naming the registry kernel id that
 * covers it or saying why none does. This file only renders it:
 *
 *   --markdown  the committed docs/backend-compatibility-matrix.md; nothing
 *               in it depends on the build or the machine;
 *   --json      the data, each cell with a kernel id also saying whether
 *               that kernel is available here;
 *   (neither)   plain tables, with the cells available here marked.
 */
#include <stdio.h>
#include <string.h>

#include "bitnet/kernels.h"
#include "client/ctl.h"
#include "protocol/report.h"

#define MATRIX_DOC       "docs/backend-compatibility-matrix.md"
#define MATRIX_MAX_ROWS  8
#define MATRIX_MAX_COLS  8
#define MATRIX_MAX_NOTES 64
#define CELL_LEN         128
#define WRAP_COLUMNS     78

/* One provider's table, rendered to strings, and the notes its cells cite. */
struct matrix_table {
    size_t rows, cols;
    char cell[MATRIX_MAX_ROWS][MATRIX_MAX_COLS][CELL_LEN];
    const char *notes[MATRIX_MAX_NOTES];
    size_t n_notes;
};

static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Returns the 1-based number of note in t, adding it when new (0: no room). */
static size_t table_note(struct matrix_table *t, const char *note)
{
    for (size_t i = 0; i < t->n_notes; i++)
        if (strcmp(t->notes[i], note) == 0)
            return i + 1;
    if (t->n_notes == MATRIX_MAX_NOTES)
        return 0;
    t->notes[t->n_notes++] = note;
    return t->n_notes;
}

/* The cell of matrix for provider, format and isa (borrowed), or NULL. */
static json_t *find_cell(json_t *matrix, const char *provider, const char *format, const char *isa)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(matrix, "cells"), i, c)
    {
        if (strcmp(str_of(c, "provider"), provider) == 0 &&
            strcmp(str_of(c, "format"), format) == 0 && strcmp(str_of(c, "isa"), isa) == 0)
            return c;
    }
    return NULL;
}

/* Adds "available" (bool, or null for a cell with no kernel) to every cell,
 * from this process's registry and CPU, and a "local" object naming them. */
static void mark_available(json_t *matrix)
{
    json_t *kernels = report_kernels(NULL);
    size_t i, j;
    json_t *c, *k;
    json_array_foreach(json_object_get(matrix, "cells"), i, c)
    {
        json_t *available = json_null();
        json_array_foreach(kernels, j, k)
        {
            if (strcmp(str_of(k, "id"), str_of(c, "kernel")) == 0)
                available = json_boolean(json_is_true(json_object_get(k, "available")));
        }
        json_object_set_new(c, "available", available);
    }
    json_decref(kernels);
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    json_object_set_new(matrix, "local",
                        json_pack("{s:s, s:s, s:s}", "arch", cpu->arch, "simd_active",
                                  bitnet_simd_level_name(cpu->active), "meaning",
                                  "available: the kernel is compiled into this bitnetctl and "
                                  "this CPU can run it"));
}

/*
 * Renders provider's cells into t: one row per format, one column per
 * instruction set. code wraps kernel ids in backticks (markdown);
 * mark_here appends " *" to the cells available on this machine.
 */
static void build_table(json_t *matrix, const char *provider, bool code, bool mark_here,
                        struct matrix_table *t)
{
    json_t *formats = json_object_get(matrix, "formats");
    json_t *isas = json_object_get(matrix, "isas");
    memset(t, 0, sizeof(*t));
    t->rows = json_array_size(formats);
    t->cols = json_array_size(isas);
    if (t->rows > MATRIX_MAX_ROWS)
        t->rows = MATRIX_MAX_ROWS;
    if (t->cols > MATRIX_MAX_COLS)
        t->cols = MATRIX_MAX_COLS;
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            json_t *cell = find_cell(matrix, provider, str_of(json_array_get(formats, r), "id"),
                                     str_of(json_array_get(isas, c), "id"));
            char *out = t->cell[r][c];
            if (!cell) {
                snprintf(out, CELL_LEN, "?");
                continue;
            }
            const char *kernel = json_string_value(json_object_get(cell, "kernel"));
            const char *coverage = str_of(cell, "coverage");
            const char *note = json_string_value(json_object_get(cell, "note"));
            size_t n = note ? table_note(t, note) : 0;
            char ref[32] = ""; /* " [N]", N a size_t */
            if (n)
                snprintf(ref, sizeof(ref), " [%zu]", n);
            if (!kernel) {
                snprintf(out, CELL_LEN, "—%s", ref);
                continue;
            }
            bool here = mark_here && json_is_true(json_object_get(cell, "available"));
            bool qualified = strcmp(coverage, "yes") != 0;
            snprintf(out, CELL_LEN, "%s%s%s%s%s%s%s", code ? "`" : "", kernel, code ? "`" : "",
                     here ? " *" : "", qualified ? " (" : "", qualified ? coverage : "",
                     qualified ? ")" : "");
            size_t len = strlen(out);
            snprintf(out + len, CELL_LEN - len, "%s", ref);
        }
    }
}

/* Prints s as a table cell: '|' would end the cell, so it is escaped. */
static void md_cell(const char *s)
{
    fputs("| ", stdout);
    for (; *s; s++) {
        if (*s == '|')
            putchar('\\');
        putchar(*s);
    }
    putchar(' ');
}

static void md_header(json_t *isas, const char *first)
{
    size_t i;
    json_t *isa;
    md_cell(first);
    json_array_foreach(isas, i, isa) md_cell(str_of(isa, "name"));
    puts("|");
    for (i = 0; i <= json_array_size(isas); i++)
        fputs("| --- ", stdout);
    puts("|");
}

/* The "at a glance" table: every provider that covers a cell, in one table. */
static void md_overview(json_t *matrix)
{
    json_t *formats = json_object_get(matrix, "formats");
    json_t *isas = json_object_get(matrix, "isas");
    json_t *providers = json_object_get(matrix, "providers");
    md_header(isas, "format");
    size_t f, i, p;
    json_t *fmt, *isa, *prov;
    json_array_foreach(formats, f, fmt)
    {
        md_cell(str_of(fmt, "name"));
        json_array_foreach(isas, i, isa)
        {
            char text[512] = "";
            size_t len = 0;
            json_array_foreach(providers, p, prov)
            {
                json_t *cell =
                    find_cell(matrix, str_of(prov, "id"), str_of(fmt, "id"), str_of(isa, "id"));
                const char *kernel = json_string_value(json_object_get(cell, "kernel"));
                if (!kernel || len >= sizeof(text))
                    continue;
                const char *coverage = str_of(cell, "coverage");
                bool qualified = strcmp(coverage, "yes") != 0;
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s `%s`%s%s%s",
                                        len ? "<br>" : "", str_of(prov, "id"), kernel,
                                        qualified ? " (" : "", qualified ? coverage : "",
                                        qualified ? ")" : "");
            }
            md_cell(len ? text : "—");
        }
        puts("|");
    }
}

static void print_markdown(json_t *matrix)
{
    json_t *formats = json_object_get(matrix, "formats");
    json_t *isas = json_object_get(matrix, "isas");
    size_t i;
    json_t *o;
    printf("<!-- Generated by `bitnetctl matrix --markdown > %s`: do not edit. "
           "tests/integration/test_matrix.py fails when it is stale. -->\n\n",
           MATRIX_DOC);
    puts("# Backend compatibility matrix\n"
         "\n"
         "Which kernel multiplies ternary weights of each format on each instruction set or\n"
         "device, for each provider bitnetd can use (the roadmap's section 4.3). A cell names a\n"
         "kernel id of the registry (`bitnetctl kernels`, [kernels.md](kernels.md)); for an\n"
         "external library it is the id that symbol analysis gives such a library\n"
         "(`bitnetctl analyze-library`, [library-analysis.md](library-analysis.md)). \"—\"\n"
         "means no kernel; the note under the table says why.\n"
         "\n"
         "- **(partial)**: the library loads such a model, but not all of its products run\n"
         "  where the column says; the note says what does.\n"
         "- **(planned)**: the id is in the registry, but no backend runs it yet.\n"
         "\n"
         "The matrix says what the code covers, not what a given build or machine has:\n"
         "`bitnetctl matrix` prints the same tables with the kernels available on the\n"
         "machine it runs on marked, `bitnetctl matrix --json` the data, and\n"
         "`bitnetctl capabilities` what a running daemon uses. Backends and their\n"
         "libraries: [backends.md](backends.md).\n"
         "\n"
         "## At a glance\n");
    md_overview(matrix);
    puts("\n## Formats\n\n| format | id | what |\n| --- | --- | --- |");
    json_array_foreach(formats, i, o)
    {
        char id[64];
        snprintf(id, sizeof(id), "`%s`", str_of(o, "id"));
        md_cell(str_of(o, "name"));
        md_cell(id);
        md_cell(str_of(o, "note"));
        puts("|");
    }
    json_array_foreach(json_object_get(matrix, "providers"), i, o)
    {
        struct matrix_table t;
        build_table(matrix, str_of(o, "id"), true, false, &t);
        printf("\n## %s: %s\n\nBackend `%s`; %s.\n\n", str_of(o, "id"), str_of(o, "name"),
               str_of(o, "backend"), str_of(o, "library"));
        md_header(isas, "format");
        for (size_t r = 0; r < t.rows; r++) {
            md_cell(str_of(json_array_get(formats, r), "name"));
            for (size_t c = 0; c < t.cols; c++)
                md_cell(t.cell[r][c]);
            puts("|");
        }
        if (t.n_notes)
            putchar('\n');
        for (size_t n = 0; n < t.n_notes; n++)
            printf("%zu. %s\n", n + 1, t.notes[n]);
    }
    puts("\n## Kernel ids\n\nEvery id the registry knows, compiled in a given build or not.\n\n"
         "| id | roadmap name | format | instruction set | device | provider | how a build "
         "gets it |\n| --- | --- | --- | --- | --- | --- | --- |");
    json_array_foreach(json_object_get(matrix, "kernels"), i, o)
    {
        char id[64];
        snprintf(id, sizeof(id), "`%s`", str_of(o, "id"));
        md_cell(id);
        md_cell(str_of(o, "roadmap_name"));
        md_cell(str_of(o, "format"));
        md_cell(str_of(o, "isa"));
        md_cell(str_of(o, "device"));
        md_cell(str_of(o, "provider"));
        md_cell(str_of(o, "build_option"));
        puts("|");
    }
}

/* Prints text wrapped at WRAP_COLUMNS; the cursor is at column indent, where
 * continuation lines start too. */
static void print_wrapped(const char *text, size_t indent)
{
    size_t col = indent;
    bool first = true;
    for (;;) {
        text += strspn(text, " ");
        size_t word = strcspn(text, " ");
        if (!word)
            break;
        if (!first && col + 1 + word > WRAP_COLUMNS) {
            printf("\n%*s", (int)indent, "");
            col = indent;
        } else if (!first) {
            putchar(' ');
            col++;
        }
        printf("%.*s", (int)word, text);
        col += word;
        text += word;
        first = false;
    }
    putchar('\n');
}

/* Display width of a UTF-8 string: its code points ("—" is one column). */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void print_padded(const char *s, size_t width)
{
    size_t w = text_width(s);
    printf("%s%*s", s, (int)(width > w ? width - w : 0), "");
}

static void print_plain(json_t *matrix)
{
    json_t *formats = json_object_get(matrix, "formats");
    json_t *isas = json_object_get(matrix, "isas");
    json_t *local = json_object_get(matrix, "local");
    printf("Backend compatibility matrix (%s for the document)\n", MATRIX_DOC);
    printf("* = available here: compiled into this bitnetctl and supported by this CPU (%s, "
           "SIMD %s)\n",
           str_of(local, "arch"), str_of(local, "simd_active"));
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(matrix, "providers"), i, o)
    {
        struct matrix_table t;
        build_table(matrix, str_of(o, "id"), false, true, &t);
        printf("\n%s: %s\n", str_of(o, "id"), str_of(o, "name"));
        size_t width[MATRIX_MAX_COLS + 1] = {strlen("FORMAT")};
        for (size_t c = 0; c < t.cols; c++)
            width[c + 1] = text_width(str_of(json_array_get(isas, c), "name"));
        for (size_t r = 0; r < t.rows; r++) {
            size_t w = strlen(str_of(json_array_get(formats, r), "name"));
            width[0] = w > width[0] ? w : width[0];
            for (size_t c = 0; c < t.cols; c++) {
                w = text_width(t.cell[r][c]);
                width[c + 1] = w > width[c + 1] ? w : width[c + 1];
            }
        }
        printf("  ");
        print_padded("FORMAT", width[0]);
        for (size_t c = 0; c < t.cols; c++) {
            char head[32];
            snprintf(head, sizeof(head), "%s", str_of(json_array_get(isas, c), "name"));
            for (char *h = head; *h; h++)
                *h = (char)(*h >= 'a' && *h <= 'z' ? *h - 'a' + 'A' : *h);
            printf("  ");
            print_padded(head, c + 1 < t.cols ? width[c + 1] : 0);
        }
        putchar('\n');
        for (size_t r = 0; r < t.rows; r++) {
            printf("  ");
            print_padded(str_of(json_array_get(formats, r), "name"), width[0]);
            for (size_t c = 0; c < t.cols; c++) {
                printf("  ");
                print_padded(t.cell[r][c], c + 1 < t.cols ? width[c + 1] : 0);
            }
            putchar('\n');
        }
        for (size_t n = 0; n < t.n_notes; n++) {
            char label[16];
            int len = snprintf(label, sizeof(label), "  [%zu] ", n + 1);
            fputs(label, stdout);
            print_wrapped(t.notes[n], (size_t)len);
        }
    }
}

int cmd_matrix(const struct ctl_options *opts, int argc, char **argv)
{
    bool markdown = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--markdown") == 0) {
            markdown = true;
        } else {
            fprintf(stderr, "bitnetctl matrix: unexpected argument '%s'\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
    }
    if (markdown && opts->json) {
        fprintf(stderr, "bitnetctl matrix: --markdown and --json exclude each other\n");
        return CTL_EXIT_USAGE;
    }
    json_t *matrix = report_matrix();
    if (!matrix) {
        fprintf(stderr, "bitnetctl matrix: out of memory\n");
        return CTL_EXIT_FAILURE;
    }
    if (markdown) {
        print_markdown(matrix);
    } else {
        mark_available(matrix);
        if (opts->json)
            ctl_print_json(matrix);
        else
            print_plain(matrix);
    }
    json_decref(matrix);
    return CTL_EXIT_OK;
}
