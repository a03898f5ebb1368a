/*
 * request.c - HTTP/1.1 request heads (see request.h).
 */
#include "http/request.h"

#include <string.h>
#include <strings.h>

bool lurk_http_is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr(extra, c))))
            return false;
    }
    return true;
}

bool lurk_http_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

enum { H_HOST = 1, H_UA = 2, H_ACCEPT = 4, H_LENGTH = 8, H_TE = 16 };

/* Which of the fields a client adds the caller set itself. */
static int caller_set(const struct lurk_http_request *r)
{
    static const struct { const char *name; size_t len; int flag; } known[] = {
        { "host", 4, H_HOST }, { "user-agent", 10, H_UA }, { "accept", 6, H_ACCEPT },
        { "content-length", 14, H_LENGTH }, { "transfer-encoding", 17, H_TE },
    };
    int seen = 0;

    for (size_t i = 0; i < r->nfields; i++)
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (r->fields[i].name_len == known[k].len && strncasecmp(r->fields[i].name, known[k].name, known[k].len) == 0)
                seen |= known[k].flag;
    return seen;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, s) put((p), (s), sizeof(s) - 1)

/* The decimal digits of n >= 0, at the end of buf[24]; returns their start. */
static const char *digits(long long n, char buf[24], size_t *len)
{
    char *p = buf + 24;

    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    *len = (size_t)(buf + 24 - p);
    return p;
}

/* Writes the head at out, or only counts it with out == NULL. */
static size_t head(const struct lurk_http_request *r, char *out)
{
    char num[24], scratch[1];
    int seen = caller_set(r);
    size_t nlen = 0, total;
    const char *n = r->body_len >= 0 && !(seen & H_LENGTH) ? digits(r->body_len, num, &nlen) : NULL;
    char *p = out ? out : scratch;

    total = r->method_len + 1 + r->target_len + sizeof " HTTP/1.1\r\n" - 1 + r->extra_len + 2;
    if (!(seen & H_HOST))
        total += sizeof "Host: \r\n" - 1 + r->host_len;
    for (size_t i = 0; i < r->nfields; i++)
        total += r->fields[i].name_len + r->fields[i].value_len + 4;
    if (!(seen & H_UA))
        total += sizeof "User-Agent: \r\n" - 1 + r->user_agent_len;
    if (!(seen & H_ACCEPT))
        total += sizeof "Accept: */*\r\n" - 1;
    if (n)
        total += sizeof "Content-Length: \r\n" - 1 + nlen;
    if (r->chunked && !(seen & H_TE))
        total += sizeof "Transfer-Encoding: chunked\r\n" - 1;
    if (!out)
        return total;

    p = put(p, r->method, r->method_len);
    p = PUT_LIT(p, " ");
    p = put(p, r->target, r->target_len);
    p = PUT_LIT(p, " HTTP/1.1\r\n");
    if (!(seen & H_HOST)) {
        p = PUT_LIT(p, "Host: ");
        p = put(p, r->host, r->host_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (r->extra_len)
        p = put(p, r->extra, r->extra_len);
    for (size_t i = 0; i < r->nfields; i++) {
        p = put(p, r->fields[i].name, r->fields[i].name_len);
        p = PUT_LIT(p, ": ");
        p = put(p, r->fields[i].value, r->fields[i].value_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (!(seen & H_UA)) {
        p = PUT_LIT(p, "User-Agent: ");
        p = put(p, r->user_agent, r->user_agent_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (!(seen & H_ACCEPT))
        p = PUT_LIT(p, "Accept: */*\r\n");
    if (n) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put(p, n, nlen);
        p = PUT_LIT(p, "\r\n");
    }
    if (r->chunked && !(seen & H_TE))
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    PUT_LIT(p, "\r\n");
    return total;
}

size_t lurk_http_request_size(const struct lurk_http_request *r)
{
    return head(r, NULL);
}

char *lurk_http_request_write(const struct lurk_http_request *r, char *out)
{
    return out + head(r, out);
}
