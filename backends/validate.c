/*
 * backends/validate.c - checks a backend library before it is used; see
 * validate.h for the order and the codes.
 */
#define _GNU_SOURCE
#include "backends/validate.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/elf.h"
#include "bitnet/error.h"

static const backend_api_symbol required[] = {
    {"bitnet_abi_version", offsetof(backend_api, abi_version)},
    {"bitnet_backend_info", offsetof(backend_api, backend_info)},
    {"bitnet_model_new_from_file", offsetof(backend_api, model_new_from_file)},
    {"bitnet_model_free", offsetof(backend_api, model_free)},
    {"bitnet_model_describe", offsetof(backend_api, model_describe)},
    {"bitnet_context_new", offsetof(backend_api, context_new)},
    {"bitnet_context_free", offsetof(backend_api, context_free)},
    {"bitnet_tokenize", offsetof(backend_api, tokenize)},
    {"bitnet_eval", offsetof(backend_api, eval)},
    {"bitnet_decode_greedy", offsetof(backend_api, decode_greedy)},
    {"bitnet_context_reset", offsetof(backend_api, context_reset)},
};

const backend_api_symbol *backend_api_symbols(size_t *n)
{
    *n = sizeof(required) / sizeof(required[0]);
    return required;
}

static int fail(int code, char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Writes the allowed directories as "a, b, c" for messages. */
static void dirs_text(const char *const *dirs, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; dirs && dirs[i] && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", dirs[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (!buf[0])
        snprintf(buf, len, "none configured");
}

/* True when resolved lies under one of dirs (each resolved too). */
static bool inside_dirs(const char *resolved, const char *const *dirs)
{
    for (size_t i = 0; dirs && dirs[i]; i++) {
        char dir[PATH_MAX];
        if (!realpath(dirs[i], dir))
            continue;
        size_t n = strlen(dir);
        if (n == 1 && dir[0] == '/')
            return true;
        if (strncmp(resolved, dir, n) == 0 && resolved[n] == '/')
            return true;
    }
    return false;
}

/* The owner and mode rules, for the file and for the directory holding it. */
static int check_owner_mode(const struct stat *st, const char *what, const char *path,
                            const char *shown, uid_t uid, char *err, size_t err_len)
{
    if (st->st_uid != 0 && st->st_uid != uid)
        return fail(BITNET_ELIB_OWNER, err, err_len,
                    "%s: %s %s is owned by uid %u, not root or the daemon's uid %u; "
                    "run chown root %s",
                    shown, what, path, (unsigned)st->st_uid, (unsigned)uid, path);
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return fail(BITNET_ELIB_MODE, err, err_len,
                    "%s: %s %s is writable by %s (mode %04o); run chmod go-w %s", shown, what, path,
                    (st->st_mode & S_IWOTH) ? "others" : "its group",
                    (unsigned)(st->st_mode & 07777), path);
    return 0;
}

int validate_library_file(const char *path, const validate_opts *opts, int *fd_out,
                          char *resolved_out, size_t resolved_len, char *err, size_t err_len)
{
    if (!path || !*path || !opts || !fd_out)
        return fail(BITNET_EPARAM, err, err_len, "no library path given");
    char resolved[PATH_MAX];
    if (!realpath(path, resolved)) {
        int e = errno;
        return fail(-e, err, err_len, "%s: %s; give the path of an installed backend library", path,
                    strerror(e));
    }
    bool link = strcmp(resolved, path) != 0;
    char link_note[PATH_MAX + 32] = "";
    if (link)
        snprintf(link_note, sizeof(link_note), " (resolves to %s)", resolved);

    if (!inside_dirs(resolved, opts->dirs)) {
        char dirs[1024];
        dirs_text(opts->dirs, dirs, sizeof(dirs));
        return fail(BITNET_ELIB_DIR, err, err_len,
                    "%s%s is outside the library directories (%s); install it in one of them "
                    "or add its directory to the configuration",
                    path, link_note, dirs);
    }

    int fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return fail(-e, err, err_len, "%s%s: cannot open: %s", path, link_note, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(-e, err, err_len, "%s%s: cannot stat: %s", path, link_note, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(BITNET_ELIB_NOT_REGULAR, err, err_len,
                    "%s%s is not a regular file (%s); give the path of the library file itself",
                    path, link_note, S_ISDIR(st.st_mode) ? "a directory" : "a special file");
    }
    int rc = check_owner_mode(&st, "file", resolved, path, opts->uid, err, err_len);
    if (rc == 0) {
        /* Whoever may write the directory may swap the file. */
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", resolved);
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        struct stat dst;
        if (stat(dir, &dst) != 0)
            rc = fail(-errno, err, err_len, "%s: cannot stat its directory %s", path, dir);
        else if ((dst.st_mode & S_ISVTX) == 0)
            rc = check_owner_mode(&dst, "directory", dir, path, opts->uid, err, err_len);
    }
    if (rc) {
        close(fd);
        return rc;
    }
    if (resolved_out && resolved_len)
        snprintf(resolved_out, resolved_len, "%s", resolved);
    *fd_out = fd;
    return 0;
}

int validate_library_elf(const void *data, size_t size, const char *name, char *err, size_t err_len)
{
    elf_file *elf = NULL;
    char why[512];
    int rc = elf_open_memory(data, size, name, &elf, why, sizeof(why));
    if (rc) {
        const char *remedy = rc == BITNET_EELF_CLASS     ? "; use a 64-bit build of the library"
                             : rc == BITNET_EELF_MACHINE ? "; use a build for this machine"
                                                         : "; give the path of a shared library";
        return fail(rc, err, err_len, "%s%s", why, remedy);
    }
    if (elf->type != ET_DYN || (elf->flags_1 & DF_1_PIE) || elf->has_interp) {
        rc = fail(BITNET_EELF, err, err_len,
                  "%s: is a %s, not a shared library; give the path "
                  "of a backend library",
                  name, elf_type_name(elf));
        goto out;
    }
    size_t n;
    const backend_api_symbol *syms = backend_api_symbols(&n);
    for (size_t i = 0; i < n; i++) {
        const elf_symbol *s = elf_find_defined(elf, syms[i].name);
        if (!s || s->type != STT_FUNC) {
            rc = fail(BITNET_ELIB_SYMBOL, err, err_len,
                      "%s: does not export %s, so it is not a bitnetd backend library "
                      "(ABI %u); use libbitnet-llama.so to reach a libllama",
                      name, syms[i].name, BITNET_ABI_VERSION);
            goto out;
        }
    }
out:
    elf_close(elf);
    return rc;
}

int validate_library_open(const char *load_path, const char *name, void **handle_out,
                          backend_api *api_out, char *err, size_t err_len)
{
    dlerror();
    void *h = dlopen(load_path, RTLD_LOCAL | RTLD_NOW);
    if (!h) {
        const char *why = dlerror();
        return fail(BITNET_ELIB_LOAD, err, err_len,
                    "%s: dlopen failed: %s; check its dependencies"
                    " with bitnetctl analyze-library",
                    name, why ? why : "unknown error");
    }
    backend_api api;
    size_t n;
    const backend_api_symbol *syms = backend_api_symbols(&n);
    for (size_t i = 0; i < n; i++) {
        dlerror();
        void *sym = dlsym(h, syms[i].name);
        if (!sym || dlerror()) {
            dlclose(h);
            return fail(BITNET_ELIB_SYMBOL, err, err_len,
                        "%s: does not export %s, so it is not a bitnetd backend library (ABI %u)",
                        name, syms[i].name, BITNET_ABI_VERSION);
        }
        /* POSIX guarantees a function pointer and void * share a representation. */
        memcpy((char *)&api + syms[i].offset, &sym, sizeof(sym));
    }
    uint32_t v = api.abi_version();
    if (v != BITNET_ABI_VERSION) {
        dlclose(h);
        return fail(BITNET_ELIB_ABI, err, err_len,
                    "%s: backend ABI version %u, this bitnetd needs %u; install the library "
                    "built with this bitnetd",
                    name, v, BITNET_ABI_VERSION);
    }
    *handle_out = h;
    *api_out = api;
    return 0;
}
