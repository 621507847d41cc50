/*
 * tests/backends/test_loader.c - the loader runs the code in the file now:
 * a backend library replaced at the same path (an in-place upgrade) reports
 * the new version on the next load, while the old copy keeps serving.
 *
 * The two fixture versions are linked NODELETE, as glibc marks C++
 * libraries with STB_GNU_UNIQUE symbols, so dlclose() never unloads them:
 * the worst case for a reload.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/loader.h"
#include "bitnet/error.h"
#include "support.h"

static char err[1024];
static char dir[512];   /* the allowed library directory */
static char path[1024]; /* P: where the library is installed */

static validate_opts opts(void)
{
    static const char *dirs[2];
    dirs[0] = dir;
    dirs[1] = NULL;
    return (validate_opts){.dirs = dirs, .uid = getuid()};
}

/* Installs src at P as `install` does: a new file renamed over the old. */
static void install_rename(const char *src)
{
    char tmp[PATH_MAX + 8];
    size_t size;
    uint8_t *data = read_file(src, &size);
    ck_assert_ptr_nonnull(data);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    ck_assert_int_eq(write_file(tmp, data, size), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
    free(data);
}

/* Installs src at P by writing over the existing file (same inode). */
static void install_overwrite(const char *src)
{
    size_t size;
    uint8_t *data = read_file(src, &size);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(write_file(path, data, size), 0);
    free(data);
}

static backend_lib *load_ok(void)
{
    validate_opts o = opts();
    backend_lib *lib = NULL;
    int rc = backend_lib_load(path, &o, &lib, err, sizeof(err));
    ck_assert_msg(rc == 0, "load = %d: %s", rc, err);
    return lib;
}

/* The version the library's code reports now (not the one cached at load). */
static const char *version_now(const backend_lib *lib)
{
    static bitnet_backend_desc d;
    ck_assert_int_eq(lib->api.backend_info(&d), 0);
    return d.version;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "%s/lib", scratch_dir());
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/libbitnet-fixture.so", dir);
    unlink(path);
}

START_TEST(test_reload_after_rename_runs_new_code)
{
    install_rename(ABIFIX_V1);
    backend_lib *old = load_ok();
    ck_assert_str_eq(version_now(old), "fixture-1");
    install_rename(ABIFIX_V2);
    backend_lib *new = load_ok();
    ck_assert_str_eq(version_now(new), "fixture-2");
    /* Both are loaded: requests in flight finish on the old code. */
    ck_assert_str_eq(version_now(old), "fixture-1");
    ck_assert_str_eq(new->path, old->path);
    ck_assert_str_ne(new->load_name, old->load_name);
    backend_lib_free(old);
    ck_assert_str_eq(version_now(new), "fixture-2");
    backend_lib_free(new);
}
END_TEST

START_TEST(test_reload_after_overwrite_in_place_runs_new_code)
{
    install_overwrite(ABIFIX_V1);
    backend_lib *old = load_ok();
    ck_assert_str_eq(version_now(old), "fixture-1");
    /* Writing over a library that a process has mapped would change the old
     * code under it; the old backend runs from its private copy, so it is
     * unaffected. */
    install_overwrite(ABIFIX_V2);
    backend_lib *new = load_ok();
    ck_assert_str_eq(version_now(new), "fixture-2");
    ck_assert_str_eq(version_now(old), "fixture-1");
    backend_lib_free(new);
    backend_lib_free(old);
}
END_TEST

START_TEST(test_reload_cycles_alternate_versions)
{
    /* Load, free and replace many times: names are never reused while a
     * NODELETE copy is mapped, and nothing runs out (namespaces would). */
    for (int i = 0; i < 24; i++) {
        install_rename(i % 2 ? ABIFIX_V2 : ABIFIX_V1);
        backend_lib *lib = load_ok();
        ck_assert_str_eq(version_now(lib), i % 2 ? "fixture-2" : "fixture-1");
        ck_assert_str_eq(lib->desc.version, i % 2 ? "fixture-2" : "fixture-1");
        backend_lib_free(lib);
    }
}
END_TEST

/* Why the loader exists: plain dlopen() of the same path after a rename
 * returns the copy already loaded, i.e. the old code. */
START_TEST(test_plain_dlopen_returns_old_code)
{
    install_rename(ABIFIX_V1);
    void *a = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(a != NULL, "%s", dlerror());
    install_rename(ABIFIX_V2);
    void *b = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(b != NULL, "%s", dlerror());
    int32_t (*info)(bitnet_backend_desc *) =
        (int32_t(*)(bitnet_backend_desc *))dlsym(b, "bitnet_backend_info");
    ck_assert_ptr_nonnull(info);
    bitnet_backend_desc d;
    ck_assert_int_eq(info(&d), 0);
    ck_assert_str_eq(d.version, "fixture-1");
    ck_assert_ptr_eq(a, b);
    dlclose(b);
    dlclose(a);
}
END_TEST

/* A library whose RUNPATH is $ORIGIN finds its dependency beside the
 * original, although it runs from a copy in /proc/self/fd. */
START_TEST(test_origin_dependency_is_found)
{
    char origin_dir[PATH_MAX];
    snprintf(origin_dir, sizeof(origin_dir), "%s", ABIFIX_ORIGIN);
    *strrchr(origin_dir, '/') = '\0';
    const char *dirs[2] = {origin_dir, NULL};
    validate_opts o = {.dirs = dirs, .uid = getuid()};
    backend_lib *lib = NULL;
    int rc = backend_lib_load(ABIFIX_ORIGIN, &o, &lib, err, sizeof(err));
    ck_assert_msg(rc == 0, "load = %d: %s", rc, err);
    ck_assert_str_eq(version_now(lib), "origin-dep");
    ck_assert_uint_eq(lib->n_deps, 1);
    backend_lib_free(lib);
}
END_TEST

/* Open descriptors of this process. */
static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

START_TEST(test_failed_load_leaves_nothing_loaded)
{
    install_rename(ABIFIX_BADABI);
    validate_opts o = opts();
    backend_lib *lib = NULL;
    int before = count_fds();
    ck_assert_int_eq(backend_lib_load(path, &o, &lib, err, sizeof(err)), BITNET_ELIB_ABI);
    ck_assert_ptr_null(lib);
    /* The fixture is not NODELETE, so the refused copy was unloaded and its
     * memfd closed. */
    ck_assert_int_eq(count_fds(), before);
}
END_TEST

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_reload_after_rename_runs_new_code);
    tcase_add_test(tc, test_reload_after_overwrite_in_place_runs_new_code);
    tcase_add_test(tc, test_reload_cycles_alternate_versions);
    tcase_add_test(tc, test_plain_dlopen_returns_old_code);
    tcase_add_test(tc, test_failed_load_leaves_nothing_loaded);
    tcase_add_test(tc, test_origin_dependency_is_found);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    scratch_init();
    SRunner *sr = srunner_create(loader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    scratch_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
