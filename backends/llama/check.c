/*
 * backends/llama/check.c - reads a model file with bitnetd's own GGUF reader
 * before the shim hands its path to libllama.
 *
 * bitnetd's reader validates every offset, size and string of the file;
 * libllama's asserts on some malformed files, which would abort the daemon.
 * This file is apart from shim.c because engine/gguf.h and ggml's gguf.h
 * declare the same names; the reader's symbols are hidden, so libllama never
 * binds to them.
 */
#include "backends/llama/check.h"

#include "engine/gguf.h"

int llama_shim_check_gguf(const char *path, char *err, size_t err_len)
{
    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, err, err_len);
    gguf_close(f);
    return rc;
}
