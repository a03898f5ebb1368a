/* test_exchange: one HTTP/1.1 response through src/http/exchange.c, from a stream filled by hand (buffered and streamed, whole and in pieces) and over a loopback TCP connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/loop.h"
#include "http/exchange.h"
#include "net/dns.h"
#include "net/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

/* ---- a stream in memory: its buffer is filled by the test ---- */

/* The exchange only consumes st->rbuf; it never reads, writes or closes. */
static int mem_read(struct lurk_stream *st, size_t room, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    fail_msg("the exchange read from the stream");
    return -EIO;
}

static int mem_write(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    fail_msg("the exchange wrote to the stream");
    return -EIO;
}

static void mem_cancel(struct lurk_stream *st, int which)
{
    fail_msg("the exchange cancelled a stream operation");
}

static void mem_close(struct lurk_stream *st)
{
    fail_msg("the exchange closed the stream");
}

static const struct lurk_stream_ops mem_ops = { mem_read, mem_write, mem_cancel, mem_close, NULL };

static void put(struct lurk_buf *b, const void *p, size_t n)
{
    assert_int_equal(lurk_buf_reserve(b, n + 1), 0);
    if (n)
        memcpy(lurk_buf_tail(b), p, n);
    lurk_buf_commit(b, n);
}

/* Moves everything in from to the end of to. */
static void take(struct lurk_buf *from, struct lurk_buf *to)
{
    size_t n = lurk_buf_len(from);

    if (n == 0)
        return;                       /* from may have no storage yet */
    put(to, lurk_buf_head(from), n);
    lurk_buf_consume(from, n);
}

enum { EOF_ASKED, EOF_NEVER, EOF_WITH_DATA };

struct opts {
    bool head, decompress, streamed, stop_at_continue;
    size_t max_body;                  /* 0: 1 MiB */
    size_t drain;                     /* the redirect drain cap, 0: redirects are not followed */
    size_t piece;                     /* bytes per read, 0: everything in one read */
    int eof;                          /* EOF_ASKED: the stream ends when the exchange wants more
                                         than there is; EOF_NEVER: it never ends; EOF_WITH_DATA:
                                         it ends with the last read */
    bool cut;                         /* ...without close_notify */
};

struct result {
    int rc;                           /* LURK_X_DONE, LURK_X_READ (still waiting) or an error */
    int status, heads, datas, continues;
    struct lurk_buf body;             /* decoded body: DATA, or out at DONE or after an error */
    bool keep_alive;
    size_t left;                      /* input not consumed */
    char why[160];
};

static void result_fini(struct result *r)
{
    lurk_buf_fini(&r->body);
}

/* Drives one exchange over msg as the bindings do: step, and on
 * LURK_X_READ append the next read to the stream's buffer. */
static void run(const void *msg, size_t len, const struct opts *o, struct result *r)
{
    struct lurk_buf in = { 0 };
    struct lurk_stream st = { .ops = &mem_ops, .rbuf = &in, .open = 1 };
    struct lurk_exchange x;
    size_t off = 0, steps = 0;

    memset(r, 0, sizeof *r);
    lurk_exchange_init(&x, 8192, 64);
    lurk_exchange_begin(&x, &st, o->head, o->max_body ? o->max_body : 1 << 20, o->decompress, o->streamed,
                        o->stop_at_continue);
    if (o->drain)
        lurk_exchange_drain_redirects(&x, o->drain);
    for (;;) {
        int ev = lurk_exchange_step(&x);

        assert_true(++steps < 1000000);
        if (ev < 0) {
            r->rc = ev;
            assert_true(x.why[0] != '\0');
            snprintf(r->why, sizeof r->why, "%s", x.why);
            take(&x.out, &r->body);   /* the partial body */
            break;
        }
        if (ev == LURK_X_READ) {
            size_t n = o->piece && o->piece < len - off ? o->piece : len - off;

            assert_false(st.eof);
            if (n == 0) {
                if (o->eof == EOF_NEVER) {
                    r->rc = ev;
                    break;
                }
                st.eof = 1;
                st.cut = o->cut;
                continue;
            }
            put(&in, (const char *)msg + off, n);
            off += n;
            if (off == len && o->eof == EOF_WITH_DATA) {
                st.eof = 1;
                st.cut = o->cut;
            }
            continue;
        }
        switch (ev) {
        case LURK_X_HEAD:
            assert_true(o->streamed);
            assert_int_equal(r->heads++, 0);
            r->status = x.h.status;
            break;
        case LURK_X_DATA:
            assert_true(o->streamed && r->heads == 1);
            assert_true(lurk_buf_len(&x.out) > 0);
            assert_true(lurk_buf_len(&x.out) <= x.max_body);
            r->datas++;
            take(&x.out, &r->body);
            break;
        case LURK_X_CONTINUE:
            assert_true(o->stop_at_continue && r->heads == 0);
            r->continues++;
            break;
        case LURK_X_DONE:
            assert_true(!o->streamed || r->heads == 1);
            r->status = x.h.status;
            assert_true(lurk_buf_len(&x.out) <= x.max_body);
            take(&x.out, &r->body);
            r->keep_alive = lurk_exchange_keep_alive(&x);
            assert_int_equal(lurk_exchange_step(&x), LURK_X_DONE);   /* and nothing else after */
            r->rc = ev;
            break;
        default:
            fail_msg("unknown event %d", ev);
        }
        if (ev == LURK_X_DONE)
            break;
    }
    if (r->rc != LURK_X_DONE)
        assert_false(lurk_exchange_keep_alive(&x));
    r->status = x.head_seen ? x.h.status : 0;
    r->left = lurk_buf_len(&in) + (len - off);
    lurk_exchange_fini(&x);
    lurk_buf_fini(&in);
}

static bool same_body(const struct result *a, const struct result *b)
{
    return lurk_buf_len(&a->body) == lurk_buf_len(&b->body) &&
           (lurk_buf_len(&a->body) == 0 || memcmp(a->body.data, b->body.data, lurk_buf_len(&a->body)) == 0);
}

/* Runs msg buffered in one read (into r), then buffered and streamed,
 * whole, byte by byte and in 7-byte reads: every way must end the same,
 * with the same body when it is DONE. */
static void run_all(const void *msg, size_t len, struct opts o, struct result *r)
{
    static const size_t pieces[] = { 0, 1, 7 };

    o.streamed = false;
    o.piece = 0;
    run(msg, len, &o, r);
    for (int streamed = 0; streamed < 2; streamed++)
        for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
            struct result other;

            if (!streamed && pieces[i] == 0)
                continue;
            o.streamed = streamed;
            o.piece = pieces[i];
            run(msg, len, &o, &other);
            if (other.rc != r->rc)
                fail_msg("streamed %d, pieces of %zu: %d (%s), whole buffered: %d (%s)", streamed, pieces[i],
                         other.rc, other.why, r->rc, r->why);
            assert_int_equal(other.status, r->status);
            if (r->rc == LURK_X_DONE) {
                assert_true(same_body(&other, r));
                if (other.keep_alive != r->keep_alive)
                    fail_msg("streamed %d, pieces of %zu: keep-alive %d, whole buffered: %d", streamed, pieces[i],
                             other.keep_alive, r->keep_alive);
                assert_int_equal(other.left, r->left);
            }
            if (streamed && pieces[i] == 1 && lurk_buf_len(&r->body) > 1 && r->rc == LURK_X_DONE)
                assert_true(other.datas > 1);   /* byte by byte: the body came in pieces */
            result_fini(&other);
        }
}

static void run_str(const char *msg, struct opts o, struct result *r)
{
    run_all(msg, strlen(msg), o, r);
}

static void assert_body(const struct result *r, const void *p, size_t n)
{
    assert_int_equal(lurk_buf_len(&r->body), n);
    if (n)
        assert_memory_equal(r->body.data, p, n);
}

static void assert_body_str(const struct result *r, const char *s)
{
    assert_body(r, s, strlen(s));
}

/* ---- building responses ---- */

/* p[0..n) compressed by zlib: bits 31 for gzip, 15 for zlib (what
 * "deflate" means), -15 for raw deflate. */
static void encode(struct lurk_buf *out, const void *p, size_t n, int bits)
{
    z_stream z;
    size_t cap;

    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    cap = deflateBound(&z, (uLong)n);
    assert_int_equal(lurk_buf_reserve(out, cap), 0);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)lurk_buf_tail(out);
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    lurk_buf_commit(out, cap - z.avail_out);
    deflateEnd(&z);
}

/* b encoded again, in place. */
static void reencode(struct lurk_buf *b, int bits)
{
    struct lurk_buf t = { 0 };

    encode(&t, lurk_buf_head(b), lurk_buf_len(b), bits);
    lurk_buf_fini(b);
    *b = t;
}

static struct lurk_buf gzipped(const char *s, int times)
{
    struct lurk_buf b = { 0 };

    put(&b, s, strlen(s));
    while (times-- > 0)
        reencode(&b, 31);
    return b;
}

/* head (status line and header lines), Content-Length, and the body. */
static struct lurk_buf response(const char *head, const void *body, size_t n)
{
    struct lurk_buf m = { 0 };
    char cl[64];

    put(&m, head, strlen(head));
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", n);
    put(&m, cl, strlen(cl));
    put(&m, body, n);
    return m;
}

/* Runs a response whose body is b, with head's headers. */
static void run_body(const char *head, const struct lurk_buf *b, struct opts o, struct result *r)
{
    struct lurk_buf m = response(head, lurk_buf_head(b), lurk_buf_len(b));

    run_all(m.data, lurk_buf_len(&m), o, r);
    lurk_buf_fini(&m);
}

static const char text[] =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair.";

/* ---- framing ---- */

static void test_content_length(void **state)
{
    struct result r;

    (void)state;
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_int_equal(r.status, 200);
    assert_body_str(&r, "hello world");
    assert_true(r.keep_alive);
    result_fini(&r);

    /* An empty body. */
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "");
    assert_true(r.keep_alive);
    result_fini(&r);
}

static void test_chunked_with_trailers(void **state)
{
    struct result r;

    (void)state;
    run_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\nX-More: 1\r\n\r\n",
            (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "hello world");
    assert_true(r.keep_alive);
    result_fini(&r);
}

static void test_close_delimited(void **state)
{
    static const char msg[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
    struct result r;

    (void)state;
    run_str(msg, (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "until the end");
    assert_false(r.keep_alive);
    result_fini(&r);

    /* Without the end of the stream the body goes on. */
    run_str(msg, (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_READ);
    result_fini(&r);
    run(msg, strlen(msg), &(struct opts){ .eof = EOF_NEVER, .streamed = true, .piece = 3 }, &r);
    assert_int_equal(r.rc, LURK_X_READ);
    assert_int_equal(r.heads, 1);
    assert_body_str(&r, "until the end");   /* every byte so far, as DATA */
    result_fini(&r);
}

static void test_interim_responses(void **state)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n"
                              "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    struct result r;

    (void)state;
    run_str(msg, (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.continues, 0);
    assert_body_str(&r, "ok");
    result_fini(&r);

    /* Reported only when asked, and then only 100. */
    for (int streamed = 0; streamed < 2; streamed++) {
        run(msg, strlen(msg), &(struct opts){ .stop_at_continue = true, .streamed = streamed, .eof = EOF_NEVER },
            &r);
        assert_int_equal(r.rc, LURK_X_DONE);
        assert_int_equal(r.continues, 1);
        assert_int_equal(r.status, 200);
        assert_body_str(&r, "ok");
        result_fini(&r);
    }
    run_str(msg + strlen("HTTP/1.1 100 Continue\r\n\r\n"), (struct opts){ .stop_at_continue = true }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_int_equal(r.continues, 0);
    result_fini(&r);
}

static void test_no_body(void **state)
{
    struct result r;

    (void)state;
    /* A response to HEAD has no body, whatever Content-Length says. */
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", (struct opts){ .head = true, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "");
    assert_true(r.keep_alive);
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            (struct opts){ .head = true, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_true(r.keep_alive);
    result_fini(&r);

    run_str("HTTP/1.1 204 No Content\r\n\r\n", (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_int_equal(r.status, 204);
    assert_body_str(&r, "");
    assert_true(r.keep_alive);
    result_fini(&r);
    run_str("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_int_equal(r.status, 304);
    assert_body_str(&r, "");
    assert_true(r.keep_alive);
    result_fini(&r);
}

static void test_keep_alive(void **state)
{
    static const char extra[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    struct result r;

    (void)state;
    run_str("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_false(r.keep_alive);
    result_fini(&r);

    run_str("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_false(r.keep_alive);
    result_fini(&r);
    run_str("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_true(r.keep_alive);
    result_fini(&r);

    /* Bytes after the response (read with it): the connection is out of step. */
    run(extra, strlen(extra), &(struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "ok");
    assert_false(r.keep_alive);
    assert_int_equal(r.left, strlen("HTTP/1.1 200 OK\r\n"));
    result_fini(&r);
    run(extra, strlen(extra), &(struct opts){ .eof = EOF_NEVER, .streamed = true, .piece = 30 }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_false(r.keep_alive);
    result_fini(&r);

    /* The peer ended the stream along with the response. */
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", (struct opts){ .eof = EOF_WITH_DATA }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_false(r.keep_alive);
    result_fini(&r);
}

/* ---- streams that end ---- */

static void test_no_response(void **state)
{
    struct result r;

    (void)state;
    for (int cut = 0; cut < 2; cut++) {
        run("", 0, &(struct opts){ .cut = cut }, &r);
        assert_int_equal(r.rc, -LURK_EEOF);
        assert_non_null(strstr(r.why, "without a response"));
        result_fini(&r);
    }
    /* One byte came: a truncated response, not a missing one. */
    run_str("H", (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_null(strstr(r.why, "without a response"));
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\nContent-Le", (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    result_fini(&r);
}

static void test_truncated_body(void **state)
{
    struct result r;

    (void)state;
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_body_str(&r, "hello");   /* out holds what came */
    result_fini(&r);

    run_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_body_str(&r, "hello");
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_body_str(&r, "hel");
    result_fini(&r);
    /* The last chunk without the blank line that ends the message. */
    run_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n", (struct opts){ 0 }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    result_fini(&r);
}

static void test_cut_without_close_notify(void **state)
{
    struct result r;

    (void)state;
    /* Only the end of the stream delimits this body: a cut decides nothing. */
    run_str("HTTP/1.1 200 OK\r\n\r\nuntil the end", (struct opts){ .cut = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_non_null(strstr(r.why, "close_notify"));
    assert_body_str(&r, "until the end");
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\n\r\n", (struct opts){ .cut = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_non_null(strstr(r.why, "close_notify"));
    result_fini(&r);

    /* A body with its own length is complete whatever the end. */
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", (struct opts){ .cut = true, .eof = EOF_WITH_DATA }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "ok");
    assert_false(r.keep_alive);
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            (struct opts){ .cut = true, .eof = EOF_WITH_DATA }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "ok");
    result_fini(&r);
    /* ...and a truncated one is still truncated, not cut. */
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", (struct opts){ .cut = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_null(strstr(r.why, "close_notify"));
    result_fini(&r);
}

/* ---- limits ---- */

static void test_max_body(void **state)
{
    struct lurk_buf b = { 0 }, z;
    struct result r;

    (void)state;
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", (struct opts){ .max_body = 11 }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", (struct opts){ .max_body = 10 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            (struct opts){ .max_body = 10 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    assert_body_str(&r, "hello");   /* the chunk within the limit */
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\n\r\nhello world", (struct opts){ .max_body = 10 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    result_fini(&r);

    /* Decoded: a small body that expands past the limit. */
    for (int i = 0; i < 4096; i++)
        put(&b, "a", 1);
    z = b;
    memset(&b, 0, sizeof b);
    encode(&b, z.data, lurk_buf_len(&z), 31);
    assert_true(lurk_buf_len(&b) < 100);
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &b,
             (struct opts){ .decompress = true, .max_body = 4096 }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body(&r, z.data, 4096);
    result_fini(&r);
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &b,
             (struct opts){ .decompress = true, .max_body = 4095 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    assert_non_null(strstr(r.why, "decompressed"));
    assert_memory_equal(r.body.data, z.data, lurk_buf_len(&r.body));   /* the partial body */
    assert_true(lurk_buf_len(&r.body) <= 4095);   /* never more than max_body */
    result_fini(&r);
    /* Not decompressed, the same body is small. */
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &b, (struct opts){ .max_body = 100 }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body(&r, b.data, lurk_buf_len(&b));
    result_fini(&r);
    /* A bomb: 100,000 bytes from a little gzip, max_body 1000. */
    lurk_buf_fini(&z);
    memset(&z, 0, sizeof z);
    for (int i = 0; i < 100000; i++)
        put(&z, "a", 1);
    lurk_buf_fini(&b);
    memset(&b, 0, sizeof b);
    encode(&b, z.data, lurk_buf_len(&z), 31);
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &b,
             (struct opts){ .decompress = true, .max_body = 1000 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    assert_true(lurk_buf_len(&r.body) <= 1000);
    result_fini(&r);
    lurk_buf_fini(&b);
    lurk_buf_fini(&z);
}

/* ---- Content-Encoding ---- */

/* A response with head's headers and body b, decompressed: text. */
static void assert_decodes(const char *head, const struct lurk_buf *b)
{
    struct result r;

    run_body(head, b, (struct opts){ .decompress = true, .eof = EOF_NEVER }, &r);
    if (r.rc != LURK_X_DONE)
        fail_msg("%s: %d (%s)", head, r.rc, r.why);
    assert_body_str(&r, text);
    assert_true(r.keep_alive);
    result_fini(&r);
}

static void test_codings(void **state)
{
    struct lurk_buf g = gzipped(text, 1), gg = gzipped(text, 2), dg = { 0 }, raw = { 0 };
    struct result r;

    (void)state;
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &g);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: GZip\r\n", &g);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: x-gzip\r\n", &g);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: gzip,,\r\n", &g);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: , \t,gzip , \r\n", &g);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Encoding: gzip\r\n", &g);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\n", &gg);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Encoding: gzip\r\n", &gg);

    /* deflate (zlib-wrapped, as meant), then identity, then gzip. */
    encode(&dg, text, strlen(text), 15);
    reencode(&dg, 31);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: deflate, identity, gzip\r\n", &dg);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Encoding: gzip\r\n", &dg);
    /* Raw deflate, which some servers send. */
    encode(&raw, text, strlen(text), -15);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n", &raw);

    /* The wrong order is an error, not a guess. */
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip, deflate\r\n", &dg, (struct opts){ .decompress = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    result_fini(&r);
    /* Not asked to decompress: the bytes as they came. */
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\n", &gg, (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body(&r, gg.data, lurk_buf_len(&gg));
    result_fini(&r);
    lurk_buf_fini(&g);
    lurk_buf_fini(&gg);
    lurk_buf_fini(&dg);
    lurk_buf_fini(&raw);
}

static void test_unknown_coding(void **state)
{
    static const char msg[] = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br\r\nContent-Length: 5\r\n\r\nbrotl";
    struct result r;

    (void)state;
    run_str(msg, (struct opts){ .decompress = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_non_null(strstr(r.why, "\"br\""));
    result_fini(&r);
    run_str(msg, (struct opts){ .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "brotl");
    result_fini(&r);

    /* Without a body the codings never matter. */
    run_str("HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 5\r\n\r\n",
            (struct opts){ .decompress = true, .head = true, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_true(r.keep_alive);
    result_fini(&r);
    run_str("HTTP/1.1 204 No Content\r\nContent-Encoding: br\r\n\r\n",
            (struct opts){ .decompress = true, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    result_fini(&r);
    run_str("HTTP/1.1 304 Not Modified\r\nContent-Encoding: zstd\r\nContent-Length: 9\r\n\r\n",
            (struct opts){ .decompress = true, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    result_fini(&r);
    run_str("HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n",
            (struct opts){ .decompress = true, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    result_fini(&r);
}

static void test_too_many_codings(void **state)
{
    struct lurk_buf g4 = gzipped(text, LURK_EXCHANGE_MAX_CODINGS), g5 = gzipped(text, LURK_EXCHANGE_MAX_CODINGS + 1);
    struct result r;

    (void)state;
    assert_int_equal(LURK_EXCHANGE_MAX_CODINGS, 4);
    assert_decodes("HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip, identity, gzip, gzip\r\n", &g4);
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip, gzip\r\nContent-Encoding: gzip, gzip\r\n", &g5,
             (struct opts){ .decompress = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_non_null(strstr(r.why, "more than 4"));
    result_fini(&r);
    lurk_buf_fini(&g4);
    lurk_buf_fini(&g5);
}

static void test_corrupt_gzip(void **state)
{
    struct lurk_buf g = gzipped(text, 1), half = { 0 };
    struct result r;

    (void)state;
    g.data[lurk_buf_len(&g) / 2] ^= 0x55;
    g.data[lurk_buf_len(&g) / 2 + 1] ^= 0xaa;
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &g, (struct opts){ .decompress = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_non_null(strstr(r.why, "gzip"));
    result_fini(&r);
    lurk_buf_fini(&g);

    /* Cut short, with a length that agrees: the stream never ended. The
     * decoded part is kept (partial). */
    g = gzipped(text, 1);
    put(&half, g.data, lurk_buf_len(&g) - 12);
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &half, (struct opts){ .decompress = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    assert_true(lurk_buf_len(&r.body) > 0 && lurk_buf_len(&r.body) <= strlen(text));
    assert_memory_equal(r.body.data, text, lurk_buf_len(&r.body));
    result_fini(&r);
    /* Bytes after the end of the gzip stream. */
    put(&g, "junk", 4);
    run_body("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &g, (struct opts){ .decompress = true }, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    result_fini(&r);
    lurk_buf_fini(&g);
    lurk_buf_fini(&half);
}

/* ---- redirects ---- */

static void test_drain_redirects(void **state)
{
    struct lurk_buf big = { 0 }, m;
    struct result r;

    (void)state;
    for (int i = 0; i < 5000; i++)
        put(&big, "x", 1);

    /* Drained past max_body, and nothing kept. */
    run_body("HTTP/1.1 302 Found\r\nLocation: /next\r\n", &big,
             (struct opts){ .max_body = 100, .drain = 65536, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_int_equal(r.status, 302);
    assert_body_str(&r, "");
    assert_true(r.keep_alive);
    assert_int_equal(r.left, 0);
    result_fini(&r);
    /* Chunked, with a coding nobody will undo. */
    run_str("HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
            (struct opts){ .max_body = 2, .decompress = true, .drain = 100, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "");
    assert_true(r.keep_alive);
    result_fini(&r);

    /* Past the drain cap: done at once, the connection not reusable. */
    m = response("HTTP/1.1 307 Temporary Redirect\r\nLocation: https://example.com/\r\n", big.data, lurk_buf_len(&big));
    for (int streamed = 0; streamed < 2; streamed++) {
        run(m.data, lurk_buf_len(&m),
            &(struct opts){ .max_body = 1 << 20, .drain = 1000, .piece = 100,
                           .streamed = streamed, .eof = EOF_NEVER }, &r);
        assert_int_equal(r.rc, LURK_X_DONE);
        assert_body_str(&r, "");
        assert_false(r.keep_alive);
        assert_true(r.left > 3000);   /* the rest was never read */
        result_fini(&r);
    }
    /* (When the whole of it is in the buffer the response did end, and
     * nothing stands in the way of the next one.) */
    run(m.data, lurk_buf_len(&m), &(struct opts){ .drain = 1000, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body_str(&r, "");
    assert_int_equal(r.left, 0);
    result_fini(&r);
    lurk_buf_fini(&m);

    /* Without a Location it is a body like any other: max_body applies. */
    run_body("HTTP/1.1 302 Found\r\nX-Location: /next\r\n", &big, (struct opts){ .max_body = 100, .drain = 65536 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    result_fini(&r);
    run_body("HTTP/1.1 302 Found\r\nLocation:\r\n", &big, (struct opts){ .max_body = 100, .drain = 65536 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    result_fini(&r);
    run_body("HTTP/1.1 302 Found\r\n", &big, (struct opts){ .drain = 65536, .eof = EOF_NEVER }, &r);
    assert_int_equal(r.rc, LURK_X_DONE);
    assert_body(&r, big.data, lurk_buf_len(&big));
    result_fini(&r);
    /* Nor is a redirect drained when redirects are not followed. */
    run_body("HTTP/1.1 302 Found\r\nLocation: /next\r\n", &big, (struct opts){ .max_body = 100 }, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    result_fini(&r);
    lurk_buf_fini(&big);
}

/* ---- over a loopback TCP connection ---- */

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

/* A connection to a loopback listener: the socket, and the peer's end. */
static struct lurk_tcp *connected(int *peer, int *lfd)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    struct lurk_tcp *s;
    struct rec r = { 0 };

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*lfd >= 0);
    assert_int_equal(bind(*lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(*lfd, 4), 0);
    assert_int_equal(getsockname(*lfd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(lurk_tcp_new(&s, loop, resolver), 0);
    assert_int_equal(lurk_tcp_connect(s, "127.0.0.1", ntohs(a.sin_port), lurk_now_ns() + 5000000000LL, done, &r), 0);
    wait_for(&r, 1);
    assert_int_equal(r.res, 0);
    *peer = accept(*lfd, NULL, NULL);
    assert_true(*peer >= 0);
    return s;
}

/*
 * Steps x until it wants input or ends; on LURK_X_READ reads once
 * (lurk_stream_read, as the bindings do) and returns LURK_X_READ, so the
 * caller can send the next piece. Collects DATA into body.
 */
static int step_and_read(struct lurk_exchange *x, struct lurk_buf *body, int *reads)
{
    for (;;) {
        int ev = lurk_exchange_step(x);
        struct rec rec = { 0 };

        if (ev == LURK_X_DATA) {
            take(&x->out, body);
            continue;
        }
        if (ev != LURK_X_READ)
            return ev;
        assert_int_equal(lurk_stream_read(x->st, 65536, lurk_now_ns() + 5000000000LL, done, &rec), 0);
        wait_for(&rec, 1);
        assert_true(rec.res >= 0);
        (*reads)++;
        return LURK_X_READ;
    }
}

static void test_socket_chunked_in_pieces(void **state)
{
    static const char *const pieces[] = {
        "HTTP/1.1 200 OK\r\nTransfer-",
        "Encoding: chunked\r\n\r\n5\r\nhel",
        "lo\r\n",
        "6\r\n world\r\n0\r\n",
        "\r\n",
    };
    int lfd, peer, reads = 0, ev;
    struct lurk_tcp *s = connected(&peer, &lfd);
    struct lurk_exchange x;
    struct lurk_buf body = { 0 };

    (void)state;
    lurk_exchange_init(&x, 8192, 64);
    lurk_exchange_begin(&x, lurk_tcp_stream(s), false, 1 << 20, false, true, false);
    assert_int_equal(lurk_exchange_step(&x), LURK_X_READ);   /* nothing yet */
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        struct rec rec = { 0 };
        size_t n = strlen(pieces[i]);

        /* Each piece is on its way before the read starts, and read alone. */
        assert_int_equal(write(peer, pieces[i], n), (ssize_t)n);
        assert_int_equal(lurk_stream_read(x.st, 65536, lurk_now_ns() + 5000000000LL, done, &rec), 0);
        wait_for(&rec, 1);
        assert_int_equal(rec.res, (int)n);
        for (;;) {
            ev = lurk_exchange_step(&x);
            if (ev == LURK_X_DATA)
                take(&x.out, &body);
            else if (ev != LURK_X_HEAD)
                break;
        }
        assert_int_equal(ev, i + 1 < sizeof pieces / sizeof pieces[0] ? LURK_X_READ : LURK_X_DONE);
    }
    assert_int_equal(x.h.status, 200);
    assert_int_equal(lurk_buf_len(&body), 11);
    assert_memory_equal(body.data, "hello world", 11);
    assert_true(lurk_exchange_keep_alive(&x));

    /* The next response on the same connection, close-delimited this time. */
    lurk_exchange_begin(&x, lurk_tcp_stream(s), false, 1 << 20, false, false, false);
    lurk_buf_consume(&body, lurk_buf_len(&body));
    assert_int_equal(write(peer, "HTTP/1.1 200 OK\r\n\r\nuntil ", 25), 25);
    while ((ev = step_and_read(&x, &body, &reads)) == LURK_X_READ)
        if (reads == 1)
            assert_int_equal(write(peer, "the end", 7), 7);
        else if (reads == 2)
            close(peer);
    assert_int_equal(ev, LURK_X_DONE);
    assert_true(reads >= 3);          /* the last read saw the end of the stream */
    assert_true(lurk_tcp_at_eof(s));
    take(&x.out, &body);
    assert_int_equal(lurk_buf_len(&body), 13);
    assert_memory_equal(body.data, "until the end", 13);
    assert_false(lurk_exchange_keep_alive(&x));

    lurk_exchange_fini(&x);
    lurk_buf_fini(&body);
    lurk_tcp_close(s);
    lurk_tcp_unref(s);
    close(lfd);
    assert_int_equal(lurk_loop_in_flight(loop), 0);
}

static void test_socket_close_delimited_streamed(void **state)
{
    int lfd, peer, reads = 0, ev;
    struct lurk_tcp *s = connected(&peer, &lfd);
    struct lurk_exchange x;
    struct lurk_buf body = { 0 }, g = gzipped(text, 1);
    char head[] = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n";
    size_t off = 0;

    (void)state;
    lurk_exchange_init(&x, 8192, 64);
    lurk_exchange_begin(&x, lurk_tcp_stream(s), false, 1 << 20, true, true, false);
    assert_int_equal(write(peer, head, strlen(head)), (ssize_t)strlen(head));
    /* The gzip body in 16-byte writes, one per read, then the close. */
    while ((ev = step_and_read(&x, &body, &reads)) == LURK_X_READ || ev == LURK_X_HEAD) {
        if (ev == LURK_X_HEAD) {
            assert_int_equal(x.h.status, 200);
            continue;
        }
        if (off < lurk_buf_len(&g)) {
            size_t n = lurk_buf_len(&g) - off < 16 ? lurk_buf_len(&g) - off : 16;

            assert_int_equal(write(peer, g.data + off, n), (ssize_t)n);
            off += n;
        } else if (peer >= 0) {
            close(peer);
            peer = -1;
        }
    }
    assert_int_equal(ev, LURK_X_DONE);
    assert_int_equal(peer, -1);
    assert_int_equal(lurk_buf_len(&body), strlen(text));
    assert_memory_equal(body.data, text, strlen(text));
    assert_false(lurk_exchange_keep_alive(&x));

    lurk_exchange_fini(&x);
    lurk_buf_fini(&body);
    lurk_buf_fini(&g);
    lurk_tcp_close(s);
    lurk_tcp_unref(s);
    close(lfd);
    assert_int_equal(lurk_loop_in_flight(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked_with_trailers),
        cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_interim_responses),
        cmocka_unit_test(test_no_body),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_no_response),
        cmocka_unit_test(test_truncated_body),
        cmocka_unit_test(test_cut_without_close_notify),
        cmocka_unit_test(test_max_body),
        cmocka_unit_test(test_codings),
        cmocka_unit_test(test_unknown_coding),
        cmocka_unit_test(test_too_many_codings),
        cmocka_unit_test(test_corrupt_gzip),
        cmocka_unit_test(test_drain_redirects),
        cmocka_unit_test(test_socket_chunked_in_pieces),
        cmocka_unit_test(test_socket_close_delimited_streamed),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
