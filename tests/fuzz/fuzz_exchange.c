/*
 * fuzz_exchange.c - one HTTP/1.1 response through src/http/exchange.c, the
 * state machine behind every client read, driven the way src/lua/http.c
 * drives it: step, and on LURK_X_READ append the next read to the stream's
 * buffer and step again; when the input is used up the stream ends
 * (st->eof, and st->cut when the config says the TLS stream was cut
 * without close_notify) and the exchange steps once more. The stream is in
 * memory: its operations abort, as the exchange must never call them.
 *
 * Input: one config byte (bit 0: the request was HEAD; bit 1: decompress;
 * bits 2-3: max_body 1 MiB, 16, 300 or 4096; bit 4: the stream ends cut;
 * bits 5-6: redirect bodies are not drained, or drained up to 32, 4096 or
 * 1 MiB bytes; bit 7: stop at a 100 Continue), a split plan (fuzz.h),
 * then the response bytes.
 *
 * Each input runs twice: streamed, read in the pieces of the plan, and
 * buffered, read in one piece. Checked on every step: DATA comes only
 * after HEAD and both only when streamed, HEAD once, CONTINUE only when
 * asked and before the head, nothing but DONE after DONE, a step after the
 * end of the stream never asks to read, the decoded body never passes
 * max_body (nothing is kept of a drained redirect), keep-alive only after
 * DONE, and errors are only -LURK_EEOF (and then nothing came),
 * -LURK_EHTTP or -LURK_ELIMIT, with x->why saying why. Then both runs must
 * end the same way: both DONE with the same status and body, or both
 * failing, the body that came before the failure a prefix of the other's,
 * with the same code (except that a body both too large and malformed may
 * be -LURK_ELIMIT one way and -LURK_EHTTP the other).
 */
#include "fuzz.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/exchange.h"

#include <string.h>

struct transcript {
    int rc;                           /* LURK_X_DONE or the error */
    int status;                       /* the final response's, once its head came */
    struct lurk_buf body;             /* DATA in order, then out (at DONE or the error) */
};

static int mem_read(struct lurk_stream *st, size_t room, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    FUZZ_CHECK(!"the exchange read from the stream");
    return -1;
}

static int mem_write(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    FUZZ_CHECK(!"the exchange wrote to the stream");
    return -1;
}

static void mem_cancel(struct lurk_stream *st, int which)
{
    FUZZ_CHECK(!"the exchange cancelled a stream operation");
}

static void mem_close(struct lurk_stream *st)
{
    FUZZ_CHECK(!"the exchange closed the stream");
}

static const struct lurk_stream_ops mem_ops = { mem_read, mem_write, mem_cancel, mem_close, NULL };

static void put(struct lurk_buf *b, const void *p, size_t n)
{
    FUZZ_CHECK(lurk_buf_reserve(b, n + 1) == 0);
    if (n)
        memcpy(lurk_buf_tail(b), p, n);
    lurk_buf_commit(b, n);
}

/* Moves what out holds to the end of the transcript's body. */
static void take(struct lurk_exchange *x, struct transcript *t)
{
    size_t n = lurk_buf_len(&x->out);

    if (n == 0)
        return;                       /* out may have no storage yet */
    put(&t->body, lurk_buf_head(&x->out), n);
    lurk_buf_consume(&x->out, n);
}

static void drive(uint8_t cfg, const char *data, size_t len, struct fuzz_splits sp, bool streamed,
                  struct transcript *t)
{
    static const size_t max_bodies[] = { 1 << 20, 16, 300, 4096 };
    static const size_t drains[] = { 0, 32, 4096, 1 << 20 };
    struct lurk_buf in = { 0 };
    struct lurk_stream st = { .ops = &mem_ops, .rbuf = &in, .open = 1 };
    struct lurk_exchange x;
    size_t max_body = max_bodies[(cfg >> 2) & 3], off = 0, steps = 0;
    bool stop_at_continue = cfg & 128, head_seen = false;

    lurk_exchange_init(&x, 8192, 64);
    lurk_exchange_begin(&x, &st, cfg & 1, max_body, cfg & 2, streamed, stop_at_continue);
    if (drains[(cfg >> 5) & 3])
        lurk_exchange_drain_redirects(&x, drains[(cfg >> 5) & 3]);
    for (;;) {
        int ev = lurk_exchange_step(&x);
        size_t n;

        FUZZ_CHECK(++steps <= 4 * len + 64);        /* every step makes progress */
        if (ev < 0) {
            FUZZ_CHECK(ev == -LURK_EEOF || ev == -LURK_EHTTP || ev == -LURK_ELIMIT);
            FUZZ_CHECK(ev != -LURK_EEOF || (!x.got_any && len == 0));
            FUZZ_CHECK(x.why[0] != '\0');
            FUZZ_CHECK(!lurk_exchange_keep_alive(&x));
            t->rc = ev;
            take(&x, t);              /* the partial body */
            break;
        }
        if (ev != LURK_X_DONE)
            FUZZ_CHECK(!lurk_exchange_keep_alive(&x));
        switch (ev) {
        case LURK_X_READ:
            FUZZ_CHECK(!st.eof);      /* after the end, a step always ends the exchange */
            FUZZ_CHECK(lurk_buf_len(&in) == 0);
            if (off == len) {
                st.eof = 1;
                st.cut = cfg & 16 ? 1 : 0;
                break;
            }
            n = fuzz_splits_next(&sp, len - off);
            put(&in, data + off, n);
            off += n;
            break;
        case LURK_X_HEAD:
            FUZZ_CHECK(streamed && !head_seen);
            FUZZ_CHECK(x.h.status >= 0 && x.h.status <= 999);   /* llhttp takes "020" */
            FUZZ_CHECK(x.h.status < 100 || x.h.status >= 200 || x.h.status == 101);   /* not interim */
            head_seen = true;
            break;
        case LURK_X_DATA:
            FUZZ_CHECK(streamed && head_seen && !x.discard);
            FUZZ_CHECK(lurk_buf_len(&x.out) > 0);
            take(&x, t);
            break;
        case LURK_X_CONTINUE:
            FUZZ_CHECK(stop_at_continue && !head_seen && x.h.status == 100);
            break;
        case LURK_X_DONE: {
            bool keep = lurk_exchange_keep_alive(&x);

            FUZZ_CHECK(!streamed || head_seen);
            FUZZ_CHECK(x.head_seen);
            take(&x, t);
            if (x.discard)
                FUZZ_CHECK(lurk_buf_len(&t->body) == 0);   /* a drained redirect keeps nothing */
            for (int i = 0; i < 3; i++) {                   /* nothing after the end but the end */
                FUZZ_CHECK(lurk_exchange_step(&x) == LURK_X_DONE);
                FUZZ_CHECK(lurk_exchange_keep_alive(&x) == keep);
                FUZZ_CHECK(lurk_buf_len(&x.out) == 0);
            }
            t->rc = ev;
            break;
        }
        default:
            FUZZ_CHECK(!"unknown event");
        }
        /* Decoded bytes delivered so far, and what waits in out, within the limit. */
        FUZZ_CHECK(lurk_buf_len(&t->body) + lurk_buf_len(&x.out) <= max_body);
        if (ev == LURK_X_DONE)
            break;
    }
    t->status = x.head_seen ? x.h.status : 0;
    lurk_exchange_fini(&x);
    lurk_buf_fini(&in);
}

static bool is_limit_or_http(int rc)
{
    return rc == -LURK_ELIMIT || rc == -LURK_EHTTP;
}

static bool prefix(const struct lurk_buf *a, const struct lurk_buf *b)
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
    drive(cfg, (const char *)data, size, sp, true, &split);
    drive(cfg, (const char *)data, size, fuzz_whole(), false, &whole);

    /* A body both too large and malformed fails either way, but which is
     * noticed first depends on the cut: the limit is checked per slice
     * before decoding, and llhttp drops a slice that a framing error
     * follows in the same read. */
    /* A redirect's body drained past its cap is abandoned where the cap
     * fell: what it held after that point (malformed chunks, say) is seen
     * or not depending on the cut, since llhttp reports a framing error
     * before the body slice that preceded it in the same read. */
    bool drained = ((cfg >> 5) & 3) && (split.status == 301 || split.status == 302 || split.status == 303 ||
                                        split.status == 307 || split.status == 308) && split.status == whole.status;

    FUZZ_CHECK(split.rc == whole.rc || (is_limit_or_http(split.rc) && is_limit_or_http(whole.rc)) ||
               (drained && (split.rc == LURK_X_DONE || whole.rc == LURK_X_DONE) &&
                (is_limit_or_http(split.rc) || is_limit_or_http(whole.rc))));
    if (split.rc == LURK_X_DONE) {
        FUZZ_CHECK(split.status == whole.status);
        FUZZ_CHECK(fuzz_buf_same(&split.body, &whole.body));
    } else {
        FUZZ_CHECK(prefix(&split.body, &whole.body));
    }
    lurk_buf_fini(&split.body);
    lurk_buf_fini(&whole.body);
    return 0;
}
