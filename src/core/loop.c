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
 *
 * Fault injection (tests only) hooks in at the two places every op passes
 * through, lurk_op_arm() and dispatch(); the LURK_FAULT switch itself is
 * core/fault.c's.
 */
#include "core/loop.h"
#include "core/error.h"
#include "core/fault.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLAB_OPS 256
#define BUF_COUNT 64                  /* provided buffers: 1 MiB, resident once used */
#define BUF_GROUP 0

struct slab {
    struct slab *next;
    struct lurk_op ops[SLAB_OPS];
};

struct lurk_loop {
    struct io_uring ring;
    const char *setup;                /* the setup flags chosen, in words */
    char features[128];               /* setup and LURK_LOOP_* features, in words */
    unsigned feat;                    /* LURK_LOOP_* in use */
    bool defer_taskrun;
    unsigned in_flight;
    /* Nowait ops (lurk_op_arm_nowait), oldest first, linked by next_free:
     * counted in in_flight until their callback has run. */
    struct lurk_op *nw_head, *nw_tail;
    unsigned nowait;
    unsigned nw_awaited;              /* nowait ops with LURK_OP_AWAITED */
    struct lurk_op *free_ops;
    struct slab *slabs;
    struct lurk_faults *faults;       /* LURK_FAULT, parsed; NULL: none (the norm) */
    struct lurk_loop_stats stats;
    int evfd;                         /* for hosts that poll us; -1 until asked */

    /* Deadlines: a binary min-heap of ops by deadline, and the ring timer
     * set for the soonest (older timers may still be pending: harmless). */
    struct lurk_op **heap;
    unsigned heap_len, heap_cap;
    struct lurk_op *dtimer;           /* the timer for dtimer_at, or NULL */
    int64_t dtimer_at;
    unsigned dtimers;                 /* deadline timers in flight */

    int refs;                         /* lurk_loop_new's, and lurk_loop_ref's */
    bool gone;                        /* lurk_loop_free() ran: no ring */

    /* Soft ops cancelled, whose callbacks the next turn runs (-ECANCELED),
     * linked by next_free. */
    struct lurk_op *soft_head, *soft_tail;

    /* Provided buffers (LURK_LOOP_RECV_MULTI), set up at first use. */
    struct io_uring_buf_ring *br;
    char *bufs;

    /* The file table's free slots, a stack (LURK_LOOP_FIXED_FILES). */
    int *slots;
    unsigned nslots, nfree;
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
            l->setup = tries[i].name;
            l->defer_taskrun = tries[i].flags & IORING_SETUP_DEFER_TASKRUN;
            if (p.features & IORING_FEAT_MIN_TIMEOUT)
                l->feat |= LURK_LOOP_MIN_WAIT;
            if (p.features & IORING_FEAT_CQE_SKIP)
                l->feat |= LURK_LOOP_SKIP_CQE;
            return 0;
        }
        /* Only an unknown flag is worth a retry with fewer flags. */
        if (rc != -EINVAL)
            return rc;
    }
    return rc;
}

static const struct { unsigned f; const char *name; } feature_names[] = {
    { LURK_LOOP_RING_FD, "ring-fd" },
    { LURK_LOOP_SKIP_CQE, "skip-cqe" },
    { LURK_LOOP_MIN_WAIT, "min-wait" },
    { LURK_LOOP_FIXED_FILES, "fixed-files" },
    { LURK_LOOP_RECV_MULTI, "recv-multishot" },
};

/* LURK_URING_OFF="ring-fd,skip-cqe" | "all": the features a test forces off,
 * to run the fallbacks on a kernel that has them all. */
static unsigned forced_off(void)
{
    const char *v = getenv("LURK_URING_OFF");
    unsigned off = 0;

    if (!v || !*v)
        return 0;
    if (strcmp(v, "all") == 0)
        return ~0u;
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++) {
        const char *p = v;
        size_t n = strlen(feature_names[i].name);

        while ((p = strstr(p, feature_names[i].name)) != NULL) {
            if ((p == v || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
                off |= feature_names[i].f;
            p += n;
        }
    }
    return off;
}

static void name_features(struct lurk_loop *l)
{
    size_t at = (size_t)snprintf(l->features, sizeof l->features, "%s", l->setup);

    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if ((l->feat & feature_names[i].f) && at < sizeof l->features)
            at += (size_t)snprintf(l->features + at, sizeof l->features - at, ", %s",
                                   feature_names[i].name);
}

/*
 * Whether emptying a slot lets go of its file at once. Older kernels (6.1)
 * drop a file taken out of the table from a work item that runs up to a
 * second later, so a socket lurk closes would stay open (no FIN, no EOF
 * for the peer) for that second: the table is not used there. The probe
 * empties slot 0 holding one end of a socket pair, closes that end and
 * looks for the end of stream on the other.
 */
static bool slot_release_prompt(struct lurk_loop *l)
{
    int sv[2], none = -1;
    char c;
    bool ok;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    ok = io_uring_register_files_update(&l->ring, 0, &sv[0], 1) == 1 &&
         io_uring_register_files_update(&l->ring, 0, &none, 1) == 1;
    close(sv[0]);
    ok = ok && recv(sv[1], &c, 1, MSG_DONTWAIT) == 0;
    close(sv[1]);
    return ok;
}

/*
 * A sparse file table (5.19+) as large as the descriptor limit allows, up
 * to 16384 slots (the kernel refuses more than RLIMIT_NOFILE); sockets past
 * that use their descriptors.
 */
static void setup_files(struct lurk_loop *l)
{
    struct rlimit rl;
    unsigned n = 16384;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n)
        n = (unsigned)rl.rlim_cur;
    if (n == 0 || !(l->slots = malloc(n * sizeof *l->slots)))
        return;
    if (io_uring_register_files_sparse(&l->ring, n) < 0 || !slot_release_prompt(l)) {
        io_uring_unregister_files(&l->ring);
        free(l->slots);
        l->slots = NULL;
        return;
    }
    l->nslots = l->nfree = n;
    for (unsigned i = 0; i < n; i++)
        l->slots[i] = (int)(n - 1 - i);   /* slot 0 on top */
    l->feat |= LURK_LOOP_FIXED_FILES;
}

/* Multishot receive came with Linux 6.0 (provided buffer rings with 5.19);
 * no setup flag or probe tells, so the kernel's version does, and a
 * receive refused with -EINVAL turns the feature off (lurk_loop_drop). */
static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;

    if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return false;
    return ma > major || (ma == major && mi >= minor);
}

int lurk_loop_buf_group(struct lurk_loop *l)
{
    int err;

    if (l->br)
        return BUF_GROUP;
    if (!(l->feat & LURK_LOOP_RECV_MULTI))
        return -1;
    l->bufs = malloc((size_t)BUF_COUNT * LURK_LOOP_BUF_SIZE);
    if (l->bufs)
        l->br = io_uring_setup_buf_ring(&l->ring, BUF_COUNT, BUF_GROUP, 0, &err);
    if (!l->br) {
        free(l->bufs);
        l->bufs = NULL;
        lurk_loop_drop(l, LURK_LOOP_RECV_MULTI);
        return -1;
    }
    for (int i = 0; i < BUF_COUNT; i++)
        io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * LURK_LOOP_BUF_SIZE, LURK_LOOP_BUF_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(BUF_COUNT), i);
    io_uring_buf_ring_advance(l->br, BUF_COUNT);
    return BUF_GROUP;
}

const void *lurk_loop_buf(const struct lurk_loop *l, unsigned cqe_flags)
{
    return l->bufs + (size_t)(cqe_flags >> IORING_CQE_BUFFER_SHIFT) * LURK_LOOP_BUF_SIZE;
}

void lurk_loop_buf_put(struct lurk_loop *l, unsigned cqe_flags)
{
    unsigned short bid = (unsigned short)(cqe_flags >> IORING_CQE_BUFFER_SHIFT);

    io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * LURK_LOOP_BUF_SIZE, LURK_LOOP_BUF_SIZE,
                          bid, io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(l->br, 1);
}

void lurk_loop_drop(struct lurk_loop *l, unsigned f)
{
    l->feat &= ~f;
    name_features(l);
}

int lurk_loop_file_add(struct lurk_loop *l, int fd)
{
    int slot;

    if (!(l->feat & LURK_LOOP_FIXED_FILES) || l->nfree == 0)
        return -1;
    slot = l->slots[l->nfree - 1];
    if (io_uring_register_files_update(&l->ring, (unsigned)slot, &fd, 1) != 1)
        return -1;
    l->nfree--;
    return slot;
}

/* Empties the slot at once, so closing the descriptor closes the socket
 * then and there (the peer sees its end of stream without waiting for the
 * next submission). */
void lurk_loop_file_remove(struct lurk_loop *l, int slot)
{
    int none = -1;

    if (slot < 0 || l->gone)
        return;
    if (io_uring_register_files_update(&l->ring, (unsigned)slot, &none, 1) == 1)
        l->slots[l->nfree++] = slot;
    /* else: the slot stays taken (never seen); the ring's end frees it */
}

int lurk_loop_new(struct lurk_loop **out, unsigned entries)
{
    struct lurk_loop *l = calloc(1, sizeof *l);
    unsigned off = forced_off();
    int rc;

    *out = NULL;
    if (!l)
        return -ENOMEM;
    l->evfd = -1;
    l->refs = 1;
    rc = setup_ring(l, entries);
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->faults = lurk_faults_new(getenv("LURK_FAULT"), getenv("LURK_FAULT_SEED"));
    /* A registered ring descriptor (5.18+) spares each io_uring_enter the
     * fget/fput of the ring's file; liburing then enters by index. */
    if (!(off & LURK_LOOP_RING_FD) && io_uring_register_ring_fd(&l->ring) == 1)
        l->feat |= LURK_LOOP_RING_FD;
    /* Fault injection finds an op's peer by its descriptor (getpeername),
     * and replaces one result per SQE, not per CQE. */
    if (!(off & LURK_LOOP_FIXED_FILES) && !l->faults)
        setup_files(l);
    if (!l->faults && kernel_at_least(6, 0))
        l->feat |= LURK_LOOP_RECV_MULTI;
    /* Fault injection replaces results in dispatch(): it needs every CQE. */
    if (l->faults)
        l->feat &= ~LURK_LOOP_SKIP_CQE;
    l->feat &= ~off;
    name_features(l);
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

bool lurk_loop_has(const struct lurk_loop *l, unsigned f)
{
    return (l->feat & f) == f;
}

/*
 * The ring's own descriptor is not enough to poll: with DEFER_TASKRUN the
 * kernel wakes only a task waiting inside io_uring_enter, not poll waiters.
 * An eventfd registered with the ring is signalled as each completion is
 * queued, whatever the ring's flags; lurk_loop_turn() clears it.
 */
int lurk_loop_fd(struct lurk_loop *l)
{
    int fd;

    if (l->evfd >= 0)
        return l->evfd;
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (io_uring_register_eventfd(&l->ring, fd) < 0) {
        close(fd);
        return l->ring.ring_fd;       /* old kernels: poll the ring itself */
    }
    l->evfd = fd;
    return fd;
}

unsigned lurk_loop_in_flight(const struct lurk_loop *l)
{
    return l->in_flight - l->dtimers;
}

void lurk_loop_stats(const struct lurk_loop *l, struct lurk_loop_stats *st)
{
    *st = l->stats;
    st->files = l->nslots - l->nfree;
}

/*
 * An op's user_data: its address in the low 48 bits (user space on every
 * 64-bit Linux lurk builds for), the record's generation in the high 16
 * (see lurk_op_cancel).
 */
#define TAG_PTR ((UINT64_C(1) << 48) - 1)

static uint64_t op_tag(const struct lurk_op *op)
{
    return (uint64_t)(uintptr_t)op | (uint64_t)op->gen << 48;
}

struct lurk_op *lurk_op_new(struct lurk_loop *l, lurk_op_cb *cb, void *arg)
{
    struct lurk_op *op = l->free_ops;

    if (!op) {
        struct slab *s = malloc(sizeof *s);

        if (!s)
            lurk_panic("out of memory for op records");
        if ((uintptr_t)(s + 1) > TAG_PTR)
            lurk_panic("op records above 2^48: user_data has no room for their generation");
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
    op->fault = 0;
    op->heap_at = 0;
    op->next_free = NULL;
    return op;
}

static void put_op(struct lurk_loop *l, struct lurk_op *op)
{
    op->cb = NULL;
    op->gen++;                        /* a late cancel for this op misses the next one */
    op->next_free = l->free_ops;
    l->free_ops = op;
}

struct io_uring_sqe *lurk_loop_sqe(struct lurk_loop *l)
{
    struct io_uring_sqe *sqe;

    if (io_uring_sq_space_left(&l->ring) == 0) {
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

/* ---- deadlines ---- */

static void heap_swap(struct lurk_loop *l, unsigned a, unsigned b)
{
    struct lurk_op *t = l->heap[a];

    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_at = a + 1;
    l->heap[b]->heap_at = b + 1;
}

static void heap_up(struct lurk_loop *l, unsigned i)
{
    while (i > 0 && l->heap[(i - 1) / 2]->deadline > l->heap[i]->deadline) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct lurk_loop *l, unsigned i)
{
    for (;;) {
        unsigned c = 2 * i + 1;

        if (c >= l->heap_len)
            return;
        if (c + 1 < l->heap_len && l->heap[c + 1]->deadline < l->heap[c]->deadline)
            c++;
        if (l->heap[i]->deadline <= l->heap[c]->deadline)
            return;
        heap_swap(l, i, c);
        i = c;
    }
}

static void heap_push(struct lurk_loop *l, struct lurk_op *op)
{
    if (l->heap_len == l->heap_cap) {
        unsigned cap = l->heap_cap ? 2 * l->heap_cap : 64;
        struct lurk_op **h = realloc(l->heap, cap * sizeof *h);

        if (!h)
            lurk_panic("out of memory for deadlines");
        l->heap = h;
        l->heap_cap = cap;
    }
    l->heap[l->heap_len] = op;
    op->heap_at = ++l->heap_len;
    heap_up(l, l->heap_len - 1);
}

static void heap_remove(struct lurk_loop *l, struct lurk_op *op)
{
    unsigned i = op->heap_at - 1, last = --l->heap_len;

    op->heap_at = 0;
    if (i == last)
        return;
    l->heap[i] = l->heap[last];
    l->heap[i]->heap_at = i + 1;
    heap_up(l, i);
    heap_down(l, l->heap[i]->heap_at - 1);
}

static void deadline_fired(struct lurk_op *op, int res);

/* Sets the ring timer for the soonest deadline unless one fires by then. */
static void arm_deadline_timer(struct lurk_loop *l)
{
    int64_t at;

    if (l->heap_len == 0)
        return;
    at = l->heap[0]->deadline;
    if (l->dtimer && l->dtimer_at <= at)
        return;
    l->dtimer = lurk_op_new(l, deadline_fired, l);
    l->dtimer_at = at;
    l->dtimers++;
    lurk_op_timer(l, l->dtimer, at);
}

/* The timer fired (or was cancelled at shutdown): cancels every op whose
 * deadline has passed, then sets the timer for the next one. */
static void deadline_fired(struct lurk_op *op, int res)
{
    struct lurk_loop *l = op->arg;
    int64_t now = lurk_now_ns();

    (void)res;
    l->dtimers--;
    if (l->dtimer == op)
        l->dtimer = NULL;
    while (l->heap_len > 0 && l->heap[0]->deadline <= now) {
        struct lurk_op *late = l->heap[0];
        struct io_uring_sqe *sqe;

        heap_remove(l, late);
        late->flags |= LURK_OP_EXPIRED;
        if (late->flags & LURK_OP_SOFT) {
            lurk_op_finish(l, late, -ETIMEDOUT);
            continue;
        }
        sqe = lurk_loop_sqe(l);
        io_uring_prep_cancel64(sqe, op_tag(late), 0);
        io_uring_sqe_set_data64(sqe, 0);
    }
    arm_deadline_timer(l);
}

/* A list of ops linked by next_free (nowait, cancelled soft): appends op;
 * takes the first (the list must not be empty). */
static void fifo_push(struct lurk_op **head, struct lurk_op **tail, struct lurk_op *op)
{
    op->next_free = NULL;
    if (*tail)
        (*tail)->next_free = op;
    else
        *head = op;
    *tail = op;
}

static struct lurk_op *fifo_pop(struct lurk_op **head, struct lurk_op **tail)
{
    struct lurk_op *op = *head;

    *head = op->next_free;
    if (!*head)
        *tail = NULL;
    op->next_free = NULL;
    return op;
}

/* Puts op in the deadline heap (deadline_ns > 0), arming the ring timer
 * if its deadline is now the soonest. */
static void set_deadline(struct lurk_loop *l, struct lurk_op *op, int64_t deadline_ns)
{
    if (deadline_ns <= 0)
        return;
    op->flags |= LURK_OP_DEADLINE;
    op->deadline = deadline_ns;
    heap_push(l, op);
    if (!l->dtimer || deadline_ns < l->dtimer_at)
        arm_deadline_timer(l);
}

void lurk_op_arm(struct lurk_loop *l, struct lurk_op *op, struct io_uring_sqe *sqe,
                 int64_t deadline_ns)
{
    io_uring_sqe_set_data64(sqe, op_tag(op));
    l->in_flight++;
    l->stats.ops++;
    if (l->faults && lurk_faults_arm(l->faults, sqe, &op->fault))   /* LURK_FAULT, tests only */
        l->stats.faults++;            /* a request cut short */
    set_deadline(l, op, deadline_ns);
}

void lurk_op_arm_nowait(struct lurk_loop *l, struct lurk_op *op, struct io_uring_sqe *sqe,
                        int ok_res)
{
    lurk_op_arm(l, op, sqe, 0);
    op->flags |= LURK_OP_NOWAIT;
    op->res = ok_res;
    if (l->feat & LURK_LOOP_SKIP_CQE)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    fifo_push(&l->nw_head, &l->nw_tail, op);
    l->nowait++;
}

void lurk_op_await(struct lurk_loop *l, struct lurk_op *op)
{
    if ((op->flags & (LURK_OP_NOWAIT | LURK_OP_AWAITED)) == LURK_OP_NOWAIT) {
        op->flags |= LURK_OP_AWAITED;
        l->nw_awaited++;
    }
}

void lurk_op_arm_soft(struct lurk_loop *l, struct lurk_op *op, int64_t deadline_ns)
{
    op->flags |= LURK_OP_SOFT;
    l->in_flight++;                   /* not in stats.ops: nothing is submitted */
    set_deadline(l, op, deadline_ns);
}

void lurk_op_finish(struct lurk_loop *l, struct lurk_op *op, int res)
{
    if (op->heap_at)
        heap_remove(l, op);
    l->in_flight--;
    op->cb(op, res);
    put_op(l, op);
}

void lurk_op_timer(struct lurk_loop *l, struct lurk_op *op, int64_t deadline_ns)
{
    struct io_uring_sqe *sqe = lurk_loop_sqe(l);

    to_timespec(&op->ts, deadline_ns);
    io_uring_prep_timeout(sqe, &op->ts, 0, IORING_TIMEOUT_ABS);
    lurk_op_arm(l, op, sqe, 0);
}

/*
 * The cancel request names its target by user_data (op_tag: the op's
 * address and its record's generation), so it reaches that op or none.
 * Records are reused (last freed, first taken), and a cancel may be on its
 * way when its op ends by itself (a multishot receive out of buffers): by
 * the address alone, only the order of SQEs kept it from the record's next
 * op; the generation makes that hold whatever the order.
 */
void lurk_op_cancel(struct lurk_loop *l, struct lurk_op *op)
{
    struct io_uring_sqe *sqe;

    if (op->flags & LURK_OP_CANCELLED)
        return;
    op->flags |= LURK_OP_CANCELLED;
    if (op->flags & LURK_OP_SOFT) {   /* ended by the next turn */
        if (op->heap_at)
            heap_remove(l, op);
        fifo_push(&l->soft_head, &l->soft_tail, op);
        return;
    }
    sqe = lurk_loop_sqe(l);
    io_uring_prep_cancel64(sqe, op_tag(op), 0);
    io_uring_sqe_set_data64(sqe, 0);
}

static void dispatch(struct lurk_loop *l, struct io_uring_cqe *cqe)
{
    struct lurk_op *op = (struct lurk_op *)(uintptr_t)(cqe->user_data & TAG_PTR);
    int res = cqe->res;

    if (!op)
        return;                       /* a cancel request */
    if (op->heap_at)
        heap_remove(l, op);
    if (op->fault && res != -ECANCELED) {   /* LURK_FAULT, tests only; cancels keep their result */
        res = lurk_faults_result(l->faults, op->fault);
        l->stats.faults++;
    }
    /* The loop cancelled it for its deadline, unless the user did too. */
    if (res == -ECANCELED && (op->flags & LURK_OP_EXPIRED) &&
        !(op->flags & LURK_OP_CANCELLED))
        res = -ETIMEDOUT;
    op->cqe_flags = cqe->flags;
    if (cqe->flags & IORING_CQE_F_MORE) {
        op->cb(op, res);              /* a multishot op: more CQEs will follow */
        return;
    }
    if (op->flags & LURK_OP_NOWAIT) { /* its callback runs from release_nowait() */
        op->flags |= LURK_OP_CQE;
        /* A failure (or a short send) is told at once, before the
         * completions behind it in this batch (a receive it preceded). */
        if (res != op->res) {
            op->flags |= LURK_OP_TOLD;
            op->cb(op, res);
        }
        return;
    }
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

/* Ends the soft ops lurk_op_cancel() asked to end (-ECANCELED). */
static void end_cancelled_soft(struct lurk_loop *l)
{
    while (l->soft_head)
        lurk_op_finish(l, fifo_pop(&l->soft_head, &l->soft_tail), -ECANCELED);
}

/*
 * Runs the callbacks of the nowait ops up to and including `last`, once the
 * enter that submitted them has returned and its CQEs have been reaped: a
 * nowait op is over by then (MSG_DONTWAIT), and one without a CQE succeeded.
 * Not while SQEs are left unsubmitted (an enter cut short) or CQEs wait in
 * the kernel's overflow list (a failure's CQE may be among them): the next
 * turn looks again.
 */
static void release_nowait(struct lurk_loop *l, struct lurk_op *last)
{
    struct lurk_op *op;

    if (io_uring_sq_ready(&l->ring) || (IO_URING_READ_ONCE(*l->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
        return;
    do {
        op = fifo_pop(&l->nw_head, &l->nw_tail);
        l->nowait--;
        l->in_flight--;
        if (op->flags & LURK_OP_AWAITED)
            l->nw_awaited--;
        if (!(op->flags & LURK_OP_TOLD))
            op->cb(op, op->res);
        put_op(l, op);
    } while (op != last);
}

int lurk_loop_turn(struct lurk_loop *l, bool wait)
{
    struct lurk_op *nw_last = l->nw_tail;   /* submitted by this turn's enter */
    unsigned waited = l->in_flight - l->nowait - l->dtimers, n;
    int rc = 0;

    /* Nowait ops end inside the enter: with nothing else out (deadline
     * timers bound ops, they are nothing to wait for), do not wait. */
    if (waited == 0 || l->soft_head)  /* cancelled soft ops end this turn */
        wait = false;
    if (l->evfd >= 0) {               /* cleared before reaping: none is missed */
        uint64_t v;

        if (read(l->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
            return -errno;
    }

    /* A caller waits for a nowait op's callback (a write queued behind
     * it, more records behind a TLS send): the turn must not block past
     * that op. Its success posts no CQE to end a wait, so do not wait;
     * without skip-cqe its CQE ends the wait at once. */
    if (l->nw_awaited && (l->feat & LURK_LOOP_SKIP_CQE))
        wait = false;
    if (wait && (l->feat & LURK_LOOP_MIN_WAIT) && waited >= 16) {
        /* Many ops out (6.12+ kernels): wait up to 20 us for a quarter of
         * them rather than wake for each, then take whatever has come. Under
         * load that halves lurk's CPU in io_uring_enter; it costs a turn at
         * most 20 us when the ops out are idle (sockets nobody writes to). */
        struct __kernel_timespec ts = { .tv_sec = 1 };
        struct io_uring_cqe *cqe;

        l->stats.enters++;
        rc = io_uring_submit_and_wait_min_timeout(&l->ring, &cqe, waited / 4, &ts, 20, NULL);
    } else if (wait) {
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
    if (nw_last)
        release_nowait(l, nw_last);
    if (l->soft_head) {
        n++;
        end_cancelled_soft(l);
    }
    if (n == 0 && rc == -EINTR)
        return -EINTR;
    return (int)n;
}

void lurk_loop_flush(struct lurk_loop *l)
{
    if (io_uring_sq_ready(&l->ring)) {
        l->stats.enters++;
        /* GETEVENTS: with DEFER_TASKRUN what the SQEs end (a cancelled
         * receive) completes now, not at the next turn. */
        io_uring_submit_and_get_events(&l->ring);
        /* Nowait ops post no CQE to wake a host polling lurk_loop_fd():
         * make it readable so the next turn runs their callbacks. */
        if (l->nowait && l->evfd >= 0) {
            uint64_t one = 1;

            if (write(l->evfd, &one, sizeof one) < 0) {
                /* a full counter is readable already */
            }
        }
    }
}

unsigned lurk_loop_unsubmitted(const struct lurk_loop *l)
{
    return io_uring_sq_ready(&l->ring);
}

int lurk_loop_drain(struct lurk_loop *l)
{
    int64_t give_up = lurk_now_ns() + 5 * (int64_t)1000000000;

    while (l->in_flight > 0) {
        struct io_uring_sqe *sqe = lurk_loop_sqe(l);
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
        if (l->nw_tail)
            release_nowait(l, l->nw_tail);
        end_cancelled_soft(l);
    }
    return 0;
}

void lurk_loop_ref(struct lurk_loop *l)
{
    l->refs++;
}

void lurk_loop_unref(struct lurk_loop *l)
{
    if (--l->refs == 0)
        free(l);
}

void lurk_loop_free(struct lurk_loop *l)
{
    if (!l)
        return;
    l->gone = true;
    if (lurk_loop_drain(l) < 0) {
        /* The kernel may still write into op records and buffers: leak them
         * rather than free memory it owns. The ring's teardown reaps the ops. */
        fprintf(stderr, "lurk: %u io_uring operation(s) did not complete after "
                "cancellation; leaking their memory\n", l->in_flight);
        io_uring_queue_exit(&l->ring);
        return;
    }
    if (l->br)
        io_uring_free_buf_ring(&l->ring, l->br, BUF_COUNT, BUF_GROUP);
    io_uring_queue_exit(&l->ring);
    free(l->bufs);
    if (l->evfd >= 0)
        close(l->evfd);
    lurk_faults_free(l->faults);
    free(l->heap);
    free(l->slots);
    while (l->slabs) {
        struct slab *s = l->slabs;

        l->slabs = s->next;
        free(s);
    }
    lurk_loop_unref(l);
}
