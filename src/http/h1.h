/*
 * h1.h - HTTP/1.1 response parsing (llhttp) and request heads.
 *
 * The parser is incremental and copies nothing but the head: feed it the
 * bytes read so far and it reports one event at a time (the head, a slice of
 * body pointing into the input, the end of the message), consuming input up
 * to that event. Body framing (Content-Length, chunked, read-until-close,
 * HEAD/204/304 without a body) is llhttp's; interim 1xx responses are skipped.
 * Limits on the head's size and header count are enforced here, and so are
 * the leniencies RFC 9112 asks of a user agent that llhttp lacks: obs-fold
 * joined with one space, chunk headers ended by a bare LF, whitespace and any
 * extension after a chunk size.
 */
#ifndef LURK_HTTP_H1_H
#define LURK_HTTP_H1_H

#include "core/buf.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

/* Interim (1xx) responses accepted before the final one. */
#define LURK_H1_MAX_INTERIM 16
#define LURK_STR_(x) #x
#define LURK_STR(x) LURK_STR_(x)

struct lurk_h1_header {
    size_t name, name_len, value, value_len;   /* offsets into head; names in lower case */
};

enum lurk_h1_event {
    LURK_H1_MORE,                     /* everything consumed: feed more */
    LURK_H1_HEAD,                     /* status, reason and headers are ready */
    LURK_H1_BODY,                     /* body[0..body_len) points into the input */
    LURK_H1_DONE,                     /* the response ended */
    LURK_H1_INTERIM,                  /* a 1xx response other than 101 (status set) */
};

struct lurk_h1 {
    llhttp_t p;
    struct lurk_buf head;             /* reason, then header names and values */
    struct lurk_h1_header *hdr;
    int nhdr, cap;
    int status;
    int interim;                      /* status of the last interim response */
    int ninterim;                     /* interim responses before this one */
    size_t reason, reason_len;
    size_t head_bytes, max_head;
    size_t ext_bytes;                 /* bytes of the current chunk header, size and extensions */
    const char *in_end;               /* the end of the input being parsed */
    int chunk_line;                   /* where in a chunk header, read by h1.c itself */
    int max_headers;
    bool no_body;                     /* a HEAD request: no body whatever the headers say */
    bool in_value, headers_done, finished, limit;
    bool value_open;                  /* the last value piece ended with the input, not a line */
    bool fold_ws;                     /* skipping the whitespace that starts an obs-fold */
    bool value_line_end;              /* a value's line ended; it may yet be folded */
    bool may_fold;
    bool lenient;                     /* llhttp's lenient headers are on */                    /* this input could hold an obs-fold (see lurk_h1_feed) */
    const char *body;
    size_t body_len;
    const char *error;                /* what went wrong, for messages */
};

/* Prepares to parse one response to a request (head_request: it was HEAD).
 * max_head bounds the status line plus headers (and trailers), and also the
 * size and extensions of each chunk header; max_headers bounds the headers' count. */
void lurk_h1_init(struct lurk_h1 *h, bool head_request, size_t max_head, int max_headers);
void lurk_h1_fini(struct lurk_h1 *h);
/* Ready for the next response on the same connection, keeping the
 * buffers (no allocation per response) and limits. */
void lurk_h1_reset(struct lurk_h1 *h, bool head_request);

/*
 * Parses from data[0..len). Returns an event (>= 0) and sets *used to the
 * bytes consumed, or a negative code: -LURK_EHTTP (h->error says why) or
 * -LURK_ELIMIT (head too large, too many headers, chunk extensions too long).
 */
int lurk_h1_feed(struct lurk_h1 *h, const char *data, size_t len, size_t *used);

/* The peer closed the connection: LURK_H1_DONE if the response was
 * delimited by the close, else -LURK_EHTTP (a truncated response). */
int lurk_h1_finish(struct lurk_h1 *h);

/* Whether the connection may carry another request after this response. */
bool lurk_h1_keep_alive(const struct lurk_h1 *h);

#endif
