/*
 * tests/engine/mkmodel_run.h - runs the real bitnet-mkmodel binary from a
 * test and opens what it wrote.
 */
#ifndef BITNET_TESTS_MKMODEL_RUN_H
#define BITNET_TESTS_MKMODEL_RUN_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef BITNET_MKMODEL
#error "BITNET_MKMODEL must name the bitnet-mkmodel binary"
#endif

/* Runs bitnet-mkmodel with the NULL-terminated arguments and returns its exit
 * status (or -1 when it could not run). stderr is kept. */
static inline int mkmodel_run(const char *first, ...)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = BITNET_MKMODEL;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 63; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(BITNET_MKMODEL, (char *const *)argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* A fresh temporary directory; path receives its name. */
static inline void mkmodel_tmpdir(char *path, size_t len)
{
    snprintf(path, len, "/tmp/bitnet-mkmodel-test-XXXXXX");
    if (!mkdtemp(path))
        path[0] = '\0';
}

#endif
