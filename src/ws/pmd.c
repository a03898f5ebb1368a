/*
 * pmd.c - permessage-deflate through zlib.
 *
 * Each message is a raw deflate stream ended by a sync flush, whose trailing
 * empty block (00 00 ff ff) is removed on the wire: the receiver appends it
 * back before the final inflate. Without "no context takeover" the window
 * carries over from message to message, so both streams live as long as the
 * connection.
 */
#include "ws/pmd.h"
#include "core/error.h"

#include <errno.h>
#include <string.h>

static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };

int lurk_pmd_init(struct lurk_pmd *p, int server_bits, bool server_no_context, int client_bits,
                  bool client_no_context, size_t max_message)
{
    memset(p, 0, sizeof *p);
    if (server_bits < 9)
        server_bits = 9;
    if (client_bits < 9)
        client_bits = 9;
    if (inflateInit2(&p->in, -server_bits) != Z_OK)
        return -ENOMEM;
    p->in_ready = true;
    if (deflateInit2(&p->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -client_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        lurk_pmd_fini(p);
        return -ENOMEM;
    }
    p->out_ready = true;
    p->in_reset = server_no_context;
    p->out_reset = client_no_context;
    p->max = max_message;
    return 0;
}

static int inflate_some(struct lurk_pmd *p, const unsigned char *in, size_t len, struct lurk_buf *out)
{
    p->in.next_in = (unsigned char *)in;
    p->in.avail_in = (uInt)len;
    while (p->in.avail_in > 0) {
        size_t before;
        int rc;

        if (lurk_buf_reserve(out, 64 * 1024) < 0)
            return -ENOMEM;
        p->in_fresh = false;
        p->in.next_out = (unsigned char *)lurk_buf_tail(out);
        p->in.avail_out = (uInt)lurk_buf_room(out);
        before = p->in.avail_out;
        rc = inflate(&p->in, Z_SYNC_FLUSH);
        lurk_buf_commit(out, before - p->in.avail_out);
        p->msg_total += before - p->in.avail_out;
        if (p->msg_total > p->max)
            return -LURK_ELIMIT;
        if (rc == Z_BUF_ERROR && p->in.avail_out > 0)
            break;
        if (rc == Z_STREAM_END) {
            /* A block with BFINAL set (RFC 7692 7.2.3.3 allows senders to
             * flush that way): what follows starts a new stream, and a
             * message ending here has no 00 00 ff ff tail to add. */
            inflateReset(&p->in);
            p->in_fresh = true;
            continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -LURK_EWS;
    }
    return 0;
}

int lurk_pmd_inflate(struct lurk_pmd *p, const void *in, size_t len, bool end, struct lurk_buf *out)
{
    int rc = inflate_some(p, in, len, out);

    if (rc == 0 && end && !p->in_fresh)
        rc = inflate_some(p, tail, sizeof tail, out);
    if (end || rc < 0) {
        p->msg_total = 0;
        p->in_fresh = false;
        if (p->in_reset && rc == 0)
            inflateReset(&p->in);
    }
    return rc;
}

int lurk_pmd_deflate(struct lurk_pmd *p, const void *in, size_t len, struct lurk_buf *out)
{
    size_t start = lurk_buf_len(out);
    int rc;

    p->out.next_in = (unsigned char *)in;
    p->out.avail_in = (uInt)len;
    do {
        size_t before;

        if (lurk_buf_reserve(out, len / 2 + 64) < 0)
            return -ENOMEM;
        p->out.next_out = (unsigned char *)lurk_buf_tail(out);
        p->out.avail_out = (uInt)lurk_buf_room(out);
        before = p->out.avail_out;
        rc = deflate(&p->out, Z_SYNC_FLUSH);
        lurk_buf_commit(out, before - p->out.avail_out);
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -LURK_EWS;
    } while (p->out.avail_out == 0 || p->out.avail_in > 0);
    /* A sync flush ends with 00 00 ff ff: the wire format leaves it out. */
    if (lurk_buf_len(out) >= 4 && memcmp(lurk_buf_tail(out) - 4, tail, 4) == 0) {
        out->wpos -= 4;
    } else if (lurk_buf_len(out) == start) {
        /* An empty message right after another flush: zlib writes nothing
         * (nothing is pending), but the receiver appends the tail to what it
         * gets, so the empty stored block still needs its first byte. */
        if (lurk_buf_reserve(out, 1) < 0)
            return -ENOMEM;
        *lurk_buf_tail(out) = 0x00;
        lurk_buf_commit(out, 1);
    }
    if (p->out_reset)
        deflateReset(&p->out);
    return 0;
}

void lurk_pmd_fini(struct lurk_pmd *p)
{
    if (p->in_ready)
        inflateEnd(&p->in);
    if (p->out_ready)
        deflateEnd(&p->out);
    p->in_ready = p->out_ready = false;
}
