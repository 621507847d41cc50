/*
 * engine/gguf.c - the GGUF v2/v3 reader.
 *
 * The file is untrusted input. Parsing walks the header once with a cursor
 * that checks every read against the end of the buffer, every count against
 * the bytes that remain (before anything is allocated for it), and every
 * tensor against the data section. Values are not copied: the index holds
 * pointers into the mapping. Only keys, tensor names and the architecture
 * are copied, so that callers get NUL-terminated strings.
 *
 * Keys and tensor names are byte strings. Bytes that are not UTF-8 are
 * accepted (llama.cpp does not check either) and printers escape them; an
 * embedded NUL byte is rejected because the API hands names out as C
 * strings and two different names would then look equal.
 */
#include "engine/gguf.h"

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

/* Limits, as llama.cpp sets them (gguf.cpp), plus the tensor name length. */
#define GGUF_MAX_STRING_LEN    (1ull << 30)
#define GGUF_MAX_ARRAY_COUNT   (1ull << 30)
#define GGUF_MAX_NAME          64
#define GGUF_MAX_DIMS          4
#define GGUF_DEFAULT_ALIGNMENT 32u
/* Real files hold tens of keys and at most tens of thousands of tensors;
 * these caps keep the index of a hostile file small (each entry costs about
 * 80 bytes of memory against 14 or 33 bytes of file). */
#define GGUF_MAX_KV      (1u << 20)
#define GGUF_MAX_TENSORS (1u << 20)

/* Smallest possible records, used to bound counts by the bytes left. */
#define GGUF_MIN_KV_BYTES     14 /* u64 len, 1-byte key, i32 type, 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 33 /* u64 len, 1-byte name, u32 n_dims, i64 ne, i32 type, u64 off */

typedef struct gguf_kv {
    char *key;          /* NUL-terminated copy */
    gguf_type type;     /* value type */
    gguf_type arr_type; /* element type for arrays, else GGUF_TYPE_COUNT */
    uint64_t count;     /* elements for arrays, else 1 */
    uint64_t value_off; /* file offset of the value (arrays: of the first element) */
    uint64_t str_len;   /* STRING: length in bytes */
    uint64_t *str_offs; /* string arrays: file offset of each element's length prefix */
    uint64_t raw_off;   /* the value's bytes as stored, after the type id */
    uint64_t raw_len;
} gguf_kv;

struct gguf_file {
    char *name;           /* for messages */
    const uint8_t *base;  /* the whole file */
    uint64_t size;        /* its size in bytes */
    void *map;            /* mmap'ed region to unmap, or NULL for memory buffers */
    uint32_t version;     /* 2 or 3 */
    uint32_t alignment;   /* general.alignment or 32 */
    uint64_t data_off;    /* start of the tensor data section */
    char *arch;           /* general.architecture, "" when absent */
    int64_t n_kv;         /* metadata entries */
    gguf_kv *kv;          /* n_kv entries in file order */
    int64_t n_tensors;    /* tensor-info records */
    gguf_tensor *tensors; /* n_tensors entries in file order */
    uint32_t *kv_hash;    /* open-addressing index: kv index + 1, 0 = empty */
    uint32_t *t_hash;     /* the same for tensor names */
    uint64_t kv_hash_cap; /* slots (a power of two) */
    uint64_t t_hash_cap;
};

/* ---- cursor --------------------------------------------------------------- */

typedef struct cursor {
    const gguf_file *f;
    uint64_t pos;
    char *err;
    size_t err_len;
} cursor;

/* Writes "NAME: byte OFF: message" into the caller's buffer and returns code. */
static int fail_at(const cursor *c, int code, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(const cursor *c, int code, uint64_t off, const char *fmt, ...)
{
    if (c->err && c->err_len > 0) {
        int n =
            snprintf(c->err, c->err_len, "%s: byte %llu: ", c->f->name, (unsigned long long)off);
        if (n >= 0 && (size_t)n < c->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

static uint64_t cursor_left(const cursor *c)
{
    return c->f->size - c->pos;
}

/* Checks that n more bytes exist for what; returns 0 or BITNET_ETRUNCATED. */
static int cursor_need(const cursor *c, uint64_t n, const char *what)
{
    if (n > cursor_left(c))
        return fail_at(c, BITNET_ETRUNCATED, c->pos,
                       "file ends inside %s (needs %llu bytes, %llu left)", what,
                       (unsigned long long)n, (unsigned long long)cursor_left(c));
    return 0;
}

static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_u64(const uint8_t *p)
{
    return (uint64_t)load_u32(p) | (uint64_t)load_u32(p + 4) << 32;
}

static int read_u32(cursor *c, uint32_t *v, const char *what)
{
    int rc = cursor_need(c, 4, what);
    if (rc < 0)
        return rc;
    *v = load_u32(c->f->base + c->pos);
    c->pos += 4;
    return 0;
}

static int read_u64(cursor *c, uint64_t *v, const char *what)
{
    int rc = cursor_need(c, 8, what);
    if (rc < 0)
        return rc;
    *v = load_u64(c->f->base + c->pos);
    c->pos += 8;
    return 0;
}

/* Reads a string header and skips its bytes: *off is where they start. */
static int read_string(cursor *c, uint64_t *off, uint64_t *len, const char *what)
{
    uint64_t start = c->pos;
    uint64_t n;
    int rc = read_u64(c, &n, what);
    if (rc < 0)
        return rc;
    if (n > GGUF_MAX_STRING_LEN)
        return fail_at(c, BITNET_ELIMIT, start, "%s is %llu bytes long (limit %llu)", what,
                       (unsigned long long)n, (unsigned long long)GGUF_MAX_STRING_LEN);
    rc = cursor_need(c, n, what);
    if (rc < 0)
        return rc;
    *off = c->pos;
    *len = n;
    c->pos += n;
    return 0;
}

/* ---- value types ---------------------------------------------------------- */

static const char *const gguf_type_names[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

const char *gguf_value_type_name(gguf_type t)
{
    if ((unsigned)t < GGUF_TYPE_COUNT)
        return gguf_type_names[t];
    return "?";
}

/* Bytes of one fixed-size value, or 0 for STRING/ARRAY/unknown. */
static uint64_t gguf_type_size(gguf_type t)
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

/* ---- tensor types --------------------------------------------------------- */

typedef struct ggml_type_info {
    const char *name;
    uint32_t blck;  /* elements per block; 0 = not a file type */
    uint32_t bytes; /* bytes per block */
    gguf_dtype dtype;
} ggml_type_info;

/* Mainline ggml ids with their block sizes (ggml-common.h). Ids 36..38 are
 * empty here: their meaning depends on the architecture (resolve_type). */
static const ggml_type_info ggml_types[] = {
    [0] = {"F32", 1, 4, GGUF_DTYPE_F32},           [1] = {"F16", 1, 2, GGUF_DTYPE_F16},
    [2] = {"Q4_0", 32, 18, GGUF_DTYPE_OTHER},      [3] = {"Q4_1", 32, 20, GGUF_DTYPE_OTHER},
    [6] = {"Q5_0", 32, 22, GGUF_DTYPE_OTHER},      [7] = {"Q5_1", 32, 24, GGUF_DTYPE_OTHER},
    [8] = {"Q8_0", 32, 34, GGUF_DTYPE_Q8_0},       [9] = {"Q8_1", 32, 36, GGUF_DTYPE_OTHER},
    [10] = {"Q2_K", 256, 84, GGUF_DTYPE_OTHER},    [11] = {"Q3_K", 256, 110, GGUF_DTYPE_OTHER},
    [12] = {"Q4_K", 256, 144, GGUF_DTYPE_OTHER},   [13] = {"Q5_K", 256, 176, GGUF_DTYPE_OTHER},
    [14] = {"Q6_K", 256, 210, GGUF_DTYPE_Q6_K},    [15] = {"Q8_K", 256, 292, GGUF_DTYPE_Q8_K},
    [16] = {"IQ2_XXS", 256, 66, GGUF_DTYPE_OTHER}, [17] = {"IQ2_XS", 256, 74, GGUF_DTYPE_OTHER},
    [18] = {"IQ3_XXS", 256, 98, GGUF_DTYPE_OTHER}, [19] = {"IQ1_S", 256, 50, GGUF_DTYPE_OTHER},
    [20] = {"IQ4_NL", 32, 18, GGUF_DTYPE_OTHER},   [21] = {"IQ3_S", 256, 110, GGUF_DTYPE_OTHER},
    [22] = {"IQ2_S", 256, 82, GGUF_DTYPE_OTHER},   [23] = {"IQ4_XS", 256, 136, GGUF_DTYPE_OTHER},
    [24] = {"I8", 1, 1, GGUF_DTYPE_OTHER},         [25] = {"I16", 1, 2, GGUF_DTYPE_OTHER},
    [26] = {"I32", 1, 4, GGUF_DTYPE_OTHER},        [27] = {"I64", 1, 8, GGUF_DTYPE_OTHER},
    [28] = {"F64", 1, 8, GGUF_DTYPE_OTHER},        [29] = {"IQ1_M", 256, 56, GGUF_DTYPE_OTHER},
    [30] = {"BF16", 1, 2, GGUF_DTYPE_BF16},        [34] = {"TQ1_0", 256, 54, GGUF_DTYPE_TQ1_0},
    [35] = {"TQ2_0", 256, 66, GGUF_DTYPE_TQ2_0},   [39] = {"MXFP4", 32, 17, GGUF_DTYPE_OTHER},
    [40] = {"NVFP4", 64, 36, GGUF_DTYPE_OTHER},    [41] = {"Q1_0", 128, 18, GGUF_DTYPE_OTHER},
    [42] = {"Q2_0", 64, 18, GGUF_DTYPE_OTHER},
};
#define N_GGML_TYPES (sizeof(ggml_types) / sizeof(ggml_types[0]))

static const char *const dtype_names[] = {
    [GGUF_DTYPE_F32] = "F32",     [GGUF_DTYPE_F16] = "F16",     [GGUF_DTYPE_BF16] = "BF16",
    [GGUF_DTYPE_Q8_0] = "Q8_0",   [GGUF_DTYPE_Q6_K] = "Q6_K",   [GGUF_DTYPE_Q8_K] = "Q8_K",
    [GGUF_DTYPE_TQ1_0] = "TQ1_0", [GGUF_DTYPE_TQ2_0] = "TQ2_0", [GGUF_DTYPE_I2_S] = "I2_S",
    [GGUF_DTYPE_TL1] = "TL1",     [GGUF_DTYPE_TL2] = "TL2",     [GGUF_DTYPE_OTHER] = "OTHER",
};

const char *gguf_dtype_name(gguf_dtype t)
{
    if ((unsigned)t <= GGUF_DTYPE_OTHER)
        return dtype_names[t];
    return "?";
}

bool gguf_arch_is_bitnet(const char *arch)
{
    return strcmp(arch, "bitnet") == 0 || strcmp(arch, "bitnet-b1.58") == 0 ||
           strcmp(arch, "bitnet-25") == 0;
}

const char *gguf_raw_type_name(uint32_t raw, const char *arch)
{
    bool bitnet = gguf_arch_is_bitnet(arch);
    if (raw == GGML_TYPE_I2_S && (bitnet || strcmp(arch, "llama") == 0))
        return "I2_S";
    if (raw == 37 && bitnet)
        return "I8_S";
    if (raw == GGML_TYPE_TL1 && bitnet)
        return "TL1";
    if (raw == GGML_TYPE_TL2 && bitnet)
        return "TL2";
    if (raw < N_GGML_TYPES && ggml_types[raw].blck)
        return ggml_types[raw].name;
    return NULL;
}

const char *gguf_tensor_type_name(const gguf_file *f, const gguf_tensor *t)
{
    const char *name = gguf_raw_type_name(t->raw_type, f->arch);
    return name ? name : "?";
}

/* Multiplies with overflow detection; returns false on overflow. */
static bool mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/*
 * Resolves a raw type id by architecture and computes the tensor's byte
 * size. Returns 0, or a negative code with the message written at off.
 */
static int resolve_type(const cursor *c, uint64_t off, gguf_tensor *t)
{
    const char *arch = c->f->arch;
    bool bitnet = gguf_arch_is_bitnet(arch);
    uint64_t nel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        nel *= (uint64_t)t->ne[d]; /* cannot overflow: checked by the caller */

    if (t->raw_type == GGML_TYPE_I2_S && (bitnet || strcmp(arch, "llama") == 0)) {
        /* The fork sizes I2_S as the packed codes (2 bits each) plus 32
         * bytes holding the per-tensor f32 scale. */
        if (nel % 4 != 0)
            return fail_at(c, BITNET_ESHAPE, off,
                           "tensor '%s': I2_S needs a multiple of 4 elements, has %llu", t->name,
                           (unsigned long long)nel);
        t->dtype = GGUF_DTYPE_I2_S;
        t->nbytes = nel / 4 + 32;
        return 0;
    }
    if (t->raw_type == GGML_TYPE_TL1 && bitnet) {
        if (nel % 4 != 0)
            return fail_at(c, BITNET_ESHAPE, off,
                           "tensor '%s': TL1 needs a multiple of 4 elements, has %llu", t->name,
                           (unsigned long long)nel);
        t->dtype = GGUF_DTYPE_TL1;
        t->nbytes = nel / 4 + 32;
        return 0;
    }
    if (t->raw_type == GGML_TYPE_TL2 && bitnet) {
        /* The fork's formula: triples of weights in 5/8 byte each over all but
         * the last 256 columns, pairs (one nibble each) over those. */
        uint64_t ne0 = (uint64_t)t->ne[0], ne1 = (uint64_t)t->ne[1];
        if (ne0 < 256 || t->ne[2] != 1 || t->ne[3] != 1)
            return fail_at(c, BITNET_ESHAPE, off,
                           "tensor '%s': TL2 needs a 2-D shape with ne0 >= 256", t->name);
        uint64_t a = (ne0 - 256) * ne1 / 3 * 5 / 8 + 256 * ne1 / 2 * 4 / 8;
        t->dtype = GGUF_DTYPE_TL2;
        t->nbytes = ((a + 31) & ~(uint64_t)31) + 32;
        return 0;
    }
    if (t->raw_type == 37 && bitnet)
        return fail_at(c, BITNET_ETYPE, off,
                       "tensor '%s': type 37 (I8_S) holds activations and never appears in files",
                       t->name);
    if (t->raw_type >= N_GGML_TYPES || ggml_types[t->raw_type].blck == 0)
        return fail_at(c, BITNET_ETYPE, off, "tensor '%s': unknown tensor type %u%s", t->name,
                       t->raw_type,
                       t->raw_type >= 36 && t->raw_type <= 38
                           ? " (a bitnet.cpp type, valid only in bitnet* architectures)"
                           : "");
    const ggml_type_info *ti = &ggml_types[t->raw_type];
    if ((uint64_t)t->ne[0] % ti->blck != 0)
        return fail_at(c, BITNET_ESHAPE, off,
                       "tensor '%s': ne0 = %lld is not a multiple of the %s block size %u", t->name,
                       (long long)t->ne[0], ti->name, ti->blck);
    uint64_t bytes = 0;
    if (!mul_u64(nel / ti->blck, ti->bytes, &bytes))
        return fail_at(c, BITNET_ELIMIT, off, "tensor '%s': byte size overflows", t->name);
    t->dtype = ti->dtype;
    t->nbytes = bytes;
    return 0;
}

/* ---- hash index over names ------------------------------------------------ */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_capacity(int64_t n)
{
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2)
        cap <<= 1;
    return cap;
}

/* Finds name in a table of indexes + 1; returns the index or -1. */
static int64_t hash_find(const uint32_t *table, uint64_t cap, const char *name,
                         const char *(*name_of)(const gguf_file *, uint32_t), const gguf_file *f)
{
    uint64_t mask = cap - 1;
    for (uint64_t s = hash_name(name) & mask;; s = (s + 1) & mask) {
        uint32_t e = table[s];
        if (e == 0)
            return -1;
        if (strcmp(name_of(f, e - 1), name) == 0)
            return (int64_t)(e - 1);
    }
}

/* Inserts index i under name; returns false when the name is already there. */
static bool hash_insert(uint32_t *table, uint64_t cap, const char *name, uint32_t i,
                        const char *(*name_of)(const gguf_file *, uint32_t), const gguf_file *f)
{
    uint64_t mask = cap - 1;
    for (uint64_t s = hash_name(name) & mask;; s = (s + 1) & mask) {
        if (table[s] == 0) {
            table[s] = i + 1;
            return true;
        }
        /* Every entry's name is set before it is inserted. */
        /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        if (strcmp(name_of(f, table[s] - 1), name) == 0)
            return false;
    }
}

static const char *kv_name_of(const gguf_file *f, uint32_t i)
{
    return f->kv[i].key;
}

static const char *tensor_name_of(const gguf_file *f, uint32_t i)
{
    return f->tensors[i].name;
}

/* ---- parsing -------------------------------------------------------------- */

/* Copies a name of len bytes at off into a new NUL-terminated string. */
static int copy_name(cursor *c, uint64_t start, uint64_t off, uint64_t len, const char *what,
                     char **out)
{
    const uint8_t *p = c->f->base + off;
    if (memchr(p, 0, len))
        return fail_at(c, BITNET_EFORMAT, start, "%s contains a NUL byte", what);
    char *s = malloc(len + 1);
    if (!s)
        return fail_at(c, -ENOMEM, start, "out of memory copying %s", what);
    memcpy(s, p, len);
    s[len] = '\0';
    *out = s;
    return 0;
}

/* Parses the value of kv (its type already read) and skips over it. */
static int parse_value(cursor *c, gguf_kv *kv)
{
    uint64_t start = c->pos;
    if (kv->type == GGUF_TYPE_STRING) {
        uint64_t len;
        int rc = read_string(c, &kv->value_off, &len, "string value");
        if (rc < 0)
            return rc;
        kv->str_len = len;
        return 0;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        uint64_t size = gguf_type_size(kv->type);
        int rc = cursor_need(c, size, "value");
        if (rc < 0)
            return rc;
        kv->value_off = c->pos;
        c->pos += size;
        return 0;
    }

    uint32_t et;
    uint64_t count;
    int rc = read_u32(c, &et, "array element type");
    if (rc < 0)
        return rc;
    if (et == GGUF_TYPE_ARRAY)
        return fail_at(c, BITNET_EFORMAT, start, "key '%s': nested arrays are not allowed",
                       kv->key);
    if (et >= GGUF_TYPE_COUNT)
        return fail_at(c, BITNET_ETYPE, start, "key '%s': unknown array element type %u", kv->key,
                       et);
    rc = read_u64(c, &count, "array count");
    if (rc < 0)
        return rc;
    if (count > GGUF_MAX_ARRAY_COUNT)
        return fail_at(c, BITNET_ELIMIT, start + 4, "key '%s': array of %llu elements (limit %llu)",
                       kv->key, (unsigned long long)count,
                       (unsigned long long)GGUF_MAX_ARRAY_COUNT);
    kv->arr_type = (gguf_type)et;
    kv->count = count;
    kv->value_off = c->pos;
    if (et != GGUF_TYPE_STRING) {
        /* count <= 2^30 and size <= 8: no overflow. */
        uint64_t bytes = count * gguf_type_size((gguf_type)et);
        if (bytes > cursor_left(c))
            return fail_at(c, BITNET_ETRUNCATED, c->pos,
                           "key '%s': array of %llu %s needs %llu bytes, %llu left", kv->key,
                           (unsigned long long)count, gguf_value_type_name((gguf_type)et),
                           (unsigned long long)bytes, (unsigned long long)cursor_left(c));
        c->pos += bytes;
        return 0;
    }
    /* Each string takes at least its 8-byte length: bound before allocating. */
    if (count * 8 > cursor_left(c))
        return fail_at(c, BITNET_ETRUNCATED, c->pos,
                       "key '%s': array of %llu strings needs at least %llu bytes, %llu left",
                       kv->key, (unsigned long long)count, (unsigned long long)(count * 8),
                       (unsigned long long)cursor_left(c));
    kv->str_offs = malloc((count ? count : 1) * sizeof(uint64_t));
    if (!kv->str_offs)
        return fail_at(c, -ENOMEM, start, "out of memory indexing key '%s'", kv->key);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t off, len;
        kv->str_offs[i] = c->pos;
        rc = read_string(c, &off, &len, "array string");
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_kvs(cursor *c, gguf_file *f)
{
    f->kv = calloc(f->n_kv ? (size_t)f->n_kv : 1, sizeof(gguf_kv));
    f->kv_hash_cap = hash_capacity(f->n_kv);
    f->kv_hash = calloc(f->kv_hash_cap, sizeof(uint32_t));
    if (!f->kv || !f->kv_hash)
        return fail_at(c, -ENOMEM, c->pos, "out of memory for %lld keys", (long long)f->n_kv);
    for (int64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        uint64_t start = c->pos, off = 0, len = 0;
        uint32_t type;
        kv->arr_type = GGUF_TYPE_COUNT;
        kv->count = 1;
        int rc = read_string(c, &off, &len, "key");
        if (rc < 0)
            return rc;
        if (len == 0)
            return fail_at(c, BITNET_EFORMAT, start, "key %lld is empty", (long long)i);
        rc = copy_name(c, start, off, len, "key", &kv->key);
        if (rc < 0)
            return rc;
        if (!hash_insert(f->kv_hash, f->kv_hash_cap, kv->key, (uint32_t)i, kv_name_of, f))
            return fail_at(c, BITNET_EFORMAT, start, "duplicate key '%s'", kv->key);
        uint64_t type_pos = c->pos;
        rc = read_u32(c, &type, "value type");
        if (rc < 0)
            return rc;
        if (type >= GGUF_TYPE_COUNT)
            return fail_at(c, BITNET_ETYPE, type_pos, "key '%s': unknown value type %u", kv->key,
                           type);
        kv->type = (gguf_type)type;
        kv->raw_off = c->pos;
        rc = parse_value(c, kv);
        if (rc < 0)
            return rc;
        kv->raw_len = c->pos - kv->raw_off;
    }
    return 0;
}

/* Reads general.alignment and general.architecture once the KVs are known. */
static int parse_general(cursor *c, gguf_file *f)
{
    int64_t i = gguf_kv_find(f, "general.alignment");
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (i >= 0) {
        const gguf_kv *kv = &f->kv[i];
        if (kv->type != GGUF_TYPE_UINT32)
            return fail_at(c, BITNET_ETYPE, kv->value_off,
                           "general.alignment must be u32, found %s",
                           gguf_value_type_name(kv->type));
        uint32_t a = load_u32(f->base + kv->value_off);
        if (a == 0 || (a & (a - 1)) != 0)
            return fail_at(c, BITNET_EFORMAT, kv->value_off,
                           "general.alignment = %u is not a non-zero power of two", a);
        f->alignment = a;
    }
    i = gguf_kv_find(f, "general.architecture");
    if (i < 0) {
        f->arch = strdup("");
        return f->arch ? 0 : -ENOMEM;
    }
    const gguf_kv *kv = &f->kv[i];
    if (kv->type != GGUF_TYPE_STRING)
        return fail_at(c, BITNET_ETYPE, kv->value_off,
                       "general.architecture must be a string, found %s",
                       gguf_value_type_name(kv->type));
    return copy_name(c, kv->value_off - 8, kv->value_off, kv->str_len, "general.architecture",
                     &f->arch);
}

static int parse_tensor_infos(cursor *c, gguf_file *f)
{
    f->tensors = calloc(f->n_tensors ? (size_t)f->n_tensors : 1, sizeof(gguf_tensor));
    f->t_hash_cap = hash_capacity(f->n_tensors);
    f->t_hash = calloc(f->t_hash_cap, sizeof(uint32_t));
    if (!f->tensors || !f->t_hash)
        return fail_at(c, -ENOMEM, c->pos, "out of memory for %lld tensors",
                       (long long)f->n_tensors);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t start = c->pos, off = 0, len = 0;
        int rc = read_string(c, &off, &len, "tensor name");
        if (rc < 0)
            return rc;
        if (len == 0)
            return fail_at(c, BITNET_EFORMAT, start, "tensor %lld has an empty name", (long long)i);
        if (len >= GGUF_MAX_NAME)
            return fail_at(c, BITNET_ELIMIT, start,
                           "tensor %lld: name is %llu bytes long (limit %d)", (long long)i,
                           (unsigned long long)len, GGUF_MAX_NAME - 1);
        char *name = NULL;
        rc = copy_name(c, start, off, len, "tensor name", &name);
        if (rc < 0)
            return rc;
        t->name = name;
        if (!hash_insert(f->t_hash, f->t_hash_cap, t->name, (uint32_t)i, tensor_name_of, f))
            return fail_at(c, BITNET_EFORMAT, start, "duplicate tensor name '%s'", t->name);

        uint64_t dims_pos = c->pos;
        rc = read_u32(c, &t->n_dims, "tensor n_dims");
        if (rc < 0)
            return rc;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return fail_at(c, BITNET_EFORMAT, dims_pos, "tensor '%s': n_dims = %u (must be 1..4)",
                           t->name, t->n_dims);
        uint64_t nel = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            uint64_t v = 1;
            uint64_t ne_pos = c->pos;
            if (d < t->n_dims) {
                rc = read_u64(c, &v, "tensor dimension");
                if (rc < 0)
                    return rc;
                if ((int64_t)v < 0)
                    return fail_at(c, BITNET_EFORMAT, ne_pos, "tensor '%s': ne[%u] = %lld < 0",
                                   t->name, d, (long long)(int64_t)v);
            }
            t->ne[d] = (int64_t)v;
            if (!mul_u64(nel, v, &nel) || nel > (uint64_t)INT64_MAX)
                return fail_at(c, BITNET_ELIMIT, dims_pos,
                               "tensor '%s': element count overflows int64", t->name);
        }
        uint64_t type_pos = c->pos;
        rc = read_u32(c, &t->raw_type, "tensor type");
        if (rc < 0)
            return rc;
        rc = read_u64(c, &t->offset, "tensor offset");
        if (rc < 0)
            return rc;
        rc = resolve_type(c, type_pos, t);
        if (rc < 0)
            return rc;
        if (t->offset % f->alignment != 0)
            return fail_at(c, BITNET_EFORMAT, type_pos + 4,
                           "tensor '%s': offset %llu is not a multiple of the alignment %u",
                           t->name, (unsigned long long)t->offset, f->alignment);
    }
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const gguf_tensor *x = *(const gguf_tensor *const *)a;
    const gguf_tensor *y = *(const gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Places every tensor in the data section: inside the file, no overlaps. */
static int place_tensors(cursor *c, gguf_file *f)
{
    uint64_t data_bytes = f->size - f->data_off;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > data_bytes || t->nbytes > data_bytes - t->offset)
            return fail_at(c, BITNET_ETRUNCATED, f->data_off + t->offset,
                           "tensor '%s' (%llu bytes at data offset %llu) extends past the end "
                           "of the file (%llu bytes)",
                           t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                           (unsigned long long)f->size);
        t->data = f->base + f->data_off + t->offset;
    }
    if (f->n_tensors < 2)
        return 0;
    const gguf_tensor **order = malloc((size_t)f->n_tensors * sizeof(*order));
    if (!order)
        return fail_at(c, -ENOMEM, f->data_off, "out of memory");
    for (int64_t i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof(*order), cmp_by_offset);
    const gguf_tensor *prev = NULL;
    int rc = 0;
    for (int64_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const gguf_tensor *t = order[i];
        if (t->nbytes == 0)
            continue;
        if (prev && prev->offset + prev->nbytes > t->offset)
            rc = fail_at(c, BITNET_EFORMAT, f->data_off + t->offset,
                         "tensor '%s' (data offset %llu) overlaps tensor '%s' (%llu bytes at "
                         "data offset %llu)",
                         t->name, (unsigned long long)t->offset, prev->name,
                         (unsigned long long)prev->nbytes, (unsigned long long)prev->offset);
        prev = t;
    }
    free(order);
    return rc;
}

static int parse(cursor *c, gguf_file *f)
{
    int rc = cursor_need(c, 4, "the magic");
    if (rc < 0)
        return rc;
    if (memcmp(f->base, "GGUF", 4) != 0)
        return fail_at(c, BITNET_EFORMAT, 0, "not a GGUF file (bad magic %02x %02x %02x %02x)",
                       f->base[0], f->base[1], f->base[2], f->base[3]);
    c->pos = 4;
    rc = read_u32(c, &f->version, "the version");
    if (rc < 0)
        return rc;
    if ((f->version & 0xffff) == 0)
        return fail_at(c, BITNET_EVERSION, 4,
                       "version 0x%08x: the file was written on a big-endian machine", f->version);
    if (f->version < 2 || f->version > 3)
        return fail_at(c, BITNET_EVERSION, 4, "GGUF version %u is not supported (only 2 and 3)",
                       f->version);
    uint64_t n_tensors, n_kv;
    rc = read_u64(c, &n_tensors, "the tensor count");
    if (rc < 0)
        return rc;
    rc = read_u64(c, &n_kv, "the key count");
    if (rc < 0)
        return rc;
    /* Bound each count by what the rest of the file could possibly hold. */
    if (n_kv > GGUF_MAX_KV)
        return fail_at(c, BITNET_ELIMIT, 16, "%llu keys (limit %u)", (unsigned long long)n_kv,
                       GGUF_MAX_KV);
    if (n_tensors > GGUF_MAX_TENSORS)
        return fail_at(c, BITNET_ELIMIT, 8, "%llu tensors (limit %u)",
                       (unsigned long long)n_tensors, GGUF_MAX_TENSORS);
    if (n_kv > cursor_left(c) / GGUF_MIN_KV_BYTES)
        return fail_at(c, BITNET_ELIMIT, 16,
                       "%llu keys cannot fit in the %llu bytes left in the file",
                       (unsigned long long)n_kv, (unsigned long long)cursor_left(c));
    if (n_tensors > cursor_left(c) / GGUF_MIN_TENSOR_BYTES)
        return fail_at(c, BITNET_ELIMIT, 8,
                       "%llu tensors cannot fit in the %llu bytes left in the file",
                       (unsigned long long)n_tensors, (unsigned long long)cursor_left(c));
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;

    rc = parse_kvs(c, f);
    if (rc < 0)
        return rc;
    rc = parse_general(c, f);
    if (rc < 0)
        return rc;
    rc = parse_tensor_infos(c, f);
    if (rc < 0)
        return rc;

    f->data_off = c->pos;
    if (f->n_tensors > 0) {
        uint64_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
        rc = cursor_need(c, pad, "the padding before the tensor data");
        if (rc < 0)
            return rc;
        f->data_off = c->pos + pad;
    }
    return place_tensors(c, f);
}

/* ---- open / close --------------------------------------------------------- */

static int open_common(gguf_file *f, gguf_file **out, char *err, size_t err_len)
{
    cursor c = {.f = f, .pos = 0, .err = err, .err_len = err_len};
    int rc = parse(&c, f);
    if (rc < 0) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

static gguf_file *file_new(const char *name)
{
    gguf_file *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->name = strdup(name ? name : "(memory)");
    if (!f->name) {
        free(f);
        return NULL;
    }
    return f;
}

int gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out, char *err,
                     size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!data && size)
        return -EINVAL;
    gguf_file *f = file_new(name);
    if (!f)
        return -ENOMEM;
    static const uint8_t empty[1];
    f->base = size ? data : empty;
    f->size = size;
    return open_common(f, out, err, err_len);
}

int gguf_open(const char *path, gguf_file **out, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err ? err : (char[1]){0}, err ? err_len : 1, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        snprintf(err ? err : (char[1]){0}, err ? err_len : 1, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (err && err_len)
            snprintf(err, err_len, "%s: not a regular file", path);
        return BITNET_EFORMAT;
    }
    gguf_file *f = file_new(path);
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    static const uint8_t empty[1];
    f->base = empty;
    f->size = (uint64_t)st.st_size;
    if (st.st_size > 0) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            gguf_close(f);
            if (err && err_len)
                snprintf(err, err_len, "%s: mmap: %s", path, strerror(e));
            return -e;
        }
        f->map = map;
        f->base = map;
    }
    close(fd);
    return open_common(f, out, err, err_len);
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    if (f->kv) {
        for (int64_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            free(f->kv[i].str_offs);
        }
    }
    if (f->tensors) {
        for (int64_t i = 0; i < f->n_tensors; i++)
            free((char *)f->tensors[i].name);
    }
    if (f->map)
        munmap(f->map, (size_t)f->size);
    free(f->kv);
    free(f->tensors);
    free(f->kv_hash);
    free(f->t_hash);
    free(f->arch);
    free(f->name);
    free(f);
}

/* ---- accessors ------------------------------------------------------------ */

uint32_t gguf_version(const gguf_file *f)
{
    return f->version;
}

uint32_t gguf_alignment(const gguf_file *f)
{
    return f->alignment;
}

uint64_t gguf_data_offset(const gguf_file *f)
{
    return f->data_off;
}

uint64_t gguf_file_size(const gguf_file *f)
{
    return f->size;
}

const char *gguf_architecture(const gguf_file *f)
{
    return f->arch;
}

const char *gguf_name(const gguf_file *f)
{
    return f->name;
}

int64_t gguf_kv_count(const gguf_file *f)
{
    return f->n_kv;
}

int64_t gguf_kv_find(const gguf_file *f, const char *key)
{
    if (!f->kv_hash || !key)
        return -1;
    return hash_find(f->kv_hash, f->kv_hash_cap, key, kv_name_of, f);
}

const char *gguf_kv_key(const gguf_file *f, int64_t i)
{
    if (i < 0 || i >= f->n_kv)
        return NULL;
    return f->kv[i].key;
}

gguf_type gguf_kv_type(const gguf_file *f, int64_t i)
{
    if (i < 0 || i >= f->n_kv)
        return GGUF_TYPE_COUNT;
    return f->kv[i].type;
}

gguf_type gguf_kv_array_type(const gguf_file *f, int64_t i)
{
    if (i < 0 || i >= f->n_kv)
        return GGUF_TYPE_COUNT;
    return f->kv[i].arr_type;
}

uint64_t gguf_kv_array_count(const gguf_file *f, int64_t i)
{
    if (i < 0 || i >= f->n_kv || f->kv[i].type != GGUF_TYPE_ARRAY)
        return 0;
    return f->kv[i].count;
}

/* Decodes one element of type t at file offset off (strings: length prefix). */
static void decode_value(const gguf_file *f, gguf_type t, uint64_t off, gguf_value *v)
{
    const uint8_t *p = f->base + off;
    memset(v, 0, sizeof(*v));
    v->type = t;
    switch (t) {
    case GGUF_TYPE_UINT8:
        v->u = p[0];
        break;
    case GGUF_TYPE_INT8:
        v->i = (int8_t)p[0];
        break;
    case GGUF_TYPE_UINT16:
        v->u = (uint16_t)(p[0] | p[1] << 8);
        break;
    case GGUF_TYPE_INT16:
        v->i = (int16_t)(uint16_t)(p[0] | p[1] << 8);
        break;
    case GGUF_TYPE_UINT32:
        v->u = load_u32(p);
        break;
    case GGUF_TYPE_INT32:
        v->i = (int32_t)load_u32(p);
        break;
    case GGUF_TYPE_UINT64:
        v->u = load_u64(p);
        break;
    case GGUF_TYPE_INT64:
        v->i = (int64_t)load_u64(p);
        break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t bits = load_u32(p);
        float x;
        memcpy(&x, &bits, 4);
        v->f = x;
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        uint64_t bits = load_u64(p);
        memcpy(&v->f, &bits, 8);
        break;
    }
    case GGUF_TYPE_BOOL:
        v->b = p[0] != 0;
        break;
    case GGUF_TYPE_STRING:
        v->len = (size_t)load_u64(p);
        v->s = (const char *)p + 8;
        break;
    default:
        break;
    }
}

int gguf_kv_value(const gguf_file *f, int64_t i, gguf_value *out)
{
    if (i < 0 || i >= f->n_kv)
        return -ERANGE;
    const gguf_kv *kv = &f->kv[i];
    if (kv->type == GGUF_TYPE_ARRAY)
        return BITNET_ETYPE;
    /* value_off points at the chars for strings; step back to the prefix. */
    decode_value(f, kv->type, kv->type == GGUF_TYPE_STRING ? kv->value_off - 8 : kv->value_off,
                 out);
    return 0;
}

int gguf_kv_array_value(const gguf_file *f, int64_t i, uint64_t index, gguf_value *out)
{
    if (i < 0 || i >= f->n_kv)
        return -ERANGE;
    const gguf_kv *kv = &f->kv[i];
    if (kv->type != GGUF_TYPE_ARRAY)
        return BITNET_ETYPE;
    if (index >= kv->count)
        return -ERANGE;
    uint64_t off = kv->arr_type == GGUF_TYPE_STRING
                       ? kv->str_offs[index]
                       : kv->value_off + index * gguf_type_size(kv->arr_type);
    decode_value(f, kv->arr_type, off, out);
    return 0;
}

int gguf_kv_raw(const gguf_file *f, int64_t i, const void **data, uint64_t *size)
{
    if (i < 0 || i >= f->n_kv)
        return -ERANGE;
    *data = f->base + f->kv[i].raw_off;
    *size = f->kv[i].raw_len;
    return 0;
}

static const gguf_kv *kv_lookup(const gguf_file *f, const char *key)
{
    int64_t i = gguf_kv_find(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

/* Integer value of a scalar KV as signed/unsigned parts; false if not integer. */
static bool kv_integer(const gguf_file *f, const gguf_kv *kv, bool *neg, uint64_t *mag)
{
    gguf_value v;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        decode_value(f, kv->type, kv->value_off, &v);
        *neg = false;
        *mag = v.u;
        return true;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        decode_value(f, kv->type, kv->value_off, &v);
        *neg = v.i < 0;
        *mag = v.i < 0 ? (uint64_t)0 - (uint64_t)v.i : (uint64_t)v.i;
        return true;
    default:
        return false;
    }
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out)
{
    const gguf_kv *kv = kv_lookup(f, key);
    bool neg;
    uint64_t mag;
    if (!kv)
        return BITNET_EMISSING;
    if (!kv_integer(f, kv, &neg, &mag) || neg || mag > UINT32_MAX)
        return BITNET_ETYPE;
    *out = (uint32_t)mag;
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_kv *kv = kv_lookup(f, key);
    bool neg;
    uint64_t mag;
    if (!kv)
        return BITNET_EMISSING;
    if (!kv_integer(f, kv, &neg, &mag))
        return BITNET_ETYPE;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return BITNET_ETYPE;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return BITNET_ETYPE;
        *out = (int64_t)mag;
    }
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out)
{
    const gguf_kv *kv = kv_lookup(f, key);
    if (!kv)
        return BITNET_EMISSING;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
        return BITNET_ETYPE;
    gguf_value v;
    decode_value(f, kv->type, kv->value_off, &v);
    *out = (float)v.f;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out)
{
    const gguf_kv *kv = kv_lookup(f, key);
    if (!kv)
        return BITNET_EMISSING;
    if (kv->type != GGUF_TYPE_BOOL)
        return BITNET_ETYPE;
    *out = f->base[kv->value_off] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len)
{
    const gguf_kv *kv = kv_lookup(f, key);
    if (!kv)
        return BITNET_EMISSING;
    if (kv->type != GGUF_TYPE_STRING)
        return BITNET_ETYPE;
    *s = (const char *)f->base + kv->value_off;
    *len = (size_t)kv->str_len;
    return 0;
}

int gguf_get_array(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *count,
                   const void **data)
{
    const gguf_kv *kv = kv_lookup(f, key);
    if (!kv)
        return BITNET_EMISSING;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type == GGUF_TYPE_STRING)
        return BITNET_ETYPE;
    *elem_type = kv->arr_type;
    *count = kv->count;
    *data = f->base + kv->value_off;
    return 0;
}

int gguf_get_array_str(const gguf_file *f, const char *key, uint64_t index, const char **s,
                       size_t *len)
{
    const gguf_kv *kv = kv_lookup(f, key);
    if (!kv)
        return BITNET_EMISSING;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
        return BITNET_ETYPE;
    if (index >= kv->count)
        return -ERANGE;
    uint64_t off = kv->str_offs[index];
    *len = (size_t)load_u64(f->base + off);
    *s = (const char *)f->base + off + 8;
    return 0;
}

int64_t gguf_tensor_count(const gguf_file *f)
{
    return f->n_tensors;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i)
{
    if (i < 0 || i >= f->n_tensors)
        return NULL;
    return &f->tensors[i];
}

static int64_t tensor_index(const gguf_file *f, const char *name)
{
    if (!f->t_hash || !name)
        return -1;
    return hash_find(f->t_hash, f->t_hash_cap, name, tensor_name_of, f);
}

const gguf_tensor *gguf_tensor_find(const gguf_file *f, const char *name)
{
    int64_t i = tensor_index(f, name);
    return i < 0 ? NULL : &f->tensors[i];
}
