/*
 * daemon/notify.h - the systemd notification protocol (sd_notify), written
 * directly: one datagram to $NOTIFY_SOCKET per state change.
 */
#ifndef BITNETD_NOTIFY_H
#define BITNETD_NOTIFY_H

/*
 * Sends state ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET. Returns 0 when sent
 * or when there is no $NOTIFY_SOCKET (not started by systemd), else -errno.
 */
int notify_send(const char *state);

/* The same, but never waits: when the receiver's queue is full the message
 * is dropped (-EAGAIN). For STATUS= updates, which change with every job
 * and must not stall the loop; the next update carries the news. */
int notify_send_nowait(const char *state);

/* Sends RELOADING=1 with the MONOTONIC_USEC= that newer systemd asks for. */
int notify_reloading(void);

#endif
