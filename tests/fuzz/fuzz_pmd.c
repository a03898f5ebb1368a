/*
 * fuzz_pmd.c - permessage-deflate (src/ws/pmd.c): inflating what a server
 * sends, with the per-message size limit, and a deflate/inflate round trip.
 *
 * Input: a receive config byte (bits 0-2: server window bits 8-15; bit 3:
 * server_no_context_takeover; bits 4-5: max_message 1 MiB, 1000, 1 or
 * 65543), a send config byte (bits 0-2: client window bits 8-15; bit 3:
 * client_no_context_takeover), then pieces: a flags byte (bit 0: the piece
 * ends its message), a length byte, and that many bytes (the last piece
 * takes what is left).
 *
 * Checked:
 *  - inflate: each piece goes to lurk_pmd_inflate() as one frame's payload.
 *    A reference decoder (zlib driven directly, flushing all output for
 *    every piece) decodes the same messages: a message whose output would
 *    pass max_message must fail with -LURK_ELIMIT, corrupt data with
 *    -LURK_EWS, and a good message must come out byte for byte the same and
 *    never larger than the limit. A final block (BFINAL, RFC 7692 7.2.3.3)
 *    ends the deflate stream: what follows starts a new one, and a message
 *    ending right there takes no 00 00 ff ff tail. The run stops at the
 *    first failure, as the connection does.
 *  - round trip: each piece's bytes, deflated as a message by the sending
 *    side, inflate back to the same bytes on a peer with the matching
 *    window and context takeover.
 */
#include "fuzz.h"
#include "core/buf.h"
#include "core/error.h"
#include "ws/pmd.h"

#include <string.h>
#include <zlib.h>

enum { OK, LIMIT, BAD };

static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };

/* Inflates p[0..n) into out, flushing everything; stops once out passes
 * max. *fresh: a final block ended the stream and nothing came after it. */
static int ref_piece(z_stream *z, const uint8_t *p, size_t n, struct lurk_buf *out, size_t max,
                     bool *fresh)
{
    z->next_in = (unsigned char *)p;
    z->avail_in = (uInt)n;
    if (n > 0)
        *fresh = false;
    for (;;) {
        size_t before;
        int rc;

        FUZZ_CHECK(lurk_buf_reserve(out, 4096) == 0);
        z->next_out = (unsigned char *)lurk_buf_tail(out);
        z->avail_out = 4096;
        before = z->avail_out;
        rc = inflate(z, Z_SYNC_FLUSH);
        lurk_buf_commit(out, before - z->avail_out);
        if (lurk_buf_len(out) > max)
            return LIMIT;
        if (rc == Z_STREAM_END) {     /* a final block: a new stream follows */
            FUZZ_CHECK(inflateReset(z) == Z_OK);
            *fresh = z->avail_in == 0;
            if (z->avail_in == 0)
                return OK;
            continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return BAD;
        if (z->avail_out > 0 && (z->avail_in == 0 || rc == Z_BUF_ERROR))
            return z->avail_in == 0 ? OK : BAD;
    }
}

static int classify(int rc)
{
    FUZZ_CHECK(rc == 0 || rc == -LURK_ELIMIT || rc == -LURK_EWS);
    return rc == 0 ? OK : rc == -LURK_ELIMIT ? LIMIT : BAD;
}

static void check_round_trip(struct lurk_pmd *tx, struct lurk_pmd *rx, const uint8_t *p, size_t n)
{
    struct lurk_buf wire = { 0 }, back = { 0 };

    FUZZ_CHECK(lurk_pmd_deflate(tx, p, n, &wire) == 0);
    FUZZ_CHECK(lurk_buf_len(&wire) < 4 ||
               memcmp(lurk_buf_tail(&wire) - 4, tail, 4) != 0);   /* the tail is left off */
    FUZZ_CHECK(lurk_pmd_inflate(rx, lurk_buf_head(&wire), lurk_buf_len(&wire), true, &back) == 0);
    FUZZ_CHECK(lurk_buf_len(&back) == n);
    FUZZ_CHECK(n == 0 || memcmp(lurk_buf_head(&back), p, n) == 0);
    lurk_buf_fini(&wire);
    lurk_buf_fini(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = { 1 << 20, 1000, 1, 65543 };
    struct lurk_pmd p, tx, rx;
    struct lurk_buf got = { 0 }, want = { 0 };
    z_stream ref;
    int sbits, cbits, got_state = OK, want_state = OK;
    bool snc, cnc, fresh = false;
    size_t max;

    if (size < 2)
        return 0;
    sbits = 8 + (data[0] & 7);
    snc = data[0] & 8;
    max = maxes[(data[0] >> 4) & 3];
    cbits = 8 + (data[1] & 7);
    cnc = data[1] & 8;
    data += 2;
    size -= 2;

    FUZZ_CHECK(lurk_pmd_init(&p, sbits, snc, 15, false, max) == 0);
    FUZZ_CHECK(lurk_pmd_init(&tx, 15, false, cbits, cnc, max) == 0);
    FUZZ_CHECK(lurk_pmd_init(&rx, cbits, cnc, 15, false, SIZE_MAX) == 0);
    memset(&ref, 0, sizeof ref);
    FUZZ_CHECK(inflateInit2(&ref, -(sbits < 9 ? 9 : sbits)) == Z_OK);

    /* Both sides decode each message on their own; they are compared when
     * it ends. The reference flushes every piece, so it never notices a
     * failure later than lurk does, only sometimes earlier. */
    while (size > 0) {
        bool end = data[0] & 1;
        size_t skip = size >= 2 ? 2 : 1, n = size >= 2 ? data[1] : 0;
        const uint8_t *piece = data + skip;

        if (n > size - skip)
            n = size - skip;
        data += skip + n;
        size -= skip + n;

        check_round_trip(&tx, &rx, piece, n);
        if (got_state == OK)
            got_state = classify(lurk_pmd_inflate(&p, piece, n, end, &got));
        if (want_state == OK)
            want_state = ref_piece(&ref, piece, n, &want, max, &fresh);
        if (want_state == OK && end && !fresh)
            want_state = ref_piece(&ref, tail, sizeof tail, &want, max, &fresh);
        if (end)
            fresh = false;
        if (!end)
            continue;
        FUZZ_CHECK(got_state == want_state);
        if (got_state != OK)
            break;                    /* the connection fails here */
        FUZZ_CHECK(lurk_buf_len(&got) <= max);
        FUZZ_CHECK(lurk_buf_len(&got) == lurk_buf_len(&want));
        FUZZ_CHECK(lurk_buf_len(&got) == 0 ||
                   memcmp(lurk_buf_head(&got), lurk_buf_head(&want), lurk_buf_len(&got)) == 0);
        lurk_buf_consume(&got, lurk_buf_len(&got));
        lurk_buf_consume(&want, lurk_buf_len(&want));
        if (snc)
            inflateReset(&ref);
    }
    /* A message the input cut short: a failure lurk saw, the reference saw. */
    if (got_state != OK)
        FUZZ_CHECK(want_state == got_state);
    lurk_pmd_fini(&p);
    lurk_pmd_fini(&tx);
    lurk_pmd_fini(&rx);
    inflateEnd(&ref);
    lurk_buf_fini(&got);
    lurk_buf_fini(&want);
    return 0;
}
