/*
 * backends/elf.c - the ELF64 reader (see elf.h for the contract).
 *
 * Everything is read with explicit little-endian loads from the file image,
 * so nothing depends on alignment or on the host's structure layout. Each
 * table is checked against the file before it is read: a table that runs
 * past the end of the file is BITNET_ETRUNCATED, a size that overflows or a
 * reference that points outside its table is BITNET_EFORMAT.
 */
#include "backends/elf.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/error.h"

/* Sizes of the ELF64 records read here. */
enum {
    EHDR_SIZE = 64,
    PHDR_SIZE = 56,
    SHDR_SIZE = 64,
    DYN_SIZE = 16,
    SYM_SIZE = 24,
    VERDEF_SIZE = 20,
    VERDAUX_SIZE = 8,
    VERNEED_SIZE = 16,
    VERNAUX_SIZE = 16,
};

/* Version indexes are 15 bits; bit 15 of a versym entry means "hidden". */
#define VERSION_INDEXES 0x8000u
/* Bounds the verdef/verneed walks of a hostile file (each step moves forward,
 * but the nested walk could otherwise be quadratic in the table size). */
#define VERSION_STEP_LIMIT (1u << 20)

/* One table located in the file: [off, off + size). */
struct region {
    uint64_t off;
    uint64_t size;
    bool present;
};

/* Parsing state for one file. */
struct reader {
    const uint8_t *p;
    size_t size;
    const char *name;
    char *err;
    size_t err_len;

    uint64_t phoff;
    size_t phnum;
    uint64_t shoff;
    size_t shnum;

    /* From PT_DYNAMIC. */
    struct region dynamic;
    uint64_t dt_strtab, dt_strsz, dt_symtab, dt_syment, dt_gnu_hash, dt_hash;
    uint64_t dt_versym, dt_verdef, dt_verdefnum, dt_verneed, dt_verneednum;
    bool has_strtab, has_strsz, has_symtab, has_syment, has_gnu_hash, has_hash;
    bool has_versym, has_verdef, has_verneed;
    struct region dynstr; /* DT_STRTAB/DT_STRSZ in file offsets */

    /* The symbol table and its companions, wherever they were found. */
    struct region symtab;
    size_t n_symbols;
    struct region symstr;
    struct region versym;
    struct region verdef;
    uint64_t verdef_num;
    struct region verdef_str;
    struct region verneed;
    uint64_t verneed_num;
    struct region verneed_str;

    const char **version_names; /* [VERSION_INDEXES] */
    const char **version_files; /* [VERSION_INDEXES] */
};

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* Writes "NAME: message" to the caller's buffer and returns code. */
static int fail(struct reader *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct reader *r, int code, const char *fmt, ...)
{
    if (r->err && r->err_len > 0) {
        int n = snprintf(r->err, r->err_len, "%s: ", r->name);
        if (n >= 0 && (size_t)n < r->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + n, r->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* Checks that count entries of entsize bytes at off lie inside the file. */
static int check_table(struct reader *r, uint64_t off, uint64_t count, uint64_t entsize,
                       const char *what)
{
    if (entsize != 0 && count > UINT64_MAX / entsize)
        return fail(r, BITNET_EFORMAT, "%s: %llu entries of %llu bytes overflow", what,
                    (unsigned long long)count, (unsigned long long)entsize);
    uint64_t len = count * entsize;
    if (off > UINT64_MAX - len)
        return fail(r, BITNET_EFORMAT, "%s: offset %llu + size %llu overflows", what,
                    (unsigned long long)off, (unsigned long long)len);
    if (off + len > r->size)
        return fail(r, BITNET_ETRUNCATED,
                    "%s (%llu bytes at offset %llu) extends past the end of the file (%zu bytes)",
                    what, (unsigned long long)len, (unsigned long long)off, r->size);
    return 0;
}

/* Reads the NUL-terminated string at index idx of the table tab. */
static int string_at(struct reader *r, const struct region *tab, uint64_t idx, const char *what,
                     const char **out)
{
    if (idx >= tab->size)
        return fail(r, BITNET_EFORMAT,
                    "%s: string offset %llu is outside the string table (%llu bytes)", what,
                    (unsigned long long)idx, (unsigned long long)tab->size);
    const uint8_t *s = r->p + tab->off + idx;
    if (!memchr(s, 0, (size_t)(tab->size - idx)))
        return fail(r, BITNET_EFORMAT, "%s: string at offset %llu runs past the string table", what,
                    (unsigned long long)idx);
    *out = (const char *)s;
    return 0;
}

/* Translates a virtual address to a file offset through the PT_LOAD
 * segments; *avail is how many bytes of the segment's file image (and of the
 * file) follow it. */
static int vaddr_to_offset(struct reader *r, uint64_t va, const char *what, uint64_t *off,
                           uint64_t *avail)
{
    for (size_t i = 0; i < r->phnum; i++) {
        const uint8_t *ph = r->p + r->phoff + i * PHDR_SIZE;
        if (rd32(ph) != PT_LOAD)
            continue;
        uint64_t p_offset = rd64(ph + 8), p_vaddr = rd64(ph + 16), p_filesz = rd64(ph + 32);
        if (va < p_vaddr || va - p_vaddr >= p_filesz)
            continue;
        uint64_t delta = va - p_vaddr;
        if (p_offset > UINT64_MAX - delta)
            return fail(r, BITNET_EFORMAT, "%s: PT_LOAD offset overflows", what);
        uint64_t o = p_offset + delta;
        if (o >= r->size)
            return fail(r, BITNET_ETRUNCATED,
                        "%s (address 0x%llx, offset %llu) lies past the end of the file (%zu "
                        "bytes)",
                        what, (unsigned long long)va, (unsigned long long)o, r->size);
        uint64_t a = p_filesz - delta;
        if (a > r->size - o)
            a = r->size - o;
        *off = o;
        *avail = a;
        return 0;
    }
    return fail(r, BITNET_EFORMAT, "%s: address 0x%llx is not in any PT_LOAD segment", what,
                (unsigned long long)va);
}

/* Locates a table given by a dynamic tag's address and a size in bytes. */
static int dynamic_region(struct reader *r, uint64_t va, uint64_t size, const char *what,
                          struct region *out)
{
    uint64_t off = 0, avail = 0;
    int rc = vaddr_to_offset(r, va, what, &off, &avail);
    if (rc < 0)
        return rc;
    if (size > avail) {
        rc = check_table(r, off, size, 1, what);
        if (rc < 0)
            return rc;
        return fail(r, BITNET_EFORMAT, "%s: %llu bytes do not fit in their PT_LOAD segment", what,
                    (unsigned long long)size);
    }
    *out = (struct region){.off = off, .size = size, .present = true};
    return 0;
}

static int parse_header(struct reader *r, elf_file *elf)
{
    const uint8_t *p = r->p;
    if (r->size == 0)
        return fail(r, BITNET_EELF, "file is empty, not an ELF file");
    if (r->size < SELFMAG || memcmp(p, ELFMAG, SELFMAG) != 0)
        return fail(r, BITNET_EELF, "not an ELF file (no \\177ELF magic)");
    if (r->size < EI_NIDENT)
        return fail(r, BITNET_ETRUNCATED, "ELF identification truncated (%zu of %d bytes)", r->size,
                    EI_NIDENT);
    if (p[EI_CLASS] == ELFCLASS32)
        return fail(r, BITNET_EELF_CLASS, "ELF32 file; only ELF64 is supported");
    if (p[EI_CLASS] != ELFCLASS64)
        return fail(r, BITNET_EELF, "unknown ELF class %u", p[EI_CLASS]);
    if (p[EI_DATA] == ELFDATA2MSB)
        return fail(r, BITNET_EELF, "big-endian ELF file; only little-endian is supported");
    if (p[EI_DATA] != ELFDATA2LSB)
        return fail(r, BITNET_EELF, "unknown ELF data encoding %u", p[EI_DATA]);
    if (p[EI_VERSION] != EV_CURRENT)
        return fail(r, BITNET_EELF, "unsupported ELF version %u", p[EI_VERSION]);
    if (r->size < EHDR_SIZE)
        return fail(r, BITNET_ETRUNCATED, "ELF header truncated (%zu of %d bytes)", r->size,
                    EHDR_SIZE);

    uint16_t machine = rd16(p + 18);
    if (machine != elf_host_machine()) {
        const char *mn = elf_machine_name(machine);
        char buf[32];
        if (!mn) {
            snprintf(buf, sizeof(buf), "machine %u", machine);
            mn = buf;
        }
        return fail(r, BITNET_EELF_MACHINE, "ELF file is for %s, this build runs on %s", mn,
                    elf_machine_name(elf_host_machine()));
    }
    elf->type = rd16(p + 16);
    elf->machine = machine;
    r->phoff = rd64(p + 32);
    r->shoff = rd64(p + 40);
    uint16_t phentsize = rd16(p + 54), phnum = rd16(p + 56);
    uint16_t shentsize = rd16(p + 58), shnum = rd16(p + 60);
    r->phnum = phnum;
    r->shnum = shnum;

    /* Section headers, and the extended counts kept in section 0. */
    if (r->shoff != 0 && (shnum != 0 || phnum == PN_XNUM)) {
        if (shentsize != SHDR_SIZE)
            return fail(r, BITNET_EFORMAT, "section header size %u, expected %d", shentsize,
                        SHDR_SIZE);
    }
    if (r->shoff != 0 && shentsize == SHDR_SIZE && (shnum == 0 || phnum == PN_XNUM)) {
        int rc = check_table(r, r->shoff, 1, SHDR_SIZE, "section header 0");
        if (rc < 0)
            return rc;
        if (shnum == 0) {
            uint64_t n = rd64(p + r->shoff + 32);
            if (n > SIZE_MAX / SHDR_SIZE)
                return fail(r, BITNET_EFORMAT, "section count %llu overflows",
                            (unsigned long long)n);
            r->shnum = (size_t)n;
        }
        if (phnum == PN_XNUM)
            r->phnum = rd32(p + r->shoff + 44);
    }
    if (r->shoff == 0)
        r->shnum = 0;
    if (r->shnum > 0) {
        int rc = check_table(r, r->shoff, r->shnum, SHDR_SIZE, "section header table");
        if (rc < 0)
            return rc;
    }
    if (r->phnum > 0) {
        if (phentsize != PHDR_SIZE)
            return fail(r, BITNET_EFORMAT, "program header size %u, expected %d", phentsize,
                        PHDR_SIZE);
        int rc = check_table(r, r->phoff, r->phnum, PHDR_SIZE, "program header table");
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_program_headers(struct reader *r, elf_file *elf)
{
    for (size_t i = 0; i < r->phnum; i++) {
        const uint8_t *ph = r->p + r->phoff + i * PHDR_SIZE;
        uint32_t type = rd32(ph);
        if (type == PT_INTERP) {
            elf->has_interp = true;
        } else if (type == PT_DYNAMIC && !r->dynamic.present) {
            uint64_t off = rd64(ph + 8), filesz = rd64(ph + 32);
            int rc = check_table(r, off, filesz, 1, "dynamic section (PT_DYNAMIC)");
            if (rc < 0)
                return rc;
            r->dynamic = (struct region){.off = off, .size = filesz, .present = true};
            elf->has_dynamic = true;
        }
    }
    return 0;
}

/* Reads the dynamic tags into the reader; strings are resolved later, once
 * DT_STRTAB is known. */
static int parse_dynamic_tags(struct reader *r, elf_file *elf, size_t *n_needed)
{
    size_t n = (size_t)(r->dynamic.size / DYN_SIZE);
    *n_needed = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *d = r->p + r->dynamic.off + i * DYN_SIZE;
        int64_t tag = (int64_t)rd64(d);
        uint64_t val = rd64(d + 8);
        if (tag == DT_NULL)
            break;
        switch (tag) {
        case DT_NEEDED:
            (*n_needed)++;
            break;
        case DT_STRTAB:
            if (!r->has_strtab)
                r->dt_strtab = val, r->has_strtab = true;
            break;
        case DT_STRSZ:
            if (!r->has_strsz)
                r->dt_strsz = val, r->has_strsz = true;
            break;
        case DT_SYMTAB:
            if (!r->has_symtab)
                r->dt_symtab = val, r->has_symtab = true;
            break;
        case DT_SYMENT:
            r->dt_syment = val, r->has_syment = true;
            break;
        case DT_GNU_HASH:
            r->dt_gnu_hash = val, r->has_gnu_hash = true;
            break;
        case DT_HASH:
            r->dt_hash = val, r->has_hash = true;
            break;
        case DT_VERSYM:
            r->dt_versym = val, r->has_versym = true;
            break;
        case DT_VERDEF:
            r->dt_verdef = val, r->has_verdef = true;
            break;
        case DT_VERDEFNUM:
            r->dt_verdefnum = val;
            break;
        case DT_VERNEED:
            r->dt_verneed = val, r->has_verneed = true;
            break;
        case DT_VERNEEDNUM:
            r->dt_verneednum = val;
            break;
        case DT_FLAGS_1:
            elf->flags_1 = val;
            break;
        default:
            break;
        }
    }
    return 0;
}

/* Resolves DT_NEEDED, DT_SONAME, DT_RUNPATH and DT_RPATH through DT_STRTAB. */
static int parse_dynamic_strings(struct reader *r, elf_file *elf, size_t n_needed)
{
    size_t n = (size_t)(r->dynamic.size / DYN_SIZE);
    bool wants_strings = false;
    for (size_t i = 0; i < n; i++) {
        int64_t tag = (int64_t)rd64(r->p + r->dynamic.off + i * DYN_SIZE);
        if (tag == DT_NULL)
            break;
        if (tag == DT_NEEDED || tag == DT_SONAME || tag == DT_RUNPATH || tag == DT_RPATH)
            wants_strings = true;
    }
    if (r->has_strtab || wants_strings) {
        if (!r->has_strtab || !r->has_strsz)
            return fail(r, BITNET_EFORMAT, "dynamic section lacks DT_STRTAB or DT_STRSZ");
        int rc = dynamic_region(r, r->dt_strtab, r->dt_strsz, "dynamic string table (DT_STRTAB)",
                                &r->dynstr);
        if (rc < 0)
            return rc;
    }
    if (n_needed > 0) {
        elf->needed = calloc(n_needed, sizeof(*elf->needed));
        if (!elf->needed)
            return fail(r, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *d = r->p + r->dynamic.off + i * DYN_SIZE;
        int64_t tag = (int64_t)rd64(d);
        uint64_t val = rd64(d + 8);
        const char *s = NULL;
        int rc = 0;
        if (tag == DT_NULL)
            break;
        switch (tag) {
        case DT_NEEDED:
            rc = string_at(r, &r->dynstr, val, "DT_NEEDED", &s);
            if (rc == 0 && elf->n_needed < n_needed)
                elf->needed[elf->n_needed++] = s;
            break;
        case DT_SONAME:
            rc = string_at(r, &r->dynstr, val, "DT_SONAME", &s);
            if (rc == 0 && !elf->soname)
                elf->soname = s;
            break;
        case DT_RUNPATH:
            rc = string_at(r, &r->dynstr, val, "DT_RUNPATH", &s);
            if (rc == 0 && !elf->runpath)
                elf->runpath = s;
            break;
        case DT_RPATH:
            rc = string_at(r, &r->dynstr, val, "DT_RPATH", &s);
            if (rc == 0 && !elf->rpath)
                elf->rpath = s;
            break;
        default:
            break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Returns a pointer to section header i (i < shnum, checked by the caller). */
static const uint8_t *section(const struct reader *r, size_t i)
{
    return r->p + r->shoff + i * SHDR_SIZE;
}

/* The file range of section i, checked against the file. */
static int section_region(struct reader *r, size_t i, const char *what, struct region *out)
{
    if (i >= r->shnum)
        return fail(r, BITNET_EFORMAT, "%s: section index %zu out of range (%zu sections)", what, i,
                    r->shnum);
    const uint8_t *sh = section(r, i);
    if (rd32(sh + 4) == SHT_NOBITS)
        return fail(r, BITNET_EFORMAT, "%s: section %zu has no file contents", what, i);
    uint64_t off = rd64(sh + 24), size = rd64(sh + 32);
    int rc = check_table(r, off, size, 1, what);
    if (rc < 0)
        return rc;
    *out = (struct region){.off = off, .size = size, .present = true};
    return 0;
}

/* Finds the symbol table through the section headers. Returns 1 when found,
 * 0 when the file has no SHT_DYNSYM section, or a negative code. */
static int locate_by_sections(struct reader *r)
{
    size_t dynsym = SIZE_MAX;
    for (size_t i = 0; i < r->shnum; i++) {
        if (rd32(section(r, i) + 4) == SHT_DYNSYM) {
            dynsym = i;
            break;
        }
    }
    if (dynsym == SIZE_MAX)
        return 0;
    const uint8_t *sh = section(r, dynsym);
    uint64_t entsize = rd64(sh + 56);
    if (entsize != SYM_SIZE)
        return fail(r, BITNET_EFORMAT, ".dynsym entry size %llu, expected %d",
                    (unsigned long long)entsize, SYM_SIZE);
    int rc = section_region(r, dynsym, ".dynsym", &r->symtab);
    if (rc < 0)
        return rc;
    r->n_symbols = (size_t)(r->symtab.size / SYM_SIZE);
    rc = section_region(r, rd32(sh + 40), ".dynstr (sh_link of .dynsym)", &r->symstr);
    if (rc < 0)
        return rc;

    for (size_t i = 0; i < r->shnum; i++) {
        const uint8_t *s = section(r, i);
        uint32_t type = rd32(s + 4);
        if (type == SHT_GNU_versym && !r->versym.present) {
            rc = section_region(r, i, ".gnu.version", &r->versym);
        } else if (type == SHT_GNU_verdef && !r->verdef.present) {
            rc = section_region(r, i, ".gnu.version_d", &r->verdef);
            if (rc == 0)
                rc = section_region(r, rd32(s + 40), ".gnu.version_d strings", &r->verdef_str);
            r->verdef_num = rd32(s + 44);
        } else if (type == SHT_GNU_verneed && !r->verneed.present) {
            rc = section_region(r, i, ".gnu.version_r", &r->verneed);
            if (rc == 0)
                rc = section_region(r, rd32(s + 40), ".gnu.version_r strings", &r->verneed_str);
            r->verneed_num = rd32(s + 44);
        }
        if (rc < 0)
            return rc;
    }
    return 1;
}

/* Counts symbols the way the dynamic loader can: from DT_GNU_HASH, the last
 * symbol reachable from any bucket's chain; from DT_HASH, nchain. */
static int count_from_hash(struct reader *r, uint64_t *count, elf_symbol_source *source)
{
    uint64_t off = 0, avail = 0;
    int rc;
    if (r->has_gnu_hash) {
        rc = vaddr_to_offset(r, r->dt_gnu_hash, "DT_GNU_HASH", &off, &avail);
        if (rc < 0)
            return rc;
        if (avail < 16)
            return fail(r, BITNET_ETRUNCATED, "DT_GNU_HASH header truncated");
        const uint8_t *h = r->p + off;
        uint64_t nbuckets = rd32(h), symoffset = rd32(h + 4), bloom_size = rd32(h + 8);
        uint64_t buckets = 16 + bloom_size * 8; /* relative to off; cannot overflow */
        if (buckets > avail || nbuckets * 4 > avail - buckets)
            return fail(r, BITNET_EFORMAT, "DT_GNU_HASH: %llu buckets do not fit in the file",
                        (unsigned long long)nbuckets);
        uint64_t max = 0;
        for (uint64_t i = 0; i < nbuckets; i++) {
            uint64_t b = rd32(h + buckets + i * 4);
            if (b > max)
                max = b;
        }
        if (max == 0) {
            *count = symoffset;
        } else {
            if (max < symoffset)
                return fail(r, BITNET_EFORMAT, "DT_GNU_HASH: bucket %llu below symoffset %llu",
                            (unsigned long long)max, (unsigned long long)symoffset);
            uint64_t chain = buckets + nbuckets * 4;
            uint64_t idx = max;
            for (;;) {
                uint64_t pos = (idx - symoffset) * 4;
                if (pos > avail - chain || avail - chain - pos < 4)
                    return fail(r, BITNET_EFORMAT, "DT_GNU_HASH: chain runs past the table");
                if (rd32(h + chain + pos) & 1)
                    break;
                idx++;
            }
            *count = idx + 1;
        }
        *source = ELF_SYMBOLS_GNU_HASH;
        return 0;
    }
    if (r->has_hash) {
        rc = vaddr_to_offset(r, r->dt_hash, "DT_HASH", &off, &avail);
        if (rc < 0)
            return rc;
        if (avail < 8)
            return fail(r, BITNET_ETRUNCATED, "DT_HASH header truncated");
        *count = rd32(r->p + off + 4);
        *source = ELF_SYMBOLS_HASH;
        return 0;
    }
    return fail(r, BITNET_EFORMAT,
                "DT_SYMTAB without DT_GNU_HASH or DT_HASH: symbol count unknown");
}

/* Finds the symbol table through the dynamic tags (section headers stripped). */
static int locate_by_dynamic(struct reader *r, elf_symbol_source *source)
{
    if (!r->has_symtab)
        return 0;
    if (r->has_syment && r->dt_syment != SYM_SIZE)
        return fail(r, BITNET_EFORMAT, "DT_SYMENT %llu, expected %d",
                    (unsigned long long)r->dt_syment, SYM_SIZE);
    if (!r->dynstr.present)
        return fail(r, BITNET_EFORMAT, "DT_SYMTAB without DT_STRTAB");
    uint64_t count = 0;
    int rc = count_from_hash(r, &count, source);
    if (rc < 0)
        return rc;
    if (count > UINT64_MAX / SYM_SIZE)
        return fail(r, BITNET_EFORMAT, "symbol count %llu overflows", (unsigned long long)count);
    rc = dynamic_region(r, r->dt_symtab, count * SYM_SIZE, "dynamic symbol table (DT_SYMTAB)",
                        &r->symtab);
    if (rc < 0)
        return rc;
    r->n_symbols = (size_t)count;
    r->symstr = r->dynstr;
    if (r->has_versym) {
        rc = dynamic_region(r, r->dt_versym, count * 2, "DT_VERSYM", &r->versym);
        if (rc < 0)
            return rc;
    }
    uint64_t off = 0, avail = 0;
    if (r->has_verdef) {
        rc = vaddr_to_offset(r, r->dt_verdef, "DT_VERDEF", &off, &avail);
        if (rc < 0)
            return rc;
        r->verdef = (struct region){.off = off, .size = avail, .present = true};
        r->verdef_num = r->dt_verdefnum;
        r->verdef_str = r->dynstr;
    }
    if (r->has_verneed) {
        rc = vaddr_to_offset(r, r->dt_verneed, "DT_VERNEED", &off, &avail);
        if (rc < 0)
            return rc;
        r->verneed = (struct region){.off = off, .size = avail, .present = true};
        r->verneed_num = r->dt_verneednum;
        r->verneed_str = r->dynstr;
    }
    return 1;
}

/* Walks the version definitions and requirements, filling the index -> name
 * (and, for requirements, index -> file) tables. */
static int parse_versions(struct reader *r)
{
    unsigned steps = 0;
    int rc;
    if (r->verdef.present) {
        uint64_t e = 0; /* relative to verdef.off */
        for (uint64_t i = 0; i < r->verdef_num; i++) {
            if (++steps > VERSION_STEP_LIMIT)
                return fail(r, BITNET_EFORMAT, "version definitions: too many entries");
            if (e > r->verdef.size || r->verdef.size - e < VERDEF_SIZE)
                return fail(r, BITNET_EFORMAT, "version definition %llu lies outside its table",
                            (unsigned long long)i);
            const uint8_t *d = r->p + r->verdef.off + e;
            uint16_t ndx = rd16(d + 4) & 0x7fff;
            uint64_t aux = e + rd32(d + 12);
            if (rd16(d + 6) > 0) {
                if (aux > r->verdef.size || r->verdef.size - aux < VERDAUX_SIZE)
                    return fail(r, BITNET_EFORMAT,
                                "version definition %llu: name lies outside "
                                "its table",
                                (unsigned long long)i);
                const char *name = NULL;
                rc = string_at(r, &r->verdef_str, rd32(r->p + r->verdef.off + aux),
                               "version definition", &name);
                if (rc < 0)
                    return rc;
                r->version_names[ndx] = name;
            }
            uint32_t next = rd32(d + 16);
            if (next == 0)
                break;
            e += next;
        }
    }
    if (r->verneed.present) {
        uint64_t e = 0;
        for (uint64_t i = 0; i < r->verneed_num; i++) {
            if (++steps > VERSION_STEP_LIMIT)
                return fail(r, BITNET_EFORMAT, "version requirements: too many entries");
            if (e > r->verneed.size || r->verneed.size - e < VERNEED_SIZE)
                return fail(r, BITNET_EFORMAT, "version requirement %llu lies outside its table",
                            (unsigned long long)i);
            const uint8_t *n = r->p + r->verneed.off + e;
            const char *file = NULL;
            rc = string_at(r, &r->verneed_str, rd32(n + 4), "version requirement file", &file);
            if (rc < 0)
                return rc;
            uint16_t cnt = rd16(n + 2);
            uint64_t a = e + rd32(n + 8);
            for (uint16_t j = 0; j < cnt; j++) {
                if (++steps > VERSION_STEP_LIMIT)
                    return fail(r, BITNET_EFORMAT, "version requirements: too many entries");
                if (a > r->verneed.size || r->verneed.size - a < VERNAUX_SIZE)
                    return fail(r, BITNET_EFORMAT,
                                "version requirement %llu: entry lies outside its table",
                                (unsigned long long)i);
                const uint8_t *x = r->p + r->verneed.off + a;
                const char *name = NULL;
                rc = string_at(r, &r->verneed_str, rd32(x + 8), "version requirement", &name);
                if (rc < 0)
                    return rc;
                uint16_t ndx = rd16(x + 6) & 0x7fff;
                r->version_names[ndx] = name;
                r->version_files[ndx] = file;
                uint32_t next = rd32(x + 12);
                if (next == 0)
                    break;
                a += next;
            }
            uint32_t next = rd32(n + 12);
            if (next == 0)
                break;
            e += next;
        }
    }
    return 0;
}

static int parse_symbols(struct reader *r, elf_file *elf)
{
    if (r->versym.present && r->versym.size / 2 < r->n_symbols)
        return fail(r, BITNET_EFORMAT, "symbol version table has %llu entries for %zu symbols",
                    (unsigned long long)(r->versym.size / 2), r->n_symbols);
    if (r->n_symbols == 0)
        return 0;
    elf->symbols = calloc(r->n_symbols, sizeof(*elf->symbols));
    if (!elf->symbols)
        return fail(r, -ENOMEM, "out of memory for %zu symbols", r->n_symbols);
    for (size_t i = 0; i < r->n_symbols; i++) {
        const uint8_t *s = r->p + r->symtab.off + i * SYM_SIZE;
        elf_symbol *sym = &elf->symbols[i];
        int rc = string_at(r, &r->symstr, rd32(s), "symbol name", &sym->name);
        if (rc < 0)
            return rc;
        uint8_t info = s[4];
        sym->bind = (uint8_t)(info >> 4);
        sym->type = (uint8_t)(info & 0xf);
        sym->shndx = rd16(s + 6);
        sym->value = rd64(s + 8);
        sym->size = rd64(s + 16);
        sym->defined = sym->shndx != SHN_UNDEF;
        if (r->versym.present) {
            uint16_t v = rd16(r->p + r->versym.off + i * 2);
            uint16_t ndx = v & 0x7fff;
            sym->version_hidden = (v & 0x8000) != 0;
            if (ndx >= 2) {
                sym->version = r->version_names[ndx];
                if (!sym->defined)
                    sym->version_file = r->version_files[ndx];
            }
        }
    }
    elf->n_symbols = r->n_symbols;
    return 0;
}

static int parse(struct reader *r, elf_file *elf)
{
    int rc = parse_header(r, elf);
    if (rc < 0)
        return rc;
    rc = parse_program_headers(r, elf);
    if (rc < 0)
        return rc;
    size_t n_needed = 0;
    if (r->dynamic.present) {
        rc = parse_dynamic_tags(r, elf, &n_needed);
        if (rc < 0)
            return rc;
        rc = parse_dynamic_strings(r, elf, n_needed);
        if (rc < 0)
            return rc;
    }
    elf_symbol_source source = ELF_SYMBOLS_SECTIONS;
    rc = locate_by_sections(r);
    if (rc == 0 && r->dynamic.present)
        rc = locate_by_dynamic(r, &source);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        elf->symbol_source = ELF_SYMBOLS_NONE;
        return 0;
    }
    elf->symbol_source = source;
    r->version_names = calloc(VERSION_INDEXES, sizeof(*r->version_names));
    r->version_files = calloc(VERSION_INDEXES, sizeof(*r->version_files));
    if (!r->version_names || !r->version_files)
        return fail(r, -ENOMEM, "out of memory");
    rc = parse_versions(r);
    if (rc < 0)
        return rc;
    return parse_symbols(r, elf);
}

uint16_t elf_host_machine(void)
{
#if defined(__x86_64__)
    return EM_X86_64;
#elif defined(__aarch64__)
    return EM_AARCH64;
#else
#error "bitnetd builds for x86-64 and AArch64 only"
#endif
}

const char *elf_machine_name(uint16_t machine)
{
    switch (machine) {
    case EM_X86_64:
        return "x86-64";
    case EM_AARCH64:
        return "AArch64";
    case EM_386:
        return "i386";
    case EM_ARM:
        return "ARM";
    case EM_RISCV:
        return "RISC-V";
    case EM_PPC64:
        return "PowerPC64";
    case EM_S390:
        return "s390";
    default:
        return NULL;
    }
}

const char *elf_type_name(const elf_file *elf)
{
    switch (elf->type) {
    case ET_DYN:
        if ((elf->flags_1 & DF_1_PIE) || (elf->has_interp && !elf->soname))
            return "PIE executable";
        return "shared object";
    case ET_EXEC:
        return "executable";
    case ET_REL:
        return "relocatable object";
    case ET_CORE:
        return "core file";
    default:
        return "ELF file of unknown type";
    }
}

static int open_image(const uint8_t *data, size_t size, const char *name, int mapped,
                      elf_file **out, char *err, size_t err_len)
{
    elf_file *elf = calloc(1, sizeof(*elf));
    char *path = strdup(name);
    if (!elf || !path) {
        free(elf);
        free(path);
        if (err && err_len)
            snprintf(err, err_len, "%s: out of memory", name);
        return -ENOMEM;
    }
    elf->path = path;
    elf->data = data;
    elf->size = size;
    struct reader r = {.p = data, .size = size, .name = name, .err = err, .err_len = err_len};
    int rc = parse(&r, elf);
    free(r.version_names);
    free(r.version_files);
    if (rc < 0) {
        elf->mapped = 0; /* the caller still owns the mapping on failure */
        elf_close(elf);
        return rc;
    }
    elf->mapped = mapped;
    *out = elf;
    return 0;
}

int elf_open_memory(const void *data, size_t size, const char *name, elf_file **out, char *err,
                    size_t err_len)
{
    return open_image(data, size, name ? name : "(memory)", 0, out, err, err_len);
}

int elf_open(const char *path, elf_file **out, char *err, size_t err_len)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is then
     * rejected as not a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (err && err_len)
            snprintf(err, err_len, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        if (err && err_len)
            snprintf(err, err_len, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (err && err_len)
            snprintf(err, err_len, "%s: not a regular file", path);
        return BITNET_ELIB_NOT_REGULAR;
    }
    if (st.st_size == 0) {
        close(fd);
        if (err && err_len)
            snprintf(err, err_len, "%s: file is empty, not an ELF file", path);
        return BITNET_EELF;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        if (err && err_len)
            snprintf(err, err_len, "%s: file too large", path);
        return BITNET_ELIMIT;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        if (err && err_len)
            snprintf(err, err_len, "%s: mmap: %s", path, strerror(e));
        return -e;
    }
    int rc = open_image(map, size, path, 1, out, err, err_len);
    if (rc < 0)
        munmap(map, size);
    return rc;
}

void elf_close(elf_file *elf)
{
    if (!elf)
        return;
    if (elf->mapped)
        munmap((void *)elf->data, elf->size);
    free(elf->symbols);
    free(elf->needed);
    free(elf->path);
    free(elf);
}

const elf_symbol *elf_find_defined(const elf_file *elf, const char *name)
{
    for (size_t i = 0; i < elf->n_symbols; i++)
        if (elf->symbols[i].defined && strcmp(elf->symbols[i].name, name) == 0)
            return &elf->symbols[i];
    return NULL;
}
