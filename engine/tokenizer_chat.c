/*
 * engine/tokenizer_chat.c - the BitNet b1.58 2B4T chat format, as
 * Microsoft's reference ChatFormat renders it (FORMATS.md 4.5, item 2).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/tokenizer_internal.h"
#include "engine/unicode.h"

/* ---- chat ---- */

const char *chat_role_name(chat_role role)
{
    switch (role) {
    case CHAT_ROLE_SYSTEM:
        return "system";
    case CHAT_ROLE_USER:
        return "user";
    case CHAT_ROLE_ASSISTANT:
        return "assistant";
    }
    return NULL;
}

int chat_role_parse(const char *name, chat_role *out)
{
    static const chat_role roles[] = {CHAT_ROLE_SYSTEM, CHAT_ROLE_USER, CHAT_ROLE_ASSISTANT};
    for (size_t i = 0; name && i < 3; i++) {
        if (strcmp(name, chat_role_name(roles[i])) == 0) {
            *out = roles[i];
            return 0;
        }
    }
    return -EINVAL;
}

/* Python's str.strip() whitespace, which the reference applies to content:
 * White_Space plus the information separators U+001C..U+001F. */
static bool is_strip_space(uint32_t cp)
{
    return unicode_is_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

static void trim(const char *s, size_t len, size_t *start, size_t *end)
{
    size_t i = 0, first = len, last = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = unicode_utf8_decode((const uint8_t *)s + i, len - i, &cp);
        if (!is_strip_space(cp)) {
            if (first == len)
                first = i;
            last = i + n;
        }
        i += n;
    }
    *start = first == len ? 0 : first;
    *end = first == len ? 0 : last;
}

int tokenizer_render_chat(const tokenizer *t, const chat_message *msgs, size_t n,
                          bool add_assistant_prompt, int32_t *out, size_t cap, size_t *n_out)
{
    static const char *const headers[] = {"System: ", "User: ", "Assistant: "};
    if (!t || !n_out || (!msgs && n))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!chat_role_name(msgs[i].role) || (!msgs[i].content && msgs[i].content_len))
            return -EINVAL;
        if (msgs[i].content_len > TOK_MAX_TEXT)
            return BITNET_ELIMIT;
    }
    int32_t eot = tokenizer_find(t, "<|eot_id|>", 10);
    if (eot < 0)
        eot = t->eot;
    if (eot < 0)
        return BITNET_ETOKENIZER;

    tok_ids ids = {0};
    tok_scratch s = {0};
    int rc = t->bos >= 0 ? tok_ids_push(&ids, t->bos) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *h = headers[msgs[i].role];
        size_t a, b;
        trim(msgs[i].content, msgs[i].content_len, &a, &b);
        rc = tok_encode_append(t, &s, h, strlen(h), false, false, &ids);
        if (rc == 0 && b > a)
            rc = tok_encode_append(t, &s, msgs[i].content + a, b - a, false, false, &ids);
        if (rc == 0)
            rc = tok_ids_push(&ids, eot);
    }
    if (rc == 0 && add_assistant_prompt)
        rc = tok_encode_append(t, &s, headers[CHAT_ROLE_ASSISTANT], strlen(headers[2]), false,
                               false, &ids);
    if (rc == 0)
        rc = tok_deliver(&ids, out, cap, n_out);
    tok_scratch_free(&s);
    free(ids.v);
    return rc;
}
