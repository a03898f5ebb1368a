/* test_loop: the ring, op callbacks, timers, linked deadlines, cancellation, drain, fault injection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct rec {
    int calls;
    int res;
    int order;
};

static int seq;

static void record(struct lurk_op *op, int res)
{
    struct rec *r = op->arg;

    r->calls++;
    r->res = res;
    r->order = seq++;
}

static void run_until_idle(struct lurk_loop *l)
{
    while (lurk_loop_in_flight(l) > 0)
        assert_true(lurk_loop_turn(l, true) >= 0);
}

static void test_timers_fire_in_order(void **state)
{
    struct lurk_loop *l;
    struct rec r[64] = { { 0 } };
    int64_t base = lurk_now_ns() + 20 * 1000000;

    (void)state;
    assert_int_equal(lurk_loop_new(&l, 32), 0);  /* fewer SQEs than timers */
    seq = 0;
    for (int i = 0; i < 64; i++) {
        int slot = (i * 37) % 64;
        struct lurk_op *op = lurk_op_new(l, record, &r[slot]);

        lurk_op_timer(l, op, base + slot * 500000);
    }
    assert_int_equal(lurk_loop_in_flight(l), 64);
    run_until_idle(l);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].res, -ETIME);
        assert_int_equal(r[i].order, i);
    }
    assert_true(lurk_now_ns() >= base + 63 * 500000);
    lurk_loop_free(l);
}

static void test_cancel_runs_callback_once(void **state)
{
    struct lurk_loop *l;
    struct rec r = { 0 };
    struct lurk_op *op;

    (void)state;
    assert_int_equal(lurk_loop_new(&l, 8), 0);
    op = lurk_op_new(l, record, &r);
    lurk_op_timer(l, op, lurk_now_ns() + 10LL * 1000000000);
    assert_int_equal(lurk_loop_turn(l, false), 0);
    lurk_op_cancel(l, op);
    lurk_op_cancel(l, op);                   /* a second request is ignored */
    run_until_idle(l);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.res, -ECANCELED);
    lurk_loop_free(l);
}

static void test_linked_deadline_and_cancel(void **state)
{
    struct lurk_loop *l;
    struct rec timed = { 0 }, cancelled = { 0 }, ok = { 0 };
    struct lurk_op *op;
    struct io_uring_sqe *sqe;
    int sv[2];
    char buf1[16], buf2[16], buf3[16];
    int64_t t0 = lurk_now_ns();

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(lurk_loop_new(&l, 8), 0);

    /* Nothing to read: the linked timeout ends it, reported as ETIMEDOUT. */
    sqe = lurk_loop_sqe(l);
    io_uring_prep_recv(sqe, sv[0], buf1, sizeof buf1, 0);
    lurk_op_arm(l, lurk_op_new(l, record, &timed), sqe, t0 + 30 * 1000000);
    run_until_idle(l);
    assert_int_equal(timed.res, -ETIMEDOUT);
    assert_true(lurk_now_ns() - t0 >= 30 * 1000000);

    /* Cancelled by us before its deadline: ECANCELED, not ETIMEDOUT. */
    sqe = lurk_loop_sqe(l);
    io_uring_prep_recv(sqe, sv[0], buf2, sizeof buf2, 0);
    op = lurk_op_new(l, record, &cancelled);
    lurk_op_arm(l, op, sqe, lurk_now_ns() + 10LL * 1000000000);
    lurk_loop_turn(l, false);
    lurk_op_cancel(l, op);
    run_until_idle(l);
    assert_int_equal(cancelled.res, -ECANCELED);

    /* Data arrives before the deadline: the op completes normally. */
    assert_int_equal(write(sv[1], "hey", 3), 3);
    sqe = lurk_loop_sqe(l);
    io_uring_prep_recv(sqe, sv[0], buf3, sizeof buf3, 0);
    lurk_op_arm(l, lurk_op_new(l, record, &ok), sqe, lurk_now_ns() + 10LL * 1000000000);
    run_until_idle(l);
    assert_int_equal(ok.res, 3);
    assert_memory_equal(buf3, "hey", 3);

    assert_int_equal(timed.calls + cancelled.calls + ok.calls, 3);
    close(sv[0]);
    close(sv[1]);
    lurk_loop_free(l);
}

static void test_free_runs_pending_callbacks(void **state)
{
    struct lurk_loop *l;
    struct rec r[10] = { { 0 } };
    int sv[2];
    char buf[10][8];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(lurk_loop_new(&l, 8), 0);
    for (int i = 0; i < 5; i++)
        lurk_op_timer(l, lurk_op_new(l, record, &r[i]), lurk_now_ns() + 60LL * 1000000000);
    for (int i = 5; i < 10; i++) {
        struct io_uring_sqe *sqe = lurk_loop_sqe(l);

        io_uring_prep_recv(sqe, sv[0], buf[i], sizeof buf[i], 0);
        lurk_op_arm(l, lurk_op_new(l, record, &r[i]), sqe, 0);
    }
    lurk_loop_turn(l, false);
    lurk_loop_free(l);                       /* cancels, then reaps all ten */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].res, -ECANCELED);
    }
    close(sv[0]);
    close(sv[1]);
}

static void test_batching(void **state)
{
    struct lurk_loop *l;
    struct lurk_loop_stats st;
    struct rec r[1000] = { { 0 } };
    int64_t when = lurk_now_ns() + 1000000;

    (void)state;
    assert_int_equal(lurk_loop_new(&l, 256), 0);
    for (int i = 0; i < 1000; i++)
        lurk_op_timer(l, lurk_op_new(l, record, &r[i]), when);
    run_until_idle(l);
    lurk_loop_stats(l, &st);
    assert_int_equal(st.ops, 1000);
    assert_int_equal(st.cqes, 1000);
    /* 1000 ops through a 256-entry SQ: tens of enters, not one per op. */
    print_message("enters: %llu for %llu ops\n", (unsigned long long)st.enters, (unsigned long long)st.ops);
    assert_true(st.enters < st.ops / 10);
    lurk_loop_free(l);
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(lurk_errname(-ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(lurk_errname(-LURK_ECLOSED), "LURK_ECLOSED");
    assert_string_equal(lurk_strerror(-LURK_EDNS_NOTFOUND), "name not found");
    assert_non_null(lurk_strerror(-99999));
    assert_string_equal(lurk_errname(-99999), "EUNKNOWN");
    assert_non_null(lurk_loop_explain(-EPERM));
    assert_non_null(strstr(lurk_loop_explain(-EPERM), "io_uring_disabled"));
}

/* Arms one recv, send or connect op and runs the loop until it completes. */
static int run_op(struct lurk_loop *l, int opcode, int fd, void *p, size_t len)
{
    struct rec r = { 0 };
    struct io_uring_sqe *sqe = lurk_loop_sqe(l);

    if (opcode == IORING_OP_RECV)
        io_uring_prep_recv(sqe, fd, p, len, 0);
    else if (opcode == IORING_OP_SEND)
        io_uring_prep_send(sqe, fd, p, len, 0);
    else
        io_uring_prep_connect(sqe, fd, p, (socklen_t)len);
    lurk_op_arm(l, lurk_op_new(l, record, &r), sqe, 0);
    run_until_idle(l);
    assert_int_equal(r.calls, 1);
    return r.res;
}

static void test_fault_injection(void **state)
{
    struct lurk_loop *l;
    struct lurk_loop_stats st;
    struct rec cancelled = { 0 };
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t salen = sizeof sa;
    char spec[200], buf[64], big[1000];
    int sv[2], ls, fd, n, total = 0, seq1[20], seq2[20];
    struct lurk_op *op;
    struct io_uring_sqe *sqe;

    (void)state;
    memset(big, 'x', sizeof big);
    ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 4), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &salen), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);

    /* Malformed entries are reported and skipped; the rest applies. */
    snprintf(spec, sizeof spec, "recv:ECONNRESET:2,send:short:every,connect:ECONNREFUSED:1:%d,"
             "recv:ENOMEM:4,nonsense,send:EBOGUS:1,connect:short:1,recv:EIO:0,recv:EIO:1:99999",
             ntohs(sa.sin_port));
    setenv("LURK_FAULT", spec, 1);
    assert_int_equal(lurk_loop_new(&l, 8), 0);

    /* Every send is cut to 1..len-1 bytes; nothing is lost, the rest follows. */
    while (total < (int)sizeof big) {
        n = run_op(l, IORING_OP_SEND, sv[1], big + total, sizeof big - total);
        assert_true(n >= 1 && (n < (int)sizeof big - total || sizeof big - total == 1));
        total += n;
    }
    assert_int_equal(recv(sv[0], big, sizeof big, MSG_WAITALL), (int)sizeof big);

    /* recv #1 works, #2 fails although data is there, #3 gets that data. */
    assert_int_equal(write(sv[1], "abc", 3), 3);
    assert_int_equal(run_op(l, IORING_OP_RECV, sv[0], buf, 1), 1);
    assert_int_equal(run_op(l, IORING_OP_RECV, sv[0], buf, 1), -ECONNRESET);
    assert_int_equal(run_op(l, IORING_OP_RECV, sv[0], buf, sizeof buf), 1);
    assert_memory_equal(buf, "c", 1);

    /* recv #4 is to fail with ENOMEM, but a cancelled op stays cancelled. */
    sqe = lurk_loop_sqe(l);
    io_uring_prep_recv(sqe, sv[0], buf, sizeof buf, 0);
    op = lurk_op_new(l, record, &cancelled);
    lurk_op_arm(l, op, sqe, 0);
    lurk_loop_turn(l, false);
    lurk_op_cancel(l, op);
    run_until_idle(l);
    assert_int_equal(cancelled.res, -ECANCELED);

    /* The port filter: a connect to that port fails though it would succeed. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(run_op(l, IORING_OP_CONNECT, fd, &sa, sizeof sa), -ECONNREFUSED);
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(run_op(l, IORING_OP_CONNECT, fd, &sa, sizeof sa), 0);
    close(fd);

    lurk_loop_stats(l, &st);
    assert_true(st.faults >= 2 + 2);    /* two errors, and at least two cut sends */
    lurk_loop_free(l);

    /* A probability with a seed: the same sends fail in the same order. */
    setenv("LURK_FAULT", "send:EPIPE:p0.5", 1);
    setenv("LURK_FAULT_SEED", "42", 1);
    for (int round = 0; round < 2; round++) {
        int *out = round ? seq2 : seq1, fails = 0;

        assert_int_equal(lurk_loop_new(&l, 8), 0);
        for (int i = 0; i < 20; i++) {
            out[i] = run_op(l, IORING_OP_SEND, sv[1], "y", 1);
            fails += out[i] == -EPIPE;
            assert_true(out[i] == 1 || out[i] == -EPIPE);
        }
        assert_true(fails > 0 && fails < 20);
        lurk_loop_free(l);
    }
    assert_memory_equal(seq1, seq2, sizeof seq1);
    unsetenv("LURK_FAULT");
    unsetenv("LURK_FAULT_SEED");

    /* Without LURK_FAULT nothing is injected. */
    assert_int_equal(lurk_loop_new(&l, 8), 0);
    assert_int_equal(run_op(l, IORING_OP_SEND, sv[1], big, sizeof big), (int)sizeof big);
    lurk_loop_stats(l, &st);
    assert_int_equal(st.faults, 0);
    lurk_loop_free(l);
    close(sv[0]);
    close(sv[1]);
    close(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_order),
        cmocka_unit_test(test_cancel_runs_callback_once),
        cmocka_unit_test(test_linked_deadline_and_cancel),
        cmocka_unit_test(test_free_runs_pending_callbacks),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fault_injection),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
