/* test_tcp: the net layer without Lua: connect, send-all, buffered reads, EOF, close with ops pending, recvmsg/sendmsg in the read/write slots, refusal, resolution. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/loop.h"
#include "net/dns.h"
#include "net/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct rec {
    int calls;
    int res;
};

static void done(void *arg, int res)
{
    struct rec *r = arg;

    r->calls++;
    r->res = res;
}

static struct lurk_loop *loop;
static struct lurk_resolver *resolver;

static void wait_for(struct rec *r, int calls)
{
    while (r->calls < calls)
        assert_true(lurk_loop_turn(loop, true) >= 0);
}

static int listener(int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int setup(void **state)
{
    (void)state;
    if (lurk_loop_new(&loop, 64) < 0 || lurk_resolver_new(&resolver, loop) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lurk_resolver_close(resolver);
    lurk_loop_free(loop);
    return 0;
}

static struct lurk_tcp *connected(const char *host, int lfd, int port, int *peer)
{
    struct lurk_tcp *s;
    struct rec r = { 0 };

    assert_int_equal(lurk_tcp_new(&s, loop, resolver), 0);
    assert_int_equal(lurk_tcp_connect(s, host, port, lurk_now_ns() + 5000000000LL, done, &r), 0);
    wait_for(&r, 1);
    assert_int_equal(r.res, 0);
    assert_true(lurk_tcp_is_open(s));
    *peer = accept(lfd, NULL, NULL);
    assert_true(*peer >= 0);
    return s;
}

static void test_exchange_and_eof(void **state)
{
    int port, lfd = listener(&port), peer;
    struct lurk_tcp *s = connected("127.0.0.1", lfd, port, &peer);
    struct rec w = { 0 }, r = { 0 };
    char got[16] = "";

    (void)state;
    assert_int_equal(lurk_tcp_write(s, "hello", 5, 0, done, &w), 0);
    wait_for(&w, 1);
    assert_int_equal(w.res, 5);
    assert_int_equal(read(peer, got, sizeof got), 5);
    assert_memory_equal(got, "hello", 5);

    assert_int_equal(write(peer, "world", 5), 5);
    close(peer);
    assert_int_equal(lurk_tcp_read(s, 0, 0, done, &r), 0);
    wait_for(&r, 1);
    assert_int_equal(r.res, 5);
    assert_int_equal(lurk_buf_len(lurk_tcp_rbuf(s)), 5);
    assert_memory_equal(lurk_buf_head(lurk_tcp_rbuf(s)), "world", 5);
    assert_int_equal(lurk_tcp_read(s, 0, 0, done, &r), 0);
    wait_for(&r, 2);
    assert_int_equal(r.res, 0);
    assert_true(lurk_tcp_at_eof(s));

    lurk_tcp_close(s);
    lurk_tcp_unref(s);
    close(lfd);
    assert_int_equal(lurk_loop_in_flight(loop), 0);
}

static void test_close_with_pending_ops(void **state)
{
    int port, lfd = listener(&port), peer;
    struct lurk_tcp *s = connected("127.0.0.1", lfd, port, &peer);
    struct rec r = { 0 };

    (void)state;
    assert_int_equal(lurk_tcp_read(s, 0, 0, done, &r), 0);
    assert_int_equal(lurk_tcp_read(s, 0, 0, done, &r), -EBUSY);  /* one reader */
    lurk_loop_turn(loop, false);
    lurk_tcp_close(s);
    wait_for(&r, 1);
    assert_int_equal(r.res, -LURK_ECLOSED);
    assert_int_equal(lurk_tcp_read(s, 0, 0, done, &r), -LURK_ECLOSED);
    assert_int_equal(lurk_tcp_fd(s), -1);   /* closed once nothing is in flight */
    lurk_tcp_unref(s);
    close(peer);
    close(lfd);
}

/* kernel TLS reads records with recvmsg and sends close_notify with
 * sendmsg: both hold the descriptor open like any other op (a close while
 * one is in flight must not free the descriptor number for reuse under it),
 * and a sendmsg cannot start while a write is in flight, so it can never
 * overtake one. */
static void test_msg_ops_hold_the_descriptor(void **state)
{
    int port, lfd = listener(&port), peer, fd, small = 4096;
    struct lurk_tcp *s;
    struct rec r = { 0 }, w = { 0 }, m = { 0 };
    char in[8], big[1 << 16] = { 0 };
    struct iovec iov = { in, sizeof in }, oiov = { (void *)"bye", 3 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 }, omsg = { .msg_iov = &oiov, .msg_iovlen = 1 };

    (void)state;
    /* Small buffers both ends (the peer's set on the listener, before the
     * handshake fixes the window), so the writes below fill the socket
     * whatever tcp_rmem lets a loopback buffer grow to. */
    assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    s = connected("127.0.0.1", lfd, port, &peer);
    assert_int_equal(setsockopt(lurk_tcp_fd(s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(write(peer, "abc", 3), 3);
    assert_int_equal(lurk_tcp_recvmsg(s, &msg, 0, done, &r), 0);
    assert_int_equal(lurk_tcp_read(s, 0, 0, done, &r), -EBUSY);  /* the read slot is taken */
    wait_for(&r, 1);
    assert_int_equal(r.res, 3);
    assert_memory_equal(in, "abc", 3);
    assert_int_equal(lurk_buf_len(lurk_tcp_rbuf(s)), 0);         /* nothing went to the buffer */

    /* A write fills the socket (the peer reads nothing): the sendmsg waits its turn. */
    for (int i = 0; i < 64 && !lurk_tcp_writing(s); i++) {
        assert_int_equal(lurk_tcp_write(s, big, sizeof big, 0, done, &w), 0);
        lurk_loop_turn(loop, false);
        if (w.calls)                  /* it went out whole: try again, the buffer fills */
            w.calls = 0;
    }
    assert_true(lurk_tcp_writing(s));
    assert_int_equal(lurk_tcp_sendmsg(s, &omsg, 0, done, &m), -EBUSY);

    assert_int_equal(lurk_tcp_recvmsg(s, &msg, 0, done, &r), 0);
    lurk_loop_turn(loop, false);
    fd = lurk_tcp_fd(s);
    lurk_tcp_close(s);
    assert_int_equal(lurk_tcp_fd(s), fd);
    assert_true(fcntl(fd, F_GETFD) != -1);    /* still open under the recvmsg */
    wait_for(&r, 2);
    wait_for(&w, 1);
    assert_int_equal(r.res, -LURK_ECLOSED);
    assert_int_equal(w.res, -LURK_ECLOSED);
    assert_int_equal(lurk_tcp_fd(s), -1);
    assert_int_equal(lurk_tcp_sendmsg(s, &omsg, 0, done, &m), -LURK_ECLOSED);
    assert_int_equal(m.calls, 0);
    lurk_tcp_unref(s);
    close(peer);
    close(lfd);
    assert_int_equal(lurk_loop_in_flight(loop), 0);
}

static void test_deadline_on_read(void **state)
{
    int port, lfd = listener(&port), peer;
    struct lurk_tcp *s = connected("127.0.0.1", lfd, port, &peer);
    struct rec r = { 0 };

    (void)state;
    assert_int_equal(lurk_tcp_read(s, 0, lurk_now_ns() + 20000000, done, &r), 0);
    wait_for(&r, 1);
    assert_int_equal(r.res, -ETIMEDOUT);
    assert_true(lurk_tcp_is_open(s));        /* a read timeout keeps the stream */
    lurk_tcp_close(s);
    lurk_tcp_unref(s);
    close(peer);
    close(lfd);
}

static void test_refused_and_resolved(void **state)
{
    int port, lfd = listener(&port), peer;
    struct lurk_tcp *s;
    struct rec r = { 0 };

    (void)state;
    close(lfd);                               /* nothing listens there now */
    assert_int_equal(lurk_tcp_new(&s, loop, resolver), 0);
    assert_int_equal(lurk_tcp_connect(s, "127.0.0.1", port, 0, done, &r), 0);
    wait_for(&r, 1);
    assert_int_equal(r.res, -ECONNREFUSED);
    assert_string_equal(lurk_tcp_addr(s), "127.0.0.1");
    lurk_tcp_close(s);
    lurk_tcp_unref(s);

    /* "localhost" comes from /etc/hosts through c-ares. */
    lfd = listener(&port);
    s = connected("localhost", lfd, port, &peer);
    {
        char want[32];

        snprintf(want, sizeof want, "localhost:%d", port);
        assert_string_equal(lurk_tcp_name(s), want);
    }
    lurk_tcp_close(s);
    lurk_tcp_unref(s);
    close(peer);
    close(lfd);
}

static void test_literals(void **state)
{
    struct lurk_addrs *a;
    char buf[64];

    (void)state;
    assert_int_equal(lurk_addr_literal("10.1.2.3", 80, &a), 1);
    assert_int_equal(a->n, 1);
    assert_string_equal(lurk_addr_str(&a->addr[0], buf, sizeof buf), "10.1.2.3");
    free(a);
    assert_int_equal(lurk_addr_literal("[::1]", 443, &a), 1);
    assert_int_equal(a->addr[0].ss_family, AF_INET6);
    free(a);
    assert_int_equal(lurk_addr_literal("example.com", 80, &a), 0);
    assert_null(a);
    assert_int_equal(lurk_addr_literal("[::1", 80, &a), 0);
    assert_int_equal(lurk_addr_literal("1.2.3.4.5", 80, &a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange_and_eof),
        cmocka_unit_test(test_close_with_pending_ops),
        cmocka_unit_test(test_msg_ops_hold_the_descriptor),
        cmocka_unit_test(test_deadline_on_read),
        cmocka_unit_test(test_refused_and_resolved),
        cmocka_unit_test(test_literals),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
