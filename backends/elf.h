/*
 * backends/elf.h - a reader for the dynamic part of ELF64 little-endian
 * files (shared objects and executables) that trusts nothing in the file.
 *
 * It reads the header, the program headers, PT_DYNAMIC (DT_NEEDED, DT_SONAME,
 * DT_RUNPATH, DT_RPATH) and the dynamic symbol table with symbol versions.
 * The symbol table is found through the section headers (.dynsym, .dynstr,
 * .gnu.version, .gnu.version_d, .gnu.version_r) when the file has them, and
 * otherwise through the dynamic tags (DT_SYMTAB, DT_STRTAB, DT_STRSZ,
 * DT_VERSYM, DT_VERDEF, DT_VERNEED) with the symbol count taken from
 * DT_GNU_HASH or DT_HASH, as the dynamic loader itself does.
 *
 * Every offset, size, count and string is checked against the file before it
 * is used. Errors (documented in docs/library-analysis.md):
 *   BITNET_EELF          not an ELF file (empty, no magic, big-endian, bad version)
 *   BITNET_EELF_CLASS    ELF32
 *   BITNET_EELF_MACHINE  e_machine is not this build's architecture
 *   BITNET_ETRUNCATED    a header, table or string lies past the end of the file
 *   BITNET_EFORMAT       inconsistent contents (bad entry sizes, overflowing
 *                        counts, string offsets outside the string table,
 *                        addresses outside every PT_LOAD segment)
 *   BITNET_ELIB_NOT_REGULAR  the path is not a regular file
 *   -errno               open/stat/mmap failed
 * Error text goes to the caller's buffer and names the file.
 */
#ifndef BITNET_BACKENDS_ELF_H
#define BITNET_BACKENDS_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One dynamic symbol. Strings point into the file's mapping and stay valid
 * until elf_close(). */
typedef struct elf_symbol {
    const char *name;         /* never NULL; "" for the null symbol */
    const char *version;      /* version name ("GLIBC_2.34"), or NULL when unversioned */
    const char *version_file; /* undefined symbols: the DT_NEEDED entry the version is
                                 required from (verneed), else NULL */
    uint64_t value;           /* st_value */
    uint64_t size;            /* st_size */
    uint16_t shndx;           /* st_shndx; SHN_UNDEF (0) for imports */
    uint8_t bind;             /* STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE */
    uint8_t type;             /* STT_NOTYPE, STT_FUNC, STT_OBJECT, ... */
    bool defined;             /* shndx != SHN_UNDEF */
    bool version_hidden;      /* the versym entry has the hidden bit (0x8000) */
} elf_symbol;

/* Where the dynamic symbol table was found. */
typedef enum elf_symbol_source {
    ELF_SYMBOLS_NONE = 0, /* the file has no dynamic symbol table (static executable) */
    ELF_SYMBOLS_SECTIONS, /* .dynsym and .dynstr through the section headers */
    ELF_SYMBOLS_GNU_HASH, /* DT_SYMTAB, count from DT_GNU_HASH (section headers stripped) */
    ELF_SYMBOLS_HASH      /* DT_SYMTAB, count from DT_HASH (section headers stripped) */
} elf_symbol_source;

/* An open ELF file. Read-only to callers: the reader fills every field. */
typedef struct elf_file {
    char *path;          /* the name given to elf_open(), copied */
    const uint8_t *data; /* the file's bytes (mapped or borrowed) */
    size_t size;         /* bytes in data */
    uint16_t type;       /* e_type: ET_DYN, ET_EXEC, ... */
    uint16_t machine;    /* e_machine */
    bool has_interp;     /* a PT_INTERP segment exists (an executable or a PIE) */
    bool has_dynamic;    /* a PT_DYNAMIC segment exists */
    uint64_t flags_1;    /* DT_FLAGS_1 (DF_1_PIE tells a PIE from a library) */

    const char *soname;  /* DT_SONAME, or NULL */
    const char *runpath; /* DT_RUNPATH, unexpanded ("$ORIGIN:"), or NULL */
    const char *rpath;   /* DT_RPATH, or NULL */
    const char **needed; /* DT_NEEDED names in file order */
    size_t n_needed;

    elf_symbol *symbols; /* the dynamic symbol table, index 0 included */
    size_t n_symbols;
    elf_symbol_source symbol_source;

    /* Private. */
    int mapped; /* data is an mmap of the file that elf_close() unmaps */
} elf_file;

/* The e_machine value this build accepts (EM_X86_64 or EM_AARCH64). */
uint16_t elf_host_machine(void);

/* A short name for an e_machine value ("x86-64", "AArch64"), or NULL. */
const char *elf_machine_name(uint16_t machine);

/* A short description of the file's kind: "shared object", "PIE executable",
 * "executable", "relocatable object", "core file" or "ELF type N". */
const char *elf_type_name(const elf_file *elf);

/*
 * Opens and parses the ELF file at path (mapped read-only). On success stores
 * a new elf_file in *out and returns 0; on failure returns a negative code
 * (see the top of this file), writes a one-line message naming the file to
 * err, and leaves *out untouched.
 */
int elf_open(const char *path, elf_file **out, char *err, size_t err_len);

/*
 * Parses an ELF image already in memory (borrowed: it must outlive the
 * elf_file). name is used in messages. Same results as elf_open().
 */
int elf_open_memory(const void *data, size_t size, const char *name, elf_file **out, char *err,
                    size_t err_len);

/* Releases an elf_file; accepts NULL. */
void elf_close(elf_file *elf);

/* Returns the defined symbol called name (first match), or NULL. */
const elf_symbol *elf_find_defined(const elf_file *elf, const char *name);

#endif
