/* backends/llama/check.h - the shim's check of a model file; see check.c. */
#ifndef BITNET_BACKENDS_LLAMA_CHECK_H
#define BITNET_BACKENDS_LLAMA_CHECK_H

#include <stddef.h>

/* Opens and validates the GGUF file at path with bitnetd's reader. Returns 0
 * or a negative code with a message naming the file in err. */
int llama_shim_check_gguf(const char *path, char *err, size_t err_len);

#endif
