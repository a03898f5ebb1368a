/*
 * server.h - HTTP/1.1 requests as a server reads them (llhttp in request
 * mode): the request line and headers, then the body in slices, then the
 * end of the message, one event per call, as h1.h does for responses.
 *
 * Strict on purpose: a server that guesses where a request ends can be
 * made to see a different request than a proxy in front of it did
 * (request smuggling). Content-Length together with Transfer-Encoding,
 * repeated or conflicting lengths, a Transfer-Encoding that does not end
 * in chunked, obs-fold, bare CR and junk in the request line are all
 * errors here (llhttp's strict defaults; no leniency is turned on except a
 * bare LF ending a line, which curl's and wrk's requests never use and
 * which frames nothing differently).
 */
#ifndef LURK_HTTP_SERVER_H
#define LURK_HTTP_SERVER_H

#include "core/buf.h"
#include "http/h1.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lurk_h1_request {
    llhttp_t p;
    struct lurk_buf head;             /* method, target, then header names and values */
    struct lurk_h1_header *hdr;       /* offsets into head, names in lower case */
    int nhdr, cap, max_headers;
    size_t method_len, target, target_len;
    size_t head_bytes, max_head;
    size_t raw;                       /* bytes of head fed so far */
    bool headers_done, finished, limit, in_value, upgrade;
    const char *body;                 /* a body slice, into the caller's input */
    size_t body_len;
    const char *error;                /* what was wrong with the request */
};

/* Ready to read requests whose line plus headers stay within max_head bytes
 * and max_headers fields. */
void lurk_h1_request_init(struct lurk_h1_request *r, size_t max_head, int max_headers);
void lurk_h1_request_fini(struct lurk_h1_request *r);

/* Ready for the connection's next request, keeping the buffers. */
void lurk_h1_request_reset(struct lurk_h1_request *r);

/*
 * Parses from data[0..len): returns LURK_H1_MORE, LURK_H1_HEAD (method,
 * target and headers are ready), LURK_H1_BODY (r->body, r->body_len point
 * into data) or LURK_H1_DONE, with *used the bytes consumed; or
 * -LURK_EHTTP for a malformed request (r->error says why: answer 400) or
 * -LURK_ELIMIT for a head over the limits (answer 431).
 */
int lurk_h1_request_feed(struct lurk_h1_request *r, const char *data, size_t len, size_t *used);

/* After the head: the request's HTTP version (10 or 11), its declared
 * body length (-1 for none or chunked), whether it is chunked, whether the
 * connection may carry another request (HTTP/1.1 without "Connection:
 * close", HTTP/1.0 with "keep-alive"). */
int lurk_h1_request_version(const struct lurk_h1_request *r);
int64_t lurk_h1_request_length(const struct lurk_h1_request *r);
bool lurk_h1_request_chunked(const struct lurk_h1_request *r);
bool lurk_h1_request_keep_alive(const struct lurk_h1_request *r);

#endif
