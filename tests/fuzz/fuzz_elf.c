/*
 * tests/fuzz/fuzz_elf.c - libFuzzer target for the ELF reader: any byte
 * string must give 0 or an error value, never a crash or an out-of-bounds
 * read. A good seed corpus is a few real libraries (the fixture libraries of
 * tests/backends, libggml.v0.5.0.so) and their section-stripped copies.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DBITNET_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_elf
 *   build-fuzz/tests/fuzz/fuzz_elf -max_len=65536 CORPUS_DIR
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/elf.h"
#include "backends/symbols.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly-sized copy, so that ASan catches a read one byte past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    elf_file *elf = NULL;
    char err[256];
    if (elf_open_memory(copy, size, "fuzz", &elf, err, sizeof(err)) == 0) {
        /* Read everything a caller would: names, versions, needed entries. */
        size_t total = 0;
        for (size_t i = 0; i < elf->n_symbols; i++) {
            total += strlen(elf->symbols[i].name);
            if (elf->symbols[i].version)
                total += strlen(elf->symbols[i].version);
            if (elf->symbols[i].version_file)
                total += strlen(elf->symbols[i].version_file);
        }
        for (size_t i = 0; i < elf->n_needed; i++)
            total += strlen(elf->needed[i]);
        if (elf->soname)
            total += strlen(elf->soname);
        symbols_summary sum;
        symbols_summarize(elf, &sum);
        (void)total;
        elf_close(elf);
    }
    free(copy);
    return 0;
}
