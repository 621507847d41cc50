/*
 * engine/gguf.h - a GGUF v2/v3 reader over mmap that trusts nothing.
 *
 * Every count, length, offset and size is checked against the file before
 * use; errors name the file, the byte offset and what is wrong. Tensor data
 * is not read at open: pointers refer into the mapping, so opening a
 * multi-gigabyte file costs milliseconds.
 *
 * Names: ggml's libggml-base.so exports a gguf_* API of its own, and a
 * process that loads libllama (the llama shim, crossval) must not have our
 * definitions interpose on its symbols. Keep every function name here
 * distinct from ggml's exported ones (tests/contract/no_symbol_clash.sh).
 *
 * Type ids 36..39 mean different things in different forks; the reader
 * resolves them by general.architecture (docs/formats.md, section 2.2), never
 * by general.file_type.
 */
#ifndef BITNET_ENGINE_GGUF_H
#define BITNET_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGUF metadata value types, as stored in the file. */
typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* Tensor data types bitnetd understands, after resolving fork collisions.
 * The raw id from the file is kept in gguf_tensor.raw_type. */
typedef enum gguf_dtype {
    GGUF_DTYPE_F32 = 0,
    GGUF_DTYPE_F16,
    GGUF_DTYPE_BF16,
    GGUF_DTYPE_Q8_0,
    GGUF_DTYPE_Q6_K,
    GGUF_DTYPE_Q8_K,
    GGUF_DTYPE_TQ1_0,
    GGUF_DTYPE_TQ2_0,
    GGUF_DTYPE_I2_S, /* fork id 36 in bitnet* (or llama) files */
    GGUF_DTYPE_TL1,  /* fork id 38: recognised, not loadable */
    GGUF_DTYPE_TL2,  /* fork id 39 in bitnet* files: recognised, not loadable */
    GGUF_DTYPE_OTHER /* a valid ggml type bitnetd has no use for (e.g. MXFP4) */
} gguf_dtype;

/* Raw ggml type ids used by writers. */
enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_I2_S = 36, /* fork numbering */
    GGML_TYPE_TL1 = 38,
    GGML_TYPE_TL2 = 39
};

typedef struct gguf_tensor {
    const char *name;    /* NUL-terminated copy owned by the gguf_file */
    uint32_t n_dims;     /* 1..4 */
    int64_t ne[4];       /* dims, ne[0] innermost; missing dims are 1 */
    uint32_t raw_type;   /* the id stored in the file */
    gguf_dtype dtype;    /* resolved by architecture */
    uint64_t offset;     /* relative to the data section */
    uint64_t nbytes;     /* bytes of data (I2_S: ne0*ne1/4 + 32) */
    const uint8_t *data; /* into the mapping; valid until gguf_close() */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/*
 * Opens and validates path (mmap, read-only). Returns 0 and sets *out, or a
 * negative code (BITNET_EFORMAT, BITNET_ETRUNCATED, BITNET_EVERSION,
 * BITNET_ETYPE, BITNET_ELIMIT, -errno) with a message in err such as
 * "model.gguf: byte 1234: tensor 'blk.0.attn_q.weight' extends past the end
 * of the file".
 */
int gguf_open(const char *path, gguf_file **out, char *err, size_t err_len);

/* The same over a caller-owned buffer (fuzzing, tests); data must outlive the
 * gguf_file. name is used in messages. */
int gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out, char *err,
                     size_t err_len);

/* Unmaps and frees; NULL is fine. */
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
/* general.architecture, or "" when absent. */
const char *gguf_architecture(const gguf_file *f);

/* ---- metadata ---- */

int64_t gguf_kv_count(const gguf_file *f);
/* Index of key, or -1. */
int64_t gguf_kv_find(const gguf_file *f, const char *key);
const char *gguf_kv_key(const gguf_file *f, int64_t i);
gguf_type gguf_kv_type(const gguf_file *f, int64_t i);
/* For arrays: element type and count (0 and GGUF_TYPE_COUNT otherwise). */
gguf_type gguf_kv_array_type(const gguf_file *f, int64_t i);
uint64_t gguf_kv_array_count(const gguf_file *f, int64_t i);

/*
 * Typed getters by key. Return 0, BITNET_EMISSING when the key is absent, or
 * BITNET_ETYPE when the stored type does not convert: the integer getters
 * accept any integer type whose value fits; get_f32 accepts FLOAT32 and
 * FLOAT64. *out is untouched on failure.
 */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
/* The string is not NUL-terminated in the file: use len. */
int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len);

/*
 * Arrays. gguf_get_array gives a pointer to count packed little-endian
 * numeric elements (possibly unaligned: read with memcpy). String arrays are
 * read element by element with gguf_get_array_str (O(1): offsets are indexed
 * at open). Both return BITNET_ETYPE for the wrong element kind and -ERANGE
 * for an index out of range.
 */
int gguf_get_array(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *count,
                   const void **data);
int gguf_get_array_str(const gguf_file *f, const char *key, uint64_t index, const char **s,
                       size_t *len);

/* ---- tensors ---- */

int64_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
/* By name, or NULL. */
const gguf_tensor *gguf_tensor_find(const gguf_file *f, const char *name);

const char *gguf_dtype_name(gguf_dtype t);

/* ---- additions: generic value access and type names ---- */

/* One decoded metadata value (a scalar, a string, or one array element). */
typedef struct gguf_value {
    gguf_type type; /* the stored type */
    uint64_t u;     /* UINT8..UINT64 */
    int64_t i;      /* INT8..INT64 */
    double f;       /* FLOAT32, FLOAT64 */
    bool b;         /* BOOL */
    const char *s;  /* STRING: bytes in the mapping, not NUL-terminated */
    size_t len;     /* STRING: length of s */
} gguf_value;

/* Decodes KV i (not an array: BITNET_ETYPE). -ERANGE for a bad index. */
int gguf_kv_value(const gguf_file *f, int64_t i, gguf_value *out);
/* Decodes element index of array KV i (BITNET_ETYPE when not an array,
 * -ERANGE for a bad index). */
int gguf_kv_array_value(const gguf_file *f, int64_t i, uint64_t index, gguf_value *out);

/* The bytes of KV i's value exactly as stored after its type id (arrays:
 * element type, count and elements), for copying a KV to another file. */
int gguf_kv_raw(const gguf_file *f, int64_t i, const void **data, uint64_t *size);

/* "u8", "str", "arr", ... for a value type. */
const char *gguf_value_type_name(gguf_type t);

/* The name given to gguf_open / gguf_open_memory (for messages). */
const char *gguf_name(const gguf_file *f);

/* True for "bitnet", "bitnet-b1.58" and "bitnet-25". */
bool gguf_arch_is_bitnet(const char *arch);

/* The ggml name of a raw tensor type id as read in a file of architecture
 * arch ("I2_S", "TQ2_0", "MXFP4", "Q4_K"), or NULL when the id is unknown. */
const char *gguf_raw_type_name(uint32_t raw, const char *arch);
/* The same for a tensor of f ("?" never happens for an opened file). */
const char *gguf_tensor_type_name(const gguf_file *f, const gguf_tensor *t);

#endif
