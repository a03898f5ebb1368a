/*
 * exchange.h - one HTTP/1.1 response read off a stream: the state machine
 * both the buffered and the streamed client paths run.
 *
 * The caller owns the waiting: it sends the request and reads into the
 * stream's buffer when lurk_exchange_step() asks for input. A step consumes
 * what the buffer holds and reports one event: the head (streamed only),
 * decoded body bytes (streamed only), the end, or "read more". Buffered, a
 * step gathers the whole decoded body and reports only the end.
 *
 * What it owns: skipping interim responses, the body limits, undoing every
 * listed Content-Encoding, the rules for a stream that ends (no response at
 * all, a truncated body, a TLS stream cut without close_notify) and the
 * keep-alive decision. Framing is llhttp's, through h1.c.
 */
#ifndef LURK_HTTP_EXCHANGE_H
#define LURK_HTTP_EXCHANGE_H

#include "core/buf.h"
#include "http/h1.h"
#include "http/inflate.h"
#include "net/stream.h"

#include <stdbool.h>
#include <stdint.h>

/* Content-Encoding layers undone at most (a longer list is refused). */
#define LURK_EXCHANGE_MAX_CODINGS 4

enum lurk_exchange_event {
    LURK_X_READ,                      /* the buffer is used up: read more, step again */
    LURK_X_HEAD,                      /* streamed: status and headers are in h */
    LURK_X_DATA,                      /* streamed: decoded body bytes in out */
    LURK_X_DONE,                      /* the response ended (buffered: the body in out) */
    LURK_X_CONTINUE,                  /* 100 Continue, when asked to stop at it */
};

struct lurk_exchange {
    struct lurk_h1 h;
    struct lurk_stream *st;
    size_t max_body;
    size_t redirect_cap;              /* see lurk_exchange_begin */
    bool streamed, decompress, stop_at_continue;
    bool discard;                     /* a redirect's body: drained, not kept */
    bool got_any;                     /* any byte of a response came */
    bool head_seen, done;
    int64_t first_ns;                 /* when the first byte came */
    struct lurk_inflate z[LURK_EXCHANGE_MAX_CODINGS];
    struct lurk_buf zbuf[LURK_EXCHANGE_MAX_CODINGS - 1];   /* between layers */
    int ncodings;                     /* decoders in use: z[0] undoes the outermost */
    bool decoding;                    /* the decoders have seen body bytes */
    size_t raw_bytes;                 /* body bytes as they came (encoded) */
    struct lurk_buf out;              /* decoded body for the caller */
    char why[160];                    /* what went wrong, for messages */
};

void lurk_exchange_init(struct lurk_exchange *x, size_t max_head, int max_headers);
void lurk_exchange_fini(struct lurk_exchange *x);

/*
 * Starts reading a response on st (the request is the caller's to send).
 * head_request: the request was HEAD (no body whatever the headers say).
 * max_body bounds the decoded body; decompress: undo Content-Encoding
 * (an unknown coding is then an error); streamed: report the head and each
 * piece of body as events; stop_at_continue: report a 100 Continue.
 */
void lurk_exchange_begin(struct lurk_exchange *x, struct lurk_stream *st, bool head_request, size_t max_body,
                         bool decompress, bool streamed, bool stop_at_continue);

/*
 * The caller follows redirects: the body of a redirect (a 301, 302, 303,
 * 307 or 308 with a Location) is drained and dropped, neither decoded nor
 * counted against max_body; past cap bytes the exchange ends at once,
 * the connection not reusable unless the whole body had already been
 * parsed. (Call after lurk_exchange_begin.)
 */
void lurk_exchange_drain_redirects(struct lurk_exchange *x, size_t cap);

/*
 * Consumes the stream's buffered input. Returns an event, or a negative
 * code with x->why saying what went wrong: -LURK_EEOF (the stream ended
 * before any response byte: nothing was answered), -LURK_EHTTP (a malformed
 * or truncated response, an unknown coding, a cut TLS stream), -LURK_ELIMIT.
 * After an error, out holds the decoded body that had come (err.partial).
 */
int lurk_exchange_step(struct lurk_exchange *x);

/* After LURK_X_DONE: whether the connection may carry another request. */
bool lurk_exchange_keep_alive(const struct lurk_exchange *x);

#endif
