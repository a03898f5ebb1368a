/*
 * error.h - lurk's error codes.
 *
 * Every fallible function in lurk returns an int: >= 0 on success, a negative
 * code on failure. A code is either -errno or -LURK_E*, for what errno cannot
 * name. LURK_E* values start well above any errno so the two never collide.
 */
#ifndef LURK_CORE_ERROR_H
#define LURK_CORE_ERROR_H

/* include/lurk.h repeats these values for hosts, unless this header came
 * first: a source file that includes both must include this one first. */
#ifdef LURK_H
#error "include core/error.h before lurk.h"
#endif

enum {
    LURK_EBASE = 4096,
    LURK_ECLOSED,        /* the object was closed while the operation waited */
    LURK_EEOF,           /* the peer closed the stream before the data asked for */
    LURK_ELIMIT,         /* a configured size limit was exceeded */
    LURK_EDNS_NOTFOUND,  /* the name does not exist, or has no address */
    LURK_EDNS_TIMEOUT,   /* no DNS server answered in time */
    LURK_EDNS_FAIL,      /* the DNS server failed or refused */
    LURK_EDNS_NOSERVER,  /* no usable DNS server is configured */
    LURK_ETLS,           /* TLS failure; details are kept on the connection */
    LURK_EHTTP,          /* HTTP protocol violation by the peer */
    LURK_EWS,            /* WebSocket protocol violation by the peer */
    LURK_EPROTO,         /* other protocol violation */
    LURK_ESCRIPT,        /* a script failed to load or raised an error */
    LURK_EDEADLK,        /* every task waits on something no task can provide */
    /* a new code goes here and, with its value, in include/lurk.h */
    LURK_EMAX
};

/* Whether rc is one of the name-resolution failures (-LURK_EDNS_*). */
static inline int lurk_is_dns_error(int rc)
{
    return rc <= -LURK_EDNS_NOTFOUND && rc >= -LURK_EDNS_NOSERVER;
}

/* A readable message for a negative code (-errno or -LURK_E*). Never NULL. */
__attribute__((visibility("default"))) const char *lurk_strerror(int rc);

/* The stable symbolic name for a code: "ECONNREFUSED", "LURK_ECLOSED", ... */
const char *lurk_errname(int rc);

/* Aborts with a message: only for broken internal invariants. */
_Noreturn void lurk_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
