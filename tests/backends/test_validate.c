/*
 * tests/backends/test_validate.c - backend library validation: every failure
 * its own code and a message naming the file, against real files (fixture
 * backend libraries built by this build, the reference libllama, files
 * crafted here from them).
 */
#define _GNU_SOURCE
#include <check.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/elf.h"
#include "backends/loader.h"
#include "backends/validate.h"
#include "bitnet/error.h"
#include "support.h"

static char err[1024];
static char allowed[512]; /* scratch/lib: the allowed directory for crafted files */
static char outside[512]; /* scratch/outside: not allowed */

static validate_opts opts(void)
{
    static const char *dirs[4];
    dirs[0] = allowed;
    dirs[1] = ABIFIX_DIR;
    dirs[2] = ref_cpu_dir();
    dirs[3] = NULL;
    return (validate_opts){.dirs = dirs, .uid = getuid()};
}

/* Loads path and returns the code; a success is freed at once. Any failure
 * message must name the path. */
static int load(const char *path)
{
    validate_opts o = opts();
    backend_lib *lib = NULL;
    err[0] = '\0';
    int rc = backend_lib_load(path, &o, &lib, err, sizeof(err));
    if (rc == 0) {
        ck_assert_ptr_nonnull(lib);
        backend_lib_free(lib);
    } else {
        ck_assert_ptr_null(lib);
        ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name %s", err, path);
        ck_assert_msg(strchr(err, '\n') == NULL, "message '%s' is not one line", err);
    }
    return rc;
}

/* Copies the file at src to allowed/name with the given mode; returns the
 * new path (static buffer). */
static const char *install(const char *src, const char *name, mode_t mode)
{
    static char path[PATH_MAX];
    size_t size;
    uint8_t *data = read_file(src, &size);
    ck_assert_ptr_nonnull(data);
    snprintf(path, sizeof(path), "%s/%s", allowed, name);
    unlink(path);
    ck_assert_int_eq(write_file(path, data, size), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
    free(data);
    return path;
}

static void setup(void)
{
    snprintf(allowed, sizeof(allowed), "%s/lib", scratch_dir());
    snprintf(outside, sizeof(outside), "%s/outside", scratch_dir());
    mkdir(allowed, 0755);
    mkdir(outside, 0755);
    chmod(allowed, 0755);
    unsetenv("ABIFIX_LOADED");
}

START_TEST(test_good_library_loads_and_answers)
{
    validate_opts o = opts();
    backend_lib *lib = NULL;
    int rc = backend_lib_load(ABIFIX_V1, &o, &lib, err, sizeof(err));
    ck_assert_msg(rc == 0, "load = %d: %s", rc, err);
    ck_assert_str_eq(lib->desc.name, "fixture");
    ck_assert_str_eq(lib->desc.version, "fixture-1");
    ck_assert_uint_eq(lib->api.abi_version(), BITNET_ABI_VERSION);
    /* The fixture's greedy decoding counts up from the last prompt token. */
    bitnet_model *m = NULL;
    bitnet_context *c = NULL;
    ck_assert_int_eq(lib->api.model_new_from_file("x", NULL, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(lib->api.context_new(m, &c, err, sizeof(err)), 0);
    int32_t prompt[2] = {3, 4}, out[3];
    size_t n = 0;
    ck_assert_int_eq(lib->api.decode_greedy(c, prompt, 2, 0, out, 3, &n, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(out[0], 5);
    ck_assert_int_eq(out[2], 7);
    lib->api.context_free(c);
    lib->api.model_free(m);
    backend_lib_free(lib);
}
END_TEST

START_TEST(test_missing_file_is_enoent)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/no-such-lib.so", allowed);
    ck_assert_int_eq(load(path), -ENOENT);
}
END_TEST

START_TEST(test_directory_is_not_regular)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/dir.so", allowed);
    mkdir(path, 0755);
    ck_assert_int_eq(load(path), BITNET_ELIB_NOT_REGULAR);
    ck_assert_ptr_nonnull(strstr(err, "directory"));
}
END_TEST

START_TEST(test_symlink_outside_dirs_reports_resolved_path)
{
    char target[PATH_MAX], link[PATH_MAX];
    size_t size;
    uint8_t *data = read_file(ABIFIX_V1, &size);
    ck_assert_ptr_nonnull(data);
    snprintf(target, sizeof(target), "%s/libescape.so", outside);
    ck_assert_int_eq(write_file(target, data, size), 0);
    free(data);
    snprintf(link, sizeof(link), "%s/libescape.so", allowed);
    unlink(link);
    ck_assert_int_eq(symlink(target, link), 0);
    ck_assert_int_eq(load(link), BITNET_ELIB_DIR);
    ck_assert_msg(strstr(err, target) != NULL, "'%s' lacks the resolved path %s", err, target);
}
END_TEST

START_TEST(test_symlink_inside_dirs_loads_and_records_target)
{
    char link[PATH_MAX], real[PATH_MAX];
    snprintf(link, sizeof(link), "%s/libv1-link.so", allowed);
    unlink(link);
    ck_assert_int_eq(symlink(ABIFIX_V1, link), 0);
    ck_assert_ptr_nonnull(realpath(ABIFIX_V1, real));
    validate_opts o = opts();
    backend_lib *lib = NULL;
    int rc = backend_lib_load(link, &o, &lib, err, sizeof(err));
    ck_assert_msg(rc == 0, "load = %d: %s", rc, err);
    ck_assert_str_eq(lib->path, link);
    ck_assert_str_eq(lib->resolved, real);
    backend_lib_free(lib);
}
END_TEST

START_TEST(test_world_writable_is_refused)
{
    const char *p = install(ABIFIX_V1, "libww.so", 0666);
    ck_assert_int_eq(load(p), BITNET_ELIB_MODE);
    ck_assert_ptr_nonnull(strstr(err, "others"));
    ck_assert_ptr_null(getenv("ABIFIX_LOADED"));
}
END_TEST

START_TEST(test_group_writable_is_refused)
{
    const char *p = install(ABIFIX_V1, "libgw.so", 0664);
    ck_assert_int_eq(load(p), BITNET_ELIB_MODE);
    ck_assert_ptr_nonnull(strstr(err, "group"));
}
END_TEST

START_TEST(test_group_writable_directory_is_refused)
{
    const char *p = install(ABIFIX_V1, "libgwdir.so", 0644);
    ck_assert_int_eq(chmod(allowed, 0775), 0);
    int rc = load(p);
    chmod(allowed, 0755);
    ck_assert_int_eq(rc, BITNET_ELIB_MODE);
    ck_assert_ptr_nonnull(strstr(err, "directory"));
}
END_TEST

START_TEST(test_other_owner_is_refused)
{
    if (getuid() != 0) {
        fprintf(stderr, "test_other_owner_is_refused: skipped, chown needs root\n");
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    uid_t nobody = pw ? pw->pw_uid : 65534;
    const char *p = install(ABIFIX_V1, "libnobody.so", 0644);
    ck_assert_int_eq(chown(p, nobody, (gid_t)-1), 0);
    ck_assert_int_eq(load(p), BITNET_ELIB_OWNER);
    ck_assert_ptr_nonnull(strstr(err, "owned by uid"));
}
END_TEST

START_TEST(test_text_file_named_so_is_not_elf)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/libtext.so", allowed);
    const char text[] = "INPUT(-lfoo)\n";
    ck_assert_int_eq(write_file(path, text, sizeof(text) - 1), 0);
    ck_assert_int_eq(load(path), BITNET_EELF);
}
END_TEST

/* Installs a copy of the v1 fixture with one header byte changed. */
static const char *install_patched(const char *name, size_t offset, const void *bytes, size_t n)
{
    static char path[PATH_MAX];
    size_t size;
    uint8_t *data = read_file(ABIFIX_V1, &size);
    ck_assert_ptr_nonnull(data);
    memcpy(data + offset, bytes, n);
    snprintf(path, sizeof(path), "%s/%s", allowed, name);
    ck_assert_int_eq(write_file(path, data, size), 0);
    free(data);
    return path;
}

START_TEST(test_elf32_is_wrong_class)
{
    uint8_t cls = ELFCLASS32;
    const char *p = install_patched("libelf32.so", EI_CLASS, &cls, 1);
    ck_assert_int_eq(load(p), BITNET_EELF_CLASS);
    ck_assert_ptr_null(getenv("ABIFIX_LOADED"));
}
END_TEST

START_TEST(test_other_machine_is_refused)
{
    uint16_t machine = elf_host_machine() == EM_X86_64 ? EM_AARCH64 : EM_X86_64;
    const char *p =
        install_patched("libarm.so", offsetof(Elf64_Ehdr, e_machine), &machine, sizeof(machine));
    ck_assert_int_eq(load(p), BITNET_EELF_MACHINE);
}
END_TEST

START_TEST(test_missing_symbol_is_named_and_never_loaded)
{
    ck_assert_int_eq(load(ABIFIX_NOEVAL), BITNET_ELIB_SYMBOL);
    ck_assert_msg(strstr(err, "bitnet_eval") != NULL, "'%s' does not name bitnet_eval", err);
    /* Refused from its symbol table: its constructor never ran. */
    ck_assert_ptr_null(getenv("ABIFIX_LOADED"));
}
END_TEST

START_TEST(test_wrong_abi_version_is_refused)
{
    ck_assert_int_eq(load(ABIFIX_BADABI), BITNET_ELIB_ABI);
    ck_assert_ptr_nonnull(strstr(err, "999"));
}
END_TEST

START_TEST(test_reference_libllama_is_not_a_backend)
{
    const char *p = ref_path(ref_cpu_dir(), "libllama.v0.5.0.so");
    if (!file_exists(p)) {
        fprintf(stderr, "test_reference_libllama_is_not_a_backend: skipped, %s missing\n", p);
        return;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", p);
    ck_assert_int_eq(load(path), BITNET_ELIB_SYMBOL);
    ck_assert_msg(strstr(err, "bitnet_abi_version") != NULL, "'%s' does not name the symbol", err);
}
END_TEST

START_TEST(test_no_directories_refuses_everything)
{
    validate_opts o = {.dirs = NULL, .uid = getuid()};
    backend_lib *lib = NULL;
    ck_assert_int_eq(backend_lib_load(ABIFIX_V1, &o, &lib, err, sizeof(err)), BITNET_ELIB_DIR);
    ck_assert_ptr_null(lib);
}
END_TEST

static Suite *validate_suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc = tcase_create("validate");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_good_library_loads_and_answers);
    tcase_add_test(tc, test_missing_file_is_enoent);
    tcase_add_test(tc, test_directory_is_not_regular);
    tcase_add_test(tc, test_symlink_outside_dirs_reports_resolved_path);
    tcase_add_test(tc, test_symlink_inside_dirs_loads_and_records_target);
    tcase_add_test(tc, test_world_writable_is_refused);
    tcase_add_test(tc, test_group_writable_is_refused);
    tcase_add_test(tc, test_group_writable_directory_is_refused);
    tcase_add_test(tc, test_other_owner_is_refused);
    tcase_add_test(tc, test_text_file_named_so_is_not_elf);
    tcase_add_test(tc, test_elf32_is_wrong_class);
    tcase_add_test(tc, test_other_machine_is_refused);
    tcase_add_test(tc, test_missing_symbol_is_named_and_never_loaded);
    tcase_add_test(tc, test_wrong_abi_version_is_refused);
    tcase_add_test(tc, test_reference_libllama_is_not_a_backend);
    tcase_add_test(tc, test_no_directories_refuses_everything);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    scratch_init();
    SRunner *sr = srunner_create(validate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    scratch_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
