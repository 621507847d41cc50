/*
 * tests/backends/support.h - helpers the backends tests share: where the
 * reference libraries are, reading files into exactly-sized buffers (so that
 * ASan sees any read past the end), and finding the parts of an ELF image
 * that the hostile-file tests corrupt.
 */
#ifndef BITNET_TESTS_BACKENDS_SUPPORT_H
#define BITNET_TESTS_BACKENDS_SUPPORT_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The CPU and CUDA reference library directories (BITNET_REFERENCE_DIR). */
const char *ref_cpu_dir(void);
const char *ref_cuda_dir(void);

/* Writes dir/name into a static buffer and returns it. */
const char *ref_path(const char *dir, const char *name);

/* True when path names an existing file. */
bool file_exists(const char *path);

/* Reads a whole file into a new malloc'd buffer of exactly its size. */
uint8_t *read_file(const char *path, size_t *size);

/* Writes size bytes to path (replacing it). Returns 0 or -1. */
int write_file(const char *path, const void *data, size_t size);

/* The path of the C library this process runs on (found with dl_iterate_phdr). */
const char *libc_path(void);

/* A scratch directory for crafted files. scratch_init() creates it before
 * the (forking) test runner starts, so every test shares it;
 * scratch_cleanup() removes it and everything in it. */
void scratch_init(void);
const char *scratch_dir(void);
void scratch_cleanup(void);

/* Pointers into an ELF64 image (NULL when absent). */
Elf64_Ehdr *img_ehdr(uint8_t *img);
Elf64_Phdr *img_phdr(uint8_t *img, uint32_t type);
Elf64_Shdr *img_shdr(uint8_t *img, uint32_t type);
/* The first dynamic entry with this tag. */
Elf64_Dyn *img_dyn(uint8_t *img, int64_t tag);

#endif
