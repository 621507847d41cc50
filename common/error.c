/* common/error.c - messages and names for BITNET_E* codes. */
#include <string.h>

#include "bitnet/error.h"

struct error_entry {
    int code;
    const char *name;
    const char *message;
};

static const struct error_entry errors[] = {
#define BITNET_ERROR_ENTRY(name, value, msg) {value, #name, msg},
    BITNET_ERROR_LIST(BITNET_ERROR_ENTRY)
#undef BITNET_ERROR_ENTRY
};

static const struct error_entry *error_lookup(int err)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].code == err)
            return &errors[i];
    return NULL;
}

const char *bitnet_strerror(int err)
{
    const struct error_entry *e = error_lookup(err);
    if (e)
        return e->message;
    if (err == 0)
        return "success";
    if (err < 0 && err > -1000)
        return strerror(-err);
    return "unknown error";
}

const char *bitnet_error_name(int err)
{
    const struct error_entry *e = error_lookup(err);
    return e ? e->name : NULL;
}
