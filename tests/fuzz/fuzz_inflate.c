/*
 * fuzz_inflate.c - gzip and deflate response bodies through
 * src/http/inflate.c, pushed in pieces as they arrive, with the limit on
 * the decoded size (max_body in lua/http.lua).
 *
 * Input: one config byte (bit 0: gzip or deflate; bits 1-3: the limit, one
 * of 1 MiB, 0, 1, 100, 4096, 65536, 65537, 300000), a split plan (fuzz.h),
 * then the body.
 *
 * A reference decoder, zlib over the whole body at once with no limit but
 * a stop just past max, classifies the body: decoded size over the limit,
 * corrupt (or data after the end of the stream), cut short, or good.
 * lurk must agree whatever the pieces: -LURK_ELIMIT, -LURK_EHTTP from a
 * push, -LURK_EHTTP from lurk_inflate_end(), or the same bytes, never more
 * than the limit.
 */
#include "fuzz.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/inflate.h"

#include <string.h>
#include <zlib.h>

enum { OK, LIMIT, BAD, SHORT };

static int reference(enum lurk_coding coding, const uint8_t *p, size_t n, size_t max,
                     struct lurk_buf *out)
{
    z_stream z;
    int bits, state;

    if (n == 0)
        return OK;                    /* an empty body is an empty body */
    if (coding == LURK_GZIP)
        bits = 16 + MAX_WBITS;
    else if (n >= 2 && (p[0] & 0x0f) == 8 && ((p[0] << 8) | p[1]) % 31 == 0)
        bits = MAX_WBITS;
    else if (n >= 2)
        bits = -MAX_WBITS;
    else
        return SHORT;                 /* one byte cannot say which */
    memset(&z, 0, sizeof z);
    FUZZ_CHECK(inflateInit2(&z, bits) == Z_OK);
    z.next_in = (unsigned char *)p;
    z.avail_in = (uInt)n;
    for (;;) {
        size_t before;
        int rc;

        FUZZ_CHECK(lurk_buf_reserve(out, 4096) == 0);
        z.next_out = (unsigned char *)lurk_buf_tail(out);
        z.avail_out = 4096;
        before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        lurk_buf_commit(out, before - z.avail_out);
        if (lurk_buf_len(out) > max) {
            state = LIMIT;
            break;
        }
        if (rc == Z_STREAM_END) {
            state = z.avail_in > 0 ? BAD : OK;
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            state = BAD;
            break;
        }
        if (z.avail_in == 0 && z.avail_out > 0) {
            state = SHORT;            /* everything decoded, and no end */
            break;
        }
    }
    inflateEnd(&z);
    return state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = { 1 << 20, 0, 1, 100, 4096, 65536, 65537, 300000 };
    struct lurk_inflate f;
    struct lurk_buf got = { 0 }, want = { 0 };
    struct fuzz_splits sp;
    enum lurk_coding coding;
    size_t max;
    int got_state = OK, want_state;

    if (size < 1)
        return 0;
    coding = data[0] & 1 ? LURK_DEFLATE : LURK_GZIP;
    max = maxes[(data[0] >> 1) & 7];
    data++;
    size--;
    fuzz_splits_take(&sp, &data, &size);

    FUZZ_CHECK(lurk_inflate_init(&f, coding, max) == 0);
    for (size_t off = 0, n; off < size; off += n) {
        int rc;

        n = fuzz_splits_next(&sp, size - off);
        rc = lurk_inflate_push(&f, data + off, n, &got);
        FUZZ_CHECK(rc == 0 || rc == -LURK_ELIMIT || rc == -LURK_EHTTP);
        if (rc < 0) {
            got_state = rc == -LURK_ELIMIT ? LIMIT : BAD;
            break;
        }
        FUZZ_CHECK(lurk_buf_len(&got) <= max);
    }
    if (got_state == OK) {
        int rc = lurk_inflate_end(&f);

        FUZZ_CHECK(rc == 0 || rc == -LURK_EHTTP);
        got_state = rc == 0 ? OK : SHORT;
    }
    lurk_inflate_fini(&f);
    lurk_inflate_fini(&f);            /* twice is harmless */

    want_state = reference(coding, data, size, max, &want);
    FUZZ_CHECK(got_state == want_state);
    if (got_state == OK) {
        FUZZ_CHECK(lurk_buf_len(&got) <= max);
        FUZZ_CHECK(lurk_buf_len(&got) == lurk_buf_len(&want));
        FUZZ_CHECK(lurk_buf_len(&got) == 0 ||
                   memcmp(lurk_buf_head(&got), lurk_buf_head(&want), lurk_buf_len(&got)) == 0);
    }
    lurk_buf_fini(&got);
    lurk_buf_fini(&want);
    return 0;
}
