/*
 * fault.c - LURK_FAULT, the test-only switch that makes chosen ops fail.
 *
* A test-only switch that makes chosen ops fail, to show that every failure
 * reaches scripts as a clean `nil, err`, leaks nothing and leaves other tasks
 * alone. It is read once per loop (lurk_loop_new), from the environment:
 *
 *   LURK_FAULT="kind:what:when[:port][,...]"   LURK_FAULT_SEED=n (default 1)
 *
 *   kind   connect; recv (recv and recvmsg); send (send and sendmsg); read and
 *          write (files, stdin); poll (the resolver's sockets). Timers and
 *          cancel requests are never touched.
 *   what   an errno name (ECONNRESET, EPIPE, ETIMEDOUT, ENOMEM, ECONNREFUSED,
 *          any name lurk_errname() knows), or "short".
 *   when   N: the Nth op of that kind (counting from 1, in the order ops are
 *          armed); N+: the Nth and every later one; every; pF: each with
 *          probability F (0 < F <= 1), drawn from a generator seeded with
 *          LURK_FAULT_SEED, so a run is repeatable.
 *   port   only ops on sockets whose peer has this port (for connect, the
 *          address connected to), so a test can leave its other traffic be.
 *
 * e.g. LURK_FAULT="connect:ECONNREFUSED:1,recv:ECONNRESET:3:8080,send:short:every".
 *
 * Whether an op is hit is decided when it is armed. An error replaces the
 * completion's result just before the callback sees it (the bytes a recv got
 * are dropped and a send's may have left: the caller must treat the
 * connection as failed, as it would after a real error). A completion that
 * is -ECANCELED keeps that result, so cancellation and deadlines still mean
 * what they say. "short" cannot shrink a recv that has completed without
 * losing the bytes beyond the cut, so it shrinks the request instead: the
 * length submitted becomes a random 1..len-1, and the caller's ordinary
 * partial-I/O path has to fetch or send the rest. It applies to recv, send,
 * read and write (not to kTLS's recvmsg/sendmsg, whose iovecs belong to
 * tls.c). Every error armed is logged on stderr, and a summary when the
 * loop is freed; a malformed entry is reported there and ignored. Without
 * LURK_FAULT the whole feature costs one well-predicted branch in
 * loop.c's lurk_op_arm() and one in its dispatch().
 */
#include "core/fault.h"
#include "core/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum fault_kind { K_NONE, K_CONNECT, K_RECV, K_SEND, K_READ, K_WRITE, K_POLL };

static const char *const kind_names[] = {
    [K_CONNECT] = "connect", [K_RECV] = "recv", [K_SEND] = "send",
    [K_READ] = "read", [K_WRITE] = "write", [K_POLL] = "poll",
};

enum fault_when { W_NTH, W_FROM, W_PROB };

struct fault {
    enum fault_kind kind;
    int err;                          /* -errno, or 0 for "short" */
    enum fault_when when;
    uint64_t nth;                     /* W_NTH, W_FROM */
    double p;                         /* W_PROB */
    int port;                         /* 0: any peer */
    uint64_t seen;                    /* ops of this kind (and port) so far */
};

struct lurk_faults {
    uint64_t rng;
    uint64_t failed, cut;             /* errors reported, requests shortened */
    unsigned n;
    struct fault f[];
};

static enum fault_kind op_kind(unsigned opcode)
{
    switch (opcode) {
    case IORING_OP_CONNECT:
        return K_CONNECT;
    case IORING_OP_RECV:
    case IORING_OP_RECVMSG:
        return K_RECV;
    case IORING_OP_SEND:
    case IORING_OP_SENDMSG:
        return K_SEND;
    case IORING_OP_READ:
        return K_READ;
    case IORING_OP_WRITE:
        return K_WRITE;
    case IORING_OP_POLL_ADD:
        return K_POLL;
    default:
        return K_NONE;
    }
}

/* xorshift64*: small, and the same sequence for the same seed. */
static uint64_t next_random(struct lurk_faults *fs)
{
    fs->rng ^= fs->rng >> 12;
    fs->rng ^= fs->rng << 25;
    fs->rng ^= fs->rng >> 27;
    return fs->rng * 0x2545F4914F6CDD1DULL;
}

static int parse_errno(const char *name)
{
    if (strcmp(name, "EUNKNOWN") == 0)
        return 0;
    for (int e = 1; e < LURK_EBASE; e++)
        if (strcmp(lurk_errname(-e), name) == 0)
            return -e;
    return 0;
}

/* Parses one "kind:what:when[:port]" entry into f; returns false if malformed. */
static bool parse_fault(char *entry, struct fault *f)
{
    char *field[5] = { NULL }, *save = NULL, *end;
    int n = 0;

    for (char *p = strtok_r(entry, ":", &save); p && n < 5; p = strtok_r(NULL, ":", &save))
        field[n++] = p;
    if (n < 3 || n > 4)
        return false;
    memset(f, 0, sizeof *f);
    for (size_t k = 1; k < sizeof kind_names / sizeof kind_names[0]; k++)
        if (strcmp(field[0], kind_names[k]) == 0)
            f->kind = (enum fault_kind)k;
    if (f->kind == K_NONE)
        return false;
    if (strcmp(field[1], "short") == 0) {
        if (f->kind == K_CONNECT || f->kind == K_POLL)
            return false;             /* nothing to shorten */
    } else if ((f->err = parse_errno(field[1])) == 0) {
        return false;
    }
    if (strcmp(field[2], "every") == 0) {
        f->when = W_FROM;
        f->nth = 1;
    } else if (field[2][0] == 'p') {
        f->when = W_PROB;
        f->p = strtod(field[2] + 1, &end);
        if (*end || !(f->p > 0 && f->p <= 1))
            return false;
    } else {
        f->nth = strtoull(field[2], &end, 10);
        f->when = *end == '+' ? W_FROM : W_NTH;
        if (f->nth == 0 || (*end && strcmp(end, "+") != 0))
            return false;
    }
    if (n == 4) {
        long port = strtol(field[3], &end, 10);

        if (*end || port < 1 || port > 65535)
            return false;
        f->port = (int)port;
    }
    return true;
}

struct lurk_faults *lurk_faults_new(const char *spec, const char *seed)
{
    char *copy, *save = NULL;
    size_t max = 1;
    struct lurk_faults *fs;

    if (!spec || !*spec)
        return NULL;
    copy = strdup(spec);

    for (const char *p = spec; *p; p++)
        max += *p == ',';
    fs = calloc(1, sizeof *fs + max * sizeof fs->f[0]);
    if (!copy || !fs) {
        free(copy);
        free(fs);
        return NULL;
    }
    for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        char shown[128];

        snprintf(shown, sizeof shown, "%s", e);    /* parse_fault cuts e up */
        if (parse_fault(e, &fs->f[fs->n]))
            fs->n++;
        else
            fprintf(stderr, "lurk: LURK_FAULT: ignoring \"%s\" (expected kind:what:when[:port], "
                    "see src/core/fault.c)\n", shown);
    }
    free(copy);
    if (fs->n == 0) {
        free(fs);
        return NULL;
    }
    /* splitmix64 of the seed: any seed, 0 included, gives a good state. */
    fs->rng = (seed ? strtoull(seed, NULL, 10) : 1) + 0x9E3779B97F4A7C15ULL;
    fs->rng = (fs->rng ^ (fs->rng >> 30)) * 0xBF58476D1CE4E5B9ULL;
    fs->rng = (fs->rng ^ (fs->rng >> 27)) * 0x94D049BB133111EBULL;
    fs->rng ^= fs->rng >> 31;
    if (fs->rng == 0)
        fs->rng = 1;
    return fs;
}

/* The peer's port for the socket sqe works on, or 0. */
static int sqe_port(const struct io_uring_sqe *sqe, enum fault_kind kind)
{
    struct sockaddr_storage ss;
    const struct sockaddr_storage *sa = &ss;
    socklen_t len = sizeof ss;

    if (kind == K_CONNECT)
        sa = (const struct sockaddr_storage *)(uintptr_t)sqe->addr;
    else if (getpeername(sqe->fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int lurk_faults_arm(struct lurk_faults *fs, struct io_uring_sqe *sqe, int *fault)
{
    enum fault_kind kind = op_kind(sqe->opcode);
    int port = -1;                    /* looked up once, when an entry needs it */
    int cut = 0;

    if (kind == K_NONE)
        return 0;
    for (unsigned i = 0; i < fs->n; i++) {
        struct fault *f = &fs->f[i];
        bool hit;

        if (f->kind != kind)
            continue;
        if (f->port) {
            if (port < 0)
                port = sqe_port(sqe, kind);
            if (port != f->port)
                continue;
        }
        f->seen++;
        hit = f->when == W_NTH ? f->seen == f->nth
            : f->when == W_FROM ? f->seen >= f->nth
            : (double)(next_random(fs) >> 11) / 9007199254740992.0 < f->p;
        if (!hit)
            continue;
        if (f->err && !*fault) {
            *fault = f->err;
            /* A send that fails sent nothing: its bytes must not reach a
             * peer that would answer them (the answer would race the
             * failure to whoever waits for it). */
            if (sqe->opcode == IORING_OP_SEND)
                sqe->len = 0;
            if (f->port)
                fprintf(stderr, "lurk: LURK_FAULT: %s #%llu (port %d) will fail with %s\n",
                        kind_names[kind], (unsigned long long)f->seen, f->port, lurk_errname(f->err));
            else
                fprintf(stderr, "lurk: LURK_FAULT: %s #%llu will fail with %s\n",
                        kind_names[kind], (unsigned long long)f->seen, lurk_errname(f->err));
        } else if (!f->err && sqe->opcode != IORING_OP_RECVMSG && sqe->opcode != IORING_OP_SENDMSG &&
                   sqe->len > 1) {
            /* The buffer stays as it was; the kernel just gets a smaller
             * length, so no byte is lost and the caller asks again. */
            sqe->len = 1 + (uint32_t)(next_random(fs) % (sqe->len - 1));
            fs->cut++;
            cut = 1;
        }
    }
    return cut;
}

int lurk_faults_result(struct lurk_faults *fs, int fault)
{
    fs->failed++;
    return fault;
}

void lurk_faults_free(struct lurk_faults *fs)
{
    if (!fs)
        return;
    /* Says at the end what was injected, so a test can tell it happened. */
    fprintf(stderr, "lurk: LURK_FAULT: %llu op(s) failed, %llu request(s) cut short\n",
            (unsigned long long)fs->failed, (unsigned long long)fs->cut);
    free(fs);
}
