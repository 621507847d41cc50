/*
 * tests/backends/test_elf.c - the ELF reader against real files (the
 * reference llama.cpp libraries, the C library, bitnetctl, fixture libraries
 * built by this build) and against hostile files crafted here from them.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/elf.h"
#include "backends/symbols.h"
#include "bitnet/error.h"
#include "support.h"

static char err[512];

/* Opens path, failing the test with the reader's message if it cannot. */
static elf_file *open_ok(const char *path)
{
    elf_file *elf = NULL;
    int rc = elf_open(path, &elf, err, sizeof(err));
    ck_assert_msg(rc == 0, "elf_open(%s) = %d: %s", path, rc, err);
    ck_assert_ptr_nonnull(elf);
    return elf;
}

/* Parses an image from a buffer of exactly size bytes and returns the code. */
static int parse_copy(const uint8_t *img, size_t size, const char *name)
{
    uint8_t *copy = malloc(size ? size : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, img, size);
    elf_file *elf = NULL;
    err[0] = '\0';
    int rc = elf_open_memory(copy, size, name, &elf, err, sizeof(err));
    if (rc == 0) {
        /* Touch everything a caller would read. */
        for (size_t i = 0; i < elf->n_symbols; i++)
            ck_assert_ptr_nonnull(elf->symbols[i].name);
        elf_close(elf);
    } else {
        ck_assert_ptr_null(elf);
        ck_assert_msg(strstr(err, name) != NULL, "message '%s' does not name %s", err, name);
    }
    free(copy);
    return rc;
}

static bool has_needed(const elf_file *elf, const char *name)
{
    for (size_t i = 0; i < elf->n_needed; i++)
        if (strcmp(elf->needed[i], name) == 0)
            return true;
    return false;
}

/* Two symbol tables read from the same file by different routes are equal. */
static void assert_same_symbols(const elf_file *a, const elf_file *b)
{
    ck_assert_uint_eq(a->n_symbols, b->n_symbols);
    for (size_t i = 0; i < a->n_symbols; i++) {
        const elf_symbol *x = &a->symbols[i], *y = &b->symbols[i];
        ck_assert_str_eq(x->name, y->name);
        ck_assert_int_eq(x->defined, y->defined);
        ck_assert_uint_eq(x->bind, y->bind);
        ck_assert_uint_eq(x->type, y->type);
        ck_assert_uint_eq(x->value, y->value);
        ck_assert_int_eq(x->version == NULL, y->version == NULL);
        if (x->version)
            ck_assert_str_eq(x->version, y->version);
        ck_assert_int_eq(x->version_file == NULL, y->version_file == NULL);
        if (x->version_file)
            ck_assert_str_eq(x->version_file, y->version_file);
    }
}

/* Reads the file, zeroes e_shoff and e_shnum in a copy (as `strip
 * --strip-section-headers` leaves it), and checks that the dynamic route
 * finds the same symbols as the section route. */
static void check_stripped_matches(const char *path, elf_symbol_source expect)
{
    size_t size;
    uint8_t *img = read_file(path, &size);
    ck_assert_ptr_nonnull(img);
    elf_file *with = NULL, *without = NULL;
    ck_assert_int_eq(elf_open_memory(img, size, path, &with, err, sizeof(err)), 0);
    ck_assert_int_eq(with->symbol_source, ELF_SYMBOLS_SECTIONS);

    uint8_t *stripped = malloc(size);
    ck_assert_ptr_nonnull(stripped);
    memcpy(stripped, img, size);
    img_ehdr(stripped)->e_shoff = 0;
    img_ehdr(stripped)->e_shnum = 0;
    img_ehdr(stripped)->e_shstrndx = 0;
    int rc = elf_open_memory(stripped, size, "stripped copy", &without, err, sizeof(err));
    ck_assert_msg(rc == 0, "stripped %s: %s", path, err);
    ck_assert_int_eq(without->symbol_source, expect);
    ck_assert_uint_gt(without->n_symbols, 1);
    assert_same_symbols(with, without);
    ck_assert_uint_eq(with->n_needed, without->n_needed);
    elf_close(with);
    elf_close(without);
    free(stripped);
    free(img);
}

#if defined(__x86_64__)
START_TEST(cpu_libllama_has_needed_runpath_and_llama_api)
{
    elf_file *elf = open_ok(ref_path(ref_cpu_dir(), "libllama.v0.5.0.so"));
    ck_assert_uint_eq(elf->machine, EM_X86_64);
    ck_assert_str_eq(elf->soname, "libllama.v0.5.0.so");
    ck_assert_str_eq(elf->runpath, "$ORIGIN:");
    ck_assert_ptr_null(elf->rpath);
    ck_assert(has_needed(elf, "libggml-base.so"));
    ck_assert(has_needed(elf, "libggml.v0.5.0.so"));
    ck_assert(has_needed(elf, "libc.so.6"));
    ck_assert_str_eq(elf_type_name(elf), "shared object");
    ck_assert_int_eq(elf->symbol_source, ELF_SYMBOLS_SECTIONS);
    const elf_symbol *s = elf_find_defined(elf, "llama_backend_init");
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->type, STT_FUNC);
    ck_assert_uint_eq(s->bind, STB_GLOBAL);
    /* Imports carry their version and the library the version comes from. */
    bool glibc_import = false;
    for (size_t i = 0; i < elf->n_symbols; i++) {
        const elf_symbol *x = &elf->symbols[i];
        if (!x->defined && x->version && strncmp(x->version, "GLIBC_", 6) == 0 && x->version_file &&
            strcmp(x->version_file, "libc.so.6") == 0)
            glibc_import = true;
    }
    ck_assert(glibc_import);
    /* Imports of ggml functions are undefined here, not categorised. */
    ck_assert_ptr_null(elf_find_defined(elf, "ggml_init"));
    elf_close(elf);
}
END_TEST

START_TEST(ggml_base_defines_the_tq_quantizers)
{
    elf_file *elf = open_ok(ref_path(ref_cpu_dir(), "libggml-base.so"));
    const char *names[] = {"quantize_row_tq1_0_ref",
                           "quantize_row_tq2_0_ref",
                           "dequantize_row_tq1_0",
                           "dequantize_row_tq2_0",
                           "quantize_tq1_0",
                           "quantize_tq2_0",
                           "ggml_init"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_assert_msg(elf_find_defined(elf, names[i]) != NULL, "%s missing", names[i]);
    symbols_summary sum;
    symbols_summarize(elf, &sum);
    ck_assert(sum.ggml_core);
    ck_assert_uint_ge(sum.quant[SYMBOL_QUANT_TQ1_0].count, 3);
    ck_assert_uint_ge(sum.quant[SYMBOL_QUANT_TQ2_0].count, 3);
    ck_assert_uint_eq(sum.quant[SYMBOL_QUANT_I2_S].count, 0);
    ck_assert_uint_eq(sum.category[SYMBOL_CAT_CUDA].count, 0);
    ck_assert_uint_gt(sum.category[SYMBOL_CAT_GGML].count, 100);
    elf_close(elf);
}
END_TEST

START_TEST(cuda_backend_needs_cuda_and_defines_cuda_symbols)
{
    const char *path = ref_path(ref_cuda_dir(), "libggml-cuda.so");
    if (!file_exists(path)) {
        fprintf(stderr, "skip: %s not fetched (FETCH_CUDA=0)\n", path);
        return;
    }
    elf_file *elf = open_ok(path);
    ck_assert(has_needed(elf, "libcudart.so.13"));
    ck_assert(has_needed(elf, "libcublas.so.13"));
    symbols_summary sum;
    symbols_summarize(elf, &sum);
    ck_assert(sum.ggml_backend);
    ck_assert_str_eq(sum.ggml_backend_reg, "ggml_backend_cuda_reg");
    ck_assert_uint_gt(sum.category[SYMBOL_CAT_CUDA].count, 100);
    ck_assert_uint_gt(sum.cuda_imports.count, 10);
    ck_assert_ptr_nonnull(elf_find_defined(elf, "ggml_backend_cuda_init"));
    elf_close(elf);
}
END_TEST

START_TEST(stripped_libllama_reads_same_symbols_through_gnu_hash)
{
    check_stripped_matches(ref_path(ref_cpu_dir(), "libllama.v0.5.0.so"), ELF_SYMBOLS_GNU_HASH);
    check_stripped_matches(ref_path(ref_cpu_dir(), "libggml-base.so"), ELF_SYMBOLS_GNU_HASH);
}
END_TEST
#endif

START_TEST(libc_has_version_definitions)
{
    const char *path = libc_path();
    ck_assert_ptr_nonnull(path);
    elf_file *elf = open_ok(path);
    ck_assert_str_eq(elf->soname, "libc.so.6");
    ck_assert_uint_eq(elf->machine, elf_host_machine());
    const elf_symbol *m = elf_find_defined(elf, "malloc");
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->version);
    ck_assert_msg(strncmp(m->version, "GLIBC_", 6) == 0, "malloc version %s", m->version);
    ck_assert_ptr_null(m->version_file);
    symbols_summary sum;
    symbols_summarize(elf, &sum);
    for (unsigned c = 0; c < SYMBOL_CAT_COUNT; c++)
        ck_assert_uint_eq(sum.category[c].count, 0);
    for (unsigned q = 0; q < SYMBOL_QUANT_COUNT; q++)
        ck_assert_uint_eq(sum.quant[q].count, 0);
    elf_close(elf);
    check_stripped_matches(path, ELF_SYMBOLS_GNU_HASH);
}
END_TEST

START_TEST(bitnetctl_is_a_pie_executable_without_cuda)
{
    elf_file *elf = open_ok(BITNETCTL_PATH);
    ck_assert(elf->has_interp);
    ck_assert_ptr_null(elf->soname);
    ck_assert(has_needed(elf, "libjansson.so.4"));
    for (size_t i = 0; i < elf->n_needed; i++)
        ck_assert(!symbols_is_cuda_library(elf->needed[i]));
    symbols_summary sum;
    symbols_summarize(elf, &sum);
    ck_assert_uint_eq(sum.category[SYMBOL_CAT_CUDA].count, 0);
    ck_assert_uint_eq(sum.cuda_imports.count, 0);
    ck_assert_uint_gt(sum.undefined, 10);
    elf_close(elf);
}
END_TEST

START_TEST(sysv_hash_fixture_reads_through_dt_hash_and_rpath)
{
    elf_file *elf = open_ok(ELFFIX_MAIN_PATH);
    ck_assert_str_eq(elf->rpath, "$ORIGIN/fixdep");
    ck_assert_ptr_null(elf->runpath);
    ck_assert(has_needed(elf, "libelffix_dep.so"));
    ck_assert_ptr_nonnull(elf_find_defined(elf, "bitnet_abi_version"));
    ck_assert_ptr_null(elf_find_defined(elf, "elffix_dep_value"));
    elf_close(elf);
    check_stripped_matches(ELFFIX_MAIN_PATH, ELF_SYMBOLS_HASH);
}
END_TEST

START_TEST(symbol_rules_sort_names)
{
    ck_assert(symbols_is_cuda_name("cudaMalloc"));
    ck_assert(symbols_is_cuda_name("cublasSgemm_v2"));
    ck_assert(symbols_is_cuda_name("cuMemCreate"));
    ck_assert(symbols_is_cuda_name("__cudaRegisterFatBinary"));
    ck_assert(symbols_is_cuda_name("ggml_backend_cuda_init"));
    ck_assert(symbols_is_cuda_name("_Z14mul_mat_f_cudaIfLi8ELi1EEvPKT_P11CUstream_st"));
    ck_assert(symbols_is_cuda_name("_Z9k_get_rowsP11CUstream_st"));
    ck_assert(!symbols_is_cuda_name("curl_easy_init"));
    ck_assert(!symbols_is_cuda_name("llama_backend_init"));
    ck_assert(!symbols_is_cuda_name("cumulative"));
    ck_assert(symbols_is_cuda_library("libcudart.so.13"));
    ck_assert(symbols_is_cuda_library("libcuda.so.1"));
    ck_assert(symbols_is_cuda_library("libcublasLt.so.13"));
    ck_assert(!symbols_is_cuda_library("libcurl.so.4"));
    ck_assert(!symbols_is_cuda_library("libc.so.6"));
    ck_assert_uint_eq(symbols_quant_mask("dequantize_row_tq1_0"), 1u << SYMBOL_QUANT_TQ1_0);
    ck_assert_uint_eq(symbols_quant_mask("_Z22dequantize_row_tq2_0PKvPfl"),
                      1u << SYMBOL_QUANT_TQ2_0);
    ck_assert_uint_eq(symbols_quant_mask("ggml_vec_dot_i2_i8_s"), 1u << SYMBOL_QUANT_I2_I8_S);
    ck_assert_uint_eq(symbols_quant_mask("quantize_i2_s"), 1u << SYMBOL_QUANT_I2_S);
    ck_assert_uint_eq(symbols_quant_mask("ggml_bitnet_tl1_transform"), 1u << SYMBOL_QUANT_TL1);
    ck_assert_uint_eq(symbols_quant_mask("i2_scale"), 0);
    ck_assert_uint_eq(symbols_quant_mask("ctl1_open"), 0);
    ck_assert_uint_eq(symbols_quant_mask("tq1_01"), 0);
    ck_assert_uint_eq(symbols_category_mask("ggml_backend_cuda_init"),
                      (1u << SYMBOL_CAT_GGML) | (1u << SYMBOL_CAT_CUDA));
    ck_assert_uint_eq(symbols_category_mask("bitnet_abi_version"), 1u << SYMBOL_CAT_BITNET);
    ck_assert_uint_eq(symbols_category_mask("gguf_init_from_file"), 1u << SYMBOL_CAT_GGML);
}
END_TEST

/* --- Hostile files, crafted from the fixture library. --- */

static uint8_t *fixture(size_t *size)
{
    uint8_t *img = read_file(ELFFIX_MAIN_PATH, size);
    ck_assert_ptr_nonnull(img);
    return img;
}

START_TEST(empty_and_text_files_are_not_elf)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/empty.so", scratch_dir());
    ck_assert_int_eq(write_file(path, "", 0), 0);
    elf_file *elf = NULL;
    ck_assert_int_eq(elf_open(path, &elf, err, sizeof(err)), BITNET_EELF);
    ck_assert_ptr_null(elf);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "empty"));

    snprintf(path, sizeof(path), "%s/text.so", scratch_dir());
    const char *text = "INPUT(-lfoo)\n/* a linker script named .so */\n";
    ck_assert_int_eq(write_file(path, text, strlen(text)), 0);
    ck_assert_int_eq(elf_open(path, &elf, err, sizeof(err)), BITNET_EELF);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "not an ELF file"));

    ck_assert_int_eq(elf_open(scratch_dir(), &elf, err, sizeof(err)), BITNET_ELIB_NOT_REGULAR);
    /* A FIFO is refused at once rather than waited on. */
    snprintf(path, sizeof(path), "%s/fifo.so", scratch_dir());
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(elf_open(path, &elf, err, sizeof(err)), BITNET_ELIB_NOT_REGULAR);
    unlink(path);
    ck_assert_int_lt(elf_open("/nonexistent/libx.so", &elf, err, sizeof(err)), 0);
    ck_assert_ptr_null(elf);
}
END_TEST

START_TEST(truncated_files_are_rejected_at_every_length)
{
    size_t size;
    uint8_t *img = fixture(&size);
    ck_assert_int_eq(parse_copy(img, size, "whole"), 0);
    for (size_t len = 0; len < size; len++) {
        int rc = parse_copy(img, len, "truncated");
        int expect = len < 4 ? BITNET_EELF : BITNET_ETRUNCATED;
        ck_assert_msg(rc == expect, "length %zu: %d (%s)", len, rc, err);
    }
    free(img);
}
END_TEST

#if defined(__x86_64__)
START_TEST(truncated_real_library_is_rejected)
{
    size_t size;
    uint8_t *img = read_file(ref_path(ref_cpu_dir(), "libggml.v0.5.0.so"), &size);
    ck_assert_ptr_nonnull(img);
    for (size_t len = 4; len < size; len += 61) {
        int rc = parse_copy(img, len, "truncated");
        ck_assert_msg(rc == BITNET_ETRUNCATED, "length %zu: %d (%s)", len, rc, err);
    }
    free(img);
}
END_TEST
#endif

START_TEST(elf32_bigendian_and_wrong_machine_are_named)
{
    size_t size;
    uint8_t *img = fixture(&size);
    img[EI_CLASS] = ELFCLASS32;
    ck_assert_int_eq(parse_copy(img, size, "elf32.so"), BITNET_EELF_CLASS);
    ck_assert_ptr_nonnull(strstr(err, "ELF32"));
    img[EI_CLASS] = ELFCLASS64;

    img[EI_DATA] = ELFDATA2MSB;
    ck_assert_int_eq(parse_copy(img, size, "be.so"), BITNET_EELF);
    ck_assert_ptr_nonnull(strstr(err, "big-endian"));
    img[EI_DATA] = ELFDATA2LSB;

    uint16_t other = elf_host_machine() == EM_X86_64 ? EM_AARCH64 : EM_X86_64;
    img_ehdr(img)->e_machine = other;
    ck_assert_int_eq(parse_copy(img, size, "other.so"), BITNET_EELF_MACHINE);
    ck_assert_ptr_nonnull(strstr(err, elf_machine_name(other)));
    img_ehdr(img)->e_machine = 0x1234;
    ck_assert_int_eq(parse_copy(img, size, "odd.so"), BITNET_EELF_MACHINE);
    ck_assert_ptr_nonnull(strstr(err, "4660"));
    free(img);
}
END_TEST

START_TEST(absurd_header_counts_are_rejected)
{
    size_t size;
    uint8_t *img = fixture(&size);
    Elf64_Ehdr saved = *img_ehdr(img);

    img_ehdr(img)->e_phnum = 0xfffe;
    ck_assert_int_eq(parse_copy(img, size, "phnum.so"), BITNET_ETRUNCATED);
    *img_ehdr(img) = saved;

    img_ehdr(img)->e_shnum = 0xfffe;
    ck_assert_int_eq(parse_copy(img, size, "shnum.so"), BITNET_ETRUNCATED);
    *img_ehdr(img) = saved;

    img_ehdr(img)->e_phentsize = 32;
    ck_assert_int_eq(parse_copy(img, size, "phentsize.so"), BITNET_EFORMAT);
    *img_ehdr(img) = saved;

    img_ehdr(img)->e_phoff = UINT64_MAX - 8;
    ck_assert_int_eq(parse_copy(img, size, "phoff.so"), BITNET_EFORMAT);
    *img_ehdr(img) = saved;

    /* Extended section count (e_shnum 0, count in section 0's sh_size). */
    Elf64_Shdr *sh0 = (Elf64_Shdr *)(img + saved.e_shoff);
    img_ehdr(img)->e_shnum = 0;
    sh0->sh_size = UINT64_MAX / 4;
    ck_assert_int_eq(parse_copy(img, size, "xshnum.so"), BITNET_EFORMAT);
    sh0->sh_size = 0;
    *img_ehdr(img) = saved;
    ck_assert_int_eq(parse_copy(img, size, "restored.so"), 0);
    free(img);
}
END_TEST

START_TEST(dynamic_section_outside_the_file_is_rejected)
{
    size_t size;
    uint8_t *img = fixture(&size);
    Elf64_Phdr *dyn = img_phdr(img, PT_DYNAMIC);
    ck_assert_ptr_nonnull(dyn);
    Elf64_Phdr saved = *dyn;
    dyn->p_offset = size + 100;
    ck_assert_int_eq(parse_copy(img, size, "dyn-off.so"), BITNET_ETRUNCATED);
    dyn->p_offset = UINT64_MAX - 4;
    ck_assert_int_eq(parse_copy(img, size, "dyn-wrap.so"), BITNET_EFORMAT);
    *dyn = saved;
    dyn->p_filesz = size;
    ck_assert_int_eq(parse_copy(img, size, "dyn-size.so"), BITNET_ETRUNCATED);
    *dyn = saved;

    /* DT_STRTAB at an address no PT_LOAD maps. */
    Elf64_Dyn *strtab = img_dyn(img, DT_STRTAB);
    ck_assert_ptr_nonnull(strtab);
    uint64_t va = strtab->d_un.d_ptr;
    strtab->d_un.d_ptr = 0x7fff00000000ull;
    ck_assert_int_eq(parse_copy(img, size, "strtab-va.so"), BITNET_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "PT_LOAD"));
    strtab->d_un.d_ptr = va;
    ck_assert_int_eq(parse_copy(img, size, "restored.so"), 0);
    free(img);
}
END_TEST

START_TEST(string_offsets_out_of_range_are_rejected)
{
    size_t size;
    uint8_t *img = fixture(&size);
    Elf64_Dyn *needed = img_dyn(img, DT_NEEDED);
    ck_assert_ptr_nonnull(needed);
    uint64_t saved = needed->d_un.d_val;
    needed->d_un.d_val = 0x7fffffff;
    ck_assert_int_eq(parse_copy(img, size, "needed-str.so"), BITNET_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "DT_NEEDED"));
    needed->d_un.d_val = saved;

    /* An unterminated string: DT_STRSZ cut to end inside the first name. */
    Elf64_Dyn *strsz = img_dyn(img, DT_STRSZ);
    uint64_t saved_sz = strsz->d_un.d_val;
    strsz->d_un.d_val = saved + 2;
    ck_assert_int_eq(parse_copy(img, size, "strsz.so"), BITNET_EFORMAT);
    strsz->d_un.d_val = saved_sz;

    /* A symbol name outside .dynstr. */
    Elf64_Shdr *dynsym = img_shdr(img, SHT_DYNSYM);
    ck_assert_ptr_nonnull(dynsym);
    Elf64_Sym *sym = (Elf64_Sym *)(img + dynsym->sh_offset) + 1;
    uint32_t name = sym->st_name;
    sym->st_name = 0xfffffff0u;
    ck_assert_int_eq(parse_copy(img, size, "symname.so"), BITNET_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "symbol name"));
    sym->st_name = name;
    ck_assert_int_eq(parse_copy(img, size, "restored.so"), 0);
    free(img);
}
END_TEST

START_TEST(symbol_counts_that_overflow_are_rejected)
{
    size_t size;
    uint8_t *img = fixture(&size);
    Elf64_Shdr *dynsym = img_shdr(img, SHT_DYNSYM);
    Elf64_Shdr saved = *dynsym;
    dynsym->sh_size = UINT64_MAX - 7;
    ck_assert_int_eq(parse_copy(img, size, "dynsym-size.so"), BITNET_EFORMAT);
    dynsym->sh_size = saved.sh_size * 1000;
    ck_assert_int_eq(parse_copy(img, size, "dynsym-big.so"), BITNET_ETRUNCATED);
    dynsym->sh_size = saved.sh_size;
    dynsym->sh_entsize = 16;
    ck_assert_int_eq(parse_copy(img, size, "dynsym-ent.so"), BITNET_EFORMAT);
    dynsym->sh_entsize = saved.sh_entsize;
    dynsym->sh_link = 0xffff;
    ck_assert_int_eq(parse_copy(img, size, "dynsym-link.so"), BITNET_EFORMAT);
    *dynsym = saved;

    /* Without section headers the count comes from DT_HASH's nchain. */
    img_ehdr(img)->e_shoff = 0;
    img_ehdr(img)->e_shnum = 0;
    ck_assert_int_eq(parse_copy(img, size, "stripped.so"), 0);
    Elf64_Dyn *hash = img_dyn(img, DT_HASH);
    ck_assert_ptr_nonnull(hash);
    Elf64_Phdr *load = img_phdr(img, PT_LOAD);
    uint64_t off = hash->d_un.d_ptr - load->p_vaddr + load->p_offset;
    uint32_t *nchain = (uint32_t *)(img + off + 4);
    *nchain = 0xffffffffu;
    ck_assert_int_eq(parse_copy(img, size, "nchain.so"), BITNET_ETRUNCATED);
    Elf64_Dyn *symtab = img_dyn(img, DT_SYMTAB);
    symtab->d_un.d_ptr = 0x7fff00000000ull;
    ck_assert_int_eq(parse_copy(img, size, "symtab-va.so"), BITNET_EFORMAT);
    free(img);
}
END_TEST

START_TEST(bad_version_tables_are_rejected)
{
    size_t size;
    uint8_t *img = read_file(BITNETCTL_PATH, &size); /* it requires GLIBC_* versions */
    ck_assert_ptr_nonnull(img);
    Elf64_Shdr *verneed = img_shdr(img, SHT_GNU_verneed);
    Elf64_Shdr *versym = img_shdr(img, SHT_GNU_versym);
    ck_assert_ptr_nonnull(verneed);
    ck_assert_ptr_nonnull(versym);

    Elf64_Verneed *vn = (Elf64_Verneed *)(img + verneed->sh_offset);
    uint32_t aux = vn->vn_aux;
    vn->vn_aux = 0x7ffffff0u;
    ck_assert_int_eq(parse_copy(img, size, "vn-aux.so"), BITNET_EFORMAT);
    vn->vn_aux = aux;
    uint32_t file = vn->vn_file;
    vn->vn_file = 0xfffffff0u;
    ck_assert_int_eq(parse_copy(img, size, "vn-file.so"), BITNET_EFORMAT);
    vn->vn_file = file;

    uint64_t versize = versym->sh_size;
    versym->sh_size = 2;
    ck_assert_int_eq(parse_copy(img, size, "versym.so"), BITNET_EFORMAT);
    versym->sh_size = versize;
    ck_assert_int_eq(parse_copy(img, size, "restored.so"), 0);
    free(img);
}
END_TEST

#if defined(__x86_64__)
START_TEST(bad_gnu_hash_tables_are_rejected)
{
    size_t size;
    uint8_t *img = read_file(ref_path(ref_cpu_dir(), "libggml.v0.5.0.so"), &size);
    ck_assert_ptr_nonnull(img);
    img_ehdr(img)->e_shoff = 0;
    img_ehdr(img)->e_shnum = 0;
    ck_assert_int_eq(parse_copy(img, size, "stripped.so"), 0);
    Elf64_Dyn *gnu = img_dyn(img, DT_GNU_HASH);
    ck_assert_ptr_nonnull(gnu);
    Elf64_Phdr *load = img_phdr(img, PT_LOAD);
    uint32_t *h = (uint32_t *)(img + gnu->d_un.d_ptr - load->p_vaddr + load->p_offset);
    uint32_t saved[4] = {h[0], h[1], h[2], h[3]};

    h[0] = 0xffffffffu; /* nbuckets */
    ck_assert_int_eq(parse_copy(img, size, "nbuckets.so"), BITNET_EFORMAT);
    h[0] = saved[0];
    h[2] = 0x7fffffffu; /* bloom words */
    ck_assert_int_eq(parse_copy(img, size, "bloom.so"), BITNET_EFORMAT);
    h[2] = saved[2];
    h[1] = 0xfffffff0u; /* symoffset above every bucket */
    ck_assert_int_eq(parse_copy(img, size, "symoffset.so"), BITNET_EFORMAT);
    h[1] = saved[1];
    ck_assert_int_eq(parse_copy(img, size, "restored.so"), 0);
    free(img);
}
END_TEST
#endif

/* Flips bytes all over the fixture: every result is a value, never a crash
 * (under ASan/UBSan this is a small deterministic fuzz run). */
START_TEST(corrupted_bytes_never_crash)
{
    size_t size;
    uint8_t *img = fixture(&size);
    uint8_t *work = malloc(size);
    ck_assert_ptr_nonnull(work);
    uint32_t state = 12345;
    for (int round = 0; round < 3000; round++) {
        memcpy(work, img, size);
        for (int k = 0; k < 4; k++) {
            state = state * 1103515245u + 12345u;
            size_t at = (state >> 8) % (size < 4096 ? size : 4096);
            state = state * 1103515245u + 12345u;
            work[at] = (uint8_t)(state >> 16);
        }
        int rc = parse_copy(work, size, "flipped");
        ck_assert(rc == 0 || rc == BITNET_EELF || rc == BITNET_EELF_CLASS ||
                  rc == BITNET_EELF_MACHINE || rc == BITNET_ETRUNCATED || rc == BITNET_EFORMAT);
    }
    free(work);
    free(img);
}
END_TEST

static Suite *elf_suite(void)
{
    Suite *s = suite_create("elf");
    TCase *real = tcase_create("real files");
#if defined(__x86_64__)
    tcase_add_test(real, cpu_libllama_has_needed_runpath_and_llama_api);
    tcase_add_test(real, ggml_base_defines_the_tq_quantizers);
    tcase_add_test(real, cuda_backend_needs_cuda_and_defines_cuda_symbols);
    tcase_add_test(real, stripped_libllama_reads_same_symbols_through_gnu_hash);
#endif
    tcase_add_test(real, libc_has_version_definitions);
    tcase_add_test(real, bitnetctl_is_a_pie_executable_without_cuda);
    tcase_add_test(real, sysv_hash_fixture_reads_through_dt_hash_and_rpath);
    tcase_add_test(real, symbol_rules_sort_names);
    suite_add_tcase(s, real);

    TCase *bad = tcase_create("hostile files");
    tcase_add_test(bad, empty_and_text_files_are_not_elf);
    tcase_add_test(bad, truncated_files_are_rejected_at_every_length);
#if defined(__x86_64__)
    tcase_add_test(bad, truncated_real_library_is_rejected);
#endif
    tcase_add_test(bad, elf32_bigendian_and_wrong_machine_are_named);
    tcase_add_test(bad, absurd_header_counts_are_rejected);
    tcase_add_test(bad, dynamic_section_outside_the_file_is_rejected);
    tcase_add_test(bad, string_offsets_out_of_range_are_rejected);
    tcase_add_test(bad, symbol_counts_that_overflow_are_rejected);
    tcase_add_test(bad, bad_version_tables_are_rejected);
#if defined(__x86_64__)
    tcase_add_test(bad, bad_gnu_hash_tables_are_rejected);
#endif
    tcase_add_test(bad, corrupted_bytes_never_crash);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    scratch_init();
    SRunner *sr = srunner_create(elf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    scratch_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
