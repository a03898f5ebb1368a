/*
 * frame.c - the RFC 6455 frame codec for a WebSocket client.
 *
 * Encoding is two small pure functions: the header of a masked client frame,
 * and the XOR mask (8 bytes at a time once the pointer is aligned, with the
 * 4-byte mask rotated to the payload offset, so a payload can be masked in
 * pieces as it is copied out).
 *
 * Decoding is a pull parser over whatever the server has sent so far. Each
 * lurk_ws_decode() call returns at most one event and consumes only the
 * bytes up to and including it, so the caller can loop over one read buffer.
 * The decoder keeps three things between calls:
 *   - the frame being parsed: the header bytes collected so far (at most 10,
 *     since server frames are never masked), then the payload bytes left;
 *   - the message being assembled (in_message, its opcode, its size so far
 *     and the UTF-8 state of a text message), which control frames arriving
 *     between fragments never touch;
 *   - a control frame being collected into d->ctl (at most 125 bytes), since
 *     a control frame is only delivered whole.
 * Data payload is never copied: a DATA event points into the input.
 *
 * Invariants: an event is always produced by the call that consumes its last
 * byte, so a caller that stops when the input is used up misses nothing; a
 * NEED_MORE result means *used == len. After an error the decoder is dead
 * and every later call fails the same way.
 *
 * Deliberately not done: extensions other than permessage-deflate's RSV1, the close
 * handshake itself, and rejecting non-minimal length encodings (RFC 6455
 * asks senders for the minimal form but the length is unambiguous either
 * way, so it is accepted, as most clients do).
 */
#include "ws/frame.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

enum {
    ST_HEADER,                        /* collecting hdr[0..hdr_need) */
    ST_DATA,                          /* text/binary payload, `remaining` to go */
    ST_CONTROL,                       /* control payload into ctl, `remaining` to go */
    ST_DEAD,                          /* a protocol error was reported */
};

size_t lurk_ws_header(unsigned char out[14], enum lurk_ws_opcode op, bool fin, uint64_t len,
                      const unsigned char mask[4])
{
    size_t n;

    out[0] = (unsigned char)((fin ? 0x80 : 0x00) | ((unsigned)op & 0x0F));
    if (len < 126) {
        out[1] = (unsigned char)(0x80 | len);
        n = 2;
    } else if (len <= 0xFFFF) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        n = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 10;
    }
    if (!mask) {
        out[1] &= 0x7F;               /* a server's frame: no mask */
        return n;
    }
    memcpy(out + n, mask, 4);
    return n + 4;
}

void lurk_ws_mask(unsigned char *p, size_t len, const unsigned char mask[4], uint64_t offset)
{
    unsigned k = (unsigned)(offset & 3);
    unsigned char rot[8];
    uint64_t m;

    /* Byte by byte until p is 8-aligned, so the wide loop's loads are cheap. */
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        *p++ ^= mask[k];
        k = (k + 1) & 3;
        len--;
    }
    if (len >= 8) {
        /* rot[j] is the mask byte for p[j]; XOR is bytewise, so the memcpy
         * into m needs no thought about endianness. */
        for (int j = 0; j < 8; j++)
            rot[j] = mask[(k + (unsigned)j) & 3];
        memcpy(&m, rot, 8);
        while (len >= 8) {
            uint64_t w;

            memcpy(&w, p, 8);
            w ^= m;
            memcpy(p, &w, 8);
            p += 8;
            len -= 8;
        }
    }
    /* 8 is a multiple of 4, so k is still the right mask position here. */
    while (len > 0) {
        *p++ ^= mask[k];
        k = (k + 1) & 3;
        len--;
    }
}

/*
 * UTF-8 state: 0 at a character boundary; otherwise the low byte holds how
 * many continuation bytes are still due, and bits 8-15 / 16-23 the lowest
 * and highest value the next one may take. Only the first continuation byte
 * has a narrowed range (that is where overlongs, surrogates and values past
 * U+10FFFF show), later ones are always 80..BF.
 */
static uint32_t utf8_pending(uint32_t need, uint32_t lo, uint32_t hi)
{
    return need | lo << 8 | hi << 16;
}

bool lurk_utf8_feed(uint32_t *state, const unsigned char *p, size_t len)
{
    uint32_t s = *state;
    size_t i = 0;

    while (i < len) {
        unsigned c = p[i];

        if (s == 0) {
            /* ASCII fast path: skip 8 bytes at a time while none has the top bit. */
            while (len - i >= 8) {
                uint64_t w;

                memcpy(&w, p + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            if (i == len)
                break;
            c = p[i++];
            if (c < 0x80)
                continue;
            if (c < 0xC2)             /* stray continuation byte, or C0/C1 overlong */
                return false;
            if (c < 0xE0)
                s = utf8_pending(1, 0x80, 0xBF);
            else if (c < 0xF0)        /* E0: no overlongs; ED: no surrogates */
                s = utf8_pending(2, c == 0xE0 ? 0xA0 : 0x80, c == 0xED ? 0x9F : 0xBF);
            else if (c < 0xF5)        /* F0: no overlongs; F4: at most U+10FFFF */
                s = utf8_pending(3, c == 0xF0 ? 0x90 : 0x80, c == 0xF4 ? 0x8F : 0xBF);
            else
                return false;
        } else {
            uint32_t need = (s & 0xFF) - 1;

            if (c < ((s >> 8) & 0xFF) || c > ((s >> 16) & 0xFF))
                return false;
            i++;
            s = need == 0 ? 0 : utf8_pending(need, 0x80, 0xBF);
        }
    }
    *state = s;
    return true;
}

void lurk_ws_decoder_init(struct lurk_ws_decoder *d, uint64_t max_message)
{
    memset(d, 0, sizeof *d);
    d->state = ST_HEADER;
    d->hdr_need = 2;
    d->max_message = max_message;
}

void lurk_ws_decoder_serve(struct lurk_ws_decoder *d)
{
    d->server = true;
}

void lurk_ws_decoder_fini(struct lurk_ws_decoder *d)
{
    free(d->scratch);
    d->scratch = NULL;
    d->scratch_cap = 0;
}

static int fail(struct lurk_ws_decoder *d, int code, const char *reason)
{
    d->state = ST_DEAD;
    d->close_code = code;
    d->error = reason;
    return -LURK_EWS;
}

static bool is_control(unsigned op)
{
    return (op & 0x8) != 0;
}

static bool valid_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Checks the first two header bytes and works out the header's full length. */
static int check_start(struct lurk_ws_decoder *d)
{
    unsigned b0 = d->hdr[0], b1 = d->hdr[1], op = b0 & 0x0F, len7 = b1 & 0x7F;

    if (b0 & 0x30)
        return fail(d, 1002, "reserved bits set");
    /* RSV1 marks a compressed message (RFC 7692): only when negotiated, and
     * only on the first frame of a data message. */
    d->rsv1 = (b0 & 0x40) != 0;
    if (d->rsv1 && (!d->allow_rsv1 || op == LURK_WS_CONT || op >= LURK_WS_CLOSE))
        return fail(d, 1002, "reserved bits set");
    if (!d->server && (b1 & 0x80))
        return fail(d, 1002, "masked frame from server");
    if (d->server && !(b1 & 0x80))
        return fail(d, 1002, "unmasked frame from client");
    switch (op) {
    case LURK_WS_CONT:
        if (!d->in_message)
            return fail(d, 1002, "continuation frame outside a message");
        break;
    case LURK_WS_TEXT:
    case LURK_WS_BINARY:
        if (d->in_message)
            return fail(d, 1002, "new message before the previous one ended");
        break;
    case LURK_WS_CLOSE:
    case LURK_WS_PING:
    case LURK_WS_PONG:
        if (len7 > 125)
            return fail(d, 1002, "control frame too long");
        if (!(b0 & 0x80))
            return fail(d, 1002, "fragmented control frame");
        break;
    default:
        return fail(d, 1002, "unknown opcode");
    }
    d->op = (enum lurk_ws_opcode)op;
    d->fin = (b0 & 0x80) != 0;
    d->hdr_need = (len7 == 127 ? 10 : len7 == 126 ? 4 : 2) + (d->server ? 4 : 0);
    return 0;
}

/* Reads the payload length from a complete header and starts the payload:
 * a data frame is counted against the message limit here, before any of its
 * payload arrives. */
static int start_payload(struct lurk_ws_decoder *d)
{
    uint64_t n = d->hdr[1] & 0x7F;
    size_t base = d->hdr_need - (d->server ? 4 : 0);   /* the header without the mask key */

    if (d->server) {
        memcpy(d->mask, d->hdr + base, 4);
        d->mask_off = 0;
    }
    if (base == 4) {
        n = (uint64_t)d->hdr[2] << 8 | d->hdr[3];
    } else if (base == 10) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | d->hdr[2 + i];
        if (n >> 63)
            return fail(d, 1002, "64-bit length with the high bit set");
    }
    d->remaining = n;
    d->hdr_len = 0;
    d->hdr_need = 2;
    if (is_control(d->op)) {
        d->ctl_len = 0;
        d->state = ST_CONTROL;
        return 0;
    }
    if (d->op != LURK_WS_CONT) {
        d->in_message = true;
        d->msg_op = d->op;
        d->msg_size = 0;
        d->utf8 = 0;
        d->msg_compressed = d->rsv1;
    }
    if (n > d->max_message - d->msg_size)   /* msg_size <= max_message always */
        return fail(d, 1009, "message too large");
    d->msg_size += n;
    d->state = ST_DATA;
    return 0;
}

/* Delivers the data slice p[0..n) (the frame's last if remaining is now 0). */
static int emit_data(struct lurk_ws_decoder *d, const unsigned char *p, size_t n,
                     struct lurk_ws_event *ev)
{
    bool end = d->remaining == 0 && d->fin;

    if (d->server && n > 0) {
        /* Unmasked into the decoder's buffer: the input is the caller's. */
        if (n > d->scratch_cap) {
            unsigned char *b = realloc(d->scratch, n);

            if (!b)
                return fail(d, 1009, "out of memory");
            d->scratch = b;
            d->scratch_cap = n;
        }
        memcpy(d->scratch, p, n);
        lurk_ws_mask(d->scratch, n, d->mask, d->mask_off);
        d->mask_off += n;
        p = d->scratch;
    }
    if (d->msg_op == LURK_WS_TEXT && !d->msg_compressed) {
        if (!lurk_utf8_feed(&d->utf8, p, n))
            return fail(d, 1007, "invalid UTF-8 in text message");
        if (end && d->utf8 != 0)
            return fail(d, 1007, "invalid UTF-8 in text message");
    }
    if (d->remaining == 0)
        d->state = ST_HEADER;
    if (end)
        d->in_message = false;
    ev->kind = LURK_WS_DATA;
    ev->opcode = d->msg_op;
    ev->data = p;
    ev->len = n;
    ev->message_end = end;
    ev->compressed = d->msg_compressed;
    return 0;
}

/* Delivers the control frame now whole in d->ctl. For a close frame, data
 * and len cover only the reason (the bytes after the 2-byte code), and
 * close_code is the code, or 1005 when the payload is empty. */
static int emit_control(struct lurk_ws_decoder *d, struct lurk_ws_event *ev)
{
    uint32_t u = 0;

    d->state = ST_HEADER;
    ev->kind = LURK_WS_CONTROL;
    ev->opcode = d->op;
    ev->data = d->ctl;
    ev->len = d->ctl_len;
    if (d->op != LURK_WS_CLOSE)
        return 0;
    if (d->ctl_len == 0) {
        ev->close_code = 1005;
        return 0;
    }
    if (d->ctl_len == 1)
        return fail(d, 1002, "close frame with a 1-byte payload");
    ev->close_code = d->ctl[0] << 8 | d->ctl[1];
    if (!valid_close_code((unsigned)ev->close_code))
        return fail(d, 1002, "invalid close code");
    if (!lurk_utf8_feed(&u, d->ctl + 2, d->ctl_len - 2) || u != 0)
        return fail(d, 1007, "invalid UTF-8 in close reason");
    ev->data = d->ctl + 2;
    ev->len = d->ctl_len - 2;
    return 0;
}

int lurk_ws_decode(struct lurk_ws_decoder *d, const unsigned char *in, size_t len, size_t *used,
                   struct lurk_ws_event *ev)
{
    size_t pos = 0;
    int rc = 0;

    memset(ev, 0, sizeof *ev);
    ev->kind = LURK_WS_NEED_MORE;
    while (rc == 0 && ev->kind == LURK_WS_NEED_MORE) {
        if (d->state == ST_DEAD) {
            rc = -LURK_EWS;
        } else if (d->state == ST_HEADER) {
            if (pos == len)
                break;
            d->hdr[d->hdr_len++] = in[pos++];
            if (d->hdr_len == 2)
                rc = check_start(d);
            if (rc < 0 || d->hdr_len < d->hdr_need)
                continue;
            rc = start_payload(d);
            if (rc < 0 || d->remaining > 0)
                continue;
            /* An empty frame is whole now: a control frame, or a data frame,
             * which is only worth an event when it ends the message. */
            if (d->state == ST_CONTROL)
                rc = emit_control(d, ev);
            else if (d->fin)
                rc = emit_data(d, in + pos, 0, ev);
            else
                d->state = ST_HEADER;
        } else {
            size_t n = len - pos;

            if (n == 0)
                break;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            d->remaining -= n;
            if (d->state == ST_DATA) {
                rc = emit_data(d, in + pos, n, ev);
            } else {
                memcpy(d->ctl + d->ctl_len, in + pos, n);
                if (d->server) {
                    lurk_ws_mask(d->ctl + d->ctl_len, n, d->mask, d->mask_off);
                    d->mask_off += n;
                }
                d->ctl_len += n;
                if (d->remaining == 0)
                    rc = emit_control(d, ev);
            }
            pos += n;
        }
    }
    *used = pos;
    if (rc < 0)
        memset(ev, 0, sizeof *ev);
    return rc;
}
