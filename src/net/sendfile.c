/*
 * sendfile.c - a file region sent on a TCP socket by the kernel alone.
 *
 * The page cache reaches the socket through a pipe: IORING_OP_SPLICE moves
 * up to a pipe's worth of the file into the pipe (page references, no
 * copy), then IORING_OP_SPLICE moves the pipe into the socket, in the
 * socket's write slot (lurk_tcp_splice) so that a close or a cancel of the
 * socket's writes reaches it and the descriptor outlives it. With kernel
 * TLS TX on the socket the kernel encrypts those pages as they leave; with
 * plain TCP they go to the NIC as they are (loopback copies once into the
 * receiver). A userspace-TLS stream cannot use this: its caller reads and
 * writes instead.
 *
 * One splice is in flight at a time, file->pipe then pipe->socket until
 * the pipe is empty, so the pipe never holds more than one chunk. The pipe
 * is enlarged to 1 MiB where fs.pipe-max-size allows (two splices per MiB
 * instead of sixteen per MiB with the 64 KiB default).
 *
 * io_uring runs splices in its worker threads (they cannot be issued
 * non-blocking), which also means that SIGPIPE for a peer that went away is
 * raised on a worker, whose signals are blocked, not on the loop's thread:
 * the splice just completes with -EPIPE.
 *
 * The file may change while it is sent: the length was promised (the
 * Content-Length is out), so a file that ends early fails the transfer
 * (-LURK_EHTTP) and the caller closes the connection; bytes past len are
 * never read.
 */
#include "net/sendfile.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define PIPE_WANT (1 << 20)

struct lurk_sendfile {
    struct lurk_tcp *s;
    struct lurk_loop *loop;
    struct lurk_op *fop;              /* the file->pipe splice in flight, or NULL */
    bool sock_busy;                   /* the pipe->socket splice is in flight */
    bool cancelled, done;
    int file_fd, pipe[2];
    int64_t off;                      /* the file offset of the next file->pipe splice */
    size_t left;                      /* bytes not yet spliced from the file */
    size_t in_pipe;                   /* bytes in the pipe */
    size_t sent;                      /* bytes that reached the socket */
    size_t chunk;                     /* the pipe's capacity */
    int64_t timeout_ns, deadline_ns;
    int64_t op_deadline;              /* of the splice in flight */
    lurk_done_cb *cb;
    void *arg;
};

static _Thread_local uint64_t stat_bytes, stat_splices;

static int64_t op_deadline(struct lurk_sendfile *f)
{
    int64_t d = f->deadline_ns;

    if (f->timeout_ns > 0) {
        int64_t t = lurk_now_ns() + f->timeout_ns;

        if (d == 0 || t < d)
            d = t;
    }
    f->op_deadline = d;
    return d;
}

/* A splice that a cancel or deadline interrupted in a worker reports
 * -EINTR: name it as the loop names the ones it catches in time. */
static int interrupted(struct lurk_sendfile *f, int res)
{
    if (res != -EINTR)
        return res;
    if (f->cancelled)
        return -ECANCELED;
    if (f->op_deadline && lurk_now_ns() >= f->op_deadline)
        return -ETIMEDOUT;
    return res;
}

static void finish(struct lurk_sendfile *f, int res)
{
    f->done = true;
    f->cb(f->arg, res);
}

static void step(struct lurk_sendfile *f);

static void sock_done(void *arg, int res)
{
    struct lurk_sendfile *f = arg;

    f->sock_busy = false;
    stat_splices++;
    if (res == 0)
        res = -EPIPE;                 /* nothing moved: the socket is gone */
    if (res < 0) {
        finish(f, interrupted(f, res));
        return;
    }
    f->in_pipe -= (size_t)res;
    f->sent += (size_t)res;
    stat_bytes += (uint64_t)res;
    step(f);
}

static void file_done(struct lurk_op *op, int res)
{
    struct lurk_sendfile *f = op->arg;

    f->fop = NULL;
    stat_splices++;
    if (res == 0)
        res = -LURK_EHTTP;            /* the file ended before len: it shrank */
    if (res < 0) {
        finish(f, interrupted(f, res));
        return;
    }
    f->off += res;
    f->left -= (size_t)res;
    f->in_pipe += (size_t)res;
    step(f);
}

/* Starts the next splice, or finishes. */
static void step(struct lurk_sendfile *f)
{
    if (f->cancelled) {
        finish(f, -ECANCELED);
        return;
    }
    if (f->in_pipe > 0) {
        int rc = lurk_tcp_splice(f->s, f->pipe[0], f->in_pipe, op_deadline(f), sock_done, f);

        if (rc < 0)
            finish(f, rc);
        else
            f->sock_busy = true;
        return;
    }
    if (f->left == 0) {
        finish(f, 0);
        return;
    }
    {
        struct io_uring_sqe *sqe = lurk_loop_sqe(f->loop);
        size_t n = f->left < f->chunk ? f->left : f->chunk;

        /* The file's offset is explicit: the descriptor's own is not used. */
        io_uring_prep_splice(sqe, f->file_fd, f->off, f->pipe[1], -1, (unsigned)n, SPLICE_F_MOVE);
        f->fop = lurk_op_new(f->loop, file_done, f);
        lurk_op_arm(f->loop, f->fop, sqe, op_deadline(f));
    }
}

int lurk_sendfile_start(struct lurk_sendfile **out, struct lurk_tcp *s, int file_fd, int64_t off,
                        size_t len, int64_t timeout_ns, int64_t deadline_ns, lurk_done_cb *cb,
                        void *arg)
{
    struct lurk_sendfile *f;
    int sz;

    *out = NULL;
    if (!lurk_tcp_is_open(s))
        return -LURK_ECLOSED;
    f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    if (pipe2(f->pipe, O_CLOEXEC) < 0) {
        int rc = -errno;

        free(f);
        return rc;
    }
    /* May fail (EPERM above fs.pipe-max-size): the default 64 KiB works too. */
    (void)fcntl(f->pipe[1], F_SETPIPE_SZ, PIPE_WANT);
    sz = fcntl(f->pipe[1], F_GETPIPE_SZ);
    f->chunk = sz > 0 ? (size_t)sz : 65536;
    f->s = s;
    lurk_tcp_ref(s);
    f->loop = lurk_tcp_loop(s);
    f->file_fd = file_fd;
    f->off = off;
    f->left = len;
    f->timeout_ns = timeout_ns;
    f->deadline_ns = deadline_ns;
    f->cb = cb;
    f->arg = arg;
    *out = f;
    step(f);
    return 0;
}

void lurk_sendfile_cancel(struct lurk_sendfile *f)
{
    if (!f || f->done)
        return;
    f->cancelled = true;
    if (f->fop)
        lurk_op_cancel(f->loop, f->fop);
    if (f->sock_busy)
        lurk_tcp_cancel(f->s, LURK_TCP_WRITE);
}

size_t lurk_sendfile_sent(const struct lurk_sendfile *f)
{
    return f->sent;
}

void lurk_sendfile_free(struct lurk_sendfile *f)
{
    if (!f)
        return;
    close(f->pipe[0]);
    close(f->pipe[1]);
    lurk_tcp_unref(f->s);
    free(f);
}

void lurk_sendfile_stats(uint64_t *bytes, uint64_t *splices)
{
    *bytes = stat_bytes;
    *splices = stat_splices;
}
