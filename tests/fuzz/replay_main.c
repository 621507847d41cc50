/*
 * tests/fuzz/replay_main.c - runs a fuzz target's entry point as a plain
 * program, without libFuzzer: every file named on the command line, and
 * every file in every directory named there, is fed once to
 * LLVMFuzzerTestOneInput. Built with gcc as well as clang, it replays the
 * regression inputs (tests/fuzz/regressions/TARGET/) and the seed corpora in
 * `make test`; a crash, a sanitizer report or an abort() of the target's own
 * checks fails the test. Prints how many inputs ran.
 *
 *   fuzz_gguf_replay tests/fuzz/regressions/fuzz_gguf build/fuzz-corpus/fuzz_gguf
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as in libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Inputs larger than this are not fuzz inputs; libFuzzer's default cap is far below. */
#define REPLAY_MAX_INPUT (64u << 20)

/* Reads a whole file into a buffer of exactly its size (so that the sanitizers
 * see a read past the end). Returns 0 or -errno. */
static int read_input(const char *path, uint8_t **out, size_t *out_len)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return -errno;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
        fclose(f);
        return -EFBIG;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    if (len && fread(buf, 1, len, f) != len) {
        free(buf);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    *out = buf;
    *out_len = len;
    return 0;
}

static int run_file(const char *path, unsigned *count)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_input(path, &data, &len);
    if (rc) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(-rc));
        return rc;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    (*count)++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the regular files of a directory in name order (hidden files and
 * subdirectories are skipped), so that a failure is reproducible. */
static int run_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -errno;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
        }
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        names[n] = malloc(len);
        if (!names[n]) {
            rc = -ENOMEM;
            break;
        }
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = run_file(names[i], count);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    unsigned count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_file(argv[i], &count);
        if (rc)
            return 1;
    }
    printf("replay: %u inputs ran without a crash\n", count);
    return 0;
}
