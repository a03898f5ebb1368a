/*
 * inflate.c - gzip and deflate bodies through zlib.
 *
 * "deflate" is meant to be zlib-wrapped (RFC 9110), but some servers send
 * raw deflate; the first two bytes tell which (a zlib header is a multiple
 * of 31 with method 8), as curl and browsers decide.
 */
#include "http/inflate.h"
#include "core/error.h"

#include <errno.h>
#include <string.h>

int lurk_inflate_init(struct lurk_inflate *f, enum lurk_coding coding, size_t max)
{
    memset(f, 0, sizeof f[0]);
    f->coding = coding;
    f->max = max;
    return 0;
}

static int start(struct lurk_inflate *f, const unsigned char *hdr)
{
    int bits;

    if (f->coding == LURK_GZIP)
        bits = 16 + MAX_WBITS;
    else if ((hdr[0] & 0x0f) == 8 && ((hdr[0] << 8) | hdr[1]) % 31 == 0)
        bits = MAX_WBITS;             /* zlib wrapper */
    else {
        bits = -MAX_WBITS;            /* raw deflate */
        f->raw = true;
    }
    if (inflateInit2(&f->z, bits) != Z_OK)
        return -ENOMEM;
    f->started = true;
    return 0;
}

static int run(struct lurk_inflate *f, const unsigned char *in, size_t len, struct lurk_buf *out)
{
    bool full = false;

    f->z.next_in = (unsigned char *)in;
    f->z.avail_in = (uInt)len;
    /* Go on while input is left, and also after a call that filled the
     * output: zlib may have read the last input bytes and still hold output
     * (the rest of a match), which only another call writes out. */
    while (f->z.avail_in > 0 || full) {
        size_t before;
        int rc;

        if (f->ended) {
            if (f->z.avail_in > 0)
                return -LURK_EHTTP;   /* bytes after the end of the stream */
            break;
        }
        if (lurk_buf_reserve(out, 64 * 1024) < 0)
            return -ENOMEM;
        f->z.next_out = (unsigned char *)lurk_buf_tail(out);
        f->z.avail_out = (uInt)lurk_buf_room(out);
        before = f->z.avail_out;
        rc = inflate(&f->z, Z_NO_FLUSH);
        full = f->z.avail_out == 0;
        f->total += before - f->z.avail_out;
        if (f->total > f->max) {
            /* Only what fits the limit is kept (the caller's err.partial). */
            lurk_buf_commit(out, before - f->z.avail_out - (f->total - f->max));
            return -LURK_ELIMIT;
        }
        lurk_buf_commit(out, before - f->z.avail_out);
        if (rc == Z_STREAM_END)
            f->ended = true;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -LURK_EHTTP;
        else if (rc == Z_BUF_ERROR && f->z.avail_out > 0)
            break;                    /* needs more input */
    }
    return 0;
}

int lurk_inflate_push(struct lurk_inflate *f, const void *in, size_t len, struct lurk_buf *out)
{
    const unsigned char *p = in;

    if (!f->started) {
        /* deflate needs two bytes to choose zlib or raw */
        while (f->nfirst < 2 && len > 0) {
            f->first[f->nfirst++] = *p++;
            len--;
        }
        if (f->nfirst < 2)
            return 0;
        if (start(f, f->first) < 0)
            return -ENOMEM;
        {
            int rc = run(f, f->first, 2, out);

            if (rc < 0)
                return rc;
        }
    }
    return len ? run(f, p, len, out) : 0;
}

int lurk_inflate_end(struct lurk_inflate *f)
{
    if (!f->started && f->nfirst == 0)
        return 0;                     /* an empty body is an empty body */
    return f->ended ? 0 : -LURK_EHTTP;
}

void lurk_inflate_fini(struct lurk_inflate *f)
{
    if (f->started)
        inflateEnd(&f->z);
    f->started = false;
}
