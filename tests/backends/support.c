/* tests/backends/support.c - see support.h. */
#define _GNU_SOURCE
#include "support.h"

#include <ftw.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *ref_cpu_dir(void)
{
    return BITNET_REFERENCE_DIR "/linux-x64/bins/linux-x64";
}

const char *ref_cuda_dir(void)
{
    return BITNET_REFERENCE_DIR "/linux-x64-cuda/bins/linux-x64-cuda";
}

const char *ref_path(const char *dir, const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0) {
        buf = malloc((size_t)st.st_size);
        if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf)
        *size = (size_t)st.st_size;
    return buf;
}

int write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = size ? fwrite(data, 1, size, f) : 0;
    return (fclose(f) == 0 && n == size) ? 0 : -1;
}

static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    char *out = data;
    const char *name = info->dlpi_name;
    const char *base = name ? strrchr(name, '/') : NULL;
    if (base && strncmp(base + 1, "libc.so", 7) == 0) {
        snprintf(out, 4096, "%s", name);
        return 1;
    }
    return 0;
}

const char *libc_path(void)
{
    static char path[4096];
    if (!path[0])
        dl_iterate_phdr(find_libc, path);
    return path[0] ? path : NULL;
}

static char scratch[256];

void scratch_init(void)
{
    snprintf(scratch, sizeof(scratch), "/tmp/bitnet-elf-test-XXXXXX");
    if (!mkdtemp(scratch))
        scratch[0] = '\0';
}

const char *scratch_dir(void)
{
    if (!scratch[0])
        scratch_init();
    return scratch;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void scratch_cleanup(void)
{
    if (scratch[0])
        nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

Elf64_Ehdr *img_ehdr(uint8_t *img)
{
    return (Elf64_Ehdr *)img;
}

Elf64_Phdr *img_phdr(uint8_t *img, uint32_t type)
{
    Elf64_Ehdr *eh = img_ehdr(img);
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff) + i;
        if (ph->p_type == type)
            return ph;
    }
    return NULL;
}

Elf64_Shdr *img_shdr(uint8_t *img, uint32_t type)
{
    Elf64_Ehdr *eh = img_ehdr(img);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        Elf64_Shdr *sh = (Elf64_Shdr *)(img + eh->e_shoff) + i;
        if (sh->sh_type == type)
            return sh;
    }
    return NULL;
}

Elf64_Dyn *img_dyn(uint8_t *img, int64_t tag)
{
    Elf64_Phdr *ph = img_phdr(img, PT_DYNAMIC);
    if (!ph)
        return NULL;
    Elf64_Dyn *d = (Elf64_Dyn *)(img + ph->p_offset);
    for (size_t i = 0; i < ph->p_filesz / sizeof(*d) && d[i].d_tag != DT_NULL; i++)
        if (d[i].d_tag == tag)
            return &d[i];
    return NULL;
}
