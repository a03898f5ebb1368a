/*
 * request.h - HTTP/1.1 request heads: the request line, the caller's fields
 * (checked: names are tokens, values carry no CR, LF or NUL), and the
 * fields a client adds unless the caller set them (Host, User-Agent,
 * Accept, Content-Length or Transfer-Encoding).
 */
#ifndef LURK_HTTP_REQUEST_H
#define LURK_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct lurk_http_field {
    const char *name, *value;
    size_t name_len, value_len;
};

struct lurk_http_request {
    const char *method, *target, *host, *user_agent;
    size_t method_len, target_len, host_len, user_agent_len;
    const char *extra;                /* preformatted "Name: value\r\n" lines, or NULL */
    size_t extra_len;
    const struct lurk_http_field *fields;
    size_t nfields;
    long long body_len;               /* Content-Length to send; < 0: none */
    bool chunked;                     /* the body goes chunked */
};

/* An RFC 9110 token (a method, a field name). */
bool lurk_http_is_token(const char *s, size_t n);

/* A field value that cannot end its line early: no CR, LF or NUL. */
bool lurk_http_value_ok(const char *s, size_t n);

/* The bytes the head of r takes (the fields already checked). */
size_t lurk_http_request_size(const struct lurk_http_request *r);

/* Writes the head of r at out (lurk_http_request_size bytes); returns the end. */
char *lurk_http_request_write(const struct lurk_http_request *r, char *out);

#endif
