/*
 * server.c - request parsing for the server side, through llhttp.
 *
 * The request line and headers are copied into one buffer as llhttp hands
 * them over (a head may arrive in many reads, and each byte is parsed
 * once: a client sending its head a byte at a time costs linear time, not
 * quadratic); the body is never copied: each slice points into the input.
 * llhttp is paused where an event starts (headers complete), after each
 * body span and at the message's end, so one call reports one event.
 *
 * What this file leaves to its caller: timeouts (the head's deadline),
 * body size limits (413 is the server's policy, not framing), and
 * "Expect: 100-continue".
 */
#include "http/server.h"
#include "core/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct lurk_h1_request *of(llhttp_t *p)
{
    return (struct lurk_h1_request *)((char *)p - offsetof(struct lurk_h1_request, p));
}

/* Room for len more bytes of head within the limit, or NULL (r->error set). */
static char *head_room(struct lurk_h1_request *r, size_t len)
{
    r->head_bytes += len;
    if (r->head_bytes > r->max_head) {
        r->error = "request head too large";
        r->limit = true;
        return NULL;
    }
    if (lurk_buf_reserve(&r->head, len) < 0) {
        r->error = "out of memory";
        return NULL;
    }
    lurk_buf_commit(&r->head, len);
    return lurk_buf_tail(&r->head) - len;
}

static int append(struct lurk_h1_request *r, const char *at, size_t len, bool lower)
{
    char *out;

    if (len == 0)
        return 0;
    out = head_room(r, len);
    if (!out)
        return -1;
    if (!lower) {
        memcpy(out, at, len);
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] + 32 : at[i]);
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1_request *r = of(p);

    r->method_len += len;
    return append(r, at, len, false);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1_request *r = of(p);

    if (r->target_len == 0)
        r->target = lurk_buf_len(&r->head);
    r->target_len += len;
    return append(r, at, len, false);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1_request *r = of(p);

    if (r->headers_done)
        return 0;                     /* trailers: counted by nobody, kept by nobody */
    if (r->in_value || r->nhdr == 0) {
        if (r->nhdr == r->max_headers) {
            r->error = "too many request headers";
            r->limit = true;
            return -1;
        }
        if (r->nhdr == r->cap) {
            int cap = r->cap ? r->cap * 2 : 16;
            struct lurk_h1_header *n = realloc(r->hdr, (size_t)cap * sizeof *n);

            if (!n) {
                r->error = "out of memory";
                return -1;
            }
            r->hdr = n;
            r->cap = cap;
        }
        r->hdr[r->nhdr].name = lurk_buf_len(&r->head);
        r->hdr[r->nhdr].name_len = 0;
        r->hdr[r->nhdr].value = 0;
        r->hdr[r->nhdr].value_len = (size_t)-1;
        r->nhdr++;
        r->in_value = false;
    }
    r->hdr[r->nhdr - 1].name_len += len;
    return append(r, at, len, true);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1_request *r = of(p);
    struct lurk_h1_header *hd;

    if (r->headers_done)
        return 0;
    hd = &r->hdr[r->nhdr - 1];
    if (hd->value_len == (size_t)-1) {
        hd->value = lurk_buf_len(&r->head);
        hd->value_len = 0;
    }
    hd->value_len += len;
    r->in_value = true;
    return append(r, at, len, false);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct lurk_h1_request *r = of(p);
    struct lurk_h1_header *hd;

    if (r->headers_done || r->nhdr == 0)
        return 0;
    hd = &r->hdr[r->nhdr - 1];
    if (hd->value_len == (size_t)-1) {
        hd->value = lurk_buf_len(&r->head);
        hd->value_len = 0;
    }
    /* llhttp keeps the whitespace that ends a value (RFC 9110 5.5: not part of it). */
    while (hd->value_len > 0) {
        char c = r->head.data[r->head.rpos + hd->value + hd->value_len - 1];

        if (c != ' ' && c != '\t')
            break;
        hd->value_len--;
    }
    r->in_value = true;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct lurk_h1_request *r = of(p);

    r->headers_done = true;
    r->upgrade = p->upgrade;
    return HPE_PAUSED;                /* the head is an event of its own */
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1_request *r = of(p);

    if (len == 0)
        return 0;
    r->body = at;
    r->body_len = len;
    return HPE_PAUSED;                /* one slice per call */
}

static int on_message_complete(llhttp_t *p)
{
    of(p)->finished = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_method = on_method,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void lurk_h1_request_init(struct lurk_h1_request *r, size_t max_head, int max_headers)
{
    memset(r, 0, sizeof *r);
    llhttp_init(&r->p, HTTP_REQUEST, &settings);
    r->max_head = max_head;
    r->max_headers = max_headers;
}

void lurk_h1_request_reset(struct lurk_h1_request *r)
{
    struct lurk_buf head = r->head;
    struct lurk_h1_header *hdr = r->hdr;
    int cap = r->cap;

    lurk_buf_consume(&head, lurk_buf_len(&head));
    lurk_h1_request_init(r, r->max_head, r->max_headers);
    r->head = head;
    r->hdr = hdr;
    r->cap = cap;
}

void lurk_h1_request_fini(struct lurk_h1_request *r)
{
    lurk_buf_fini(&r->head);
    free(r->hdr);
    r->hdr = NULL;
}

int lurk_h1_request_feed(struct lurk_h1_request *r, const char *data, size_t len, size_t *used)
{
    bool head_before = r->headers_done;
    llhttp_errno_t rc;

    *used = 0;
    r->body = NULL;
    r->body_len = 0;
    if (r->finished)
        return LURK_H1_DONE;
    if (len == 0) {
        /* After the head of a request without a body, llhttp ends the
         * message without needing another byte. */
        if (!r->headers_done)
            return LURK_H1_MORE;
        data = "";
    }
    rc = llhttp_execute(&r->p, data, len);
    if (rc == HPE_PAUSED || rc == HPE_PAUSED_UPGRADE) {
        *used = (size_t)(llhttp_get_error_pos(&r->p) - data);
        if (rc == HPE_PAUSED)
            llhttp_resume(&r->p);
        else
            r->finished = true;       /* what follows belongs to the new protocol */
    } else if (rc == HPE_OK) {
        *used = len;
    } else {
        if (!r->error)
            r->error = llhttp_get_error_reason(&r->p);
        return r->limit ? -LURK_ELIMIT : -LURK_EHTTP;
    }
    if (!head_before) {
        /* The limit counts every byte of the head, whitespace and line
         * ends too, not only what is kept. */
        r->raw += *used;
        if (r->raw > r->max_head) {
            r->error = "request head too large";
            r->limit = true;
            return -LURK_ELIMIT;
        }
        if (r->headers_done)
            return LURK_H1_HEAD;
    }
    if (r->body)
        return LURK_H1_BODY;
    if (r->finished)
        return LURK_H1_DONE;
    return LURK_H1_MORE;
}

int lurk_h1_request_version(const struct lurk_h1_request *r)
{
    return r->p.http_major * 10 + r->p.http_minor;
}

int64_t lurk_h1_request_length(const struct lurk_h1_request *r)
{
    if ((r->p.flags & F_CONTENT_LENGTH) && !(r->p.flags & F_CHUNKED))
        return (int64_t)r->p.content_length;
    return -1;
}

bool lurk_h1_request_chunked(const struct lurk_h1_request *r)
{
    return (r->p.flags & F_CHUNKED) != 0;
}

bool lurk_h1_request_keep_alive(const struct lurk_h1_request *r)
{
    return llhttp_should_keep_alive(&r->p);
}
