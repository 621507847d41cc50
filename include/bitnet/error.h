/*
 * bitnet/error.h - error codes shared by every bitnetd library.
 *
 * Functions return 0 on success or a negative code: either -errno (for
 * system failures) or one of the BITNET_E* values below, which start at
 * -1000 so they never collide with errno values.
 */
#ifndef BITNET_ERROR_H
#define BITNET_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message). The message is the one-line text of bitnet_strerror(). */
#define BITNET_ERROR_LIST(X)                                                                       \
    X(BITNET_EUNKNOWN_ID, -1000, "unknown id")                                                     \
    X(BITNET_ENOT_COMPILED, -1001, "not compiled into this build")                                 \
    X(BITNET_ENOT_SUPPORTED, -1002, "not supported by this machine")                               \
    X(BITNET_EFORMAT, -1003, "malformed file")                                                     \
    X(BITNET_ETRUNCATED, -1004, "file is truncated")                                               \
    X(BITNET_EVERSION, -1005, "unsupported version")                                               \
    X(BITNET_ETYPE, -1006, "unsupported or wrong type")                                            \
    X(BITNET_ESHAPE, -1007, "shape does not match")                                                \
    X(BITNET_EMISSING, -1008, "required item missing")                                             \
    X(BITNET_ELIMIT, -1009, "limit exceeded")                                                      \
    X(BITNET_EARCH, -1010, "unsupported architecture")                                             \
    X(BITNET_ETOKENIZER, -1011, "tokenizer error")                                                 \
    X(BITNET_ECONTEXT, -1012, "context is full")                                                   \
    X(BITNET_EELF, -1020, "not a valid ELF file")                                                  \
    X(BITNET_EELF_CLASS, -1021, "wrong ELF class (not ELF64)")                                     \
    X(BITNET_EELF_MACHINE, -1022, "ELF file is for another machine")                               \
    X(BITNET_ELIB_NOT_REGULAR, -1023, "library is not a regular file")                             \
    X(BITNET_ELIB_OWNER, -1024, "library has an unsafe owner")                                     \
    X(BITNET_ELIB_MODE, -1025, "library is writable by group or others")                           \
    X(BITNET_ELIB_DIR, -1026, "library is outside the allowed directories")                        \
    X(BITNET_ELIB_LOAD, -1027, "library failed to load")                                           \
    X(BITNET_ELIB_SYMBOL, -1028, "library lacks a required symbol")                                \
    X(BITNET_ELIB_ABI, -1029, "library has the wrong ABI version")                                 \
    X(BITNET_ENO_DEVICE, -1030, "no usable device")                                                \
    X(BITNET_EBACKEND, -1031, "backend failed")                                                    \
    X(BITNET_EPROTOCOL, -1040, "protocol error")                                                   \
    X(BITNET_EJSON, -1041, "malformed JSON")                                                       \
    X(BITNET_EPARAM, -1042, "invalid parameter")                                                   \
    X(BITNET_EMETHOD, -1043, "method not found")                                                   \
    X(BITNET_EINTERFACE, -1044, "interface not found")                                             \
    X(BITNET_EPERM, -1045, "permission denied")                                                    \
    X(BITNET_EQUEUE_FULL, -1046, "queue is full")                                                  \
    X(BITNET_ECANCELLED, -1047, "cancelled")                                                       \
    X(BITNET_ENOT_FOUND, -1048, "not found")                                                       \
    X(BITNET_EBUSY, -1049, "busy")                                                                 \
    X(BITNET_EDISCONNECTED, -1050, "connection closed")                                            \
    X(BITNET_ESTRICT, -1051, "fallback refused in strict mode")

enum bitnet_error {
/* NOLINTNEXTLINE(bugprone-macro-parentheses): name is an enumerator, not an expression. */
#define BITNET_ERROR_ENUM(name, value, msg) name = value,
    BITNET_ERROR_LIST(BITNET_ERROR_ENUM)
#undef BITNET_ERROR_ENUM
};

/* Returns a static one-line message for a BITNET_E* code or a -errno value. */
const char *bitnet_strerror(int err);

/* Returns the symbolic name of a BITNET_E* code ("BITNET_EFORMAT"), or NULL. */
const char *bitnet_error_name(int err);

#ifdef __cplusplus
}
#endif

#endif
