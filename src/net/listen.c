/*
 * listen.c - listening sockets and multishot accept.
 *
 * One IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT (Linux 5.19) stays in
 * flight for the listener's life and posts a CQE per connection, so an
 * accept costs no submission. On older kernels the op fails with -EINVAL at
 * once and the listener falls back to one single-shot accept at a time,
 * re-armed after each connection.
 *
 * Accepted descriptors go to the waiter or into a bounded queue (listen.h).
 * No peer address is asked of the kernel: one shared sockaddr buffer for a
 * multishot op would be overwritten by the next connection, so the caller
 * uses getpeername() when it wants the address.
 *
 * Lifetime: a reference for the creator and one while the accept op or the
 * waiter's timer is in flight; the listening descriptor is closed once the
 * accept op has ended after lurk_listener_close().
 */
#include "net/listen.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/dns.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct lurk_listener {
    struct lurk_loop *loop;
    int refs;
    int fd, port;
    bool closing, single_shot;
    struct lurk_op *aop;              /* the accept op, while in flight */
    int queue[LURK_LISTEN_QUEUE];     /* accepted, not yet taken: a ring of fds */
    int qhead, qlen;

    lurk_done_cb *wcb;                /* the waiter */
    void *warg;
    struct lurk_op *wtimer;           /* its deadline */
};

void lurk_listener_ref(struct lurk_listener *ln)
{
    ln->refs++;
}

void lurk_listener_unref(struct lurk_listener *ln)
{
    if (--ln->refs > 0)
        return;
    if (ln->fd >= 0)
        close(ln->fd);
    while (ln->qlen > 0) {
        close(ln->queue[ln->qhead]);
        ln->qhead = (ln->qhead + 1) % LURK_LISTEN_QUEUE;
        ln->qlen--;
    }
    free(ln);
}

static void arm_accept(struct lurk_listener *ln);

/* Gives the waiter its result, ending its timer. */
static void wake(struct lurk_listener *ln, int res)
{
    lurk_done_cb *cb = ln->wcb;

    ln->wcb = NULL;
    if (ln->wtimer) {
        lurk_op_cancel(ln->loop, ln->wtimer);
        ln->wtimer = NULL;            /* its completion no longer concerns a waiter */
    }
    cb(ln->warg, res);
}

static void accept_done(struct lurk_op *op, int res)
{
    struct lurk_listener *ln = op->arg;
    bool more = op->cqe_flags & IORING_CQE_F_MORE;

    if (!more)
        ln->aop = NULL;
    if (res >= 0) {
        if (ln->closing) {
            close(res);
        } else if (ln->wcb) {
            wake(ln, res);
        } else {
            ln->queue[(ln->qhead + ln->qlen) % LURK_LISTEN_QUEUE] = res;
            /* Full: stop accepting; the backlog holds the rest until the
             * queue drains (lurk_listener_accept re-arms). */
            if (++ln->qlen == LURK_LISTEN_QUEUE && more)
                lurk_op_cancel(ln->loop, op);
        }
    } else if (res == -EINVAL && !ln->single_shot && !ln->closing) {
        ln->single_shot = true;       /* no multishot accept before 5.19 */
    } else if (res != -ECANCELED && !ln->closing && ln->wcb) {
        wake(ln, res);                /* EMFILE, ENFILE, ...: the waiter hears of it */
    }
    if (more)
        return;
    /* Re-armed after a connection (single-shot) or the fallback; after an
     * error or a cancellation (queue full, loop shutdown) the next
     * lurk_listener_accept() re-arms. */
    if (!ln->closing && ln->qlen < LURK_LISTEN_QUEUE && (res >= 0 || res == -EINVAL))
        arm_accept(ln);
    else if (ln->closing && ln->fd >= 0) {
        close(ln->fd);
        ln->fd = -1;
    }
    lurk_listener_unref(ln);
}

static void arm_accept(struct lurk_listener *ln)
{
    struct io_uring_sqe *sqe = lurk_loop_sqe(ln->loop);

    if (ln->single_shot)
        io_uring_prep_accept(sqe, ln->fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_multishot_accept(sqe, ln->fd, NULL, NULL, SOCK_CLOEXEC);
    ln->aop = lurk_op_new(ln->loop, accept_done, ln);
    ln->refs++;
    lurk_op_arm(ln->loop, ln->aop, sqe, 0);
}

int lurk_listener_new(struct lurk_listener **out, struct lurk_loop *l, const char *host, int port,
                      int backlog)
{
    struct lurk_listener *ln;
    struct lurk_addrs *addrs = NULL;
    struct sockaddr_storage sa;
    socklen_t salen;
    int one = 1, fd, rc;

    *out = NULL;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (lurk_addr_literal(host, port, &addrs) != 1)
        return -EINVAL;
    sa = addrs->addr[0];
    free(addrs);
    salen = sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -errno;
    /* A restarted server rebinds at once, past the old one's TIME_WAITs. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, salen) < 0 ||
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    ln = calloc(1, sizeof *ln);
    if (!ln) {
        close(fd);
        return -ENOMEM;
    }
    ln->loop = l;
    ln->refs = 1;
    ln->fd = fd;
    ln->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                              : ((struct sockaddr_in *)&sa)->sin_port);
    arm_accept(ln);
    *out = ln;
    return 0;
}

int lurk_listener_port(const struct lurk_listener *ln)
{
    return ln->port;
}

int lurk_listener_queued(const struct lurk_listener *ln)
{
    return ln->qlen;
}

static void wtimer_done(struct lurk_op *op, int res)
{
    struct lurk_listener *ln = op->arg;

    if (ln->wtimer == op) {
        ln->wtimer = NULL;
        if (res == -ETIME && ln->wcb)
            wake(ln, -ETIMEDOUT);
    }
    lurk_listener_unref(ln);
}

int lurk_listener_accept(struct lurk_listener *ln, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    if (ln->closing)
        return -LURK_ECLOSED;
    if (ln->wcb)
        return -EBUSY;
    if (ln->qlen > 0) {
        int fd = ln->queue[ln->qhead];

        ln->qhead = (ln->qhead + 1) % LURK_LISTEN_QUEUE;
        ln->qlen--;
        if (!ln->aop)
            arm_accept(ln);           /* stopped while the queue was full */
        cb(arg, fd);
        return 0;
    }
    ln->wcb = cb;
    ln->warg = arg;
    if (!ln->aop)
        arm_accept(ln);               /* stopped by an error: try again */
    if (deadline_ns > 0) {
        ln->wtimer = lurk_op_new(ln->loop, wtimer_done, ln);
        ln->refs++;
        lurk_op_timer(ln->loop, ln->wtimer, deadline_ns);
    }
    return 0;
}

void lurk_listener_cancel(struct lurk_listener *ln)
{
    if (ln->wcb)
        wake(ln, -ECANCELED);
}

void lurk_listener_close(struct lurk_listener *ln)
{
    if (ln->closing)
        return;
    ln->closing = true;
    while (ln->qlen > 0) {
        close(ln->queue[ln->qhead]);
        ln->qhead = (ln->qhead + 1) % LURK_LISTEN_QUEUE;
        ln->qlen--;
    }
    if (ln->aop) {
        lurk_op_cancel(ln->loop, ln->aop);
    } else if (ln->fd >= 0) {
        close(ln->fd);
        ln->fd = -1;
    }
    if (ln->wcb)
        wake(ln, -LURK_ECLOSED);
}
