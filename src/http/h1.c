/*
 * h1.c - HTTP/1.1 responses through llhttp, one event at a time.
 *
 * llhttp pushes; callers here pull. The parser pauses itself where an event
 * begins or ends (headers complete, each chunk header, message complete),
 * so each lurk_h1_feed() call sees at most one event, and a body slice can
 * point straight into the caller's input: the only copy is of the head.
 *
 * The head is kept as one buffer of names and values, each piece appended as
 * llhttp hands it over (a header may arrive split across reads), names in
 * lower case, values without the whitespace around them (RFC 9110 5.5);
 * headers are offsets into it, so growing the buffer never invalidates them.
 *
 * Two things RFC 9112 asks of a user agent are done here, around llhttp:
 * an obs-fold (a line starting with SP or HTAB that continues a value) is
 * replaced with one space (5.2), and chunk headers are read here, so that a
 * bare LF ends them (2.2) and whitespace and any extension after the size
 * are skipped (7.1.1). Everything that decides where a message ends
 * (conflicting or repeated lengths, Transfer-Encoding, bad sizes) stays
 * llhttp's, and strict.
 */
#include "http/h1.h"
#include "core/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Where in a chunk header ("1a ; name=value CRLF") lurk_h1_feed is. */
enum { LINE_NONE, LINE_SIZE, LINE_BWS, LINE_EXT, LINE_CR };

static struct lurk_h1 *of(llhttp_t *p)
{
    return (struct lurk_h1 *)((char *)p - offsetof(struct lurk_h1, p));
}

/* Room for len more bytes of head, within the head limit: where they go,
 * or NULL with h->error set. */
static char *head_room(struct lurk_h1 *h, size_t len)
{
    h->head_bytes += len;
    if (h->head_bytes > h->max_head) {
        h->error = "response head too large";
        h->limit = true;
        return NULL;
    }
    if (lurk_buf_reserve(&h->head, len) < 0) {
        h->error = "out of memory";
        return NULL;
    }
    lurk_buf_commit(&h->head, len);
    return lurk_buf_tail(&h->head) - len;
}

static int append(struct lurk_h1 *h, const char *at, size_t len)
{
    char *out;

    if (len == 0)
        return 0;                     /* llhttp reports empty spans (an empty reason) */
    out = head_room(h, len);
    if (!out)
        return -1;
    memcpy(out, at, len);
    return 0;
}

/* ASCII lower case, by table. */
#define LOWER1(c) ((unsigned char)((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c)))
#define LOWER4(c) LOWER1(c), LOWER1((c) + 1), LOWER1((c) + 2), LOWER1((c) + 3)
#define LOWER16(c) LOWER4(c), LOWER4((c) + 4), LOWER4((c) + 8), LOWER4((c) + 12)
#define LOWER64(c) LOWER16(c), LOWER16((c) + 16), LOWER16((c) + 32), LOWER16((c) + 48)
static const unsigned char lower[256] = { LOWER64(0), LOWER64(64), LOWER64(128), LOWER64(192) };

/* A piece of a header name, kept in lower case: Lua sees the names so,
 * and comparing them needs no case folding. */
static int append_name(struct lurk_h1 *h, const char *at, size_t len)
{
    char *out;

    if (len == 0)
        return 0;
    out = head_room(h, len);
    if (!out)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)lower[(unsigned char)at[i]];
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1 *h = of(p);

    if (h->reason_len == 0)
        h->reason = lurk_buf_len(&h->head);
    h->reason_len += len;
    return append(h, at, len);
}

/* llhttp's lenient headers, on or off, and whether they are on. */
static void lenient(struct lurk_h1 *h, bool on)
{
    if (h->lenient != on) {
        llhttp_set_lenient_headers(&h->p, on);
        h->lenient = on;
    }
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1 *h = of(p);

    /* A field line starts: no obs-fold can follow before its value. */
    lenient(h, false);
    h->value_line_end = false;
    h->value_open = true;
    if (h->headers_done) {            /* a trailer: counted, not kept */
        h->head_bytes += len;
        return h->head_bytes > h->max_head ? (h->limit = true, h->error = "trailers too large", -1) : 0;
    }
    if (!h->in_value && h->nhdr > 0 && h->hdr[h->nhdr - 1].value_len == (size_t)-1)
        ;                             /* continuing a name split across reads */
    else {
        if (h->nhdr == h->max_headers) {
            h->error = "too many response headers";
            h->limit = true;
            return -1;
        }
        if (h->nhdr == h->cap) {
            int cap = h->cap ? h->cap * 2 : 16;
            struct lurk_h1_header *n = realloc(h->hdr, cap * sizeof *n);

            if (!n) {
                h->error = "out of memory";
                return -1;
            }
            h->hdr = n;
            h->cap = cap;
        }
        h->hdr[h->nhdr].name = lurk_buf_len(&h->head);
        h->hdr[h->nhdr].name_len = 0;
        h->hdr[h->nhdr].value_len = (size_t)-1;   /* no value yet */
        h->nhdr++;
        h->in_value = false;
    }
    h->hdr[h->nhdr - 1].name_len += len;
    return append_name(h, at, len);
}

/* Whether a piece of a header value holds a byte llhttp refuses there
 * unless lenient: a control character other than HTAB, or DEL. */
static bool bad_value_bytes(const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

/* Drops the whitespace that ends hd's value, from the buffer too: the value
 * is the last thing in it, and an obs-fold appends to it. */
static void trim_value(struct lurk_h1 *h, struct lurk_h1_header *hd)
{
    const char *v = lurk_buf_head(&h->head) + hd->value;

    while (hd->value_len > 0 && (v[hd->value_len - 1] == ' ' || v[hd->value_len - 1] == '\t')) {
        hd->value_len--;
        h->head.wpos--;
    }
}

/* The headers llhttp reads to frame the message: a fold in one of them
 * would give llhttp and the script different values. */
static bool framing_header(const struct lurk_h1 *h, const struct lurk_h1_header *hd)
{
    static const char *const names[] = { "content-length", "transfer-encoding", "connection" };
    const char *name = lurk_buf_head(&h->head) + hd->name;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (hd->name_len == strlen(names[i]) && memcmp(name, names[i], hd->name_len) == 0)
            return true;
    return false;
}

/*
 * A piece of a header value. A value arrives in pieces when it spans reads
 * (a piece then ends with the input) and when it is folded: a piece that
 * starts after one that ended at a line end is the start of an obs-fold,
 * replaced with one space (RFC 9112 5.2), as curl does, without the
 * whitespace around it.
 */
static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1 *h = of(p);
    struct lurk_h1_header *hd;
    bool fold = !h->value_open;

    h->value_open = at + len == h->in_end;
    h->value_line_end = !h->value_open;
    /* llhttp takes an obs-fold only with lenient headers, so they are on
     * from the end of a value piece until the field line is over (off again
     * in on_header_value_complete and on_header_field). Within that stretch
     * the flag's other effects are a value's bytes going unchecked (checked
     * here instead, as llhttp would) and a CR without LF after an empty
     * value (unreachable: a value piece came first). */
    if (h->may_fold)
        lenient(h, true);
    if (h->lenient) {
        if (bad_value_bytes(at, len)) {
            h->error = "invalid character in a header value";
            return -1;
        }
    }
    if (h->headers_done) {
        h->head_bytes += len;
        return h->head_bytes > h->max_head ? (h->limit = true, h->error = "trailers too large", -1) : 0;
    }
    hd = &h->hdr[h->nhdr - 1];
    if (hd->value_len == (size_t)-1) {
        hd->value = lurk_buf_len(&h->head);
        hd->value_len = 0;
    } else if (fold) {
        if (framing_header(h, hd)) {
            h->error = "obs-fold in a Content-Length, Transfer-Encoding or Connection header";
            return -1;
        }
        trim_value(h, hd);
        if (append(h, " ", 1) < 0)
            return -1;
        hd->value_len++;
        h->fold_ws = true;
    }
    if (h->fold_ws) {
        while (len > 0 && (*at == ' ' || *at == '\t')) {
            at++;
            len--;
        }
        h->fold_ws = len == 0;        /* the whitespace may go on in the next piece */
    }
    hd->value_len += len;
    h->in_value = true;
    return append(h, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct lurk_h1 *h = of(p);

    lenient(h, false);
    h->value_line_end = false;
    h->fold_ws = false;
    if (!h->headers_done && h->nhdr > 0) {
        struct lurk_h1_header *hd = &h->hdr[h->nhdr - 1];

        if (hd->value_len == (size_t)-1) {
            hd->value = lurk_buf_len(&h->head);
            hd->value_len = 0;        /* an empty value */
        } else {
            trim_value(h, hd);        /* llhttp keeps trailing whitespace */
        }
    }
    h->in_value = true;
    return 0;
}

static void reset_head(struct lurk_h1 *h)
{
    lurk_buf_consume(&h->head, lurk_buf_len(&h->head));
    h->nhdr = 0;
    h->reason = h->reason_len = 0;
    h->head_bytes = 0;
    h->in_value = false;
}

static int on_headers_complete(llhttp_t *p)
{
    struct lurk_h1 *h = of(p);
    int status = p->status_code;

    if (status >= 100 && status < 200 && status != 101) {
        /* A server could send them forever, each small enough for every
         * other limit: a few are plenty for any real exchange. */
        if (++h->ninterim > LURK_H1_MAX_INTERIM) {
            h->error = "more than " LURK_STR(LURK_H1_MAX_INTERIM) " interim (1xx) responses";
            h->limit = true;
            return -1;
        }
        reset_head(h);                /* interim (100 Continue, 103 Early Hints) */
        h->interim = status;
        /* An interim response ends with its head, whatever its headers say
         * (RFC 9110 15.2); llhttp knows that only of 100, 102 and 103. The
         * flag is the one a return of 1 sets for HEAD, and lasts one message. */
        p->flags |= F_SKIPBODY;
        return HPE_PAUSED;            /* reported, for Expect: 100-continue */
    }
    h->status = status;
    h->headers_done = true;
    /* A chunked body follows (the cases llhttp__after_headers_complete
     * sends to chunk_size_start): its first chunk header is read here. */
    if ((p->flags & F_CHUNKED) && !h->no_body && status != 101 && status != 204 && status != 304)
        h->chunk_line = LINE_SIZE;
    /* A response to HEAD has no body whatever its Content-Length says: 1
     * tells llhttp so, and the message then ends (and pauses) at once; the
     * head is still reported first. Otherwise pause here, so the head is an
     * event of its own. */
    return h->no_body ? 1 : HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct lurk_h1 *h = of(p);

    if (len == 0)
        return 0;                     /* llhttp flushes an empty span at the end of input */
    /* At most one slice per segment: each chunk header pauses. */
    if (h->body && h->body + h->body_len == at)
        h->body_len += len;
    else if (!h->body) {
        h->body = at;
        h->body_len = len;
    } else {
        h->error = "internal: two body slices in one step";
        return -1;
    }
    return 0;
}

/* The end of a chunk's data: stop, so that lurk_h1_feed reads the next
 * chunk header itself (and reports the slice this step has, if any). The
 * end of the trailers is the end of the message instead. */
static int on_chunk_complete(llhttp_t *p)
{
    struct lurk_h1 *h = of(p);

    if (p->flags & F_TRAILING)
        return 0;
    h->chunk_line = LINE_SIZE;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    struct lurk_h1 *h = of(p);

    if (!h->headers_done)
        return 0;                     /* the end of an interim response */
    h->finished = true;
    h->chunk_line = LINE_NONE;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_complete = on_chunk_complete,
    .on_message_complete = on_message_complete,
};

void lurk_h1_init(struct lurk_h1 *h, bool head_request, size_t max_head, int max_headers)
{
    memset(h, 0, sizeof *h);
    llhttp_init(&h->p, HTTP_RESPONSE, &settings);
    /* Accept bare LF line ends, as curl and browsers do; everything else
     * (conflicting lengths, bad chunk sizes, junk) stays strict. */
    llhttp_set_lenient_optional_cr_before_lf(&h->p, 1);
    h->no_body = head_request;
    h->max_head = max_head;
    h->max_headers = max_headers;
}

void lurk_h1_reset(struct lurk_h1 *h, bool head_request)
{
    struct lurk_buf head = h->head;
    struct lurk_h1_header *hdr = h->hdr;
    int cap = h->cap;

    lurk_buf_consume(&head, lurk_buf_len(&head));
    lurk_h1_init(h, head_request, h->max_head, h->max_headers);
    h->head = head;
    h->hdr = hdr;
    h->cap = cap;
}

void lurk_h1_fini(struct lurk_h1 *h)
{
    lurk_buf_fini(&h->head);
    free(h->hdr);
    h->hdr = NULL;
}

/* llhttp's error as ours. */
static int parse_failed(struct lurk_h1 *h)
{
    if (!h->error)
        h->error = llhttp_get_error_reason(&h->p);
    return h->limit ? -LURK_ELIMIT : -LURK_EHTTP;
}

static bool hex_digit(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/*
 * Reads a chunk header from data[*pos..len): the size's digits go to llhttp
 * as they are; the rest of the line, whitespace and extensions (ignored, RFC
 * 9112 7.1.1: curl skips to the line end), is checked and skipped here, and
 * its end, CRLF or a bare LF, reaches llhttp as a CRLF of its own. llhttp
 * could take a bare LF itself only by swallowing the byte after it as well
 * (the first byte of the data, when that is a LF too), and refuses the
 * whitespace 7.1.1 allows around extensions. A CR must still be followed by
 * LF. Returns 0 at the end of the line, 1 if the input ran out first (all of
 * it consumed), or a negative code; *pos is past what was consumed.
 */
static int chunk_line(struct lurk_h1 *h, const char *data, size_t len, size_t *pos)
{
    size_t i = *pos;

    while (i < len) {
        char c = data[i];

        if (h->chunk_line == LINE_SIZE && hex_digit(c)) {
            size_t n = 1;

            while (i + n < len && hex_digit(data[i + n]))
                n++;
            /* Counted with the rest: leading zeros never overflow the size. */
            h->ext_bytes += n;
            if (h->ext_bytes > h->max_head)
                break;
            if (llhttp_execute(&h->p, data + i, n) != HPE_OK)
                return parse_failed(h);
            i += n;
            continue;
        }
        i++;
        if (h->chunk_line == LINE_CR) {
            if (c != '\n') {
                h->error = "CR without LF after a chunk size";
                return -LURK_EHTTP;
            }
        } else if (c == '\r') {
            h->chunk_line = LINE_CR;
            continue;
        } else if (c != '\n') {
            if (h->chunk_line != LINE_EXT && c == ';') {
                h->chunk_line = LINE_EXT;
            } else if (h->chunk_line != LINE_EXT && c != ' ' && c != '\t') {
                h->error = "invalid character in chunk size";
                return -LURK_EHTTP;
            } else if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f) {
                h->error = "invalid character in chunk extension";
                return -LURK_EHTTP;
            } else if (h->chunk_line == LINE_SIZE) {
                h->chunk_line = LINE_BWS;
            }
            /* Without a bound, a chunk header that never ends would keep
             * a streaming reader busy forever without one byte of body,
             * each read finishing well within its deadline. */
            if (++h->ext_bytes > h->max_head)
                break;
            continue;
        }
        /* The line's end: llhttp checks the size (there may be no digits). */
        *pos = i;
        h->chunk_line = LINE_NONE;
        h->ext_bytes = 0;
        if (llhttp_execute(&h->p, "\r\n", 2) != HPE_OK)
            return parse_failed(h);
        return 0;
    }
    if (h->ext_bytes > h->max_head) {
        h->error = h->chunk_line == LINE_EXT ? "chunk extensions too large" : "chunk size too long";
        h->limit = true;
        return -LURK_ELIMIT;
    }
    *pos = i;
    return 1;
}

/* Whether data could hold an obs-fold: a line that starts with a space or
 * tab. The whole input is scanned, not just up to the first empty line:
 * llhttp skips empty lines before a status line, and an interim response's
 * head may be followed by the final one's in the same read. A wrong "yes"
 * only costs time; a wrong "no" would refuse a fold. */
static bool could_fold(const char *data, size_t len)
{
    const char *p = data, *end = data + len;

    if (len && (data[0] == ' ' || data[0] == '\t'))
        return true;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL && ++p < end)
        if (*p == ' ' || *p == '\t')
            return true;
    return false;
}

int lurk_h1_feed(struct lurk_h1 *h, const char *data, size_t len, size_t *used)
{
    llhttp_errno_t rc;
    bool head_before = h->headers_done;
    size_t pos = 0;

    *used = 0;
    h->body = NULL;
    h->body_len = 0;
    if (h->finished)
        return LURK_H1_DONE;
    if (len == 0) {
        /* After the head of a response without a body (204, 304), llhttp
         * ends the message without needing another byte. */
        if (!h->headers_done)
            return LURK_H1_MORE;
        data = "";
    }
    h->in_end = data + len;
    /* llhttp refuses an obs-fold unless its headers are lenient, and lenient
     * headers skip its checks of value bytes, redone here: a cost for every
     * field of every head. So the leniency (and the checks) are on only for
     * input that could hold a fold: a line end followed by a space or tab,
     * or input that starts with one (its line end came in the last piece).
     * Trailers are rare: always. */
    h->may_fold = h->headers_done || could_fold(data, len);
    if (h->may_fold && h->value_line_end)
        lenient(h, true);             /* the fold starts this input */
    for (;;) {
        if (h->chunk_line != LINE_NONE) {
            int r = chunk_line(h, data, len, &pos);

            if (r < 0)
                return r;
            if (r > 0) {
                *used = pos;
                return LURK_H1_MORE;
            }
        }
        rc = llhttp_execute(&h->p, data + pos, len - pos);
        if (rc == HPE_PAUSED) {
            pos = (size_t)(llhttp_get_error_pos(&h->p) - data);
            llhttp_resume(&h->p);
            /* The end of a chunk, nothing to report yet: on to the next
             * chunk header (after a head, the first one waits for the next call). */
            if (h->chunk_line != LINE_NONE && !h->body && (head_before || !h->headers_done))
                continue;
        } else if (rc == HPE_OK) {
            pos = len;
        } else if (rc == HPE_PAUSED_UPGRADE) {
            pos = (size_t)(llhttp_get_error_pos(&h->p) - data);
            h->finished = true;
        } else {
            return parse_failed(h);
        }
        break;
    }
    *used = pos;
    if (!head_before && h->headers_done)
        return LURK_H1_HEAD;
    if (h->interim) {
        h->status = h->interim;
        h->interim = 0;
        return LURK_H1_INTERIM;
    }
    if (h->body) {
        /* The end of the message may come in the same step: report the
         * slice now and the end on the next call. */
        return LURK_H1_BODY;
    }
    if (h->finished)
        return LURK_H1_DONE;
    return LURK_H1_MORE;
}

int lurk_h1_finish(struct lurk_h1 *h)
{
    llhttp_errno_t rc;

    if (h->finished)
        return LURK_H1_DONE;
    rc = llhttp_finish(&h->p);
    if (rc == HPE_OK || rc == HPE_PAUSED) {
        if (h->headers_done) {
            h->finished = true;
            return LURK_H1_DONE;
        }
    }
    h->error = h->headers_done ? "the connection closed before the end of the response body"
                               : "the connection closed before a complete response head";
    return -LURK_EHTTP;
}

bool lurk_h1_keep_alive(const struct lurk_h1 *h)
{
    return h->finished && llhttp_should_keep_alive(&h->p);
}
