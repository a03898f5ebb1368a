/*
 * error.c - messages and names for lurk's error codes.
 *
 * errno values are named from a table of the ones a networking runtime meets;
 * any other errno falls back to strerror() and "E<number>".
 */
#include "core/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const lurk_msgs[] = {
    [LURK_ECLOSED - LURK_EBASE] = "closed",
    [LURK_EEOF - LURK_EBASE] = "connection closed by peer before the expected data",
    [LURK_ELIMIT - LURK_EBASE] = "size limit exceeded",
    [LURK_EDNS_NOTFOUND - LURK_EBASE] = "name not found",
    [LURK_EDNS_TIMEOUT - LURK_EBASE] = "DNS server did not answer",
    [LURK_EDNS_FAIL - LURK_EBASE] = "DNS lookup failed",
    [LURK_EDNS_NOSERVER - LURK_EBASE] = "no DNS server configured",
    [LURK_ETLS - LURK_EBASE] = "TLS error",
    [LURK_EHTTP - LURK_EBASE] = "HTTP protocol error",
    [LURK_EWS - LURK_EBASE] = "WebSocket protocol error",
    [LURK_EPROTO - LURK_EBASE] = "protocol error",
    [LURK_ESCRIPT - LURK_EBASE] = "script error",
    [LURK_EDEADLK - LURK_EBASE] = "deadlock: every task is waiting",
};

static const char *const lurk_names[] = {
    [LURK_ECLOSED - LURK_EBASE] = "LURK_ECLOSED",
    [LURK_EEOF - LURK_EBASE] = "LURK_EEOF",
    [LURK_ELIMIT - LURK_EBASE] = "LURK_ELIMIT",
    [LURK_EDNS_NOTFOUND - LURK_EBASE] = "LURK_EDNS_NOTFOUND",
    [LURK_EDNS_TIMEOUT - LURK_EBASE] = "LURK_EDNS_TIMEOUT",
    [LURK_EDNS_FAIL - LURK_EBASE] = "LURK_EDNS_FAIL",
    [LURK_EDNS_NOSERVER - LURK_EBASE] = "LURK_EDNS_NOSERVER",
    [LURK_ETLS - LURK_EBASE] = "LURK_ETLS",
    [LURK_EHTTP - LURK_EBASE] = "LURK_EHTTP",
    [LURK_EWS - LURK_EBASE] = "LURK_EWS",
    [LURK_EPROTO - LURK_EBASE] = "LURK_EPROTO",
    [LURK_ESCRIPT - LURK_EBASE] = "LURK_ESCRIPT",
    [LURK_EDEADLK - LURK_EBASE] = "LURK_EDEADLK",
};

static const struct { int no; const char *name; } errno_names[] = {
#define E(x) { x, #x }
    E(EPERM), E(ENOENT), E(EINTR), E(EIO), E(EBADF), E(EAGAIN), E(ENOMEM),
    E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(EINVAL), E(ENFILE), E(EMFILE),
    E(ENOSPC), E(EPIPE), E(ERANGE), E(ENOSYS), E(ENOTSOCK), E(EMSGSIZE),
    E(EPROTONOSUPPORT), E(EOPNOTSUPP), E(EAFNOSUPPORT), E(EADDRINUSE),
    E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH), E(ECONNABORTED),
    E(ECONNRESET), E(ENOBUFS), E(EISCONN), E(ENOTCONN), E(ETIMEDOUT),
    E(ECONNREFUSED), E(EHOSTDOWN), E(EHOSTUNREACH), E(EALREADY),
    E(EINPROGRESS), E(ECANCELED), E(ETIME), E(EBADMSG), E(EPROTO),
#undef E
};

const char *lurk_strerror(int rc)
{
    int code = -rc;

    if (code > LURK_EBASE && code < LURK_EMAX)
        return lurk_msgs[code - LURK_EBASE];
    if (code > 0 && code < LURK_EBASE) {
        /* strerror's table is static on glibc; the returned text is stable. */
        return strerror(code);
    }
    return "unknown error";
}

const char *lurk_errname(int rc)
{
    int code = -rc;

    if (code > LURK_EBASE && code < LURK_EMAX)
        return lurk_names[code - LURK_EBASE];
    for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
        if (errno_names[i].no == code)
            return errno_names[i].name;
    return "EUNKNOWN";
}

void lurk_panic(const char *fmt, ...)
{
    va_list ap;

    fputs("lurk: internal error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
