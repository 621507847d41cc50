/*
 * backends/validate.h - the checks a backend library passes before bitnetd
 * calls anything in it (DESIGN.md section 6, docs/backends.md).
 *
 * In order, each failure with its own code and a one-line message that
 * names the file, what is wrong and what to do about it:
 *   -ENOENT (or another -errno)  the path does not exist or cannot be read
 *   BITNET_ELIB_DIR         the resolved path (symlinks followed) is not
 *                           inside one of the configured library directories
 *   BITNET_ELIB_NOT_REGULAR not a regular file (a directory, a device)
 *   BITNET_ELIB_OWNER       the file or its directory is owned by someone
 *                           other than root or the daemon's uid
 *   BITNET_ELIB_MODE        the file or its directory is writable by group
 *                           or others
 *   BITNET_EELF, BITNET_EELF_CLASS, BITNET_EELF_MACHINE, BITNET_ETRUNCATED,
 *   BITNET_EFORMAT          not an ELF64 shared object for this machine
 *   BITNET_ELIB_SYMBOL      a required ABI function is not in its dynamic
 *                           symbol table (named); checked before dlopen(), so
 *                           such a library's constructors never run
 *   BITNET_ELIB_LOAD        dlopen() failed (its dlerror() text is kept)
 *   BITNET_ELIB_SYMBOL      dlsym() cannot resolve a required symbol
 *   BITNET_ELIB_ABI         bitnet_abi_version() is not BITNET_ABI_VERSION
 * A library that fails is never called (bitnet_abi_version() is the first
 * function called, and only once every symbol is present).
 */
#ifndef BITNET_BACKENDS_VALIDATE_H
#define BITNET_BACKENDS_VALIDATE_H

#include <stddef.h>
#include <sys/types.h>

#include "backends/api.h"

typedef struct validate_opts {
    const char *const *dirs; /* allowed library directories, NULL-terminated */
    uid_t uid;               /* the uid that may own libraries besides root (the daemon's) */
} validate_opts;

/*
 * The file checks, before anything is mapped: resolves path (symlinks
 * followed; the resolved path goes to resolved, of resolved_len bytes),
 * checks it is inside opts->dirs, opens it (O_RDONLY, O_CLOEXEC, O_NOFOLLOW on
 * the resolved path) and checks type, owner and mode on the open file, so
 * the bytes later read are the ones checked. Returns 0 and the open
 * descriptor in *fd (the caller closes it), or a negative code with a
 * message in err.
 */
int validate_library_file(const char *path, const validate_opts *opts, int *fd, char *resolved,
                          size_t resolved_len, char *err, size_t err_len);

/*
 * Checks that the size bytes at data are an ELF64 shared object for this
 * machine that defines every required ABI function. name is used in
 * messages. Returns 0 or a negative code.
 */
int validate_library_elf(const void *data, size_t size, const char *name, char *err,
                         size_t err_len);

/*
 * Loads the library at load_path with dlopen(RTLD_LOCAL | RTLD_NOW), finds
 * every required ABI symbol, then calls bitnet_abi_version(). name is the
 * path used in messages (the file the user named, when load_path is a
 * private copy). Returns 0, the dlopen handle in *handle and the filled
 * table in *api; or a negative code, with the library closed again.
 */
int validate_library_open(const char *load_path, const char *name, void **handle, backend_api *api,
                          char *err, size_t err_len);

#endif
