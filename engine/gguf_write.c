/*
 * engine/gguf_write.c - the GGUF writer (see gguf_write.h).
 *
 * Layout written: magic, version, n_tensors, n_kv, the KV records, the
 * tensor-info records, zero padding to the alignment, then the tensor data,
 * each tensor starting at its recorded offset and the last one padded to the
 * alignment, as llama.cpp's writer does.
 */
#include "engine/gguf_write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c writes host-order numbers and assumes a little-endian host"
#endif

/* A growable byte buffer. */
typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

static int bytes_put(bytes *b, const void *data, size_t n)
{
    if (n > SIZE_MAX - b->len)
        return -ENOMEM;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int bytes_u32(bytes *b, uint32_t v)
{
    return bytes_put(b, &v, 4);
}

static int bytes_u64(bytes *b, uint64_t v)
{
    return bytes_put(b, &v, 8);
}

static int bytes_str(bytes *b, const char *s, size_t len)
{
    int rc = bytes_u64(b, len);
    return rc < 0 ? rc : bytes_put(b, s, len);
}

typedef struct wtensor {
    uint64_t offset; /* relative to the data section */
    uint64_t nbytes;
} wtensor;

struct gguf_writer {
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    bytes kvs;   /* serialized KV records */
    bytes infos; /* serialized tensor-info records */
    wtensor *t;  /* per tensor: where its data goes */
    size_t n_t, cap_t;
    uint64_t next;  /* next automatic offset */
    uint64_t end;   /* highest end of any tensor */
    uint64_t wrote; /* bytes of the data section written so far */
};

int gguf_writer_new(gguf_writer **out)
{
    gguf_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->version = 3;
    w->alignment = 32;
    *out = w;
    return 0;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    free(w->kvs.p);
    free(w->infos.p);
    free(w->t);
    free(w);
}

void gguf_writer_set_version(gguf_writer *w, uint32_t version)
{
    w->version = version;
}

int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment)
{
    if (alignment == 0)
        return -EINVAL;
    w->alignment = alignment;
    return gguf_writer_add_u32(w, "general.alignment", alignment);
}

int gguf_writer_add_raw(gguf_writer *w, const char *key, size_t key_len, gguf_type type,
                        const void *value, size_t value_len)
{
    size_t mark = w->kvs.len;
    int rc = bytes_str(&w->kvs, key, key_len);
    if (rc == 0)
        rc = bytes_u32(&w->kvs, (uint32_t)type);
    if (rc == 0)
        rc = bytes_put(&w->kvs, value, value_len);
    if (rc < 0) {
        w->kvs.len = mark;
        return rc;
    }
    w->n_kv++;
    return 0;
}

static size_t scalar_size(gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

int gguf_writer_add_scalar(gguf_writer *w, const char *key, gguf_type type, const void *value)
{
    size_t n = scalar_size(type);
    if (n == 0)
        return -EINVAL;
    uint8_t b = 0;
    if (type == GGUF_TYPE_BOOL) {
        b = *(const bool *)value ? 1 : 0;
        value = &b;
    }
    return gguf_writer_add_raw(w, key, strlen(key), type, value, n);
}

int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return gguf_writer_add_scalar(w, key, GGUF_TYPE_UINT32, &v);
}

int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v)
{
    return gguf_writer_add_scalar(w, key, GGUF_TYPE_INT32, &v);
}

int gguf_writer_add_f32(gguf_writer *w, const char *key, float v)
{
    return gguf_writer_add_scalar(w, key, GGUF_TYPE_FLOAT32, &v);
}

int gguf_writer_add_bool(gguf_writer *w, const char *key, bool v)
{
    return gguf_writer_add_scalar(w, key, GGUF_TYPE_BOOL, &v);
}

int gguf_writer_add_str_len(gguf_writer *w, const char *key, const char *s, size_t len)
{
    bytes v = {0};
    int rc = bytes_str(&v, s, len);
    if (rc == 0)
        rc = gguf_writer_add_raw(w, key, strlen(key), GGUF_TYPE_STRING, v.p, v.len);
    free(v.p);
    return rc;
}

int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s)
{
    return gguf_writer_add_str_len(w, key, s, strlen(s));
}

int gguf_writer_add_array(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                          uint64_t count)
{
    size_t n = scalar_size(elem_type);
    if (n == 0 || count > SIZE_MAX / n)
        return -EINVAL;
    bytes v = {0};
    int rc = bytes_u32(&v, (uint32_t)elem_type);
    if (rc == 0)
        rc = bytes_u64(&v, count);
    if (rc == 0)
        rc = bytes_put(&v, data, (size_t)count * n);
    if (rc == 0)
        rc = gguf_writer_add_raw(w, key, strlen(key), GGUF_TYPE_ARRAY, v.p, v.len);
    free(v.p);
    return rc;
}

int gguf_writer_add_array_str(gguf_writer *w, const char *key, const char *const *strs,
                              const size_t *lens, uint64_t count)
{
    bytes v = {0};
    int rc = bytes_u32(&v, GGUF_TYPE_STRING);
    if (rc == 0)
        rc = bytes_u64(&v, count);
    for (uint64_t i = 0; rc == 0 && i < count; i++)
        rc = bytes_str(&v, strs[i], lens ? lens[i] : strlen(strs[i]));
    if (rc == 0)
        rc = gguf_writer_add_raw(w, key, strlen(key), GGUF_TYPE_ARRAY, v.p, v.len);
    free(v.p);
    return rc;
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_file *src, int64_t i)
{
    const void *raw;
    uint64_t raw_len;
    int rc = gguf_kv_raw(src, i, &raw, &raw_len);
    if (rc < 0)
        return rc;
    const char *key = gguf_kv_key(src, i);
    return gguf_writer_add_raw(w, key, strlen(key), gguf_kv_type(src, i), raw, (size_t)raw_len);
}

static uint64_t pad_to(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

int gguf_writer_add_tensor_at(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                              uint32_t raw_type, uint64_t nbytes, uint64_t offset)
{
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *t = realloc(w->t, cap * sizeof(*t));
        if (!t)
            return -ENOMEM;
        w->t = t;
        w->cap_t = cap;
    }
    size_t mark = w->infos.len;
    int rc = bytes_str(&w->infos, name, strlen(name));
    if (rc == 0)
        rc = bytes_u32(&w->infos, n_dims);
    for (uint32_t d = 0; rc == 0 && d < n_dims; d++)
        rc = bytes_u64(&w->infos, (uint64_t)ne[d]);
    if (rc == 0)
        rc = bytes_u32(&w->infos, raw_type);
    if (rc == 0)
        rc = bytes_u64(&w->infos, offset);
    if (rc < 0) {
        w->infos.len = mark;
        return rc;
    }
    w->t[w->n_t].offset = offset;
    w->t[w->n_t].nbytes = nbytes;
    if (offset + nbytes > w->end)
        w->end = offset + nbytes;
    w->next = pad_to(w->end, w->alignment);
    return (int)w->n_t++;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                           uint32_t raw_type, uint64_t nbytes)
{
    return gguf_writer_add_tensor_at(w, name, n_dims, ne, raw_type, nbytes, w->next);
}

/* Header bytes before the padding. */
static uint64_t header_bytes(const gguf_writer *w)
{
    return 24 + w->kvs.len + w->infos.len;
}

uint64_t gguf_writer_data_offset(const gguf_writer *w)
{
    uint64_t h = header_bytes(w);
    return w->n_t ? pad_to(h, w->alignment) : h;
}

uint64_t gguf_writer_file_size(const gguf_writer *w)
{
    return gguf_writer_data_offset(w) + (w->n_t ? pad_to(w->end, w->alignment) : 0);
}

static int write_all(FILE *fp, const void *data, size_t n)
{
    if (n && fwrite(data, 1, n, fp) != n)
        return errno ? -errno : -EIO;
    return 0;
}

static int write_zeros(FILE *fp, uint64_t n)
{
    static const uint8_t zeros[4096];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        int rc = write_all(fp, zeros, k);
        if (rc < 0)
            return rc;
        n -= k;
    }
    return 0;
}

int gguf_writer_write_header(gguf_writer *w, FILE *fp)
{
    uint8_t head[24];
    uint64_t n_t = w->n_t;
    memcpy(head, "GGUF", 4);
    memcpy(head + 4, &w->version, 4);
    memcpy(head + 8, &n_t, 8);
    memcpy(head + 16, &w->n_kv, 8);
    int rc = write_all(fp, head, sizeof(head));
    if (rc == 0)
        rc = write_all(fp, w->kvs.p, w->kvs.len);
    if (rc == 0)
        rc = write_all(fp, w->infos.p, w->infos.len);
    if (rc == 0)
        rc = write_zeros(fp, gguf_writer_data_offset(w) - header_bytes(w));
    w->wrote = 0;
    return rc;
}

int gguf_writer_begin_tensor(gguf_writer *w, FILE *fp, int64_t i)
{
    if (i < 0 || (size_t)i >= w->n_t || w->wrote > w->t[i].offset)
        return -EINVAL;
    int rc = write_zeros(fp, w->t[i].offset - w->wrote);
    if (rc == 0)
        w->wrote = w->t[i].offset;
    return rc;
}

int gguf_writer_write_data(gguf_writer *w, FILE *fp, const void *data, size_t n)
{
    int rc = write_all(fp, data, n);
    if (rc == 0)
        w->wrote += n;
    return rc;
}

int gguf_writer_finish(gguf_writer *w, FILE *fp)
{
    uint64_t total = w->n_t ? pad_to(w->end, w->alignment) : 0;
    if (w->wrote > total)
        return -EINVAL;
    int rc = write_zeros(fp, total - w->wrote);
    if (rc == 0)
        w->wrote = total;
    if (rc == 0 && fflush(fp) != 0)
        rc = errno ? -errno : -EIO;
    return rc;
}

int gguf_writer_to_memory(gguf_writer *w, const void *const *data, uint8_t **out, size_t *out_len)
{
    uint64_t size = gguf_writer_file_size(w);
    uint64_t data_off = gguf_writer_data_offset(w);
    if (size > SIZE_MAX)
        return -ENOMEM;
    uint8_t *buf = calloc(1, size ? (size_t)size : 1);
    if (!buf)
        return -ENOMEM;
    uint64_t n_t = w->n_t;
    memcpy(buf, "GGUF", 4);
    memcpy(buf + 4, &w->version, 4);
    memcpy(buf + 8, &n_t, 8);
    memcpy(buf + 16, &w->n_kv, 8);
    if (w->kvs.len)
        memcpy(buf + 24, w->kvs.p, w->kvs.len);
    if (w->infos.len)
        memcpy(buf + 24 + w->kvs.len, w->infos.p, w->infos.len);
    for (size_t i = 0; data && i < w->n_t; i++) {
        if (data[i] && w->t[i].nbytes)
            memcpy(buf + data_off + w->t[i].offset, data[i], (size_t)w->t[i].nbytes);
    }
    *out = buf;
    *out_len = (size_t)size;
    return 0;
}
