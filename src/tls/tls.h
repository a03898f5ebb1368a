/*
 * tls.h - TLS client connections over a TCP socket: the mbedTLS handshake
 * driven by ring completions, certificate verification, then kernel TLS
 * (kTLS) when the kernel takes the keys, else mbedTLS in userspace on the
 * same connection.
 *
 * A struct lurk_tls provides a struct lurk_stream: after the handshake,
 * readers and writers see plaintext whichever path carries the bytes.
 */
#ifndef LURK_TLS_TLS_H
#define LURK_TLS_TLS_H

#include "net/stream.h"

#include <stdbool.h>
#include <stdint.h>

struct lurk_tcp;
struct lurk_tls;
struct lurk_tls_ctx;

enum lurk_ktls_policy { LURK_TLS_KTLS_AUTO, LURK_TLS_KTLS_OFF, LURK_TLS_KTLS_REQUIRE };

struct lurk_tls_opts {
    const char *host;                 /* SNI and the name verified; NULL: an IP literal or none */
    const char *cafile, *cadir;       /* trust these instead of the system bundle */
    const char *cert, *key;           /* client certificate and key (PEM files) */
    const char *alpn;                 /* comma-separated protocols to offer, or NULL */
    uint16_t min_version;             /* 0x0303 (TLS 1.2, the default) or 0x0304 */
    uint16_t max_version;             /* 0: TLS 1.3 */
    const char *ciphers;              /* colon-separated mbedTLS suite names, or NULL */
    bool insecure;                    /* skip certificate verification (explicit only) */
    bool no_resume;                   /* neither offer nor keep sessions for resumption */
    enum lurk_ktls_policy ktls;
};

/*
 * Per-runtime state: the random generator and the CA bundle (ca_file, or
 * SSL_CERT_FILE/SSL_CERT_DIR, or the system's), which is parsed once, at the
 * first connection that needs it.
 */
int lurk_tls_ctx_new(struct lurk_tls_ctx **out, const char *ca_file);
void lurk_tls_ctx_free(struct lurk_tls_ctx *c);

/* The cipher suites offered by default (mbedTLS ids, 0-terminated). */
const int *lurk_tls_default_suites(void);

/* The kTLS policy from LURK_KTLS (auto, off, require); auto if unset. */
enum lurk_ktls_policy lurk_ktls_policy_env(void);

/*
 * Sets up a client over a connected tcp socket (taking a reference on it).
 * Nothing is sent until lurk_tls_handshake(). Returns 0, -EINVAL for bad
 * options or -LURK_ETLS (lurk_tls_errmsg says why, e.g. an unreadable CA
 * file); on failure *out is still set when non-NULL so the message can be
 * read, and must be released with lurk_tls_unref().
 */
int lurk_tls_new(struct lurk_tls **out, struct lurk_tls_ctx *ctx, struct lurk_tcp *tcp,
                 const struct lurk_tls_opts *o);

void lurk_tls_unref(struct lurk_tls *t);

/*
 * Runs the handshake; cb(arg, 0) once the connection is usable (kTLS set up
 * where possible), cb(arg, rc < 0) on failure: -LURK_ETLS with the reason in
 * lurk_tls_errmsg(), -ETIMEDOUT, -ECANCELED, -LURK_ECLOSED, or a socket error.
 */
int lurk_tls_handshake(struct lurk_tls *t, int64_t deadline_ns, lurk_done_cb *cb, void *arg);

/* Cancels a handshake in progress (cb sees -ECANCELED). */
void lurk_tls_cancel_handshake(struct lurk_tls *t);

struct lurk_stream *lurk_tls_stream(struct lurk_tls *t);

/* The reason for the last -LURK_ETLS ("" if none). */
const char *lurk_tls_errmsg(const struct lurk_tls *t);

/* ---- the server role ---- */

struct lurk_tls_server;               /* a listener's configuration, shared by its connections */

struct lurk_tls_server_opts {
    const char *cert, *key;           /* the server's chain and key (PEM files) */
    const char *ca;                   /* ask clients for certificates issued by these, or NULL */
    const char *alpn;                 /* comma-separated protocols, preferred first, or NULL */
    uint16_t min_version;             /* 0x0303 (default) or 0x0304 */
    enum lurk_ktls_policy ktls;
};

/*
 * Loads the certificate and key once for every connection of a listener.
 * Returns 0, or -LURK_ETLS / -EINVAL with a sentence in err; *out is NULL
 * on failure.
 */
int lurk_tls_server_new(struct lurk_tls_server **out, struct lurk_tls_ctx *ctx,
                        const struct lurk_tls_server_opts *o, char *err, size_t errlen);

/* Drops the listener's reference (connections keep theirs). NULL: no-op. */
void lurk_tls_server_free(struct lurk_tls_server *s);

/*
 * Sets up the server side of a TLS connection over an accepted socket
 * (taking a reference on it and on srv). lurk_tls_handshake() then runs
 * the server's handshake; afterwards the keys go to the kernel with the
 * same policy and fallbacks as a client's, each direction's own. Returns 0
 * or -LURK_ETLS; *out is set even on failure (release with lurk_tls_unref).
 */
int lurk_tls_new_server(struct lurk_tls **out, struct lurk_tls_server *srv, struct lurk_tcp *tcp);

struct lurk_tls_info {
    const char *version;              /* "TLSv1.2", "TLSv1.3" */
    const char *cipher;               /* mbedTLS suite name */
    const char *alpn;                 /* negotiated protocol or NULL */
    bool ktls_tx, ktls_rx;            /* which directions the kernel carries */
    const char *fallback;             /* why not kTLS ("" when both are) */
    const char *records;              /* who protects records after the handshake: "kernel"
                                         (both directions), "lurk" (lurk's record layer, at
                                         least one direction) or "mbedtls" (a suite lurk's
                                         record layer does not do) */
    double handshake;                 /* seconds the handshake took */
    const char *sni;                  /* server role: the name the client asked for, or NULL */
    bool resumed;                     /* the server resumed a session this runtime kept */
};

void lurk_tls_get_info(const struct lurk_tls *t, struct lurk_tls_info *info);

#endif
