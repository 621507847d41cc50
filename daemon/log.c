/* daemon/log.c - one line per event, key=value, journal-aware. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/log.h"

static bool to_journal;
static int max_prio = LOG_INFO;

void log_set_level(int prio)
{
    max_prio = prio;
}

int log_level_parse(const char *name, int *prio)
{
    static const struct {
        const char *name;
        int prio;
    } levels[] = {{"error", LOG_ERR},
                  {"warning", LOG_WARNING},
                  {"notice", LOG_NOTICE},
                  {"info", LOG_INFO},
                  {"debug", LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(name, levels[i].name) == 0) {
            *prio = levels[i].prio;
            return 0;
        }
    }
    return -EINVAL;
}

void log_init(void)
{
    /* systemd sets JOURNAL_STREAM=DEV:INODE for the stream it connected to
     * stderr; a child that inherited the variable but not the stream must
     * not prefix. */
    const char *js = getenv("JOURNAL_STREAM");
    to_journal = false;
    if (!js)
        return;
    /* strtoull, not sscanf: a number out of range is an error, not UB. */
    char *colon, *end;
    errno = 0;
    unsigned long long dev = strtoull(js, &colon, 10);
    if (colon == js || *colon != ':')
        return;
    unsigned long long ino = strtoull(colon + 1, &end, 10);
    struct stat st;
    to_journal = errno == 0 && end != colon + 1 && *end == '\0' && fstat(2, &st) == 0 &&
                 (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static const char *prio_name(int prio)
{
    switch (prio) {
    case LOG_EMERG:
    case LOG_ALERT:
    case LOG_CRIT:
    case LOG_ERR:
        return "error";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
        return "notice";
    case LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void log_event(int prio, const char *event, const char *fmt, ...)
{
    char line[2048];
    int n;
    if (prio > max_prio)
        return;
    if (to_journal)
        n = snprintf(line, sizeof(line), "<%d>event=%s", prio, event);
    else
        n = snprintf(line, sizeof(line), "bitnetd: level=%s event=%s", prio_name(prio), event);
    if (n < 0)
        return;
    if (fmt && *fmt && (size_t)n + 1 < sizeof(line)) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line, so concurrent writers never interleave a line. */
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
}

const char *log_quote(const char *s, char *buf, size_t n)
{
    if (!s)
        return "-";
    bool plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (unsigned char)*p > ' ' && *p != '"' && *p != '\\' && *p != '=' && *p != 0x7f;
    if (plain)
        return s;
    size_t o = 0;
    if (n < 3)
        return "\"\"";
    buf[o++] = '"';
    for (const char *p = s; *p && o + 5 < n; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < ' ' || c == 0x7f) {
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
