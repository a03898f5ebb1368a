/*
 * fuzz_h1.c - HTTP/1.1 responses through src/http/h1.c, driven the way
 * src/http/exchange.c drives it: feed from the current position, act on the
 * one event that comes back, and read more (the next piece) only on
 * LURK_H1_MORE; at the end of the input the peer "closes"
 * (lurk_h1_finish). After a response ends, the parser is reset the way
 * lurk_h1_reset() does for the next exchange (keeping its buffers) and
 * parses whatever follows, up to three responses. (fuzz_exchange.c runs
 * the exchange itself.)
 *
 * Input: one config byte (bit 0: the first request was HEAD, bit 1: the
 * later ones were; bits 2-3: max_head 64 KiB, 256, 40 or 8 KiB; bit 4:
 * max_headers 100 or 3), a split plan (fuzz.h), then the response bytes.
 *
 * Checked on every event: consumption stays within what was fed, MORE means
 * everything was consumed, a body slice lies inside the bytes consumed by
 * its step, the head is reported once with every header complete and
 * inside the limits, interim responses are 1xx and come before it, no body
 * follows a HEAD request, nothing but DONE follows DONE, and errors are
 * only -LURK_EHTTP / -LURK_ELIMIT with a reason. Then the same bytes in one
 * piece must give the same events and body (when one run fails, both must,
 * with the same events before the failure).
 */
#include "fuzz.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/h1.h"

#include <string.h>

#define MAX_RESPONSES 3

struct transcript {
    struct lurk_buf events;           /* what happened, serialized */
    struct lurk_buf body;             /* every body byte, in order */
    int err;                          /* 0, or the code that ended the run */
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

/* Appends a length-prefixed slice of the head buffer. */
static void put_piece(struct lurk_buf *b, const struct lurk_h1 *h, size_t off, size_t len)
{
    FUZZ_CHECK(off <= lurk_buf_len(&h->head) && len <= lurk_buf_len(&h->head) - off);
    put_int(b, 'l', len);
    if (len)
        put(b, h->head.data + off, len);
}

static void check_head(const struct lurk_h1 *h, struct transcript *t)
{
    FUZZ_CHECK(h->status >= 0 && h->status <= 999);
    FUZZ_CHECK(h->status < 100 || h->status >= 200 || h->status == 101);   /* not interim */
    FUZZ_CHECK(h->nhdr >= 0 && h->nhdr <= h->max_headers);
    FUZZ_CHECK(h->head_bytes <= h->max_head);
    FUZZ_CHECK(lurk_buf_len(&h->head) <= h->head_bytes);
    put_int(&t->events, 'H', (uint64_t)h->status);
    put_piece(&t->events, h, h->reason, h->reason_len);
    for (int k = 0; k < h->nhdr; k++) {
        FUZZ_CHECK(h->hdr[k].name_len > 0);
        FUZZ_CHECK(h->hdr[k].value_len != (size_t)-1);   /* every header got its value */
        put_piece(&t->events, h, h->hdr[k].name, h->hdr[k].name_len);
        put_piece(&t->events, h, h->hdr[k].value, h->hdr[k].value_len);
    }
}

/* What parser:reset(is_head) does: start over, keeping the buffers. */
static void reset(struct lurk_h1 *h, bool head_request)
{
    struct lurk_buf head = h->head;
    struct lurk_h1_header *hdr = h->hdr;
    int cap = h->cap;
    size_t max_head = h->max_head;
    int max_headers = h->max_headers;

    lurk_buf_consume(&head, lurk_buf_len(&head));
    lurk_h1_init(h, head_request, max_head, max_headers);
    h->head = head;
    h->hdr = hdr;
    h->cap = cap;
}

static void drive(uint8_t cfg, const char *data, size_t len, struct fuzz_splits sp,
                  struct transcript *t)
{
    static const size_t max_heads[] = { 64 * 1024, 256, 40, 8 * 1024 };
    struct lurk_h1 h;
    size_t start = 0, clen = fuzz_splits_next(&sp, len), i = 0, steps = 0;
    bool head_request = cfg & 1, seen_head = false;
    int responses = 1;

    lurk_h1_init(&h, head_request, max_heads[(cfg >> 2) & 3], cfg & 16 ? 3 : 100);
    for (;;) {
        const char *at = data + start + i;
        size_t used = 12345;
        int ev = lurk_h1_feed(&h, at, clen - i, &used);

        FUZZ_CHECK(++steps <= 4 * len + 64);        /* every step makes progress */
        if (ev < 0) {
            FUZZ_CHECK(ev == -LURK_EHTTP || ev == -LURK_ELIMIT);
            FUZZ_CHECK(h.error != NULL);
            t->err = ev;
            break;
        }
        FUZZ_CHECK(used <= clen - i);
        i += used;
        switch (ev) {
        case LURK_H1_MORE:
            FUZZ_CHECK(i == clen);                  /* the caller drops what is left */
            if (start + clen == len) {
                /* The input is over: the peer closed the connection. */
                ev = lurk_h1_finish(&h);
                if (ev < 0) {
                    FUZZ_CHECK(ev == -LURK_EHTTP && h.error != NULL);
                    t->err = ev;
                } else {
                    FUZZ_CHECK(ev == LURK_H1_DONE && seen_head);
                    put_int(&t->events, 'C', lurk_buf_len(&t->body));
                }
                goto out;
            }
            start += clen;
            i = 0;
            clen = fuzz_splits_next(&sp, len - start);
            break;
        case LURK_H1_HEAD:
            FUZZ_CHECK(!seen_head);
            seen_head = true;
            check_head(&h, t);
            break;
        case LURK_H1_INTERIM:
            FUZZ_CHECK(!seen_head);
            FUZZ_CHECK(h.status >= 100 && h.status < 200 && h.status != 101);
            put_int(&t->events, 'I', (uint64_t)h.status);
            break;
        case LURK_H1_BODY:
            FUZZ_CHECK(seen_head && !head_request);
            FUZZ_CHECK(h.body_len > 0);
            FUZZ_CHECK(h.body >= at && h.body + h.body_len <= at + used);
            put(&t->body, h.body, h.body_len);
            break;
        case LURK_H1_DONE: {
            size_t again;

            FUZZ_CHECK(seen_head);
            put_int(&t->events, 'D', lurk_buf_len(&t->body));
            put_int(&t->events, 'k', lurk_h1_keep_alive(&h));
            /* Nothing after the end: DONE again, consuming nothing. */
            FUZZ_CHECK(lurk_h1_feed(&h, data + start + i, clen - i, &again) == LURK_H1_DONE);
            FUZZ_CHECK(again == 0);
            FUZZ_CHECK(lurk_h1_finish(&h) == LURK_H1_DONE);
            if (h.status == 101 || start + i == len || responses == MAX_RESPONSES)
                goto out;
            /* The next response on the same connection. */
            head_request = cfg & 2;
            seen_head = false;
            responses++;
            reset(&h, head_request);
            break;
        }
        default:
            FUZZ_CHECK(!"unknown event");
        }
    }
out:
    lurk_h1_fini(&h);
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
    drive(cfg, (const char *)data, size, sp, &split);
    drive(cfg, (const char *)data, size, fuzz_whole(), &whole);

    FUZZ_CHECK((split.err == 0) == (whole.err == 0));
    FUZZ_CHECK(fuzz_buf_same(&split.events, &whole.events));
    if (split.err == 0)
        FUZZ_CHECK(fuzz_buf_same(&split.body, &whole.body));
    else                              /* a failing step may drop the slice it parsed */
        FUZZ_CHECK(fuzz_buf_is_prefix(&split.body, &whole.body) || fuzz_buf_is_prefix(&whole.body, &split.body));
    lurk_buf_fini(&split.events);
    lurk_buf_fini(&split.body);
    lurk_buf_fini(&whole.events);
    lurk_buf_fini(&whole.body);
    return 0;
}
