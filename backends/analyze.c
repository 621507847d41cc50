/*
 * backends/analyze.c - library analysis: the DT_NEEDED closure, the ggml
 * backends beside a libllama or libggml, symbol summaries and the inferences
 * drawn from them (see analyze.h and docs/library-analysis.md).
 */
#include "backends/analyze.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/elf.h"
#include "backends/symbols.h"
#include "bitnet/error.h"

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#else
#define MULTIARCH "unknown-linux-gnu"
#endif

/* The loader's trusted directories, searched after /etc/ld.so.conf. */
static const char *const default_dirs[] = {
    "/lib/" MULTIARCH, "/usr/lib/" MULTIARCH, "/lib64", "/usr/lib64", "/lib", "/usr/lib",
};

#define MAX_SEARCH_DIRS  64
#define LD_SO_CONF_DEPTH 4

/* One library read during the analysis. */
struct lib {
    char *path;       /* canonical path */
    char *ref;        /* how it was reached: the DT_NEEDED name, or the path given */
    const char *role; /* "main", "needed" or "backend" */
    int parent;       /* index of the library that needs it, -1 for none */
    elf_file *elf;    /* NULL when it could not be read */
    char *error;      /* why elf is NULL */
    symbols_summary sum;
    json_t *needed;   /* [{name, path, found_via, cuda}] */
    bool dir_scanned; /* its directory was searched for ggml backends */
};

struct analysis {
    struct lib libs[ANALYZE_MAX_LIBRARIES];
    size_t n;
    size_t skipped;                /* libraries left out because of ANALYZE_MAX_LIBRARIES */
    char *search[MAX_SEARCH_DIRS]; /* ld.so.conf directories, then the defaults */
    size_t n_search;
};

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void add_search_dir(struct analysis *a, const char *dir)
{
    if (a->n_search >= MAX_SEARCH_DIRS || dir[0] != '/')
        return;
    for (size_t i = 0; i < a->n_search; i++)
        if (strcmp(a->search[i], dir) == 0)
            return;
    char *copy = strdup(dir);
    if (copy)
        a->search[a->n_search++] = copy;
}

/* Reads the directories of an ld.so.conf file, following "include GLOB". */
static void read_ld_so_conf(struct analysis *a, const char *file, int depth)
{
    if (depth > LD_SO_CONF_DEPTH)
        return;
    FILE *f = fopen(file, "re");
    if (!f)
        return;
    char line[PATH_MAX];
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = line + strspn(line, " \t");
        s[strcspn(s, " \t\r\n")] = '\0';
        if (strcmp(s, "include") == 0) {
            char *pattern = s + strlen(s) + 1;
            pattern += strspn(pattern, " \t");
            pattern[strcspn(pattern, " \t\r\n")] = '\0';
            glob_t g;
            if (pattern[0] && glob(pattern, 0, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc; i++)
                    read_ld_so_conf(a, g.gl_pathv[i], depth + 1);
                globfree(&g);
            }
        } else if (s[0] == '/') {
            add_search_dir(a, s);
        }
    }
    fclose(f);
}

/* True when path is a regular file holding an ELF64 little-endian object for
 * this machine: the loader skips other files of the right name. */
static bool compatible_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return false;
    struct stat st;
    unsigned char h[20];
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
              read(fd, h, sizeof(h)) == (ssize_t)sizeof(h) && memcmp(h, ELFMAG, SELFMAG) == 0 &&
              h[EI_CLASS] == ELFCLASS64 && h[EI_DATA] == ELFDATA2LSB &&
              (uint16_t)(h[18] | (h[19] << 8)) == elf_host_machine();
    close(fd);
    return ok;
}

/* Writes the directory of path into dir. */
static void dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, len, ".");
    } else if (slash == path) {
        snprintf(dir, len, "/");
    } else {
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
    }
}

/*
 * Searches a colon-separated path list (DT_RPATH or DT_RUNPATH) for name,
 * expanding $ORIGIN and ${ORIGIN} to origin. Empty entries are skipped.
 * Returns true and the canonical path in out when found.
 */
static bool search_list(const char *list, const char *origin, const char *name, char *out)
{
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ":");
        char dir[PATH_MAX];
        size_t d = 0;
        bool too_long = false;
        for (size_t i = 0; i < len && !too_long;) {
            const char *src = NULL;
            size_t skip = 1;
            if (strncmp(p + i, "$ORIGIN", 7) == 0) {
                src = origin;
                skip = 7;
            } else if (strncmp(p + i, "${ORIGIN}", 9) == 0) {
                src = origin;
                skip = 9;
            }
            if (i + skip > len) {
                src = NULL;
                skip = 1;
            }
            if (src) {
                size_t n = strlen(src);
                if (d + n >= sizeof(dir))
                    too_long = true;
                else
                    memcpy(dir + d, src, n), d += n;
            } else if (d + 1 >= sizeof(dir)) {
                too_long = true;
            } else {
                dir[d++] = p[i];
            }
            i += skip;
        }
        dir[d] = '\0';
        if (!too_long && d > 0) {
            char candidate[PATH_MAX];
            int n = snprintf(candidate, sizeof(candidate), "%s/%s", dir, name);
            if (n > 0 && (size_t)n < sizeof(candidate) && compatible_file(candidate) &&
                realpath(candidate, out))
                return true;
        }
        p += len;
        if (*p == ':')
            p++;
    }
    return false;
}

/*
 * Finds the file the dynamic loader would map for DT_NEEDED name of library
 * idx. Order as in ld.so(8): a name with a slash is a path; DT_RPATH of the
 * library and of the chain of libraries that loaded it (only when the library
 * has no DT_RUNPATH); DT_RUNPATH; /etc/ld.so.conf directories; the defaults.
 * LD_LIBRARY_PATH is not consulted: the analysis describes the files, not
 * one process's environment. Returns how it was found, or NULL.
 */
static const char *resolve_needed(struct analysis *a, int idx, const char *name, char *out)
{
    const elf_file *req = a->libs[idx].elf;
    char origin[PATH_MAX];
    if (strchr(name, '/'))
        return compatible_file(name) && realpath(name, out) ? "path" : NULL;
    if (!req->runpath) {
        for (int j = idx; j >= 0; j = a->libs[j].parent) {
            const elf_file *e = a->libs[j].elf;
            if (!e || !e->rpath || e->runpath)
                continue;
            dir_of(a->libs[j].path, origin, sizeof(origin));
            if (search_list(e->rpath, origin, name, out))
                return "rpath";
        }
    } else {
        dir_of(a->libs[idx].path, origin, sizeof(origin));
        if (search_list(req->runpath, origin, name, out))
            return "runpath";
    }
    for (size_t i = 0; i < a->n_search; i++)
        if (search_list(a->search[i], "", name, out))
            return "system";
    return NULL;
}

static int find_lib(const struct analysis *a, const char *path)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->libs[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* Adds a library (path already canonical) and reads it. Returns its index,
 * or -1 when the analysis is full. */
static int add_lib(struct analysis *a, const char *path, const char *ref, const char *role,
                   int parent)
{
    if (a->n >= ANALYZE_MAX_LIBRARIES) {
        a->skipped++;
        return -1;
    }
    struct lib *l = &a->libs[a->n];
    memset(l, 0, sizeof(*l));
    l->path = strdup(path);
    l->ref = strdup(ref);
    l->role = role;
    l->parent = parent;
    l->needed = json_array();
    if (!l->path || !l->ref || !l->needed) {
        free(l->path);
        free(l->ref);
        json_decref(l->needed);
        return -1;
    }
    char err[512];
    if (elf_open(path, &l->elf, err, sizeof(err)) < 0) {
        l->elf = NULL;
        l->error = strdup(err);
    } else {
        symbols_summarize(l->elf, &l->sum);
    }
    return (int)a->n++;
}

/* A libllama or a libggml core library: ggml backends beside it matter. */
static bool loads_ggml_backends(const struct lib *l)
{
    return l->elf &&
           (l->sum.llama_api || l->sum.ggml_core || starts_with(base_name(l->path), "libggml."));
}

static int compare_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Adds the libggml-*.so* files in the directory of library idx, in name
 * order, unless already present. */
static void add_backends_beside(struct analysis *a, int idx)
{
    char dir[PATH_MAX];
    dir_of(a->libs[idx].path, dir, sizeof(dir));
    for (size_t i = 0; i < a->n; i++)
        if ((int)i != idx && a->libs[i].dir_scanned) {
            char other[PATH_MAX];
            dir_of(a->libs[i].path, other, sizeof(other));
            if (strcmp(other, dir) == 0)
                return;
        }
    a->libs[idx].dir_scanned = true;
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[ANALYZE_MAX_LIBRARIES];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < ANALYZE_MAX_LIBRARIES) {
        if (starts_with(e->d_name, "libggml-") && strstr(e->d_name, ".so")) {
            names[n] = strdup(e->d_name);
            if (names[n])
                n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), compare_names);
    for (size_t i = 0; i < n; i++) {
        char candidate[PATH_MAX], real[PATH_MAX];
        int len = snprintf(candidate, sizeof(candidate), "%s/%s", dir, names[i]);
        if (len > 0 && (size_t)len < sizeof(candidate) && realpath(candidate, real) &&
            find_lib(a, real) < 0) {
            struct stat st;
            if (stat(real, &st) == 0 && S_ISREG(st.st_mode))
                add_lib(a, real, names[i], "backend", -1);
        }
        free(names[i]);
    }
}

/* Resolves the DT_NEEDED entries of library idx, adding what it finds. */
static void follow_needed(struct analysis *a, int idx)
{
    const elf_file *elf = a->libs[idx].elf;
    for (size_t i = 0; i < elf->n_needed; i++) {
        const char *name = elf->needed[i];
        char real[PATH_MAX];
        const char *via = resolve_needed(a, idx, name, real);
        json_t *entry = json_pack("{s:s, s:s?, s:s?, s:b}", "name", name, "path", via ? real : NULL,
                                  "found_via", via, "cuda", symbols_is_cuda_library(name));
        if (entry)
            json_array_append_new(a->libs[idx].needed, entry);
        if (via && find_lib(a, real) < 0)
            add_lib(a, real, name, "needed", idx);
    }
}

static json_t *group_json(const symbol_group *g)
{
    json_t *ex = json_array();
    for (size_t i = 0; i < g->n_examples; i++)
        json_array_append_new(ex, json_string(g->examples[i]));
    return json_pack("{s:I, s:o}", "count", (json_int_t)g->count, "examples", ex);
}

/* The kind of a library by what it defines. */
static const char *lib_kind(const struct lib *l)
{
    if (!l->elf)
        return "unreadable";
    if (l->sum.bitnet_abi)
        return "bitnet";
    if (l->sum.llama_api)
        return "llama";
    if (l->sum.ggml_backend)
        return "ggml-backend";
    if (l->sum.ggml_core || l->sum.category[SYMBOL_CAT_GGML].count > 0)
        return "ggml";
    return "none";
}

static const char *kind_description(const char *kind)
{
    if (strcmp(kind, "bitnet") == 0)
        return "bitnet backend library (defines bitnet_abi_version)";
    if (strcmp(kind, "llama") == 0)
        return "llama.cpp library (defines llama_backend_init)";
    if (strcmp(kind, "ggml-backend") == 0)
        return "ggml backend library (defines ggml_backend_init, loaded by ggml at run time)";
    if (strcmp(kind, "ggml") == 0)
        return "ggml library";
    return "none of ours (no bitnet, llama or ggml symbols)";
}

/* The ggml backend name from ggml_backend_<name>_reg, into buf. */
static const char *backend_name(const struct lib *l, char *buf, size_t len)
{
    const char *reg = l->sum.ggml_backend_reg;
    if (!reg)
        return NULL;
    const char *mid = reg + strlen("ggml_backend_");
    snprintf(buf, len, "%.*s", (int)(strlen(mid) - strlen("_reg")), mid);
    return buf;
}

static json_t *symbols_json(const struct lib *l)
{
    json_t *cats = json_object(), *quants = json_object();
    for (unsigned c = 0; c < SYMBOL_CAT_COUNT; c++)
        json_object_set_new(cats, symbols_category_name(c), group_json(&l->sum.category[c]));
    for (unsigned q = 0; q < SYMBOL_QUANT_COUNT; q++)
        json_object_set_new(quants, symbols_quant_name(q), group_json(&l->sum.quant[q]));
    return json_pack("{s:I, s:I, s:o, s:o, s:o}", "defined", (json_int_t)l->sum.defined,
                     "undefined", (json_int_t)l->sum.undefined, "categories", cats, "quantization",
                     quants, "cuda_imports", group_json(&l->sum.cuda_imports));
}

static const char *source_name(elf_symbol_source s)
{
    switch (s) {
    case ELF_SYMBOLS_SECTIONS:
        return "sections";
    case ELF_SYMBOLS_GNU_HASH:
        return "dynamic (DT_GNU_HASH)";
    case ELF_SYMBOLS_HASH:
        return "dynamic (DT_HASH)";
    default:
        return "none";
    }
}

/* The short entry for a library of the closure or a backend beside it. */
static json_t *lib_json(const struct analysis *a, const struct lib *l)
{
    char bname[64];
    json_t *cuda_needed = json_array(), *quant = json_array(), *counts = json_object();
    size_t i;
    json_t *n;
    json_array_foreach(l->needed, i, n)
    {
        if (json_is_true(json_object_get(n, "cuda")))
            json_array_append(cuda_needed, json_object_get(n, "name"));
    }
    for (unsigned q = 0; q < SYMBOL_QUANT_COUNT; q++)
        if (l->sum.quant[q].count)
            json_array_append_new(quant, json_string(symbols_quant_name(q)));
    for (unsigned c = 0; c < SYMBOL_CAT_COUNT; c++)
        json_object_set_new(counts, symbols_category_name(c),
                            json_integer((json_int_t)l->sum.category[c].count));
    json_object_set_new(counts, "cuda_imports",
                        json_integer((json_int_t)l->sum.cuda_imports.count));
    return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:I, s:o, s:o, s:o, s:O}",
                     "name", l->ref, "path", l->path, "role", l->role, "needed_by",
                     l->parent >= 0 ? a->libs[l->parent].path : NULL, "soname",
                     l->elf ? l->elf->soname : NULL, "kind", lib_kind(l), "ggml_backend",
                     backend_name(l, bname, sizeof(bname)), "error", l->error, "defined_symbols",
                     (json_int_t)l->sum.defined, "symbols", counts, "cuda_needed", cuda_needed,
                     "quantization", quant, "needed", l->needed);
}

/* Appends "reason" strings for CUDA and returns whether CUDA is involved. */
static bool cuda_reasons(const struct analysis *a, json_t *reasons)
{
    bool cuda = false;
    char buf[PATH_MAX + 128], bname[64];
    for (size_t i = 0; i < a->n; i++) {
        const struct lib *l = &a->libs[i];
        if (!l->elf)
            continue;
        const char *b = backend_name(l, bname, sizeof(bname));
        if (b && strcmp(b, "cuda") == 0) {
            char dir[PATH_MAX];
            dir_of(l->path, dir, sizeof(dir));
            snprintf(buf, sizeof(buf), "%s (the ggml CUDA backend) %s %s", base_name(l->path),
                     strcmp(l->role, "backend") == 0 ? "is beside it in" : "is in", dir);
            json_array_append_new(reasons, json_string(buf));
            cuda = true;
        }
        for (size_t k = 0; k < l->elf->n_needed; k++) {
            if (!symbols_is_cuda_library(l->elf->needed[k]) || symbols_is_cuda_library(l->path))
                continue;
            snprintf(buf, sizeof(buf), "%s needs %s", base_name(l->path), l->elf->needed[k]);
            json_array_append_new(reasons, json_string(buf));
            cuda = true;
        }
        /* CUDA's own libraries are evidence through the DT_NEEDED above;
         * their thousands of cu* symbols would only repeat it. */
        if (l->sum.category[SYMBOL_CAT_CUDA].count > 0 && !symbols_is_cuda_library(l->path)) {
            snprintf(buf, sizeof(buf), "%s defines %zu CUDA symbols (e.g. %s)", base_name(l->path),
                     l->sum.category[SYMBOL_CAT_CUDA].count,
                     l->sum.category[SYMBOL_CAT_CUDA].examples[0]);
            json_array_append_new(reasons, json_string(buf));
            cuda = true;
        }
    }
    if (!cuda) {
        snprintf(buf, sizeof(buf),
                 "none of the %zu libraries read needs a CUDA library or defines CUDA symbols, "
                 "and no libggml-cuda.so is beside it",
                 a->n);
        json_array_append_new(reasons, json_string(buf));
    }
    return cuda;
}

static void add_kernel(json_t *kernels, const char *id, const char *why)
{
    json_array_append_new(kernels, json_pack("{s:s, s:s}", "id", id, "reason", why));
}

/* Builds the report from the libraries read. */
static json_t *build_report(const struct analysis *a, const char *given)
{
    const struct lib *m = &a->libs[0];
    const elf_file *e = m->elf;
    json_t *reasons = json_array();
    bool cuda = cuda_reasons(a, reasons);

    /* Quantization families over every library read, with where they are. */
    json_t *quant = json_array(), *formats = json_array();
    bool format_seen[SYMBOL_QUANT_COUNT] = {false};
    bool has_i2s = false;
    for (unsigned q = 0; q < SYMBOL_QUANT_COUNT; q++) {
        json_t *where = json_array(), *examples = json_array();
        size_t count = 0;
        for (size_t i = 0; i < a->n; i++) {
            const symbol_group *g = &a->libs[i].sum.quant[q];
            if (!g->count)
                continue;
            count += g->count;
            json_array_append_new(where, json_string(base_name(a->libs[i].path)));
            for (size_t k = 0; k < g->n_examples && json_array_size(examples) < SYMBOLS_EXAMPLES;
                 k++)
                json_array_append_new(examples, json_string(g->examples[k]));
        }
        if (!count) {
            json_decref(where);
            json_decref(examples);
            continue;
        }
        json_array_append_new(quant, json_pack("{s:s, s:I, s:o, s:o}", "type",
                                               symbols_quant_name(q), "count", (json_int_t)count,
                                               "libraries", where, "examples", examples));
        /* One entry per format: i2_s and i2_i8_s both load i2s files. */
        bool dup = false;
        for (unsigned p = 0; p < q; p++)
            if (format_seen[p] && strcmp(symbols_quant_format(p), symbols_quant_format(q)) == 0)
                dup = true;
        format_seen[q] = true;
        if (!dup)
            json_array_append_new(formats, json_string(symbols_quant_format(q)));
    }

    /* I2_S code inside a ggml (bitnet.cpp's libggml) is what iq2s_ggml.*
     * means; I2_S symbols of a bitnet library are our own kernels. */
    for (size_t i = 0; i < a->n; i++) {
        const symbols_summary *s = &a->libs[i].sum;
        if ((s->quant[SYMBOL_QUANT_I2_S].count || s->quant[SYMBOL_QUANT_I2_I8_S].count) &&
            !s->bitnet_abi && (s->category[SYMBOL_CAT_GGML].count || s->llama_api))
            has_i2s = true;
    }

    /* Kernel ids of the registry that these libraries provide. */
    json_t *kernels = json_array();
    const struct lib *llama = NULL;
    for (size_t i = 0; i < a->n && !llama; i++)
        if (a->libs[i].elf && a->libs[i].sum.llama_api)
            llama = &a->libs[i];
    char why[PATH_MAX + 128];
    if (llama) {
        snprintf(why, sizeof(why), "%s defines llama_backend_init; %s", base_name(llama->path),
                 cuda ? "CUDA is present (see cuda.reasons)" : "no CUDA anywhere");
        add_kernel(kernels, cuda ? "llama.cuda" : "llama.cpu", why);
    }
    if (has_i2s) {
        snprintf(why, sizeof(why), "I2_S symbols in a ggml library (bitnet.cpp); %s",
                 cuda ? "CUDA is present" : "no CUDA anywhere");
        add_kernel(kernels, cuda ? "iq2s_ggml.cuda" : "iq2s_ggml.cpu", why);
    }
    if (m->sum.bitnet_abi && !llama && cuda)
        add_kernel(kernels, "i2s_qk256.cuda",
                   "a bitnet backend library that needs CUDA: the cuda backend library");

    json_t *main_needed = json_copy(m->needed);
    json_t *libraries = json_array();
    for (size_t i = 1; i < a->n; i++)
        json_array_append_new(libraries, lib_json(a, &a->libs[i]));

    char machine[32];
    const char *mn = elf_machine_name(e->machine);
    if (!mn) {
        snprintf(machine, sizeof(machine), "machine %u", e->machine);
        mn = machine;
    }
    const char *kind = lib_kind(m);
    return json_pack(
        "{s:s, s:s, s:s?, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:s, s:o, s:o, s:o, "
        "s:I, s:{s:b, s:o}, s:o, s:o, s:o}",
        "path", given, "resolved_path", m->path, "soname", e->soname, "class", "ELF64", "machine",
        mn, "type", elf_type_name(e), "symbol_source", source_name(e->symbol_source), "runpath",
        e->runpath, "rpath", e->rpath, "kind", kind, "kind_description", kind_description(kind),
        "needed", main_needed, "symbols", symbols_json(m), "libraries", libraries,
        "libraries_skipped", (json_int_t)a->skipped, "cuda", "inference", cuda, "reasons", reasons,
        "quantization", quant, "kernels", kernels, "formats", formats);
}

static void analysis_free(struct analysis *a)
{
    for (size_t i = 0; i < a->n; i++) {
        elf_close(a->libs[i].elf);
        free(a->libs[i].path);
        free(a->libs[i].ref);
        free(a->libs[i].error);
        json_decref(a->libs[i].needed);
    }
    for (size_t i = 0; i < a->n_search; i++)
        free(a->search[i]);
    free(a);
}

int analyze_library(const char *path, json_t **out, char *err, size_t err_len)
{
    /* Read the library itself first: its errors are the caller's errors. */
    elf_file *main_elf;
    int rc = elf_open(path, &main_elf, err, err_len);
    if (rc < 0)
        return rc;
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        rc = -errno;
        elf_close(main_elf);
        if (err && err_len)
            snprintf(err, err_len, "%s: %s", path, strerror(-rc));
        return rc;
    }
    struct analysis *a = calloc(1, sizeof(*a));
    if (!a) {
        elf_close(main_elf);
        if (err && err_len)
            snprintf(err, err_len, "%s: out of memory", path);
        return -ENOMEM;
    }
    struct lib *m = &a->libs[0];
    m->path = strdup(real);
    m->ref = strdup(path);
    m->role = "main";
    m->parent = -1;
    m->elf = main_elf;
    m->needed = json_array();
    a->n = 1;
    if (!m->path || !m->ref || !m->needed) {
        analysis_free(a);
        if (err && err_len)
            snprintf(err, err_len, "%s: out of memory", path);
        return -ENOMEM;
    }
    symbols_summarize(main_elf, &m->sum);

    read_ld_so_conf(a, "/etc/ld.so.conf", 0);
    for (size_t i = 0; i < sizeof(default_dirs) / sizeof(default_dirs[0]); i++)
        add_search_dir(a, default_dirs[i]);

    /* Breadth first over the closure; backends join the queue when a
     * libllama or libggml is met, and their DT_NEEDED are followed too. */
    for (size_t i = 0; i < a->n; i++) {
        if (!a->libs[i].elf)
            continue;
        follow_needed(a, (int)i);
        if (loads_ggml_backends(&a->libs[i]))
            add_backends_beside(a, (int)i);
    }

    json_t *report = build_report(a, path);
    analysis_free(a);
    if (!report) {
        if (err && err_len)
            snprintf(err, err_len, "%s: out of memory building the report", path);
        return -ENOMEM;
    }
    *out = report;
    return 0;
}
