/*
 * backends/loader.c - loads backend libraries from private, sealed copies.
 *
 * Why a memfd copy (see also docs/backends.md):
 *   - glibc returns an already-loaded object for a dlopen() whose name, or
 *     whose file's device and inode, match it. The copy's name is
 *     /proc/self/fd/N, and N stays reserved (the memfd stays open) for as
 *     long as the copy may be mapped, so no later load can match it; a new
 *     memfd is a new inode. An in-place upgrade therefore always runs the
 *     new code, however the file was replaced (rename, or written over).
 *   - The bytes loaded are the bytes checked: the ELF checks read the
 *     memfd, which is sealed against writes before dlopen().
 *   - dlmopen(LM_ID_NEWLM) would give a fresh namespace per load, but glibc
 *     has a fixed, small number of namespaces (16), which NODELETE libraries
 *     never give back, so reloads would stop working; and libstdc++ and TLS
 *     in secondary namespaces have known failures. A runner process would
 *     isolate best but costs a protocol and a copy of every logits row.
 *   - memfd works on a noexec /tmp and needs no writable directory.
 * Limits: the library's DT_NEEDED dependencies are found by name as usual,
 * so one already loaded is shared with the old copy. $ORIGIN in the copy's
 * RUNPATH would name /proc/self/fd, so the dependencies that sit beside the
 * original are loaded from there first (preload_origin_deps()).
 */
#define _GNU_SOURCE
#include "backends/loader.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/elf.h"
#include "bitnet/error.h"

/* Refuse absurd files before copying them (the largest real backend
 * library, a CUDA build, is a few hundred MiB). */
#define LOADER_MAX_BYTES ((off_t)2 << 30)

/* Copies the open file src into a new sealed memfd. Returns the memfd or a
 * negative errno. */
static int copy_to_memfd(int src, const char *name, off_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    off_t off = 0;
    while (off < size) {
        ssize_t n = copy_file_range(src, &off, fd, NULL, (size_t)(size - off), 0);
        if (n < 0 &&
            (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
            break; /* fall back to read/write below */
        }
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
    }
    char buf[1 << 16];
    while (off < size) {
        ssize_t n = pread(src, buf, sizeof(buf), off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            return -e;
        }
        for (ssize_t w = 0; w < n;) {
            ssize_t m = write(fd, buf + w, (size_t)(n - w));
            if (m < 0 && errno == EINTR)
                continue;
            if (m < 0) {
                int e = errno;
                close(fd);
                return -e;
            }
            w += m;
        }
        off += n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* True when a RUNPATH or RPATH string uses $ORIGIN. */
static bool uses_origin(const char *paths)
{
    return paths && (strstr(paths, "$ORIGIN") || strstr(paths, "${ORIGIN}"));
}

/*
 * The copy's $ORIGIN is /proc/self/fd, so a library that finds its
 * dependencies beside itself would not find them. Loads each DT_NEEDED
 * entry that exists in the original's directory first (each passing the
 * same file checks); the copy's own lookup then matches them by SONAME.
 */
static int preload_origin_deps(backend_lib *lib, const elf_file *elf, const validate_opts *opts,
                               char *err, size_t err_len)
{
    if (!uses_origin(elf->runpath) && !uses_origin(elf->rpath))
        return 0;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", lib->resolved);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    lib->deps = calloc(elf->n_needed ? elf->n_needed : 1, sizeof(void *));
    if (!lib->deps)
        return -ENOMEM;
    for (size_t i = 0; i < elf->n_needed; i++) {
        char dep[PATH_MAX + 256];
        if (strchr(elf->needed[i], '/'))
            continue;
        int n = snprintf(dep, sizeof(dep), "%s/%s", dir, elf->needed[i]);
        if (n < 0 || (size_t)n >= sizeof(dep) || access(dep, F_OK) != 0)
            continue;
        int fd = -1;
        char why[512];
        int rc = validate_library_file(dep, opts, &fd, NULL, 0, why, sizeof(why));
        if (rc) {
            snprintf(err, err_len, "%s: its dependency %s", lib->path, why);
            return rc;
        }
        close(fd);
        dlerror();
        void *h = dlopen(dep, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            snprintf(err, err_len, "%s: its dependency %s failed to load: %s", lib->path, dep,
                     e ? e : "unknown error");
            return BITNET_ELIB_LOAD;
        }
        lib->deps[lib->n_deps++] = h;
    }
    return 0;
}

/* Runs the ELF checks over the memfd's bytes, then loads what the copy
 * needs from the original's directory. */
static int check_copy(backend_lib *lib, size_t size, const validate_opts *opts, char *err,
                      size_t err_len)
{
    void *map = mmap(NULL, size ? size : 1, PROT_READ, MAP_PRIVATE, lib->memfd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        snprintf(err, err_len, "%s: cannot map its copy: %s", lib->path, strerror(e));
        return -e;
    }
    int rc = validate_library_elf(map, size, lib->path, err, err_len);
    elf_file *elf = NULL;
    if (rc == 0)
        rc = elf_open_memory(map, size, lib->path, &elf, err, err_len);
    if (rc == 0)
        rc = preload_origin_deps(lib, elf, opts, err, err_len);
    elf_close(elf);
    munmap(map, size ? size : 1);
    return rc;
}

/* Frees the strings and the struct, and drops the dependencies loaded for
 * it; the copy itself is handled by the caller. */
static void lib_release(backend_lib *lib)
{
    for (size_t i = 0; i < lib->n_deps; i++)
        dlclose(lib->deps[i]);
    free(lib->deps);
    free(lib->path);
    free(lib->resolved);
    free(lib->load_name);
    free(lib);
}

int backend_lib_copy(const char *path, const validate_opts *opts, int *memfd, size_t *size,
                     char *resolved, size_t resolved_len, char *err, size_t err_len)
{
    int src = -1;
    int rc = validate_library_file(path, opts, &src, resolved, resolved_len, err, err_len);
    if (rc)
        return rc;
    struct stat st;
    if (fstat(src, &st) != 0) {
        rc = -errno;
        snprintf(err, err_len, "%s: cannot stat: %s", path, strerror(-rc));
        close(src);
        return rc;
    }
    if (st.st_size > LOADER_MAX_BYTES) {
        snprintf(err, err_len, "%s: larger than 2 GiB; not a backend library", path);
        close(src);
        return BITNET_ELIMIT;
    }
    const char *base = strrchr(resolved, '/');
    int fd = copy_to_memfd(src, base ? base + 1 : resolved, st.st_size);
    close(src);
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot make a private copy: %s", path, strerror(-fd));
        return fd;
    }
    size_t n = (size_t)st.st_size;
    void *map = mmap(NULL, n ? n : 1, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        snprintf(err, err_len, "%s: cannot map its copy: %s", path, strerror(-rc));
        close(fd);
        return rc;
    }
    rc = validate_library_elf(map, n, path, err, err_len);
    munmap(map, n ? n : 1);
    if (rc) {
        close(fd);
        return rc;
    }
    *memfd = fd;
    *size = n;
    return 0;
}

int backend_lib_open_copy(int memfd, size_t size, const char *path, const char *resolved,
                          const validate_opts *opts, backend_lib **out, char *err, size_t err_len)
{
    backend_lib *lib = calloc(1, sizeof(*lib));
    char name[64];
    snprintf(name, sizeof(name), "/proc/self/fd/%d", memfd);
    if (!lib || !(lib->path = strdup(path)) || !(lib->resolved = strdup(resolved)) ||
        !(lib->load_name = strdup(name))) {
        if (lib)
            lib_release(lib);
        close(memfd);
        return -ENOMEM;
    }
    lib->memfd = memfd;
    int rc = check_copy(lib, size, opts, err, err_len);
    if (rc) {
        lib_release(lib);
        close(memfd);
        return rc;
    }
    rc = validate_library_open(name, path, &lib->handle, &lib->api, err, err_len);
    if (rc == 0 && lib->api.backend_info(&lib->desc) != 0) {
        snprintf(err, err_len, "%s: bitnet_backend_info() failed", path);
        rc = BITNET_EBACKEND;
        backend_lib_free(lib);
        return rc;
    }
    if (rc) {
        /* validate_library_open() closed it; it may still be mapped (NODELETE). */
        lib->handle = NULL;
        backend_lib_free(lib);
        return rc;
    }
    *out = lib;
    return 0;
}

int backend_lib_load(const char *path, const validate_opts *opts, backend_lib **out, char *err,
                     size_t err_len)
{
    if (!out) {
        snprintf(err, err_len, "backend_lib_load: no output");
        return BITNET_EPARAM;
    }
    char resolved[PATH_MAX];
    int fd = -1;
    size_t size = 0;
    int rc = backend_lib_copy(path, opts, &fd, &size, resolved, sizeof(resolved), err, err_len);
    if (rc)
        return rc;
    return backend_lib_open_copy(fd, size, path, resolved, opts, out, err, err_len);
}

void backend_lib_free(backend_lib *lib)
{
    if (!lib)
        return;
    if (lib->handle)
        dlclose(lib->handle);
    /* If the copy is still loaded (NODELETE, or a constructor that pinned it),
     * its name must never be reused: keep the descriptor open for the life of
     * the process. Otherwise the copy is gone and the memfd can go too. */
    void *still = dlopen(lib->load_name, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    if (still)
        dlclose(still);
    else
        close(lib->memfd);
    lib_release(lib);
}
