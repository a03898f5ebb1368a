/*
 * loop.c - the ring, the op pool and completion dispatch.
 *
 * A turn has two phases, like liburing's echo-server example: one
 * io_uring_enter that submits everything queued since the last turn and
 * (optionally) waits, then a pass over the CQ ring that runs each op's
 * callback. Callbacks may queue new SQEs; those go out with the next turn.
 *
 * Op records come from a free list refilled in slabs, so steady-state I/O does
 * no heap allocation. Slabs are freed only with the loop.
 *
 * Ring setup prefers SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1): completions
 * are then posted only when we ask for them, in our own thread, which avoids
 * task-work interrupts while Lua runs. It falls back to COOP_TASKRUN (5.19),
 * then to no flags (5.1+).
 */
#include "core/loop.h"
#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLAB_OPS 256

struct slab {
    struct slab *next;
    struct lurk_op ops[SLAB_OPS];
};

struct lurk_loop {
    struct io_uring ring;
    const char *features;
    bool defer_taskrun;
    unsigned in_flight;
    struct lurk_op *free_ops;
    struct slab *slabs;
    struct lurk_loop_stats stats;
};

int64_t lurk_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int setup_ring(struct lurk_loop *l, unsigned entries)
{
    static const struct { unsigned flags; const char *name; } tries[] = {
        /* 6.1+: completions run only when we enter with GETEVENTS. */
        { IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
          "single-issuer+defer-taskrun" },
        /* 5.19+: task work does not interrupt us with IPIs. */
        { IORING_SETUP_COOP_TASKRUN, "coop-taskrun" },
        { 0, "basic" },
    };
    int rc = -EINVAL;

    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p;

        memset(&p, 0, sizeof p);
        /* A CQ twice the SQ: bursts of completions rarely overflow. */
        p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 2;
        rc = io_uring_queue_init_params(entries, &l->ring, &p);
        if (rc == 0) {
            l->features = tries[i].name;
            l->defer_taskrun = tries[i].flags & IORING_SETUP_DEFER_TASKRUN;
            return 0;
        }
        /* Only an unknown flag is worth a retry with fewer flags. */
        if (rc != -EINVAL)
            return rc;
    }
    return rc;
}

int lurk_loop_new(struct lurk_loop **out, unsigned entries)
{
    struct lurk_loop *l = calloc(1, sizeof *l);
    int rc;

    *out = NULL;
    if (!l)
        return -ENOMEM;
    rc = setup_ring(l, entries);
    if (rc < 0) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

const char *lurk_loop_explain(int rc)
{
    switch (-rc) {
    case ENOSYS:
        return "this kernel was built without io_uring (CONFIG_IO_URING); lurk needs Linux 5.19 or later with io_uring";
    case EPERM:
    case EACCES:
        return "io_uring is disabled for this process: check `sysctl kernel.io_uring_disabled` (0 enables it for everyone, 1 only for the io_uring_group) or the container's seccomp profile, which must allow io_uring_setup, io_uring_enter and io_uring_register";
    case ENOMEM:
        return "the kernel could not allocate the ring: raise the locked-memory limit (ulimit -l) or free memory";
    case EMFILE:
    case ENFILE:
        return "out of file descriptors";
    default:
        return "io_uring_setup failed";
    }
}

const char *lurk_loop_features(const struct lurk_loop *l)
{
    return l->features;
}

int lurk_loop_fd(const struct lurk_loop *l)
{
    return l->ring.ring_fd;
}

unsigned lurk_loop_in_flight(const struct lurk_loop *l)
{
    return l->in_flight;
}

void lurk_loop_stats(const struct lurk_loop *l, struct lurk_loop_stats *st)
{
    *st = l->stats;
}

struct lurk_op *lurk_op_new(struct lurk_loop *l, lurk_op_cb *cb, void *arg)
{
    struct lurk_op *op = l->free_ops;

    if (!op) {
        struct slab *s = malloc(sizeof *s);

        if (!s)
            lurk_panic("out of memory for op records");
        s->next = l->slabs;
        l->slabs = s;
        for (int i = SLAB_OPS - 1; i >= 0; i--) {
            s->ops[i].next_free = op;
            op = &s->ops[i];
        }
    }
    l->free_ops = op->next_free;
    op->cb = cb;
    op->arg = arg;
    op->flags = 0;
    op->next_free = NULL;
    return op;
}

static void put_op(struct lurk_loop *l, struct lurk_op *op)
{
    op->cb = NULL;
    op->next_free = l->free_ops;
    l->free_ops = op;
}

struct io_uring_sqe *lurk_loop_sqe(struct lurk_loop *l, unsigned n)
{
    struct io_uring_sqe *sqe;

    if (io_uring_sq_space_left(&l->ring) < n) {
        /* Full SQ ring: hand the batch to the kernel now, without waiting. */
        l->stats.enters++;
        io_uring_submit(&l->ring);
    }
    sqe = io_uring_get_sqe(&l->ring);
    if (!sqe)
        lurk_panic("no SQE after submitting");
    return sqe;
}

static void to_timespec(struct __kernel_timespec *ts, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

void lurk_op_arm(struct lurk_loop *l, struct lurk_op *op, struct io_uring_sqe *sqe,
                 int64_t deadline_ns)
{
    io_uring_sqe_set_data(sqe, op);
    l->in_flight++;
    l->stats.ops++;
    if (deadline_ns > 0) {
        struct io_uring_sqe *t;

        /* The timeout SQE must directly follow its op: lurk_loop_sqe(l, 2)
         * reserved the slot. The kernel copies ts when it prepares the
         * timeout, and op (which holds ts) lives until its CQE anyway. */
        op->flags |= LURK_OP_DEADLINE;
        io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
        to_timespec(&op->ts, deadline_ns);
        t = io_uring_get_sqe(&l->ring);
        if (!t)
            lurk_panic("linked timeout without a reserved SQE");
        io_uring_prep_link_timeout(t, &op->ts, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(t, 0);
    }
}

void lurk_op_timer(struct lurk_loop *l, struct lurk_op *op, int64_t deadline_ns)
{
    struct io_uring_sqe *sqe = lurk_loop_sqe(l, 1);

    to_timespec(&op->ts, deadline_ns);
    io_uring_prep_timeout(sqe, &op->ts, 0, IORING_TIMEOUT_ABS);
    lurk_op_arm(l, op, sqe, 0);
}

void lurk_op_cancel(struct lurk_loop *l, struct lurk_op *op)
{
    struct io_uring_sqe *sqe;

    if (op->flags & LURK_OP_CANCELLED)
        return;
    op->flags |= LURK_OP_CANCELLED;
    sqe = lurk_loop_sqe(l, 1);
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data64(sqe, 0);
}

static void dispatch(struct lurk_loop *l, struct io_uring_cqe *cqe)
{
    struct lurk_op *op = io_uring_cqe_get_data(cqe);
    int res = cqe->res;

    if (!op)
        return;                       /* a linked timeout or a cancel request */
    /* A linked timeout cancels its op; only we know whether the user did. */
    if (res == -ECANCELED && (op->flags & LURK_OP_DEADLINE) &&
        !(op->flags & LURK_OP_CANCELLED))
        res = -ETIMEDOUT;
    l->in_flight--;
    op->cb(op, res);
    put_op(l, op);
}

/* Runs the callbacks of every completion in the CQ ring, in one batch. */
static unsigned reap(struct lurk_loop *l)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;

    io_uring_for_each_cqe(&l->ring, head, cqe) {
        dispatch(l, cqe);
        n++;
    }
    io_uring_cq_advance(&l->ring, n);
    l->stats.cqes += n;
    return n;
}

int lurk_loop_turn(struct lurk_loop *l, bool wait)
{
    unsigned n;
    int rc = 0;

    if (wait) {
        l->stats.enters++;
        rc = io_uring_submit_and_wait(&l->ring, 1);
    } else if (io_uring_sq_ready(&l->ring) || l->defer_taskrun || !io_uring_cq_ready(&l->ring)) {
        /* With DEFER_TASKRUN, completions are posted only inside an enter
         * with GETEVENTS, so a non-blocking turn still asks for them. */
        l->stats.enters++;
        rc = io_uring_submit_and_get_events(&l->ring);
    }
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    n = reap(l);
    if (n == 0 && rc == -EINTR)
        return -EINTR;
    return (int)n;
}

int lurk_loop_drain(struct lurk_loop *l)
{
    int64_t give_up = lurk_now_ns() + 5 * (int64_t)1000000000;

    while (l->in_flight > 0) {
        struct io_uring_sqe *sqe = lurk_loop_sqe(l, 1);
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000 };
        struct io_uring_cqe *cqe;
        int rc;

        if (lurk_now_ns() > give_up)
            return -ETIMEDOUT;
        /* Cancel all, every turn: a callback may have started a new op.
         * (IORING_ASYNC_CANCEL_ANY: Linux 5.19.) Wait at most 100 ms a turn,
         * so an op the kernel will not cancel cannot hang us. */
        io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, 0);
        l->stats.enters++;
        rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            return rc;
        reap(l);
    }
    return 0;
}

void lurk_loop_free(struct lurk_loop *l)
{
    if (!l)
        return;
    if (lurk_loop_drain(l) < 0) {
        /* The kernel may still write into op records and buffers: leak them
         * rather than free memory it owns. The ring's teardown reaps the ops. */
        fprintf(stderr, "lurk: %u io_uring operation(s) did not complete after "
                "cancellation; leaking their memory\n", l->in_flight);
        io_uring_queue_exit(&l->ring);
        return;
    }
    io_uring_queue_exit(&l->ring);
    while (l->slabs) {
        struct slab *s = l->slabs;

        l->slabs = s->next;
        free(s);
    }
    free(l);
}
