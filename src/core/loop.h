/*
 * loop.h - the io_uring loop: one ring per runtime, one runtime per thread.
 *
 * Every SQE lurk submits carries a struct lurk_op in user_data (or 0 for
 * completions nobody waits for, such as cancel requests).
 * An op's callback runs exactly once, when its CQE is reaped, including after
 * cancellation and at loop shutdown; the op goes back to the pool right after.
 * Whatever the SQE points to (buffers, sockaddrs, msghdrs) must stay allocated
 * and unmoved until that callback has run.
 *
 * Submission is batched: SQEs prepared during a turn reach the kernel with one
 * io_uring_enter at the start of the next turn (or earlier only if the SQ ring
 * fills up).
 */
#ifndef LURK_CORE_LOOP_H
#define LURK_CORE_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct lurk_loop;
struct lurk_op;

/* Runs once per op with the CQE's result (res < 0 is -errno); for a
 * multishot op, once per CQE, with IORING_CQE_F_MORE in op->cqe_flags on
 * every CQE but the last (the op stays in flight until then). */
typedef void lurk_op_cb(struct lurk_op *op, int res);

struct lurk_op {
    lurk_op_cb *cb;
    void *arg;
    struct lurk_op *next_free;
    unsigned flags;                   /* LURK_OP_* */
    int fault;                        /* LURK_FAULT: the -errno to report, or 0 */
    unsigned heap_at;                 /* 1 + index in the deadline heap; 0: not there */
    int64_t deadline;                 /* absolute, lurk_now_ns() time base */
    struct __kernel_timespec ts;      /* a timer's time */
    unsigned cqe_flags;               /* the CQE's flags, set before cb runs */
    int res;                          /* a nowait op: its result (see lurk_op_arm_nowait) */
    uint16_t gen;                     /* uses of this record so far, in user_data */
};

enum {
    LURK_OP_CANCELLED = 1u << 0,      /* lurk_op_cancel() was asked for */
    LURK_OP_DEADLINE = 1u << 1,       /* armed with a deadline */
    LURK_OP_EXPIRED = 1u << 2,        /* its deadline passed: cancelled by the loop */
    LURK_OP_NOWAIT = 1u << 3,         /* armed by lurk_op_arm_nowait() */
    LURK_OP_CQE = 1u << 4,            /* a nowait op whose CQE came */
    LURK_OP_AWAITED = 1u << 5,        /* a nowait op someone waits behind */
    LURK_OP_TOLD = 1u << 6,           /* a nowait op whose callback has run */
    LURK_OP_SOFT = 1u << 7,           /* armed by lurk_op_arm_soft(): no SQE */
};

/*
 * Ring features chosen at creation (lurk_loop_has()). Each is detected, has
 * a fallback, and can be forced off for tests with LURK_URING_OFF, a comma
 * list of the names below ("all" for every one), read by lurk_loop_new().
 */
enum {
    LURK_LOOP_RING_FD = 1u << 0,      /* "ring-fd": io_uring_register_ring_fd */
    LURK_LOOP_SKIP_CQE = 1u << 1,     /* "skip-cqe": IOSQE_CQE_SKIP_SUCCESS on nowait sends */
    LURK_LOOP_MIN_WAIT = 1u << 2,     /* "min-wait": batched waits (6.12+) */
    LURK_LOOP_FIXED_FILES = 1u << 3,  /* "fixed-files": sockets in the ring's file table */
    LURK_LOOP_RECV_MULTI = 1u << 4,   /* "recv-multishot": multishot receives into
                                         provided buffers (6.0+) */
};

/* Monotonic clock in nanoseconds, the time base of every deadline. */
int64_t lurk_now_ns(void);

/*
 * Creates a loop with a ring of `entries` SQEs. Returns 0, or -errno when
 * io_uring cannot be set up (see lurk_loop_explain() for what to tell users).
 * Reads the test-only LURK_FAULT switch (fault injection, see loop.c).
 */
int lurk_loop_new(struct lurk_loop **out, unsigned entries);

/*
 * Cancels every op in flight and reaps completions until none is left, so
 * every callback has run (callbacks that start new ops see those cancelled
 * too). Returns 0, or -ETIMEDOUT if ops are still in flight after 5 seconds
 * (the kernel would not cancel them): their memory must then not be freed.
 */
int lurk_loop_drain(struct lurk_loop *l);

/*
 * Drains the loop (see lurk_loop_drain), then frees it. NULL is a no-op.
 * Owners of ops must tolerate their callbacks running from here.
 */
void lurk_loop_free(struct lurk_loop *l);

/*
 * Objects that hold descriptors in the ring's file table (net/tcp.c) hold
 * a reference on the loop, so they may outlive lurk_loop_free(): the ring
 * goes then, the loop's record with the last reference.
 */
void lurk_loop_ref(struct lurk_loop *l);
void lurk_loop_unref(struct lurk_loop *l);

/* A sentence for users when lurk_loop_new() failed with rc. */
const char *lurk_loop_explain(int rc);

/* Which ring setup was chosen, e.g. "single-issuer+defer-taskrun", followed
 * by the LURK_LOOP_* features in use: "..., ring-fd, skip-cqe, min-wait". */
const char *lurk_loop_features(const struct lurk_loop *l);

/* Whether the LURK_LOOP_* feature f is in use. */
bool lurk_loop_has(const struct lurk_loop *l, unsigned f);

/* A descriptor for hosts to poll: readable when completions are waiting
 * (an eventfd registered with the ring, set up at the first call). */
int lurk_loop_fd(struct lurk_loop *l);

/*
 * The ring's file table ("fixed-files", 5.19+): an op on a descriptor in the
 * table (lurk_sqe_fixed) skips the kernel's per-op lookup and reference
 * count of the file. The descriptor stays the caller's too (setsockopt,
 * kernel TLS and poll(2) need it). lurk_loop_file_add() returns the slot, or
 * -1 when the feature is off or the table full (the caller goes on with the
 * plain descriptor). The table holds the file open: lurk_loop_file_remove()
 * empties the slot at once (one io_uring_register), and the caller closes
 * the descriptor after it.
 */
int lurk_loop_file_add(struct lurk_loop *l, int fd);
void lurk_loop_file_remove(struct lurk_loop *l, int slot);

/* Points a prepared SQE at slot instead of its descriptor; -1: no-op. */
static inline void lurk_sqe_fixed(struct io_uring_sqe *sqe, int slot)
{
    if (slot >= 0) {
        sqe->fd = slot;
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

/*
 * Provided buffers for multishot receives ("recv-multishot"): a ring of
 * LURK_LOOP_BUF_SIZE-byte buffers that the kernel fills as data arrives on
 * any socket with a multishot receive armed, so a connection holds no
 * buffer while it waits and needs no new SQE per read. lurk_loop_buf_group()
 * sets the ring up at its first call and returns its group id for
 * sqe->buf_group, or -1 when the feature is off (or the kernel refused the
 * ring: the feature is off from then on). A CQE with IORING_CQE_F_BUFFER
 * names its buffer in its flags: lurk_loop_buf() is its data, and
 * lurk_loop_buf_put() gives it back once copied out.
 */
#define LURK_LOOP_BUF_SIZE (16 * 1024)
int lurk_loop_buf_group(struct lurk_loop *l);
const void *lurk_loop_buf(const struct lurk_loop *l, unsigned cqe_flags);
void lurk_loop_buf_put(struct lurk_loop *l, unsigned cqe_flags);

/* Turns the LURK_LOOP_* feature f off (a kernel that refused it at use). */
void lurk_loop_drop(struct lurk_loop *l, unsigned f);

/* Ops in flight (submitted or queued, callback not yet run), not counting
 * the loop's own deadline timer. */
unsigned lurk_loop_in_flight(const struct lurk_loop *l);

/* Statistics: io_uring_enter calls, CQEs reaped and ops armed since
 * creation, and faults injected by LURK_FAULT (errors reported plus requests
 * shortened; see loop.c). */
struct lurk_loop_stats {
    uint64_t enters;
    uint64_t cqes;
    uint64_t ops;
    uint64_t faults;
    unsigned files;                   /* descriptors in the file table now */
};
void lurk_loop_stats(const struct lurk_loop *l, struct lurk_loop_stats *st);

/* Takes an op from the pool (never fails: aborts only when out of memory). */
struct lurk_op *lurk_op_new(struct lurk_loop *l, lurk_op_cb *cb, void *arg);

/*
 * Returns an SQE, submitting the queued ones first if the SQ ring is full.
 * The caller prepares it with io_uring_prep_*() and then calls lurk_op_arm().
 * (Deadlines live in the loop's heap, not in linked timeout SQEs.)
 */
struct io_uring_sqe *lurk_loop_sqe(struct lurk_loop *l);

/*
 * Binds a prepared SQE to op. With deadline_ns > 0 (absolute, lurk_now_ns()
 * time base) the op joins the loop's deadline heap: one ring timer, set for
 * the soonest deadline, cancels the ops whose time has come (a kernel timer
 * per op would cost more than the ops themselves). The loop reports an op
 * its deadline cut short as -ETIMEDOUT, one cut short by lurk_op_cancel() as
 * -ECANCELED.
 */
void lurk_op_arm(struct lurk_loop *l, struct lurk_op *op, struct io_uring_sqe *sqe,
                 int64_t deadline_ns);

/*
 * Binds a prepared SQE that finishes within the io_uring_enter submitting it
 * (a send with MSG_DONTWAIT: it fails with -EAGAIN, or sends less, rather
 * than wait) and whose success nobody needs to wait for. A turn does not
 * wait for it, and with LURK_LOOP_SKIP_CQE its success posts no CQE, so a
 * send and the receive armed after it share one io_uring_enter (without
 * skip-cqe its CQE ends that enter's wait, and the receive takes another).
 * A result other than ok_res (an error, or for a send less than asked)
 * posts a CQE and reaches the callback as soon as it is reaped, before the
 * completions behind it (a receive it preceded); ok_res reaches it right
 * after the turn that submitted the op has reaped its completions. No
 * deadline: it cannot last.
 */
void lurk_op_arm_nowait(struct lurk_loop *l, struct lurk_op *op, struct io_uring_sqe *sqe,
                        int ok_res);

/*
 * Says that something waits for a nowait op's callback (a write queued
 * behind it): the turn that submits it then returns as soon as it is over,
 * rather than waiting for another completion too.
 */
void lurk_op_await(struct lurk_loop *l, struct lurk_op *op);

/*
 * Arms op with no SQE of its own: a wait for what another op brings (data a
 * multishot receive delivers). It counts as in flight and keeps its
 * deadline in the heap like any op. It ends exactly once: by
 * lurk_op_finish(), which runs its callback at once with res; by its
 * deadline (-ETIMEDOUT); or by lurk_op_cancel() (-ECANCELED, from the next
 * turn, which then does not block). Whoever arms one must finish it when
 * what it waits for can no longer come (lurk_loop_drain() cannot cancel it
 * in the kernel).
 */
void lurk_op_arm_soft(struct lurk_loop *l, struct lurk_op *op, int64_t deadline_ns);
void lurk_op_finish(struct lurk_loop *l, struct lurk_op *op, int res);

/* Arms op as a timer firing at deadline_ns; its callback sees -ETIME then. */
void lurk_op_timer(struct lurk_loop *l, struct lurk_op *op, int64_t deadline_ns);

/*
 * Asks the kernel to cancel an op that is in flight. The op still completes,
 * usually with -ECANCELED (or with its result if it won the race); only its
 * callback may release what it holds.
 */
void lurk_op_cancel(struct lurk_loop *l, struct lurk_op *op);

/*
 * One turn: submits what is queued and reaps completions, running their
 * callbacks. With wait, blocks until at least one completion arrives (or
 * until a signal: returns -EINTR). Returns the number of completions reaped
 * or a negative code.
 */
int lurk_loop_turn(struct lurk_loop *l, bool wait);

/* Submits queued operations without waiting or reaping: before a host polls
 * the ring's descriptor, everything started must be in the kernel. What
 * they end at once (a cancelled receive) has ended when this returns; its
 * callback runs at the next turn. */
void lurk_loop_flush(struct lurk_loop *l);

/* Operations queued but not yet submitted. */
unsigned lurk_loop_unsubmitted(const struct lurk_loop *l);

#endif
