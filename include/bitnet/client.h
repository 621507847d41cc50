/*
 * bitnet/client.h - libbitnet-client, a small blocking client for bitnetd.
 *
 * bitnetd speaks Varlink over a Unix socket (docs/protocol.md). This library
 * connects, sends calls and returns each reply's parameters as JSON text.
 * A handle is one connection; calls on it are answered in order. Use one
 * handle per thread (or lock around it); the library keeps no global state.
 *
 *     bitnet_client *c;
 *     if (bitnet_client_connect(NULL, &c) == 0) {
 *         char *reply;
 *         if (bitnet_client_call(c, "io.bitnetd.Query.GetStatus", NULL, &reply) == 0) {
 *             puts(reply);
 *             bitnet_client_free(reply);
 *         }
 *         bitnet_client_close(c);
 *     }
 */
#ifndef BITNET_CLIENT_H
#define BITNET_CLIENT_H

#ifdef __cplusplus
extern "C" {
#endif

/* The system daemon's socket; $BITNETD_SOCKET overrides it for NULL paths. */
#define BITNET_CLIENT_DEFAULT_SOCKET "/run/bitnetd/bitnetd.sock"

/* Errors besides -errno values (connection and I/O failures). */
enum bitnet_client_error {
    BITNET_CLIENT_EVARLINK = -2000,  /* the daemon answered with a Varlink error */
    BITNET_CLIENT_EPROTOCOL = -2001, /* the daemon's message is not valid Varlink */
    BITNET_CLIENT_ECLOSED = -2002,   /* the connection is closed; connect again */
    BITNET_CLIENT_ELIMIT = -2003,    /* a reply is larger than the client accepts (256 MiB) */
    BITNET_CLIENT_EINVAL = -2004     /* bad arguments (parameters not a JSON object, ...) */
};

typedef struct bitnet_client bitnet_client;

/*
 * Connects to bitnetd at path (NULL: $BITNETD_SOCKET, else
 * BITNET_CLIENT_DEFAULT_SOCKET). Returns 0 and sets *out, or -errno
 * (-ENOENT: no socket there, -ECONNREFUSED: no daemon behind it, -EACCES).
 */
int bitnet_client_connect(const char *path, bitnet_client **out);

/* Closes the connection and frees the handle; accepts NULL. */
void bitnet_client_close(bitnet_client *client);

/*
 * Calls method ("io.bitnetd.Query.GetStatus") with parameters, a JSON object
 * as text (NULL for {}), and waits for the reply. Returns 0 and sets *reply to
 * the reply's parameters as JSON text (free with bitnet_client_free()); or
 * BITNET_CLIENT_EVARLINK when the daemon answered with an error (see
 * bitnet_client_error_name()); or another negative error. *reply is untouched
 * on failure.
 */
int bitnet_client_call(bitnet_client *client, const char *method, const char *parameters,
                       char **reply);

/*
 * Called once per reply of a streaming call, with the reply's parameters as
 * JSON text (valid during the call) and continues = 1 when more follow.
 * Returning non-zero stops the call: the connection is then closed (that is
 * how a stream is abandoned) and bitnet_client_call_more() returns the value.
 */
typedef int (*bitnet_client_reply_fn)(const char *parameters, int continues, void *user);

/*
 * Calls method with "more": true and passes every reply to fn, until the
 * last one. Returns 0, the callback's non-zero value, or an error as
 * bitnet_client_call() does (a Varlink error may end a stream early).
 */
int bitnet_client_call_more(bitnet_client *client, const char *method, const char *parameters,
                            bitnet_client_reply_fn fn, void *user);

/* Sends a oneway call: the daemon runs it and sends no reply. Returns 0 or an error. */
int bitnet_client_call_oneway(bitnet_client *client, const char *method, const char *parameters);

/* After BITNET_CLIENT_EVARLINK: the Varlink error name
 * ("org.varlink.service.InvalidParameter"); otherwise NULL. Valid until the next call. */
const char *bitnet_client_error_name(const bitnet_client *client);

/* After BITNET_CLIENT_EVARLINK: the error's parameters as JSON text; otherwise NULL. */
const char *bitnet_client_error_parameters(const bitnet_client *client);

/* One line describing the last failure on this handle ("" after a success). */
const char *bitnet_client_error_message(const bitnet_client *client);

/* Returns a static message for an error code of this library or a -errno value. */
const char *bitnet_client_strerror(int err);

/* Frees a string this library returned; accepts NULL. */
void bitnet_client_free(char *s);

#ifdef __cplusplus
}
#endif

#endif
