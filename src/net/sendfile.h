/*
 * sendfile.h - a region of a file sent on a TCP socket without passing
 * through user space: IORING_OP_SPLICE from the file into a pipe, then from
 * the pipe into the socket (Linux 5.7+). On a socket with kernel TLS TX the
 * kernel encrypts the pages on their way out.
 */
#ifndef LURK_NET_SENDFILE_H
#define LURK_NET_SENDFILE_H

#include "net/stream.h"

#include <stddef.h>
#include <stdint.h>

struct lurk_tcp;
struct lurk_sendfile;

/*
 * Sends len bytes of file_fd from offset off on s, holding s's write slot
 * (lurk_tcp_splice) while the pipe empties into it. file_fd stays the
 * caller's and must stay open until cb has run. Each splice must complete
 * within timeout_ns (0: no limit) and before deadline_ns (absolute, 0: none).
 * Returns 0 and cb(arg, res) runs once, with no op left in flight: res 0
 * when all len bytes went out; -EINVAL/-EOPNOTSUPP when the kernel refuses
 * to splice these descriptors (the caller may send the rest, from off +
 * lurk_sendfile_sent(), another way); -LURK_EHTTP when the file ended
 * early (it shrank); or the socket's error. Returns < 0 when nothing
 * started (no pipe: -EMFILE...). *out is then NULL.
 */
int lurk_sendfile_start(struct lurk_sendfile **out, struct lurk_tcp *s, int file_fd, int64_t off,
                        size_t len, int64_t timeout_ns, int64_t deadline_ns, lurk_done_cb *cb,
                        void *arg);
/* Asks the splice in flight to end; cb then sees -ECANCELED. */
void lurk_sendfile_cancel(struct lurk_sendfile *f);
/* Bytes that reached the socket. */
size_t lurk_sendfile_sent(const struct lurk_sendfile *f);
/* Frees a transfer whose callback has run. NULL: no-op. */
void lurk_sendfile_free(struct lurk_sendfile *f);
/* Totals for this thread since it started: bytes spliced into sockets and
 * splice operations (both directions), for tests and benchmarks. */
void lurk_sendfile_stats(uint64_t *bytes, uint64_t *splices);

#endif
