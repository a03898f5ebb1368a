/*
 * tcp.h - TCP connections on the ring: connect (with resolution and fallback
 * through every address), buffered receive, send-all, close.
 *
 * Each direction has at most one operation in flight (one reader, one writer;
 * they may run at the same time). Every start function returns 0 when its
 * callback will run exactly once, or a negative code when nothing started
 * (the callback does not run). A callback may run before the start function
 * returns (a name answered from /etc/hosts, for instance).
 */
#ifndef LURK_NET_TCP_H
#define LURK_NET_TCP_H

#include "core/buf.h"
#include "net/stream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lurk_loop;
struct lurk_resolver;
struct lurk_tcp;

/* A new, unconnected socket object holding one reference for the caller. */
int lurk_tcp_new(struct lurk_tcp **out, struct lurk_loop *l, struct lurk_resolver *r);

void lurk_tcp_ref(struct lurk_tcp *s);
void lurk_tcp_unref(struct lurk_tcp *s);

/*
 * Resolves host and connects to port, trying each address in turn until one
 * accepts. deadline_ns (absolute, 0 for none) bounds the whole attempt.
 * cb(arg, 0) once connected; cb(arg, rc < 0) with the last address' error,
 * -ETIMEDOUT, -ECANCELED, -LURK_ECLOSED or a -LURK_EDNS_* code.
 */
int lurk_tcp_connect(struct lurk_tcp *s, const char *host, int port, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg);

/*
 * Takes over fd, a connection accepted by a listener (net/listen.h): the
 * socket becomes connected, named after its peer ("ip:port"), and owns fd
 * from then on. Returns 0, or -EISCONN for a socket already in use (fd is
 * then still the caller's).
 */
int lurk_tcp_adopt(struct lurk_tcp *s, int fd);

/*
 * Receives once into the read buffer, after making room for at least `room`
 * bytes. cb(arg, n): n > 0 bytes were appended, 0 at end of stream, < 0 error.
 */
int lurk_tcp_read(struct lurk_tcp *s, size_t room, int64_t deadline_ns,
                  lurk_done_cb *cb, void *arg);

/*
 * Lets reads use a multishot receive into the loop's provided buffers
 * (LURK_LOOP_RECV_MULTI): it stays armed from one read to the next and
 * copies what comes into the read buffer, so a busy connection needs no
 * SQE per read and a waiting one holds no buffer. Input keeps arriving
 * while no read waits, up to 256 KiB unread; past that the receive is
 * cancelled and the socket's reads are plain receives from then on. So
 * only a socket whose input all goes through the read buffer may use it:
 * turn it off before a TLS handshake, whose reads must leave what follows
 * in the kernel (turning it off cancels a receive in flight, and then it
 * stays off). On for a new socket.
 */
void lurk_tcp_multishot(struct lurk_tcp *s, bool on);

/*
 * The same, but receives at most `max` bytes, so nothing beyond what the
 * caller asked for leaves the kernel (the TLS handshake relies on this: what
 * follows it must stay in the socket for kernel TLS).
 */
int lurk_tcp_read_max(struct lurk_tcp *s, size_t max, int64_t deadline_ns,
                      lurk_done_cb *cb, void *arg);

/* The stream view of this socket (valid as long as the socket). */
struct lurk_stream *lurk_tcp_stream(struct lurk_tcp *s);

/* The buffered, not yet consumed input. */
struct lurk_buf *lurk_tcp_rbuf(struct lurk_tcp *s);

/*
 * Sends all len bytes at p, which must stay valid and unchanged until cb
 * runs. cb(arg, len) on success or cb(arg, rc < 0).
 */
int lurk_tcp_write(struct lurk_tcp *s, const void *p, size_t len, int64_t deadline_ns,
                   lurk_done_cb *cb, void *arg);

/*
 * The same contract, but for a caller that goes on without waiting: the
 * send goes out with MSG_DONTWAIT through lurk_op_arm_nowait(), so when the
 * kernel takes all len bytes at once (the norm) no turn waits for it and,
 * where the ring skips successful CQEs, it posts none; cb(arg, len) runs
 * right after the enter that submitted it. When the socket is full, the rest
 * goes out with an ordinary send bounded by deadline_ns, and cb runs when it
 * has. p stays valid until cb runs. The caller does not hold the write slot:
 * one lurk_tcp_write() started meanwhile waits behind this write, and fails
 * with its error if it fails.
 */
int lurk_tcp_write_nowait(struct lurk_tcp *s, const void *p, size_t len, int64_t deadline_ns,
                          lurk_done_cb *cb, void *arg);

/* Says that the caller of the write in flight (a nowait one) now waits for
 * its callback: see lurk_op_await(). */
void lurk_tcp_await(struct lurk_tcp *s);

struct msghdr;

/*
 * Receives one message with its control data (kernel TLS reports each
 * record's type in a cmsg). msg and every buffer it points to stay valid and
 * unmoved until cb runs; nothing goes into the read buffer. cb(arg, n >= 0
 * bytes | < 0). Takes the read slot, so lurk_tcp_cancel(READ) and
 * lurk_tcp_close() reach it and the descriptor outlives it.
 */
int lurk_tcp_recvmsg(struct lurk_tcp *s, struct msghdr *msg, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg);

/*
 * Sends one message with its control data (a kernel TLS record of another
 * type than application data) in one sendmsg; the same lifetime rules.
 * cb(arg, bytes sent | < 0). Takes the write slot: it cannot start while a
 * write is in flight (-EBUSY), so it never overtakes one.
 */
int lurk_tcp_sendmsg(struct lurk_tcp *s, struct msghdr *msg, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg);

/*
 * Splices up to len bytes from pipe_fd (a pipe's read end, which stays
 * the caller's) into the socket: IORING_OP_SPLICE, Linux 5.7+. The same
 * slot and lifetime rules as lurk_tcp_sendmsg; cb(arg, bytes moved, which
 * may be fewer than len | < 0).
 */
int lurk_tcp_splice(struct lurk_tcp *s, int pipe_fd, size_t len, int64_t deadline_ns,
                    lurk_done_cb *cb, void *arg);
/* True while a write or sendmsg is in flight. */
int lurk_tcp_writing(const struct lurk_tcp *s);

enum { LURK_TCP_READ = LURK_STREAM_READ, LURK_TCP_WRITE = LURK_STREAM_WRITE, LURK_TCP_CONNECT = 4 };

/* Cancels the operations named in `which`; their callbacks see -ECANCELED. */
void lurk_tcp_cancel(struct lurk_tcp *s, int which);

/*
 * Closes the socket: pending operations end with -LURK_ECLOSED, the file
 * descriptor is closed once none is in flight. Idempotent. Does not drop the
 * caller's reference.
 */
void lurk_tcp_close(struct lurk_tcp *s);

/* True once connected and not closed; true at end of stream. */
int lurk_tcp_is_open(const struct lurk_tcp *s);
int lurk_tcp_at_eof(const struct lurk_tcp *s);

/* "host:port" and, once known, the addresses tried ("::1, 127.0.0.1"), for
 * messages. */
const char *lurk_tcp_name(const struct lurk_tcp *s);
const char *lurk_tcp_addr(const struct lurk_tcp *s);
int lurk_tcp_fd(const struct lurk_tcp *s);
struct lurk_loop *lurk_tcp_loop(struct lurk_tcp *s);

/* Seconds spent resolving and connecting (0 for literals / not yet). */
void lurk_tcp_timings(const struct lurk_tcp *s, double *dns, double *connect);

#endif
