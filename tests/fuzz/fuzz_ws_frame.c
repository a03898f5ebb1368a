/*
 * fuzz_ws_frame.c - server frames through the RFC 6455 decoder in
 * src/ws/frame.c, fed in pieces the way lua/ws.lua's reader feeds what each
 * read returns; plus the UTF-8 validator and the masking function on their
 * own.
 *
 * Input: one config byte (bit 0: permessage-deflate negotiated, so RSV1 is
 * allowed; bits 1-2: max_message unlimited, 125, 1 or 4096; bits 3-5: the
 * alignment at which the mask is applied), a split plan (fuzz.h), then the
 * bytes the server sent.
 *
 * Checked:
 *  - decoder events: NEED_MORE consumes everything; a data slice is the end
 *    of the bytes its call consumed; a message keeps its opcode and
 *    compressed flag and stays within max_message; a whole uncompressed text
 *    message is valid UTF-8 (by an independent decoder below); control
 *    frames are whole and at most 125 bytes, close frames carry a valid code
 *    and UTF-8 reason; an error gives 1002/1007/1009 and every later call
 *    fails the same way without consuming anything;
 *  - the same bytes in one piece give the same events, data and error;
 *  - lurk_utf8_feed() over the pieces, over the whole, and the independent
 *    decoder agree on every input (invalid, incomplete or complete);
 *  - lurk_ws_mask() in pieces, at any alignment, equals a byte-by-byte XOR.
 */
#include "fuzz.h"
#include "core/buf.h"
#include "core/error.h"
#include "ws/frame.h"

#include <string.h>

struct transcript {
    struct lurk_buf events;
    struct lurk_buf data;             /* the data slices, in order */
    int close_code;                   /* 0, or the code of the error */
};

static void put(struct lurk_buf *b, const void *p, size_t n)
{
    FUZZ_CHECK(lurk_buf_reserve(b, n + 1) == 0);
    if (n)
        memcpy(lurk_buf_tail(b), p, n);
    lurk_buf_commit(b, n);
}

static void put_int(struct lurk_buf *b, char tag, uint64_t v)
{
    put(b, &tag, 1);
    put(b, &v, sizeof v);
}

/* Can p[0..n) (1 to 3 bytes of one sequence, lead first) still become, or
 * already is, a well-formed sequence? Decodes each completion that matters:
 * only the first continuation byte has a range narrower than 80..BF. */
static bool completes(const uint8_t *p, size_t n, size_t need)
{
    for (unsigned second = 0x80; second <= 0xBF; second++) {
        uint8_t s[4] = { p[0], 0x80, 0x80, 0x80 };
        uint32_t cp;
        bool ok = true;

        for (size_t j = 1; j < n; j++)
            s[j] = p[j];
        if (n < 2)
            s[1] = (uint8_t)second;
        for (size_t j = 1; j <= need; j++)
            ok = ok && (s[j] & 0xC0) == 0x80;
        if (!ok)
            return false;             /* a byte already there is no continuation */
        cp = need == 1 ? (uint32_t)(s[0] & 0x1F) : need == 2 ? (uint32_t)(s[0] & 0x0F)
                                                              : (uint32_t)(s[0] & 0x07);
        for (size_t j = 1; j <= need; j++)
            cp = cp << 6 | (s[j] & 0x3F);
        if ((need == 1 && cp >= 0x80) ||
            (need == 2 && cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ||
            (need == 3 && cp >= 0x10000 && cp <= 0x10FFFF))
            return true;
        if (n >= 2)
            return false;             /* the second byte was given: nothing to vary */
    }
    return false;
}

/* RFC 3629 by decoding: -1 invalid, 0 valid but cut inside a sequence,
 * 1 valid and complete. */
static int ref_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];
        size_t need;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            need = 1;
        else if ((c & 0xF0) == 0xE0)
            need = 2;
        else if ((c & 0xF8) == 0xF0)
            need = 3;
        else
            return -1;
        if (n - i <= need)
            return completes(p + i, n - i, need) ? 0 : -1;
        if (!completes(p + i, need + 1, need))
            return -1;
        i += need + 1;
    }
    return 1;
}

static void check_utf8(const uint8_t *p, size_t len, struct fuzz_splits sp)
{
    uint32_t whole = 0, pieces = 0;
    bool whole_ok = lurk_utf8_feed(&whole, p, len), pieces_ok = true;
    int ref = ref_utf8(p, len);

    for (size_t off = 0, n; off < len && pieces_ok; off += n) {
        n = fuzz_splits_next(&sp, len - off);
        pieces_ok = lurk_utf8_feed(&pieces, p + off, n);
    }
    FUZZ_CHECK(whole_ok == pieces_ok);
    FUZZ_CHECK(whole_ok == (ref >= 0));
    if (whole_ok) {
        FUZZ_CHECK(whole == pieces);
        FUZZ_CHECK((whole == 0) == (ref == 1));
    }
}

static void check_mask(const uint8_t *p, size_t len, unsigned align, struct fuzz_splits sp)
{
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    unsigned char *buf = malloc(len + 8);

    FUZZ_CHECK(buf != NULL);
    memcpy(buf + align, p, len);
    for (size_t off = 0, n; off < len; off += n) {
        n = fuzz_splits_next(&sp, len - off);
        lurk_ws_mask(buf + align + off, n, mask, off);
    }
    for (size_t k = 0; k < len; k++)
        FUZZ_CHECK(buf[align + k] == (p[k] ^ mask[k % 4]));
    free(buf);
}

static bool valid_close_code(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static void drive(uint8_t cfg, const uint8_t *in, size_t len, struct fuzz_splits sp,
                  struct transcript *t)
{
    static const uint64_t max_messages[] = { UINT64_MAX, 125, 1, 4096 };
    struct lurk_ws_decoder d;
    struct lurk_buf msg = { 0 };      /* the message being assembled */
    enum lurk_ws_opcode op = LURK_WS_CONT;
    bool in_message = false, compressed = false;
    size_t start = 0, clen = fuzz_splits_next(&sp, len), i = 0, steps = 0;

    lurk_ws_decoder_init(&d, max_messages[(cfg >> 1) & 3]);
    d.allow_rsv1 = cfg & 1;
    for (;;) {
        const uint8_t *at = in + start + i;
        struct lurk_ws_event ev;
        size_t used = 12345;
        int rc = lurk_ws_decode(&d, at, clen - i, &used, &ev);

        FUZZ_CHECK(++steps <= 2 * len + 64);
        if (rc < 0) {
            struct lurk_ws_event ev2;
            size_t used2;

            FUZZ_CHECK(rc == -LURK_EWS && d.error != NULL);
            FUZZ_CHECK(d.close_code == 1002 || d.close_code == 1007 || d.close_code == 1009);
            FUZZ_CHECK(used <= clen - i);
            /* Dead: every later call fails the same way. */
            FUZZ_CHECK(lurk_ws_decode(&d, at, clen - i, &used2, &ev2) == -LURK_EWS);
            FUZZ_CHECK(used2 == 0 && d.close_code != 0);
            t->close_code = d.close_code;
            break;
        }
        FUZZ_CHECK(used <= clen - i);
        i += used;
        switch (ev.kind) {
        case LURK_WS_NEED_MORE:
            FUZZ_CHECK(i == clen);
            if (start + clen == len)
                goto out;
            start += clen;
            i = 0;
            clen = fuzz_splits_next(&sp, len - start);
            break;
        case LURK_WS_DATA:
            FUZZ_CHECK(ev.opcode == LURK_WS_TEXT || ev.opcode == LURK_WS_BINARY);
            FUZZ_CHECK(ev.data + ev.len == at + used && ev.data >= at);
            FUZZ_CHECK(!ev.compressed || (cfg & 1));
            if (!in_message) {
                in_message = true;
                op = ev.opcode;
                compressed = ev.compressed;
                lurk_buf_consume(&msg, lurk_buf_len(&msg));
                put_int(&t->events, 'M', (uint64_t)op << 1 | compressed);
            }
            FUZZ_CHECK(ev.opcode == op && ev.compressed == compressed);
            put(&msg, ev.data, ev.len);
            put(&t->data, ev.data, ev.len);
            FUZZ_CHECK(lurk_buf_len(&msg) <= d.max_message);
            if (ev.message_end) {
                if (op == LURK_WS_TEXT && !compressed)
                    FUZZ_CHECK(ref_utf8((const uint8_t *)lurk_buf_head(&msg), lurk_buf_len(&msg)) == 1);
                put_int(&t->events, 'E', lurk_buf_len(&msg));
                in_message = false;
            }
            break;
        case LURK_WS_CONTROL:
            FUZZ_CHECK(ev.opcode == LURK_WS_CLOSE || ev.opcode == LURK_WS_PING ||
                       ev.opcode == LURK_WS_PONG);
            FUZZ_CHECK(ev.len <= 125);
            if (ev.opcode == LURK_WS_CLOSE) {
                FUZZ_CHECK(ev.close_code == 1005 ? ev.len == 0 : valid_close_code(ev.close_code));
                FUZZ_CHECK(ev.len <= 123 && ref_utf8(ev.data, ev.len) == 1);
            }
            put_int(&t->events, 'C', (uint64_t)ev.opcode << 16 | (uint64_t)ev.close_code);
            put_int(&t->events, 'l', ev.len);
            put(&t->events, ev.data, ev.len);
            break;
        default:
            FUZZ_CHECK(!"unknown event");
        }
    }
out:
    lurk_buf_fini(&msg);
}

static bool either_prefix(const struct lurk_buf *a, const struct lurk_buf *b)
{
    return fuzz_buf_is_prefix(a, b) || fuzz_buf_is_prefix(b, a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct transcript split = { 0 }, whole = { 0 };
    struct fuzz_splits sp;
    uint8_t cfg;

    if (size < 1)
        return 0;
    cfg = data[0];
    data++;
    size--;
    fuzz_splits_take(&sp, &data, &size);

    check_utf8(data, size, sp);
    check_mask(data, size, (cfg >> 3) & 7, sp);

    drive(cfg, data, size, sp, &split);
    drive(cfg, data, size, fuzz_whole(), &whole);
    FUZZ_CHECK(split.close_code == whole.close_code);
    if (split.close_code == 0) {
        FUZZ_CHECK(fuzz_buf_same(&split.events, &whole.events));
        FUZZ_CHECK(fuzz_buf_same(&split.data, &whole.data));
    } else {
        /* The failing call may have dropped a slice, and the message start
         * it would have reported. */
        FUZZ_CHECK(either_prefix(&split.events, &whole.events));
        FUZZ_CHECK(either_prefix(&split.data, &whole.data));
    }
    lurk_buf_fini(&split.events);
    lurk_buf_fini(&split.data);
    lurk_buf_fini(&whole.events);
    lurk_buf_fini(&whole.data);
    return 0;
}
