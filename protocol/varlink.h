/*
 * protocol/varlink.h - Varlink framing and messages, shared by bitnetd and
 * libbitnet-client.
 *
 * A Varlink message is one JSON object followed by a NUL byte. This module
 * splits a byte stream into messages (the reader is fed arbitrary chunks, as
 * they come off a socket), parses calls and replies, and builds them. It does
 * no I/O: the daemon and the client own their sockets.
 */
#ifndef BITNET_PROTOCOL_VARLINK_H
#define BITNET_PROTOCOL_VARLINK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* ---- framing ------------------------------------------------------------- */

/*
 * Splits a byte stream into NUL-terminated messages. Bytes are copied in by
 * varlink_reader_feed() and complete messages taken out by
 * varlink_reader_next(). A message longer than max_message bytes (not
 * counting its NUL) is an error: the reader refuses it as soon as it has seen
 * max_message + 1 bytes without a NUL, so memory stays bounded.
 */
struct varlink_reader {
    char *buf;          /* received bytes; buf[start..len) are not yet taken */
    size_t start;       /* first byte of the next message */
    size_t len;         /* bytes held in buf */
    size_t cap;         /* allocated size of buf */
    size_t scanned;     /* bytes from start known to hold no NUL */
    size_t max_message; /* longest message accepted, NUL excluded */
};

/* Prepares an empty reader. Never fails (the buffer grows on demand). */
void varlink_reader_init(struct varlink_reader *r, size_t max_message);

/* Releases the reader's buffer; accepts a reader that was never fed. */
void varlink_reader_free(struct varlink_reader *r);

/*
 * Appends n bytes from data. Returns 0, or -ENOMEM. Pointers returned by
 * varlink_reader_next() become invalid. Callers take every complete message
 * out with varlink_reader_next() between feeds, which keeps the buffer at most
 * max_message plus one chunk.
 */
int varlink_reader_feed(struct varlink_reader *r, const void *data, size_t n);

/*
 * Takes the next complete message. Returns 1 and sets *msg (NUL-terminated,
 * valid until the next feed or next call) and *len (without the NUL); 0 when
 * no complete message is held; BITNET_ELIMIT when the message being received
 * is longer than max_message (the stream cannot be resynchronised: close it).
 */
int varlink_reader_next(struct varlink_reader *r, const char **msg, size_t *len);

/* Bytes of an incomplete message held; non-zero at end of stream means the
 * peer closed in the middle of a message (a missing NUL). */
size_t varlink_reader_pending(const struct varlink_reader *r);

/* ---- calls --------------------------------------------------------------- */

/* A parsed call: {"method": ..., "parameters": {...}, "more", "oneway", "upgrade"}. */
struct varlink_call {
    char *method;       /* "interface.Method" */
    json_t *parameters; /* an object, never NULL ({} when the call had none) */
    bool more;          /* the client accepts several replies */
    bool oneway;        /* the client wants no reply */
    bool upgrade;       /* the client asks to switch protocols after the reply */
};

/*
 * Parses one message (without its NUL) as a call. Returns 0 and fills *out;
 * BITNET_EJSON for text that is not JSON; BITNET_EPROTOCOL for JSON that is
 * not a call (not an object, no method, a field of the wrong type). On
 * failure *out is untouched and err holds one line saying what is wrong.
 * Unknown top-level fields are ignored, as the Varlink spec allows.
 */
int varlink_call_parse(const char *msg, size_t len, struct varlink_call *out, char *err,
                       size_t err_len);

/* Releases what a parsed call holds; accepts NULL and a zeroed call. */
void varlink_call_free(struct varlink_call *call);

/*
 * Splits "a.b.C" into the interface "a.b" and the method "C". Returns 0, or
 * BITNET_EPROTOCOL when the name has no dot or an empty part. iface must hold
 * iface_len bytes; a longer interface name is BITNET_ELIMIT.
 */
int varlink_method_split(const char *name, char *iface, size_t iface_len, const char **method);

/* ---- replies ------------------------------------------------------------- */

/* A parsed reply: parameters, and either an error name or a continues flag. */
struct varlink_reply {
    json_t *parameters; /* an object, never NULL */
    char *error;        /* the Varlink error name, or NULL for a reply */
    bool continues;     /* more replies to this call follow */
};

/* Parses one message (without its NUL) as a reply. Returns as varlink_call_parse(). */
int varlink_reply_parse(const char *msg, size_t len, struct varlink_reply *out, char *err,
                        size_t err_len);

/* Releases what a parsed reply holds; accepts NULL and a zeroed reply. */
void varlink_reply_free(struct varlink_reply *reply);

/*
 * Message builders. Each returns 0 and a malloc'd message in *out whose
 * length, including the terminating NUL, is *out_len; or -ENOMEM, or
 * BITNET_EJSON when parameters cannot be encoded. parameters is borrowed and
 * may be NULL for {}. Output is compact JSON with keys in insertion order:
 *   {"parameters":{...}}                      a reply
 *   {"parameters":{...},"continues":true}     a reply with more to come
 *   {"error":"NAME","parameters":{...}}       an error
 *   {"method":"M","parameters":{...}[,"more":true][,"oneway":true]}   a call
 */
int varlink_reply_build(json_t *parameters, bool continues, char **out, size_t *out_len);
int varlink_error_build(const char *error, json_t *parameters, char **out, size_t *out_len);
int varlink_call_build(const char *method, json_t *parameters, bool more, bool oneway, char **out,
                       size_t *out_len);

/* ---- interface definitions ----------------------------------------------- */

/* One interface definition, embedded at build time from protocol/ *.varlink. */
struct varlink_interface {
    const char *name;        /* "io.bitnetd.Query" */
    const char *description; /* the .varlink text */
};

/* Returns the embedded interfaces and sets *count; the table is static. */
const struct varlink_interface *varlink_interfaces(size_t *count);

/* Returns the embedded interface called name, or NULL. */
const struct varlink_interface *varlink_interface_find(const char *name);

#endif
