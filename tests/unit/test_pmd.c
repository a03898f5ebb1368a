/*
 * test_pmd.c - permessage-deflate inflation: messages as zlib's raw deflate
 * writes them (sync flush, tail stripped), messages ending in a final block
 * (BFINAL, which RFC 7692 lets senders use), and the size limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <zlib.h>

#include "core/error.h"
#include "ws/pmd.h"

/* Raw deflate of msg into out; final: Z_FINISH (a BFINAL block), else a
 * sync flush with its 00 00 ff ff tail removed, as RFC 7692 sends it. */
static size_t deflate_msg(z_stream *z, const char *msg, unsigned char *out, size_t cap, bool final)
{
    size_t n;

    z->next_in = (unsigned char *)msg;
    z->avail_in = (uInt)strlen(msg);
    z->next_out = out;
    z->avail_out = (uInt)cap;
    assert_int_not_equal(deflate(z, final ? Z_FINISH : Z_SYNC_FLUSH), Z_STREAM_ERROR);
    n = cap - z->avail_out;
    if (!final) {
        assert_true(n >= 4);
        assert_memory_equal(out + n - 4, "\x00\x00\xff\xff", 4);
        n -= 4;
    } else {
        deflateReset(z);
    }
    return n;
}

static void inflate_expect(struct lurk_pmd *p, const unsigned char *in, size_t n, const char *want)
{
    struct lurk_buf out = { 0 };

    assert_int_equal(lurk_pmd_inflate(p, in, n, true, &out), 0);
    assert_int_equal(lurk_buf_len(&out), strlen(want));
    assert_memory_equal(lurk_buf_head(&out), want, strlen(want));
    lurk_buf_fini(&out);
}

static void messages_with_and_without_final_blocks(void **state)
{
    struct lurk_pmd p;
    z_stream z = { 0 };
    unsigned char buf[1024];
    size_t n;

    (void)state;
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    assert_int_equal(lurk_pmd_init(&p, 15, false, 15, false, 1 << 20), 0);

    n = deflate_msg(&z, "hello hello hello hello", buf, sizeof buf, false);
    inflate_expect(&p, buf, n, "hello hello hello hello");
    n = deflate_msg(&z, "hello again, with context", buf, sizeof buf, false);
    inflate_expect(&p, buf, n, "hello again, with context");
    /* A sender that ends each message with a final block. */
    n = deflate_msg(&z, "a final block ends this one", buf, sizeof buf, true);
    inflate_expect(&p, buf, n, "a final block ends this one");
    n = deflate_msg(&z, "and this one too", buf, sizeof buf, true);
    inflate_expect(&p, buf, n, "and this one too");
    /* Back to sync flushes on a fresh sender stream. */
    n = deflate_msg(&z, "then sync flushes again", buf, sizeof buf, false);
    inflate_expect(&p, buf, n, "then sync flushes again");

    deflateEnd(&z);
    lurk_pmd_fini(&p);
}

static void inflated_size_is_limited(void **state)
{
    struct lurk_pmd p;
    struct lurk_buf out = { 0 };
    z_stream z = { 0 };
    static char big[200001];
    unsigned char buf[4096];
    size_t n;

    (void)state;
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    assert_int_equal(lurk_pmd_init(&p, 15, true, 15, true, 100000), 0);
    n = deflate_msg(&z, big, buf, sizeof buf, true);
    assert_true(n < sizeof buf);
    assert_int_equal(lurk_pmd_inflate(&p, buf, n, true, &out), -LURK_ELIMIT);
    assert_true(lurk_buf_len(&out) <= 100000 + 65536);
    lurk_buf_fini(&out);
    deflateEnd(&z);
    lurk_pmd_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_with_and_without_final_blocks),
        cmocka_unit_test(inflated_size_is_limited),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
