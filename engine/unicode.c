/*
 * engine/unicode.c - UTF-8 coding and code point classes for the tokenizers.
 */
#include "engine/unicode.h"

size_t unicode_utf8_lead_length(uint8_t lead)
{
    if (lead < 0x80)
        return 1;
    if (lead < 0xC2) /* continuation bytes, and 0xC0/0xC1 which only start overlong forms */
        return 0;
    if (lead < 0xE0)
        return 2;
    if (lead < 0xF0)
        return 3;
    if (lead < 0xF5)
        return 4;
    return 0;
}

static bool is_continuation(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

size_t unicode_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    uint8_t b0 = s[0];
    size_t n = unicode_utf8_lead_length(b0);

    *cp = UNICODE_REPLACEMENT;
    if (n == 1) {
        *cp = b0;
        return 1;
    }
    if (n == 0 || n > len)
        return 1;
    for (size_t i = 1; i < n; i++) {
        if (!is_continuation(s[i]))
            return 1;
    }
    uint32_t v;
    if (n == 2) {
        v = ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
    } else if (n == 3) {
        v = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        /* Overlong (below U+0800) and UTF-16 surrogates are not scalar values. */
        if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))
            return 1;
    } else {
        v = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
            ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (v < 0x10000 || v > UNICODE_MAX)
            return 1;
    }
    *cp = v;
    return n;
}

size_t unicode_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > UNICODE_MAX)
        cp = UNICODE_REPLACEMENT;
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

bool unicode_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = unicode_utf8_decode(s + i, len - i, &cp);
        /* A real U+FFFD in the input is three bytes; a substitution is one. */
        if (cp == UNICODE_REPLACEMENT && n == 1)
            return false;
        i += n;
    }
    return true;
}

size_t unicode_utf8_sanitize(const uint8_t *s, size_t len, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            out[o++] = s[i++];
            continue;
        }
        uint32_t cp;
        size_t n = unicode_utf8_decode(s + i, len - i, &cp);
        if (cp == UNICODE_REPLACEMENT && n == 1) {
            o += unicode_utf8_encode(cp, out + o);
        } else {
            for (size_t k = 0; k < n; k++)
                out[o + k] = s[i + k];
            o += n;
        }
        i += n;
    }
    return o;
}

unicode_class unicode_class_of(uint32_t cp)
{
    if (cp > UNICODE_MAX)
        return UNICODE_UNASSIGNED;
    /* The last range whose first code point is <= cp. The table starts at 0. */
    size_t lo = 0, hi = unicode_class_range_count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((unicode_class_ranges[mid] >> 4) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return (unicode_class)(unicode_class_ranges[lo] & 0xF);
}

static bool is_space_slow(uint32_t cp)
{
    for (size_t i = 0; i < unicode_space_range_count; i++) {
        if (cp < unicode_space_ranges[i][0])
            return false;
        if (cp <= unicode_space_ranges[i][1])
            return true;
    }
    return false;
}

unsigned unicode_flags(uint32_t cp)
{
    if (cp < 256)
        return unicode_latin1_flags[cp];
    unsigned f;
    switch (unicode_class_of(cp)) {
    case UNICODE_LETTER:
        f = UNICODE_F_LETTER;
        break;
    case UNICODE_NUMBER:
        f = UNICODE_F_NUMBER;
        break;
    case UNICODE_PUNCT:
        f = UNICODE_F_PUNCT;
        break;
    default:
        f = UNICODE_F_OTHER;
        break;
    }
    if (is_space_slow(cp))
        f |= UNICODE_F_SPACE;
    return f;
}
