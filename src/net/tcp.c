/*
 * tcp.c - TCP connections on the ring.
 *
 * Connect is a small state machine: resolve (or parse a literal), then for
 * each address create a socket and submit IORING_OP_CONNECT, moving on to the
 * next address when one fails. A deadline bounds each connect as any op's
 * deadline does (the loop's deadline heap), and a ring timer bounds the
 * resolution, which c-ares runs without one.
 *
 * Lifetime: the object holds a reference for its creator and one for each op
 * in flight, so a completion can always find it. lurk_tcp_close() cancels
 * what is in flight; the descriptor is closed when the last op has completed
 * (the kernel may still be writing into rbuf until then) and the memory is
 * freed when the last reference goes.
 */
#include "net/tcp.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/dns.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)

struct lurk_tcp {
    struct lurk_stream stream;        /* first: the stream view */
    struct lurk_loop *loop;
    struct lurk_resolver *resolver;
    int refs;
    int ops;                          /* ops in flight on fd */
    int fd;
    int slot;                         /* fd's slot in the ring's file table, or -1 */
    bool connected, closing;         /* end of stream: stream.eof */

    /* connect */
    lurk_done_cb *ccb;
    void *carg;
    struct lurk_query *query;
    struct lurk_op *cop;              /* the connect op */
    struct lurk_op *ctimer;           /* deadline while resolving */
    struct lurk_addrs *addrs;
    int next_addr, last_err;
    int64_t cdeadline;
    int64_t t_start, t_resolved, t_connected;   /* lurk_now_ns() stamps */
    char name[300];
    char addr[256];                   /* addresses tried, in order */

    /* read */
    struct lurk_buf rbuf;
    struct lurk_op *rop;              /* the read in flight (soft with multishot) */
    size_t rasked;                    /* bytes the read in flight may fill */
    bool drained;                     /* the last read left the socket empty */
    lurk_done_cb *rcb;
    void *rarg;
    /* Multishot receive (LURK_LOOP_RECV_MULTI, lurk_tcp_multishot): mop
     * stays armed across reads and appends what comes to rbuf; rop is then
     * a soft op that mop's data ends. Data, an end or an error that comes
     * while no read waits is kept for the next one. */
    bool multishot;                   /* this socket may use it */
    struct lurk_op *mop;
    bool mstopped;                    /* a multishot receive was cancelled: plain from then on */
    size_t unread;                    /* bytes appended that no read has reported */
    int mend;                         /* 1: none; else the end (0) or error to report */

    /* write */
    const char *wptr;
    size_t wlen, wdone;
    bool wnowait;                     /* the send in flight is a nowait one */
    bool wbg;                         /* the write is lurk_tcp_write_nowait's */
    /* One write queued behind a nowait write (its caller went on). */
    const char *qptr;
    size_t qlen;
    int64_t qdeadline;
    lurk_done_cb *qcb;
    void *qarg;
    int64_t wdeadline;
    struct lurk_op *wop;
    lurk_done_cb *wcb;
    void *warg;
};

static const struct lurk_stream_ops tcp_stream_ops;

int lurk_tcp_new(struct lurk_tcp **out, struct lurk_loop *l, struct lurk_resolver *r)
{
    struct lurk_tcp *s = calloc(1, sizeof *s);

    *out = NULL;
    if (!s)
        return -ENOMEM;
    s->loop = l;
    lurk_loop_ref(l);
    s->resolver = r;
    s->refs = 1;
    s->fd = -1;
    s->slot = -1;
    s->mend = 1;
    s->multishot = true;
    s->stream.ops = &tcp_stream_ops;
    s->stream.rbuf = &s->rbuf;
    *out = s;
    return 0;
}

void lurk_tcp_ref(struct lurk_tcp *s)
{
    s->refs++;
}

/* Puts fd in the ring's file table, so the ops on it skip the file lookup. */
static void set_fd(struct lurk_tcp *s, int fd)
{
    s->fd = fd;
    s->slot = lurk_loop_file_add(s->loop, fd);
}

/* Closes fd and empties its slot (the table holds the socket open too). */
static void close_fd(struct lurk_tcp *s)
{
    lurk_loop_file_remove(s->loop, s->slot);
    s->slot = -1;
    close(s->fd);
    s->fd = -1;
}

void lurk_tcp_unref(struct lurk_tcp *s)
{
    if (--s->refs > 0)
        return;
    if (s->fd >= 0)
        close_fd(s);
    lurk_buf_fini(&s->rbuf);
    free(s->addrs);
    lurk_loop_unref(s->loop);
    free(s);
}

/* Called whenever an op ends: closes fd once closing and idle. */
static void op_ended(struct lurk_tcp *s)
{
    s->ops--;
    if (s->closing && s->ops == 0 && s->fd >= 0)
        close_fd(s);
    lurk_tcp_unref(s);
}

static struct lurk_op *start_op(struct lurk_tcp *s, lurk_op_cb *cb)
{
    s->ops++;
    s->refs++;
    return lurk_op_new(s->loop, cb, s);
}

static void connect_finish(struct lurk_tcp *s, int rc)
{
    lurk_done_cb *cb = s->ccb;

    s->ccb = NULL;
    if (rc == 0) {
        s->connected = true;
        s->stream.open = 1;
    }
    if (cb)
        cb(s->carg, rc);
}

static void try_next(struct lurk_tcp *s);

static void connect_done(struct lurk_op *op, int res)
{
    struct lurk_tcp *s = op->arg;

    s->cop = NULL;
    if (res == 0 && !s->closing) {
        s->t_connected = lurk_now_ns();
        connect_finish(s, 0);
    } else {
        if (s->closing)
            res = -LURK_ECLOSED;
        close_fd(s);
        if (res == -ETIMEDOUT || res == -ECANCELED || res == -LURK_ECLOSED) {
            connect_finish(s, res);
        } else {
            s->last_err = res;
            s->next_addr++;
            try_next(s);
        }
    }
    op_ended(s);
}

/* Appends an address to the "tried" list used in error messages. */
static void note_addr(struct lurk_tcp *s, const struct sockaddr_storage *sa)
{
    char one[64];
    size_t len = strlen(s->addr);

    lurk_addr_str(sa, one, sizeof one);
    if (len + strlen(one) + 3 < sizeof s->addr)
        snprintf(s->addr + len, sizeof s->addr - len, "%s%s", len ? ", " : "", one);
}

static void try_next(struct lurk_tcp *s)
{
    while (s->next_addr < s->addrs->n) {
        struct sockaddr_storage *sa = &s->addrs->addr[s->next_addr];
        socklen_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        struct io_uring_sqe *sqe;
        int one = 1, fd;

        note_addr(s, sa);
        if (s->cdeadline && lurk_now_ns() >= s->cdeadline) {
            connect_finish(s, -ETIMEDOUT);
            return;
        }
        fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
            s->last_err = -errno;
            s->next_addr++;
            continue;
        }
        /* Request/response traffic: never wait for Nagle. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_fd(s, fd);
        sqe = lurk_loop_sqe(s->loop);
        io_uring_prep_connect(sqe, fd, (struct sockaddr *)sa, len);
        lurk_sqe_fixed(sqe, s->slot);
        s->cop = start_op(s, connect_done);
        lurk_op_arm(s->loop, s->cop, sqe, s->cdeadline);
        return;
    }
    connect_finish(s, s->last_err ? s->last_err : -LURK_EDNS_NOTFOUND);
}

static void ctimer_done(struct lurk_op *op, int res)
{
    struct lurk_tcp *s = op->arg;

    s->ctimer = NULL;
    if (res == -ETIME && s->query) {
        lurk_query_abandon(s->query);
        s->query = NULL;
        connect_finish(s, -ETIMEDOUT);
    }
    lurk_tcp_unref(s);
}

static void resolved(void *arg, int rc, struct lurk_addrs *addrs)
{
    struct lurk_tcp *s = arg;

    s->query = NULL;
    s->t_resolved = lurk_now_ns();
    if (s->ctimer)
        lurk_op_cancel(s->loop, s->ctimer);
    if (rc < 0) {
        connect_finish(s, rc);
        return;
    }
    s->addrs = addrs;
    s->next_addr = 0;
    try_next(s);
}

int lurk_tcp_connect(struct lurk_tcp *s, const char *host, int port, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    struct lurk_addrs *addrs;
    int rc;

    if (s->closing)
        return -LURK_ECLOSED;
    if (s->connected || s->ccb || s->fd >= 0)
        return -EISCONN;
    snprintf(s->name, sizeof s->name, strchr(host, ':') && host[0] != '[' ? "[%s]:%d" : "%s:%d",
             host, port);
    s->ccb = cb;
    s->carg = arg;
    s->cdeadline = deadline_ns;
    s->last_err = 0;
    s->addr[0] = '\0';
    s->t_start = s->t_resolved = lurk_now_ns();
    rc = lurk_addr_literal(host, port, &addrs);
    if (rc < 0) {
        s->ccb = NULL;
        return rc;
    }
    if (rc == 1) {
        s->addrs = addrs;
        s->next_addr = 0;
        try_next(s);
        return 0;
    }
    if (deadline_ns) {
        /* c-ares has no per-query deadline: a ring timer abandons it. */
        s->ctimer = lurk_op_new(s->loop, ctimer_done, s);
        s->refs++;
        lurk_op_timer(s->loop, s->ctimer, deadline_ns);
    }
    rc = lurk_resolve(s->resolver, host, port, resolved, s, &s->query);
    if (rc < 0) {
        s->ccb = NULL;
        if (s->ctimer)
            lurk_op_cancel(s->loop, s->ctimer);
        return rc;
    }
    return 0;
}

int lurk_tcp_adopt(struct lurk_tcp *s, int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int one = 1;

    if (s->closing || s->connected || s->fd >= 0)
        return -EISCONN;
    set_fd(s, fd);
    s->connected = true;
    s->stream.open = 1;
    /* Responses go out as soon as they are written, as requests do. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0) {
        char ip[64];
        int port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                  : ((struct sockaddr_in *)&sa)->sin_port);

        lurk_addr_str(&sa, ip, sizeof ip);
        snprintf(s->name, sizeof s->name, sa.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    }
    return 0;
}

static void read_done(struct lurk_op *op, int res)
{
    struct lurk_tcp *s = op->arg;
    lurk_done_cb *cb = s->rcb;

    s->rop = NULL;
    s->rcb = NULL;
    /* A read that did not fill its room emptied the socket: the next one
     * will wait for data (request, then response), so it polls first. */
    s->drained = res >= 0 && (size_t)res < s->rasked;
    if (res > 0)
        lurk_buf_commit(&s->rbuf, (size_t)res);
    else if (res == 0)
        s->stream.eof = 1;
    else if (s->closing)
        res = -LURK_ECLOSED;
    cb(s->rarg, res);
    op_ended(s);
}

/* 0 if s can start an operation, else why not. */
static int usable(const struct lurk_tcp *s)
{
    return s->closing ? -LURK_ECLOSED : !s->connected ? -ENOTCONN : 0;
}

/* ---- multishot receive ---- */

/* Beyond this much unread input the multishot receive stops (stop_mshot),
 * and the kernel's receive window holds the peer back, as with plain reads
 * (which take at most 64 KiB each). */
#define MSHOT_MAX_UNREAD (256u << 10)

static int start_read(struct lurk_tcp *s, size_t room, size_t max, int64_t deadline_ns,
                      lurk_done_cb *cb, void *arg);

static bool reader_waits(const struct lurk_tcp *s)
{
    return s->rop && (s->rop->flags & (LURK_OP_SOFT | LURK_OP_CANCELLED)) == LURK_OP_SOFT;
}

static void mshot_done(struct lurk_op *op, int res);

/*
 * Cancels the multishot receive for good: the socket's reads are plain
 * receives from then on, which take only what they ask for. It is stopped
 * when input piles up unread (a reader slower than its peer: a bulk
 * transfer, which plain receives into the read buffer suit better) and
 * before a TLS handshake. (Re-arming it after such a stop was tried: a
 * 12 MiB echo then stalled until its 30 s deadline in about half the runs
 * without skip-cqe, not root-caused; plain receives after the stop never
 * did in 30 runs.)
 */
static void stop_mshot(struct lurk_tcp *s)
{
    s->multishot = false;
    s->mstopped = true;
    lurk_op_cancel(s->loop, s->mop);
}

/* Arms the multishot receive; false if the ring has no provided buffers. */
static bool arm_mshot(struct lurk_tcp *s)
{
    struct io_uring_sqe *sqe;
    int group = lurk_loop_buf_group(s->loop);

    if (group < 0)
        return false;
    sqe = lurk_loop_sqe(s->loop);
    io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = (uint16_t)group;
    lurk_sqe_fixed(sqe, s->slot);
    s->mop = start_op(s, mshot_done);
    lurk_op_arm(s->loop, s->mop, sqe, 0);
    return true;
}

/* The soft read ended: by data or an end mshot_done handed it (res), its
 * deadline, or a cancel. INT_MIN: ended silently, the read goes on as a
 * plain receive (the kernel refused multishot). */
static void soft_read_done(struct lurk_op *op, int res)
{
    struct lurk_tcp *s = op->arg;
    lurk_done_cb *cb = s->rcb;

    s->rop = NULL;
    s->rcb = NULL;
    if (res == INT_MIN) {
        op_ended(s);
        return;
    }
    if (res == 0)
        s->stream.eof = 1;
    else if (res < 0 && s->closing)
        res = -LURK_ECLOSED;
    cb(s->rarg, res);
    op_ended(s);
}

/* Tells a waiting read about what came (res > 0 bytes appended, 0 the end,
 * < 0 an error), or keeps it for the next read. (A read never waits with
 * input unreported: tell_pending hands that over before it waits.) */
static void mshot_tell(struct lurk_tcp *s, int res)
{
    if (reader_waits(s)) {
        if (res > 0)
            s->unread = 0;
        lurk_op_finish(s->loop, s->rop, res);
    } else if (res <= 0) {
        s->mend = res;
    }
}

/* The read waiting on the multishot receive, if any, goes on as a plain
 * receive: its soft op ends silently and a plain one takes over. */
static void go_plain(struct lurk_tcp *s)
{
    lurk_done_cb *cb = s->rcb;
    void *arg = s->rarg;
    int64_t deadline;
    int rc;

    if (!reader_waits(s))
        return;
    deadline = (s->rop->flags & LURK_OP_DEADLINE) ? s->rop->deadline : 0;
    lurk_op_finish(s->loop, s->rop, INT_MIN);
    s->multishot = false;
    rc = start_read(s, READ_CHUNK, 0, deadline, cb, arg);
    if (rc < 0)
        cb(arg, rc);
}

static void mshot_done(struct lurk_op *op, int res)
{
    struct lurk_tcp *s = op->arg;
    unsigned flags = op->cqe_flags;

    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        int rc = lurk_buf_reserve(&s->rbuf, (size_t)res);

        if (rc == 0) {
            memcpy(lurk_buf_tail(&s->rbuf), lurk_loop_buf(s->loop, flags), (size_t)res);
            lurk_buf_commit(&s->rbuf, (size_t)res);
            s->unread += (size_t)res;
        }
        lurk_loop_buf_put(s->loop, flags);
        mshot_tell(s, rc < 0 ? rc : res);
        if (rc < 0 && (flags & IORING_CQE_F_MORE))
            stop_mshot(s);
        else if (s->unread > MSHOT_MAX_UNREAD && !s->mstopped && (flags & IORING_CQE_F_MORE)) {
            /* Nobody reads: stop taking more. The reads go on with plain
             * receives, which take only what they ask for: a reader
             * slower than its peer is a bulk transfer, which they suit. */
            stop_mshot(s);
        }
    } else if (res > 0) {
        res = -EIO;                   /* data without a buffer: never seen */
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    s->mop = NULL;
    if (res == -EINVAL && s->mend == 1 && !s->stream.eof) {
        /* A kernel without multishot receive: plain receives from now on. */
        lurk_loop_drop(s->loop, LURK_LOOP_RECV_MULTI);
        go_plain(s);
    } else if (res == -ECANCELED && s->mstopped && !s->closing) {
        go_plain(s);                  /* stopped: the read waiting goes on */
    } else if (res > 0 || res == -ENOBUFS) {
        /* Ended after data, or out of provided buffers: the read waiting,
         * if any, re-arms it (unless stopped meanwhile); otherwise the next
         * read does. */
        if (reader_waits(s) && !s->closing && (!s->multishot || !arm_mshot(s)))
            go_plain(s);
    } else {
        mshot_tell(s, res);           /* the end of the stream, or an error */
    }
    op_ended(s);
}

/* Reports what a multishot receive brought while no read waited (data,
 * then the end or an error), if anything: true if cb ran. Plain reads after
 * a stop report it too, before they ask the kernel for more. */
static bool tell_pending(struct lurk_tcp *s, lurk_done_cb *cb, void *arg)
{
    int res;

    if (s->unread > 0) {
        res = s->unread > INT32_MAX ? INT32_MAX : (int)s->unread;
        s->unread = 0;
    } else if (s->mend != 1) {
        res = s->mend;
        s->mend = 1;
        if (res == 0)
            s->stream.eof = 1;
    } else {
        return false;
    }
    cb(arg, res);
    return true;
}

static int mshot_read(struct lurk_tcp *s, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    if (!s->mop && !arm_mshot(s))
        return start_read(s, READ_CHUNK, 0, deadline_ns, cb, arg);   /* no buffers: plain */
    s->rcb = cb;
    s->rarg = arg;
    s->rop = start_op(s, soft_read_done);
    lurk_op_arm_soft(s->loop, s->rop, deadline_ns);
    return 0;
}

void lurk_tcp_multishot(struct lurk_tcp *s, bool on)
{
    if (on && s->mstopped)
        return;                       /* see stop_mshot */
    s->multishot = on;
    if (!on && s->mop)
        stop_mshot(s);
}

static int start_read(struct lurk_tcp *s, size_t room, size_t max, int64_t deadline_ns,
                      lurk_done_cb *cb, void *arg)
{
    struct io_uring_sqe *sqe;
    size_t len;
    int rc;

    if (usable(s))
        return usable(s);
    if (s->rop)
        return -EBUSY;
    if (s->stream.eof) {
        cb(arg, 0);
        return 0;
    }
    if (!max && tell_pending(s, cb, arg))
        return 0;
    if (!max && s->multishot && lurk_loop_has(s->loop, LURK_LOOP_RECV_MULTI))
        return mshot_read(s, deadline_ns, cb, arg);
    if (!max && room < READ_CHUNK)
        room = READ_CHUNK;
    rc = lurk_buf_reserve(&s->rbuf, max ? max : room);
    if (rc < 0)
        return rc;
    s->rcb = cb;
    s->rarg = arg;
    len = lurk_buf_room(&s->rbuf);
    if (max && len > max)
        len = max;
    sqe = lurk_loop_sqe(s->loop);
    io_uring_prep_recv(sqe, s->fd, lurk_buf_tail(&s->rbuf), len, 0);
    lurk_sqe_fixed(sqe, s->slot);
    if (s->drained)                   /* skip a recv attempt bound to find nothing */
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    s->rasked = len;
    s->rop = start_op(s, read_done);
    lurk_op_arm(s->loop, s->rop, sqe, deadline_ns);
    return 0;
}

int lurk_tcp_read(struct lurk_tcp *s, size_t room, int64_t deadline_ns,
                  lurk_done_cb *cb, void *arg)
{
    return start_read(s, room, 0, deadline_ns, cb, arg);
}

int lurk_tcp_read_max(struct lurk_tcp *s, size_t max, int64_t deadline_ns,
                      lurk_done_cb *cb, void *arg)
{
    return start_read(s, 0, max ? max : 1, deadline_ns, cb, arg);
}

/* recvmsg in the read slot or sendmsg in the write slot: one message, its
 * result handed on as it came. */
static void msg_done(struct lurk_op *op, int res)
{
    struct lurk_tcp *s = op->arg;
    bool reading = op == s->rop;
    lurk_done_cb *cb = reading ? s->rcb : s->wcb;
    void *arg = reading ? s->rarg : s->warg;

    if (reading) {
        s->rop = NULL;
        s->rcb = NULL;
    } else {
        s->wop = NULL;
        s->wcb = NULL;
    }
    if (res < 0 && s->closing)
        res = -LURK_ECLOSED;
    cb(arg, res);
    op_ended(s);
}

static int start_msg(struct lurk_tcp *s, bool reading, struct msghdr *msg, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    struct io_uring_sqe *sqe;
    struct lurk_op *op;

    if (usable(s))
        return usable(s);
    if (reading ? s->rop != NULL : s->wcb != NULL)
        return -EBUSY;
    sqe = lurk_loop_sqe(s->loop);
    op = start_op(s, msg_done);
    if (reading) {
        io_uring_prep_recvmsg(sqe, s->fd, msg, 0);
        s->rop = op;
        s->rcb = cb;
        s->rarg = arg;
    } else {
        io_uring_prep_sendmsg(sqe, s->fd, msg, MSG_NOSIGNAL);
        s->wop = op;
        s->wcb = cb;
        s->warg = arg;
    }
    lurk_sqe_fixed(sqe, s->slot);
    lurk_op_arm(s->loop, op, sqe, deadline_ns);
    return 0;
}

int lurk_tcp_recvmsg(struct lurk_tcp *s, struct msghdr *msg, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    return start_msg(s, true, msg, deadline_ns, cb, arg);
}

int lurk_tcp_sendmsg(struct lurk_tcp *s, struct msghdr *msg, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    return start_msg(s, false, msg, deadline_ns, cb, arg);
}

/* Splices from a pipe in the write slot, like sendmsg: one op, its result
 * handed on as it came (short splices are the caller's, net/sendfile.c). */
int lurk_tcp_splice(struct lurk_tcp *s, int pipe_fd, size_t len, int64_t deadline_ns,
                    lurk_done_cb *cb, void *arg)
{
    struct io_uring_sqe *sqe;

    if (usable(s))
        return usable(s);
    if (s->wcb)
        return -EBUSY;
    if (len > 1u << 30)
        len = 1u << 30;
    sqe = lurk_loop_sqe(s->loop);
    /* Offsets -1: neither a pipe nor a socket has one. */
    io_uring_prep_splice(sqe, pipe_fd, -1, s->fd, -1, (unsigned)len, SPLICE_F_MOVE);
    lurk_sqe_fixed(sqe, s->slot);     /* the output; the pipe stays a descriptor */
    s->wop = start_op(s, msg_done);
    s->wcb = cb;
    s->warg = arg;
    lurk_op_arm(s->loop, s->wop, sqe, deadline_ns);
    return 0;
}

struct lurk_buf *lurk_tcp_rbuf(struct lurk_tcp *s)
{
    return &s->rbuf;
}

static void send_more(struct lurk_tcp *s);

static void write_done(struct lurk_op *op, int res)
{
    struct lurk_tcp *s = op->arg;

    s->wop = NULL;
    if (s->wnowait) {
        s->wnowait = false;
        /* The socket was full: nothing or part went out. The rest waits
         * for room with an ordinary send. */
        if (!s->closing && (res == -EAGAIN || (res >= 0 && (size_t)res < s->wlen))) {
            if (res > 0)
                s->wdone += (size_t)res;
            send_more(s);
            op_ended(s);
            return;
        }
    }
    if (res > 0 && !s->closing) {
        s->wdone += (size_t)res;
        if (s->wdone < s->wlen) {
            send_more(s);             /* a short send: the rest goes next */
            op_ended(s);
            return;
        }
        res = (int)(s->wlen > INT32_MAX ? INT32_MAX : s->wlen);
    } else if (res == 0) {
        res = -EPIPE;
    } else if (s->closing) {
        res = -LURK_ECLOSED;
    }
    {
        lurk_done_cb *cb = s->wcb, *qcb = s->qcb;

        s->wcb = NULL;
        s->wptr = NULL;
        s->wbg = false;
        s->qcb = NULL;
        cb(s->warg, res);
        if (qcb) {                    /* the write queued behind a nowait one */
            int rc = res < 0 ? res : lurk_tcp_write(s, s->qptr, s->qlen, s->qdeadline, qcb, s->qarg);

            if (rc < 0)
                qcb(s->qarg, rc);
        }
    }
    op_ended(s);
}

static void send_more(struct lurk_tcp *s)
{
    struct io_uring_sqe *sqe = lurk_loop_sqe(s->loop);
    size_t n = s->wlen - s->wdone;

    if (n > 1u << 30)
        n = 1u << 30;
    io_uring_prep_send(sqe, s->fd, s->wptr + s->wdone, n, MSG_NOSIGNAL);
    lurk_sqe_fixed(sqe, s->slot);
    s->wop = start_op(s, write_done);
    lurk_op_arm(s->loop, s->wop, sqe, s->wdeadline);
}

/* The write slot for len bytes at p, nothing sent yet. */
static void take_write(struct lurk_tcp *s, const void *p, size_t len, int64_t deadline_ns,
                       lurk_done_cb *cb, void *arg)
{
    s->wptr = p;
    s->wlen = len;
    s->wdone = 0;
    s->wdeadline = deadline_ns;
    s->wcb = cb;
    s->warg = arg;
}

int lurk_tcp_write(struct lurk_tcp *s, const void *p, size_t len, int64_t deadline_ns,
                   lurk_done_cb *cb, void *arg)
{
    if (usable(s))
        return usable(s);
    if (s->wbg && !s->qcb) {
        /* Behind a nowait write, whose caller does not hold the slot. */
        s->qptr = p;
        s->qlen = len;
        s->qdeadline = deadline_ns;
        s->qcb = cb;
        s->qarg = arg;
        lurk_tcp_await(s);            /* its callback starts this write */
        return 0;
    }
    if (s->wcb)
        return -EBUSY;
    if (len == 0) {
        cb(arg, 0);
        return 0;
    }
    take_write(s, p, len, deadline_ns, cb, arg);
    send_more(s);
    return 0;
}

int lurk_tcp_write_nowait(struct lurk_tcp *s, const void *p, size_t len, int64_t deadline_ns,
                          lurk_done_cb *cb, void *arg)
{
    struct io_uring_sqe *sqe;

    if (usable(s))
        return usable(s);
    if (s->wcb)
        return -EBUSY;
    if (len == 0 || len > INT32_MAX)
        return lurk_tcp_write(s, p, len, deadline_ns, cb, arg);
    take_write(s, p, len, deadline_ns, cb, arg);
    s->wbg = true;
    s->wnowait = true;
    sqe = lurk_loop_sqe(s->loop);
    /* DONTWAIT: the kernel takes it all or fails (-EAGAIN, or the count
     * sent with WAITALL) inside the enter that submits it, never later. */
    io_uring_prep_send(sqe, s->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT | MSG_WAITALL);
    lurk_sqe_fixed(sqe, s->slot);
    s->wop = start_op(s, write_done);
    lurk_op_arm_nowait(s->loop, s->wop, sqe, (int)len);
    return 0;
}

void lurk_tcp_await(struct lurk_tcp *s)
{
    if (s->wop)
        lurk_op_await(s->loop, s->wop);
}

int lurk_tcp_writing(const struct lurk_tcp *s)
{
    return s->wcb != NULL;
}

void lurk_tcp_cancel(struct lurk_tcp *s, int which)
{
    if ((which & LURK_TCP_READ) && s->rop)
        lurk_op_cancel(s->loop, s->rop);
    /* A multishot receive outlives a cancelled read, until the close. */
    if ((which & LURK_TCP_READ) && s->closing && s->mop)
        lurk_op_cancel(s->loop, s->mop);
    /* A write queued behind a nowait one ends with it (-ECANCELED). */
    if ((which & LURK_TCP_WRITE) && s->wop)
        lurk_op_cancel(s->loop, s->wop);
    if (which & LURK_TCP_CONNECT) {
        if (s->cop)
            lurk_op_cancel(s->loop, s->cop);
        if (s->query) {
            int rc = s->closing ? -LURK_ECLOSED : -ECANCELED;

            lurk_query_abandon(s->query);
            s->query = NULL;
            if (s->ctimer)
                lurk_op_cancel(s->loop, s->ctimer);
            connect_finish(s, rc);
        }
    }
}

void lurk_tcp_close(struct lurk_tcp *s)
{
    if (s->closing)
        return;
    s->closing = true;
    s->stream.open = 0;
    lurk_tcp_cancel(s, LURK_TCP_READ | LURK_TCP_WRITE | LURK_TCP_CONNECT);
    if (s->mop && s->fd >= 0 && s->ops == 1 + (s->rop && (s->rop->flags & LURK_OP_SOFT))) {
        /* Only the multishot receive holds the socket: the kernel ends it
         * now, so the close is as prompt as with no read armed (the peer
         * sees it at once, not after this process's next turn). It writes
         * into the loop's buffers, never into rbuf. */
        lurk_loop_flush(s->loop);
        close_fd(s);
    }
    if (s->ops == 0 && s->fd >= 0)
        close_fd(s);
}

int lurk_tcp_is_open(const struct lurk_tcp *s)
{
    return s->connected && !s->closing;
}

int lurk_tcp_at_eof(const struct lurk_tcp *s)
{
    return s->stream.eof;
}

const char *lurk_tcp_name(const struct lurk_tcp *s)
{
    return s->name;
}

const char *lurk_tcp_addr(const struct lurk_tcp *s)
{
    return s->addr;
}

int lurk_tcp_fd(const struct lurk_tcp *s)
{
    return s->fd;
}

/* ---- the stream view ---- */

static int st_read(struct lurk_stream *st, size_t room, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    return lurk_tcp_read((struct lurk_tcp *)st, room, deadline_ns, cb, arg);
}

static int st_write(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns,
                    lurk_done_cb *cb, void *arg)
{
    return lurk_tcp_write((struct lurk_tcp *)st, p, len, deadline_ns, cb, arg);
}

static void st_cancel(struct lurk_stream *st, int which)
{
    lurk_tcp_cancel((struct lurk_tcp *)st, which);
}

static void st_close(struct lurk_stream *st)
{
    lurk_tcp_close((struct lurk_tcp *)st);
}

static const struct lurk_stream_ops tcp_stream_ops = { st_read, st_write, st_cancel, st_close, NULL };

struct lurk_stream *lurk_tcp_stream(struct lurk_tcp *s)
{
    return &s->stream;
}

struct lurk_loop *lurk_tcp_loop(struct lurk_tcp *s)
{
    return s->loop;
}

void lurk_tcp_timings(const struct lurk_tcp *s, double *dns, double *connect)
{
    *dns = s->t_resolved > s->t_start ? (s->t_resolved - s->t_start) / 1e9 : 0;
    *connect = s->t_connected > s->t_resolved ? (s->t_connected - s->t_resolved) / 1e9 : 0;
}
