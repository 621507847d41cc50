/*
 * engine/gguf_write.h - a small GGUF writer for bitnet-mkmodel and tests.
 *
 * The header (metadata and tensor-info records) is built in memory; tensor
 * data is streamed to the output afterwards, tensor by tensor and in pieces,
 * so a multi-gigabyte model never has to be held in memory.
 *
 * The writer writes what it is told: it does not reject duplicate keys,
 * odd alignments or overlapping offsets, so tests can build hostile files
 * with it. The reader (engine/gguf.h) is the judge of validity.
 *
 * Usage:
 *   gguf_writer_new(&w);  gguf_writer_add_*(w, ...);  gguf_writer_add_tensor(w, ...);
 *   gguf_writer_write_header(w, fp);
 *   for each tensor in order: gguf_writer_begin_tensor(w, fp, i); gguf_writer_write_data(...);
 *   gguf_writer_finish(w, fp);  gguf_writer_free(w);
 */
#ifndef BITNET_ENGINE_GGUF_WRITE_H
#define BITNET_ENGINE_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/gguf.h"

typedef struct gguf_writer gguf_writer;

/* Creates an empty GGUF v3 writer with alignment 32. 0 or -ENOMEM. */
int gguf_writer_new(gguf_writer **out);
/* NULL is fine. */
void gguf_writer_free(gguf_writer *w);

/* Overrides the version written (tests write v1, v2, ...). */
void gguf_writer_set_version(gguf_writer *w, uint32_t version);
/* Sets the data alignment and records general.alignment (u32). Call it
 * before adding tensors. */
int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment);

/* ---- metadata ---- */

/* Adds a KV whose value bytes are given as stored in a file (after the type
 * id). Every other add function ends here. */
int gguf_writer_add_raw(gguf_writer *w, const char *key, size_t key_len, gguf_type type,
                        const void *value, size_t value_len);
/* Scalars: value points at the C type of type (uint8_t, int16_t, float,
 * double, bool, ...), which is written little-endian. Not STRING/ARRAY. */
int gguf_writer_add_scalar(gguf_writer *w, const char *key, gguf_type type, const void *value);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s);
int gguf_writer_add_str_len(gguf_writer *w, const char *key, const char *s, size_t len);
/* Numeric array: count packed elements of elem_type (bool as one byte). */
int gguf_writer_add_array(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                          uint64_t count);
/* String array; lens may be NULL (then strlen is used). */
int gguf_writer_add_array_str(gguf_writer *w, const char *key, const char *const *strs,
                              const size_t *lens, uint64_t count);
/* Copies KV i of src, byte for byte. */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_file *src, int64_t i);

/* ---- tensors ---- */

/*
 * Adds a tensor-info record. Its offset is the end of the previous tensor
 * padded to the alignment; nbytes is what the caller will write for it.
 * Returns the tensor's index (>= 0) or a negative code.
 */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                           uint32_t raw_type, uint64_t nbytes);
/* The same with an explicit offset (tests). The next automatic offset
 * follows the highest end so far. */
int gguf_writer_add_tensor_at(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                              uint32_t raw_type, uint64_t nbytes, uint64_t offset);

/* Bytes written before the tensor data (header, infos, padding). */
uint64_t gguf_writer_data_offset(const gguf_writer *w);
/* Bytes of the whole file once every tensor is written. */
uint64_t gguf_writer_file_size(const gguf_writer *w);

/* ---- output ---- */

/* Writes the header. 0 or -errno. */
int gguf_writer_write_header(gguf_writer *w, FILE *fp);
/* Pads with zeros up to tensor i's offset; tensors must come in offset
 * order. 0, -errno or -EINVAL when the data written so far is past it. */
int gguf_writer_begin_tensor(gguf_writer *w, FILE *fp, int64_t i);
/* Appends n bytes of tensor data. */
int gguf_writer_write_data(gguf_writer *w, FILE *fp, const void *data, size_t n);
/* Pads the data section to the end of the last tensor, padded to the alignment. */
int gguf_writer_finish(gguf_writer *w, FILE *fp);

/* Builds a whole file in memory when every tensor's data is given in order
 * (tests). data[i] holds tensor i's nbytes; *out is malloc'ed. */
int gguf_writer_to_memory(gguf_writer *w, const void *const *data, uint8_t **out, size_t *out_len);

#endif
