/* test_http_parse: HTTP/1.1 response parsing fed at every split point, each input ending at a PROT_NONE guard page. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "http/h1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Copies s so that its last byte sits right before an unmapped page. */
static char *guarded(const char *s, size_t len, void **map, size_t *maplen)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page + 1;
    char *m = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + (n - 1) * page, page, PROT_NONE), 0);
    *map = m;
    *maplen = n * page;
    memcpy(m + (n - 1) * page - len, s, len);
    return m + (n - 1) * page - len;
}

struct result {
    int rc;                           /* 0, or the first negative code */
    int status;
    char headers[512];                /* "name=value;" ... */
    char body[4096];
    size_t body_len;
    bool keep_alive;
};

/* Notes one event of h in r; returns whether the response ended. */
static bool record(struct result *r, const struct lurk_h1 *h, int ev)
{
    if (ev == LURK_H1_HEAD) {
        r->status = h->status;
        for (int k = 0; k < h->nhdr; k++) {
            char one[128];

            snprintf(one, sizeof one, "%.*s=%.*s;", (int)h->hdr[k].name_len, h->head.data + h->hdr[k].name,
                     (int)h->hdr[k].value_len, h->head.data + h->hdr[k].value);
            strcat(r->headers, one);
        }
    } else if (ev == LURK_H1_BODY) {
        assert_true(r->body_len + h->body_len < sizeof r->body);
        memcpy(r->body + r->body_len, h->body, h->body_len);
        r->body_len += h->body_len;
    } else if (ev == LURK_H1_INTERIM) {
        assert_true(h->status >= 100 && h->status < 200);
    }
    return ev == LURK_H1_DONE;
}

/* After the input: the end of the stream if eof, then the outcome (1:
 * incomplete, no error). */
static void finish(struct result *r, struct lurk_h1 *h, bool done, bool eof)
{
    if (!done && r->rc == 0 && eof) {
        int ev = lurk_h1_finish(h);

        if (ev < 0)
            r->rc = ev;
        else
            done = true;
    }
    if (!done && r->rc == 0)
        r->rc = 1;
    r->keep_alive = lurk_h1_keep_alive(h);
    lurk_h1_fini(h);
}

/* Feeds msg in two pieces split at `split` (each piece guarded), then EOF
 * if eof. */
static void run(const char *msg, size_t split, bool head, bool eof, struct result *r)
{
    size_t len = strlen(msg), parts[2] = { split, len - split }, off = 0;
    struct lurk_h1 h;
    bool done = false;

    memset(r, 0, sizeof *r);
    lurk_h1_init(&h, head, 4096, 32);
    for (int i = 0; i < 2 && !done && r->rc == 0; i++) {
        void *map;
        size_t maplen, pos = 0, used;
        char *in = guarded(msg + off, parts[i], &map, &maplen);

        while (!done) {
            int ev = lurk_h1_feed(&h, in + pos, parts[i] - pos, &used);

            pos += used;
            if (ev < 0) {
                r->rc = ev;
                break;
            }
            done = record(r, &h, ev);
            if (ev == LURK_H1_MORE && pos == parts[i])
                break;                /* MORE with everything used */
        }
        munmap(map, maplen);
        off += parts[i];
    }
    finish(r, &h, done, eof);
}

/* Feeds msg one byte at a time, each byte guarded, then EOF if eof. */
static void run_bytewise(const char *msg, bool head, bool eof, struct result *r)
{
    size_t len = strlen(msg), off = 0;
    struct lurk_h1 h;
    bool done = false;

    memset(r, 0, sizeof *r);
    lurk_h1_init(&h, head, 4096, 32);
    while (!done && r->rc == 0) {
        void *map;
        size_t maplen, pos = 0, used, n = off < len ? 1 : 0;
        char *in = guarded(msg + off, n, &map, &maplen);

        for (;;) {
            int ev = lurk_h1_feed(&h, in + pos, n - pos, &used);

            pos += used;
            if (ev < 0) {
                r->rc = ev;
                break;
            }
            done = record(r, &h, ev);
            if (done || (ev == LURK_H1_MORE && pos == n))
                break;
        }
        munmap(map, maplen);
        off += pos;
        if (n == 0)
            break;                    /* one empty feed after the input, as readers do */
    }
    finish(r, &h, done, eof);
}

/* Runs every split, and byte by byte, and checks each gives the same result. */
static void every_split(const char *msg, bool head, bool eof, struct result *want)
{
    struct result r;
    size_t len = strlen(msg);

    run(msg, len, head, eof, want);
    run_bytewise(msg, head, eof, &r);
    if (r.rc != want->rc || r.status != want->status || strcmp(r.headers, want->headers) != 0 ||
        r.body_len != want->body_len || memcmp(r.body, want->body, r.body_len) != 0)
        fail_msg("byte by byte differs: rc %d/%d status %d/%d headers %s/%s", r.rc, want->rc, r.status,
                 want->status, r.headers, want->headers);
    for (size_t split = 0; split <= len; split++) {
        run(msg, split, head, eof, &r);
        if (r.rc != want->rc || r.status != want->status || strcmp(r.headers, want->headers) != 0 ||
            r.body_len != want->body_len || memcmp(r.body, want->body, r.body_len) != 0)
            fail_msg("split at %zu differs: rc %d/%d status %d/%d", split, r.rc, want->rc, r.status, want->status);
    }
}

/* Each response, however it is split, is refused as malformed. */
static void all_refused(const char *const *bad, size_t n)
{
    struct result r;

    for (size_t i = 0; i < n; i++) {
        every_split(bad[i], false, true, &r);
        if (r.rc != -LURK_EHTTP)
            fail_msg("case %zu: rc %d, want -LURK_EHTTP", i, r.rc);
    }
}

static void test_content_length(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.headers, "content-length=5;x-a=1;x-a=2;");
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "hello", 5);
    assert_true(r.keep_alive);
}

static void test_chunked_with_extensions_and_trailers(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n",
                false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.headers, "transfer-encoding=chunked;");
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "hello world", 11);
}

static void test_close_delimited(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", false, true, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.body_len, 13);
    assert_false(r.keep_alive);
}

static void test_no_body_cases(void **state)
{
    struct result r;

    (void)state;
    /* HEAD: Content-Length describes the GET body, none follows. */
    every_split("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.body_len, 0);
    assert_true(r.keep_alive);
    every_split("HTTP/1.1 204 No Content\r\n\r\n", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 204);
    every_split("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.body_len, 0);
}

static void test_interim_responses_skipped(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.headers, "content-length=2;");
    assert_memory_equal(r.body, "ok", 2);
}

static void test_lf_only_lines_accepted(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_memory_equal(r.body, "hi", 2);
}

/* RFC 9112 5.2: each obs-fold is replaced with one SP, whitespace around
 * it dropped (as curl's header API does), also with bare LF line ends. */
static void test_obs_fold_joined_with_one_space(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\r\nX-Fold: a  \r\n  b\r\n\t c \r\nX-Next: d\r\n"
                "X-Empty-Line: e\r\n \t\r\nContent-Length: 2\r\n\r\nhi", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.headers, "x-fold=a b c;x-next=d;x-empty-line=e;content-length=2;");
    assert_memory_equal(r.body, "hi", 2);
    every_split("HTTP/1.1 200 OK\nX-Fold: a\n b\nContent-Length: 2\n\nhi", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.headers, "x-fold=a b;content-length=2;");
    /* A fold in the final head after an interim response in the same read,
     * and after the empty lines llhttp skips before a status line. */
    every_split("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 2\r\n\r\nhi",
                false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.headers, "x-fold=a b;content-length=2;");
    every_split("\r\n\r\nHTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 2\r\n\r\nhi", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.headers, "x-fold=a b;content-length=2;");
    /* A folded trailer is skipped like any other. */
    every_split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nT: a\r\n b\r\n\r\n",
                false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_memory_equal(r.body, "hi", 2);
}

/* The headers llhttp frames the message by are never folded: llhttp and
 * the script would read different values. Nor is a fold a way in for bytes
 * a value may not hold. */
static void test_obs_fold_refused_where_ambiguous(void **state)
{
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n 0\r\n\r\nhi",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n ,chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n x\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n close\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\r\n b\001c\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\r\n b\rc\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n X-A: a\r\nContent-Length: 0\r\n\r\n",       /* before any field */
        "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",                /* space before colon */
    };

    (void)state;
    all_refused(bad, sizeof bad / sizeof bad[0]);
}

/* RFC 9110 5.5: whitespace around a value is not part of it; Content-Length
 * with spaces around it frames the body as usual. */
static void test_value_whitespace_trimmed(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\r\nContent-Length:  13 \r\nX-A: \t v  v \t\r\n\r\nhello, world!", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.headers, "content-length=13;x-a=v  v;");
    assert_int_equal(r.body_len, 13);
    assert_memory_equal(r.body, "hello, world!", 13);
    assert_true(r.keep_alive);
}

/* RFC 9112 7.1.1: extensions on any chunk, the last too, are ignored,
 * quoted strings holding ; and = included, with whitespace around them. */
static void test_chunk_extensions_ignored(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5;name=\"a;b=c\"\r\nhello\r\n"
                "1 ; x ; y = z;q=\"\\\";=\"\r\n \r\n"
                "5\t;a=b\r\nworld\r\n"
                "3 \r\n!!!\r\n"
                "0;name=\"a;b=c\"\r\n\r\n", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.body_len, 14);
    assert_memory_equal(r.body, "hello world!!!", 14);
    assert_true(r.keep_alive);
}

/* RFC 9112 2.2: a bare LF ends the status line, header lines, chunk
 * headers, chunk data and trailers, as curl takes it; the byte after a chunk
 * header's LF is data, even a LF. */
static void test_bare_lf_everywhere(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200\nTransfer-Encoding: chunked\nX-A: 1\n\n"
                "1\n\n\n3;e=\"x\"\nabc\r\n2\r\n\n\n\n0\nT: 1\n\n", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.headers, "transfer-encoding=chunked;x-a=1;");
    assert_int_equal(r.body_len, 6);
    assert_memory_equal(r.body, "\nabc\n\n", 6);
    assert_true(r.keep_alive);
    every_split("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5\nhello\n0\n\n", false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_memory_equal(r.body, "hello", 5);
}

static void test_malformed_is_an_error(void **state)
{
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",   /* conflicting */
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", /* chunk size */
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "garbage\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n",   /* bare CR */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;a\r\nhello\r\n0\r\n\r\n", /* no size */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\001\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",  /* overflow */
        "HTTP/1.1 200 OK\r\nX: a\rY: b\r\nContent-Length: 0\r\n\r\n",
    };

    (void)state;
    all_refused(bad, sizeof bad / sizeof bad[0]);
}

static void test_truncation_is_an_error(void **state)
{
    struct result r;

    (void)state;
    every_split("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", false, true, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    every_split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", false, true, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
    every_split("HTTP/1.1 200 OK\r\nContent-Le", false, true, &r);
    assert_int_equal(r.rc, -LURK_EHTTP);
}

static void test_limits(void **state)
{
    char big[9000], many[2000];
    struct result r;

    (void)state;
    snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX: %08000d\r\n\r\n", 0);
    every_split(big, false, false, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    strcpy(many, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 40; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    every_split(many, false, false, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    /* Chunk extensions are skipped, but bounded by max_head per chunk header:
     * three of 2,500 bytes pass (more than max_head in all), one of 5,000 does not. */
    snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "1;e=%02500d\r\na\r\n1;e=%02500d\r\nb\r\n1;e=%02500d\r\nc\r\n0\r\n\r\n", 0, 0, 0);
    every_split(big, false, false, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.body_len, 3);
    snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;e=%05000d\r\na\r\n0\r\n\r\n", 0);
    every_split(big, false, false, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    /* Leading zeros never overflow the size: the same bound holds them. */
    snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%05000d1\r\na\r\n0\r\n\r\n", 0);
    every_split(big, false, false, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
    snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1%5000s\r\na\r\n0\r\n\r\n", "");
    every_split(big, false, false, &r);
    assert_int_equal(r.rc, -LURK_ELIMIT);
}

static void test_pipelined_leftover_untouched(void **state)
{
    const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n";
    struct lurk_h1 h;
    size_t used, pos = 0;
    int ev;

    (void)state;
    lurk_h1_init(&h, false, 8192, 32);
    do {
        ev = lurk_h1_feed(&h, two + pos, strlen(two) - pos, &used);
        pos += used;
    } while (ev != LURK_H1_DONE && ev >= 0);
    assert_int_equal(ev, LURK_H1_DONE);
    assert_string_equal(two + pos, "HTTP/1.1 200 OK\r\n");
    lurk_h1_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked_with_extensions_and_trailers),
        cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_no_body_cases),
        cmocka_unit_test(test_interim_responses_skipped),
        cmocka_unit_test(test_lf_only_lines_accepted),
        cmocka_unit_test(test_obs_fold_joined_with_one_space),
        cmocka_unit_test(test_obs_fold_refused_where_ambiguous),
        cmocka_unit_test(test_value_whitespace_trimmed),
        cmocka_unit_test(test_chunk_extensions_ignored),
        cmocka_unit_test(test_bare_lf_everywhere),
        cmocka_unit_test(test_malformed_is_an_error),
        cmocka_unit_test(test_truncation_is_an_error),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pipelined_leftover_untouched),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
