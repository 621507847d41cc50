/*
 * client/cmd_validate.c - `bitnetctl validate-library PATH [--dir DIR]...`:
 * runs the checks bitnetd runs before it uses a backend library
 * (backends/validate.h), loads it as bitnetd would (backends/loader.h) and
 * says what it is or exactly why it would be refused. Local: it needs no
 * daemon. Without --dir, the allowed directory is the one PATH names, so a
 * symlink that leads elsewhere is still reported.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/loader.h"
#include "bitnet/error.h"
#include "client/ctl.h"

#define VALIDATE_MAX_DIRS 16

int cmd_validate_library(const struct ctl_options *opts, int argc, char **argv)
{
    const char *path = NULL;
    const char *dirs[VALIDATE_MAX_DIRS + 1] = {0};
    size_t n_dirs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc && n_dirs < VALIDATE_MAX_DIRS) {
            dirs[n_dirs++] = argv[++i];
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "usage: bitnetctl validate-library PATH [--dir DIR]...\n");
            return CTL_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "usage: bitnetctl validate-library PATH [--dir DIR]...\n");
        return CTL_EXIT_USAGE;
    }
    char own_dir[PATH_MAX];
    if (n_dirs == 0) {
        snprintf(own_dir, sizeof(own_dir), "%s", path);
        char *slash = strrchr(own_dir, '/');
        if (!slash)
            snprintf(own_dir, sizeof(own_dir), ".");
        else if (slash == own_dir)
            slash[1] = '\0';
        else
            *slash = '\0';
        dirs[n_dirs++] = own_dir;
    }

    validate_opts vo = {.dirs = dirs, .uid = geteuid()};
    backend_lib *lib = NULL;
    char err[1024] = "";
    int rc = backend_lib_load(path, &vo, &lib, err, sizeof(err));
    if (opts->json) {
        json_t *r = json_pack("{s:s, s:b}", "path", path, "ok", rc == 0);
        if (rc == 0) {
            json_object_set_new(r, "resolved_path", json_string(lib->resolved));
            json_object_set_new(r, "abi_version", json_integer(lib->api.abi_version()));
            json_object_set_new(r, "backend",
                                json_pack("{s:s?, s:s?, s:s?, s:s?}", "name", lib->desc.name,
                                          "version", lib->desc.version, "device", lib->desc.device,
                                          "detail", lib->desc.detail));
        } else {
            const char *name = bitnet_error_name(rc);
            json_object_set_new(r, "error", json_string(name ? name : bitnet_strerror(rc)));
            json_object_set_new(r, "code", json_integer(rc));
            json_object_set_new(r, "message", json_string(err));
        }
        ctl_print_json(r);
        json_decref(r);
    } else if (rc == 0) {
        printf("%s: ok, backend %s %s (%s), ABI %u\n", path, lib->desc.name ? lib->desc.name : "?",
               lib->desc.version ? lib->desc.version : "?",
               lib->desc.device ? lib->desc.device : "?", lib->api.abi_version());
        if (strcmp(lib->resolved, path) != 0)
            printf("  resolves to %s\n", lib->resolved);
        if (lib->desc.detail)
            printf("  %s\n", lib->desc.detail);
    } else {
        const char *name = bitnet_error_name(rc);
        fprintf(stderr, "%s [%s]\n", err, name ? name : bitnet_strerror(rc));
    }
    backend_lib_free(lib);
    return rc == 0 ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}
