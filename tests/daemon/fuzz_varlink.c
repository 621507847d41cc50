/*
 * tests/daemon/fuzz_varlink.c - libFuzzer target for the Varlink framing and
 * message parsers: any byte stream, cut into chunks of any size, must give
 * messages or error values, never a crash, a leak or an out-of-bounds read.
 *
 *   CC=clang cmake -S . -B build-fuzz -DBITNET_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_varlink
 *   build-fuzz/tests/daemon/fuzz_varlink -max_len=65536
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses one framed message every way bitnetd and the client do. */
static void parse_message(const char *msg, size_t len)
{
    /* An exactly-sized copy, so that ASan catches a read past the message. */
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, msg, len);
    char err[256];
    struct varlink_call call;
    if (varlink_call_parse(copy, len, &call, err, sizeof(err)) == 0) {
        char iface[256];
        const char *method;
        varlink_method_split(call.method, iface, sizeof(iface), &method);
        char *out;
        size_t out_len;
        if (varlink_reply_build(call.parameters, call.more, &out, &out_len) == 0)
            free(out);
        if (varlink_error_build(call.method, call.parameters, &out, &out_len) == 0)
            free(out);
        varlink_call_free(&call);
    }
    struct varlink_reply reply;
    if (varlink_reply_parse(copy, len, &reply, err, sizeof(err)) == 0)
        varlink_reply_free(&reply);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* The first two bytes choose the chunk size and the message size limit. */
    size_t chunk = (size_t)data[0] + 1;
    size_t max_message = ((size_t)data[1] + 1) * 64;
    data += 2;
    size -= 2;
    struct varlink_reader r;
    varlink_reader_init(&r, max_message);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (varlink_reader_feed(&r, data + off, n) < 0)
            break;
        const char *msg;
        size_t len;
        int rc;
        while ((rc = varlink_reader_next(&r, &msg, &len)) == 1)
            parse_message(msg, len);
        if (rc < 0)
            break; /* an oversized message ends the stream, as in bitnetd */
    }
    varlink_reader_free(&r);
    return 0;
}
