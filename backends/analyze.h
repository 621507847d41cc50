/*
 * backends/analyze.h - what a shared library (or executable) is, from its
 * ELF file alone: no dlopen, no nm.
 *
 * The analysis reads the file, follows DT_NEEDED the way the dynamic loader
 * does (DT_RPATH, DT_RUNPATH with $ORIGIN expanded, /etc/ld.so.conf and the
 * default directories), looks at the ggml backend libraries that sit beside
 * any libllama or libggml it meets (ggml loads libggml-cpu-*.so and
 * libggml-cuda.so at run time, so they are not in DT_NEEDED), sorts the
 * dynamic symbols of every library it read (backends/symbols.h) and infers
 * whether CUDA is involved, which ternary quantization types are present,
 * which kernel ids of the registry the library provides and which formats it
 * can load.
 *
 * The result is one JSON object, the same for `bitnetctl analyze-library
 * --json` and the daemon's io.bitnetd.Admin.AnalyzeLibrary; its fields are
 * documented in docs/library-analysis.md.
 */
#ifndef BITNET_BACKENDS_ANALYZE_H
#define BITNET_BACKENDS_ANALYZE_H

#include <stddef.h>

#include <jansson.h>

/* At most this many libraries are read for one analysis (the library, its
 * DT_NEEDED closure and the ggml backends beside it). */
#define ANALYZE_MAX_LIBRARIES 96

/*
 * Analyses the ELF file at path. On success stores a new JSON object in *out
 * (the caller owns the reference) and returns 0. Fails only when path itself
 * cannot be read or is not a valid ELF64 file for this machine: then returns
 * the elf_open() error (BITNET_EELF, BITNET_EELF_CLASS, BITNET_EELF_MACHINE,
 * BITNET_ETRUNCATED, BITNET_EFORMAT, BITNET_ELIB_NOT_REGULAR or -errno),
 * writes a one-line message naming the file to err and leaves *out
 * untouched. Libraries of the closure that cannot be read are reported in the
 * object, not as a failure.
 */
int analyze_library(const char *path, json_t **out, char *err, size_t err_len);

#endif
