/*
 * backends/loader.h - loads a validated backend library so that every load
 * runs the code that is in the file now.
 *
 * dlopen() of a path that is already loaded returns the copy already in
 * memory, even when the file at that path has been replaced since (glibc
 * matches loaded objects by name and by device and inode), and dlclose()
 * often unloads nothing (objects marked NODELETE, which glibc does to C++
 * libraries with STB_GNU_UNIQUE symbols). So the loader never dlopens the
 * file it was given: it copies the checked bytes into a sealed memfd and
 * dlopens that under a name nothing else uses. docs/backends.md explains the
 * choice against dlmopen() and a runner process.
 *
 * A backend_lib is not thread-safe; the daemon's backend manager owns it.
 */
#ifndef BITNET_BACKENDS_LOADER_H
#define BITNET_BACKENDS_LOADER_H

#include <stddef.h>

#include "backends/api.h"
#include "backends/validate.h"

typedef struct backend_lib {
    backend_api api;          /* the library's ABI functions */
    bitnet_backend_desc desc; /* what bitnet_backend_info() said at load */
    char *path;               /* the path as given */
    char *resolved;           /* the path with symlinks resolved */
    char *load_name;          /* what was passed to dlopen (/proc/self/fd/N) */

    /* Private. */
    void *handle;  /* dlopen handle */
    int memfd;     /* the private copy; open while the code may be mapped */
    void **deps;   /* dependencies loaded from the original's directory ($ORIGIN) */
    size_t n_deps; /* entries in deps */
} backend_lib;

/*
 * Validates the library at path (validate.h: file checks, ELF checks on the
 * copied bytes, dlopen, symbols, ABI version), loads the private copy and
 * asks it bitnet_backend_info(). Returns 0 and *out, or a negative code of
 * validate.h (BITNET_EBACKEND when bitnet_backend_info() fails) with a
 * one-line message in err; nothing stays loaded on failure.
 */
int backend_lib_load(const char *path, const validate_opts *opts, backend_lib **out, char *err,
                     size_t err_len);

/*
 * The two halves of backend_lib_load(), for loading in another process:
 * backend_lib_copy() runs the file checks, copies the file into a sealed
 * memfd and runs the ELF checks on the copy, without loading anything:
 * returns 0, the memfd in *memfd (the caller owns it), its size and the
 * resolved path; backend_lib_open_copy() loads that copy (the dependencies
 * beside the original first, then dlopen, the symbols, the ABI version and
 * bitnet_backend_info()) and takes memfd over, also on failure.
 */
int backend_lib_copy(const char *path, const validate_opts *opts, int *memfd, size_t *size,
                     char *resolved, size_t resolved_len, char *err, size_t err_len);
int backend_lib_open_copy(int memfd, size_t size, const char *path, const char *resolved,
                          const validate_opts *opts, backend_lib **out, char *err, size_t err_len);

/*
 * Closes the library. Models and contexts made by it must be freed first.
 * When the library cannot be unloaded (NODELETE), its memfd stays open so
 * that its name is never reused for another load. NULL is fine.
 */
void backend_lib_free(backend_lib *lib);

#endif
