/*
 * exchange.c - one HTTP/1.1 response read off a stream (see exchange.h).
 */
#include "http/exchange.h"
#include "core/error.h"
#include "core/loop.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(struct lurk_exchange *x, int rc, const char *why)
{
    snprintf(x->why, sizeof x->why, "%s", why ? why : lurk_strerror(rc));
    return rc;
}

void lurk_exchange_init(struct lurk_exchange *x, size_t max_head, int max_headers)
{
    memset(x, 0, sizeof *x);
    lurk_h1_init(&x->h, false, max_head, max_headers);
}

static void drop_decoders(struct lurk_exchange *x)
{
    for (int i = 0; i < x->ncodings; i++)
        lurk_inflate_fini(&x->z[i]);
    x->ncodings = 0;
    x->decoding = false;
}

void lurk_exchange_fini(struct lurk_exchange *x)
{
    drop_decoders(x);
    for (int i = 0; i < LURK_EXCHANGE_MAX_CODINGS - 1; i++)
        lurk_buf_fini(&x->zbuf[i]);
    lurk_buf_fini(&x->out);
    lurk_h1_fini(&x->h);
}

void lurk_exchange_begin(struct lurk_exchange *x, struct lurk_stream *st, bool head_request, size_t max_body,
                         bool decompress, bool streamed, bool stop_at_continue)
{
    drop_decoders(x);
    lurk_h1_reset(&x->h, head_request);
    lurk_buf_consume(&x->out, lurk_buf_len(&x->out));
    x->st = st;
    x->max_body = max_body;
    x->decompress = decompress;
    x->streamed = streamed;
    x->stop_at_continue = stop_at_continue;
    x->got_any = x->head_seen = x->done = false;
    x->first_ns = 0;
    x->raw_bytes = 0;
    x->redirect_cap = 0;
    x->discard = false;
    x->why[0] = '\0';
}

void lurk_exchange_drain_redirects(struct lurk_exchange *x, size_t cap)
{
    x->redirect_cap = cap;
}

/* A redirect the caller will follow: status 3xx (not 304) with a Location. */
static bool is_redirect(const struct lurk_h1 *h)
{
    const char *hd = h->head.data;

    if (h->status != 301 && h->status != 302 && h->status != 303 && h->status != 307 && h->status != 308)
        return false;
    for (int i = 0; i < h->nhdr; i++)
        if (h->hdr[i].name_len == 8 && memcmp(hd + h->hdr[i].name, "location", 8) == 0 && h->hdr[i].value_len)
            return true;
    return false;
}

/* One coding of a Content-Encoding list, as a decoder (0: identity, skipped). */
static int coding_of(struct lurk_exchange *x, const char *p, size_t n, enum lurk_coding *c)
{
    if ((n == 4 && strncasecmp(p, "gzip", 4) == 0) || (n == 6 && strncasecmp(p, "x-gzip", 6) == 0))
        *c = LURK_GZIP;
    else if (n == 7 && strncasecmp(p, "deflate", 7) == 0)
        *c = LURK_DEFLATE;
    else if (n == 8 && strncasecmp(p, "identity", 8) == 0)
        return 0;
    else {
        char why[100];

        snprintf(why, sizeof why, "unsupported Content-Encoding \"%.*s\" (decompress = false takes the body as it is)",
                 (int)(n > 40 ? 40 : n), p);
        return fail(x, -LURK_EHTTP, why);
    }
    return 1;
}

/*
 * Sets up a decoder per listed coding (every Content-Encoding field, each a
 * comma-separated list, in the order they were applied): z[0] undoes the
 * last one applied. Done when the first body byte comes, so a response
 * without a body never needs its codings understood.
 */
static int start_decoding(struct lurk_exchange *x)
{
    enum lurk_coding list[LURK_EXCHANGE_MAX_CODINGS];
    const struct lurk_h1 *h = &x->h;
    const char *hd = h->head.data;
    int n = 0;

    x->decoding = true;
    if (!x->decompress)
        return 0;
    for (int i = 0; i < h->nhdr; i++) {
        const char *v = hd + h->hdr[i].value, *end = v + h->hdr[i].value_len;

        if (h->hdr[i].name_len != 16 || memcmp(hd + h->hdr[i].name, "content-encoding", 16) != 0)
            continue;
        while (v < end) {
            const char *comma = memchr(v, ',', (size_t)(end - v)), *e = comma ? comma : end;
            const char *s = v;
            enum lurk_coding c;
            int rc;

            while (s < e && (*s == ' ' || *s == '\t'))
                s++;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            v = comma ? comma + 1 : end;
            if (s == e)
                continue;             /* an empty list element (RFC 9110 5.6.1) */
            rc = coding_of(x, s, (size_t)(e - s), &c);
            if (rc < 0)
                return rc;
            if (rc == 0)
                continue;
            if (n == LURK_EXCHANGE_MAX_CODINGS)
                return fail(x, -LURK_EHTTP, "more than " LURK_STR(LURK_EXCHANGE_MAX_CODINGS) " Content-Encoding layers");
            list[n++] = c;
        }
    }
    for (int i = 0; i < n; i++) {
        if (lurk_inflate_init(&x->z[i], list[n - 1 - i], x->max_body) < 0)
            return fail(x, -ENOMEM, NULL);
        x->ncodings = i + 1;
    }
    return 0;
}

static int decode_error(struct lurk_exchange *x, int rc, int layer)
{
    char why[100];

    if (rc == -LURK_ELIMIT)
        return fail(x, rc, "decompressed body larger than max_body");
    snprintf(why, sizeof why, "invalid %s-encoded body", x->z[layer].coding == LURK_GZIP ? "gzip" : "deflate");
    return fail(x, rc, why);
}

/* A slice of body as it came: through the decoders (outermost first) into out. */
static int body(struct lurk_exchange *x, const char *p, size_t len)
{
    int rc;

    if (x->discard) {
        x->raw_bytes += len;
        return x->raw_bytes > x->redirect_cap ? 1 : 0;
    }
    if (!x->decoding && (rc = start_decoding(x)) < 0)
        return rc;
    x->raw_bytes += len;
    if (x->ncodings == 0) {
        if (x->raw_bytes > x->max_body)
            return fail(x, -LURK_ELIMIT, "body larger than max_body");
        if (lurk_buf_reserve(&x->out, len) < 0)
            return fail(x, -ENOMEM, NULL);
        memcpy(lurk_buf_tail(&x->out), p, len);
        lurk_buf_commit(&x->out, len);
        return 0;
    }
    for (int i = 0; i < x->ncodings; i++) {
        struct lurk_buf *to = i == x->ncodings - 1 ? &x->out : &x->zbuf[i];

        rc = lurk_inflate_push(&x->z[i], p, len, to);
        if (i > 0)
            lurk_buf_consume(&x->zbuf[i - 1], lurk_buf_len(&x->zbuf[i - 1]));
        if (rc < 0)
            return decode_error(x, rc, i);
        p = lurk_buf_len(to) ? lurk_buf_head(to) : "";
        len = lurk_buf_len(to);
    }
    /* The encoded size is bounded too, checked after decoding (a corrupt
     * body is that, however it was read): input that decodes to nothing
     * (empty deflate blocks) must not go on for ever. */
    if (x->raw_bytes > x->max_body)
        return fail(x, -LURK_ELIMIT, "body larger than max_body");
    return 0;
}

/* The message ended: every decoder must have seen its stream end. */
static int finish(struct lurk_exchange *x)
{
    for (int i = 0; i < x->ncodings; i++) {
        int rc = lurk_inflate_end(&x->z[i]);

        if (rc < 0)
            return decode_error(x, rc, i);
    }
    x->done = true;
    return LURK_X_DONE;
}

/* The stream ended with the buffer used up. */
static int end_of_stream(struct lurk_exchange *x)
{
    int rc;

    if (!x->got_any)
        return fail(x, -LURK_EEOF, "closed the connection without a response");
    rc = lurk_h1_finish(&x->h);
    if (rc < 0)
        return fail(x, rc, x->h.error);
    /* Only the end of the stream delimited this body: on TLS that end must
     * be the peer's close_notify, else an attacker who cuts the TCP
     * connection decides where the body ends. */
    if (x->st->cut)
        return fail(x, -LURK_EHTTP, "the TLS stream was cut without close_notify: the body may be incomplete");
    return finish(x);
}

int lurk_exchange_step(struct lurk_exchange *x)
{
    struct lurk_buf *b = x->st->rbuf;

    if (x->done)
        return LURK_X_DONE;
    for (;;) {
        size_t len = lurk_buf_len(b), used = 0;
        int ev, rc;

        if (len && !x->got_any) {
            x->got_any = true;
            x->first_ns = lurk_now_ns();
        }
        /* With nothing buffered the parser may still owe an event (the end
         * of a body that ended with the input, a head without a body). */
        ev = len || x->got_any ? lurk_h1_feed(&x->h, len ? lurk_buf_head(b) : "", len, &used) : LURK_H1_MORE;
        if (ev < 0)
            return fail(x, ev, x->h.error);
        switch (ev) {
        case LURK_H1_MORE:
            lurk_buf_consume(b, used);
            if (lurk_buf_len(b))
                continue;
            if (!x->st->eof)
                return LURK_X_READ;
            if (x->h.finished)
                return finish(x);
            return end_of_stream(x);
        case LURK_H1_HEAD:
            lurk_buf_consume(b, used);
            x->head_seen = true;
            x->discard = x->redirect_cap && is_redirect(&x->h);
            if (x->streamed)
                return LURK_X_HEAD;
            continue;
        case LURK_H1_INTERIM:
            lurk_buf_consume(b, used);
            if (x->stop_at_continue && x->h.status == 100)
                return LURK_X_CONTINUE;
            continue;
        case LURK_H1_BODY:
            /* The slice points into b: decoded before it is consumed. */
            rc = body(x, x->h.body, x->h.body_len);
            lurk_buf_consume(b, used);
            if (rc < 0)
                return rc;
            if (rc > 0) {             /* a redirect's body too long to drain: done with it */
                x->done = true;
                return LURK_X_DONE;
            }
            if (x->streamed && lurk_buf_len(&x->out))
                return LURK_X_DATA;
            continue;
        default:                      /* LURK_H1_DONE */
            lurk_buf_consume(b, used);
            return finish(x);
        }
    }
}

bool lurk_exchange_keep_alive(const struct lurk_exchange *x)
{
    /* Bytes after the response put the connection out of step. */
    return x->done && lurk_h1_keep_alive(&x->h) && lurk_buf_len(x->st->rbuf) == 0 && !x->st->eof;
}
