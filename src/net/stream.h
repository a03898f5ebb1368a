/*
 * stream.h - a byte stream as the layers above TCP see it.
 *
 * TCP (net/tcp.c) and TLS (tls/tls.c) each provide one; the Lua socket
 * object, and later HTTP and WebSocket, read and write through it without
 * knowing whether TLS, or kernel TLS, is underneath. The contract is the one
 * of tcp.h: one reader and one writer at a time, callbacks run exactly once
 * (possibly before the start function returns), a start function that fails
 * returns a negative code and never calls back.
 */
#ifndef LURK_NET_STREAM_H
#define LURK_NET_STREAM_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef void lurk_done_cb(void *arg, int res);

struct lurk_stream;

struct lurk_stream_ops {
    /* Appends input to the stream's buffer: cb(n > 0 bytes | 0 at end | < 0). */
    int (*read)(struct lurk_stream *st, size_t room, int64_t deadline_ns, lurk_done_cb *cb, void *arg);
    /* Sends all len bytes (p stays valid until cb): cb(len | < 0). */
    int (*write)(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns,
                 lurk_done_cb *cb, void *arg);
    /* Cancels the operations named by LURK_STREAM_READ/WRITE (-ECANCELED). */
    void (*cancel)(struct lurk_stream *st, int which);
    /* Closes; pending operations end with -LURK_ECLOSED. Idempotent. */
    void (*close)(struct lurk_stream *st);
    /* Optional: takes a copy of len bytes into the stream's own output
     * queue when they fit and no write is under way, and returns len at once
     * (the caller need not wait, as with a kernel socket buffer; a failure to
     * send them is the next call's); 0 when not taken (the caller writes and
     * waits); < 0 when the stream cannot write. */
    int (*write_buffered)(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns);
};

struct lurk_stream {
    const struct lurk_stream_ops *ops;
    struct lurk_buf *rbuf;            /* input read and not yet consumed */
    int eof;                          /* the peer ended the stream */
    int cut;                          /* ...without the protocol's orderly close
                                         (a TLS stream without close_notify) */
    int open;                         /* usable: connected and not closed */
    int unsent;                       /* < 0: a buffered write failed to go out;
                                         the reads fail with it since */
};

enum { LURK_STREAM_READ = 1, LURK_STREAM_WRITE = 2 };

static inline int lurk_stream_read(struct lurk_stream *st, size_t room, int64_t deadline_ns,
                                   lurk_done_cb *cb, void *arg)
{
    return st->ops->read(st, room, deadline_ns, cb, arg);
}

static inline int lurk_stream_write(struct lurk_stream *st, const void *p, size_t len,
                                    int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    return st->ops->write(st, p, len, deadline_ns, cb, arg);
}

static inline void lurk_stream_cancel(struct lurk_stream *st, int which)
{
    st->ops->cancel(st, which);
}

static inline void lurk_stream_close(struct lurk_stream *st)
{
    st->ops->close(st);
}

#endif
