/*
 * daemon/log.h - bitnetd's log: one line per event on stderr, as key=value
 * pairs, with a syslog priority prefix ("<6>") when stderr is the journal.
 */
#ifndef BITNETD_LOG_H
#define BITNETD_LOG_H

#include <stddef.h>
#include <syslog.h>

/* Decides once whether stderr is the journal ($JOURNAL_STREAM names its device and inode). */
void log_init(void);

/* Drops events less important than prio (default LOG_INFO). */
void log_set_level(int prio);

/* Parses "error", "warning", "notice", "info" or "debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *name, int *prio);

/* Writes one line: event=EVENT followed by the formatted key=value pairs.
 * prio is a syslog priority (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG). */
void log_event(int prio, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns s as a log value: unchanged when it is plain, else in double quotes
 * with '"', '\\' and control bytes escaped, written into buf (truncated to n). */
const char *log_quote(const char *s, char *buf, size_t n);

#endif
