/*
 * listen.h - listening TCP sockets: bind, listen, and one multishot accept
 * on the ring that hands accepted descriptors to whoever waits for them.
 *
 * The listener is a queue between the kernel and its one waiter: each
 * accepted descriptor is given to the waiting accept if there is one, or
 * queued until the next lurk_listener_accept() asks. The queue is bounded
 * (LURK_LISTEN_QUEUE); when it is full the multishot accept is cancelled,
 * so further connections wait in the kernel's backlog, and it is re-armed
 * once the queue drains. Accepted descriptors are the caller's to close.
 */
#ifndef LURK_NET_LISTEN_H
#define LURK_NET_LISTEN_H

#include "net/stream.h"

#include <stdint.h>

#define LURK_LISTEN_QUEUE 256

struct lurk_loop;
struct lurk_listener;

/*
 * Binds host (an IPv4 or IPv6 literal, or "localhost") and port (0: the
 * kernel picks one), listens with backlog (<= 0: SOMAXCONN) and arms the
 * multishot accept. Returns 0 and a listener holding one reference for the
 * caller, or -errno (-EADDRINUSE, -EACCES, -EINVAL for a host that is not
 * a literal).
 */
int lurk_listener_new(struct lurk_listener **out, struct lurk_loop *l, const char *host, int port,
                      int backlog);

/* The port bound (the one the kernel chose for port 0). */
int lurk_listener_port(const struct lurk_listener *ln);

/*
 * Takes the next accepted connection: cb(arg, fd >= 0), whose descriptor
 * belongs to the callee from then on, or cb(arg, rc < 0): -ETIMEDOUT at
 * deadline_ns (absolute, 0: none), -ECANCELED after lurk_listener_cancel(),
 * -LURK_ECLOSED once closed, or the accept's error (-EMFILE, ...). May call
 * back before it returns when a connection is queued. One waiter at a
 * time: -EBUSY otherwise.
 */
int lurk_listener_accept(struct lurk_listener *ln, int64_t deadline_ns, lurk_done_cb *cb, void *arg);

/* Ends a waiting accept with -ECANCELED. */
void lurk_listener_cancel(struct lurk_listener *ln);

/* Connections accepted and not yet taken. */
int lurk_listener_queued(const struct lurk_listener *ln);

/*
 * Stops accepting: the waiter sees -LURK_ECLOSED, queued connections are
 * closed, the listening descriptor is closed once the accept op has ended.
 * Idempotent; does not drop the caller's reference.
 */
void lurk_listener_close(struct lurk_listener *ln);

void lurk_listener_ref(struct lurk_listener *ln);
void lurk_listener_unref(struct lurk_listener *ln);

#endif
