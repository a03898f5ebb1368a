/*
 * ctx.h - what a TLS connection is configured from: the per-runtime context
 * (random generator, the system trust store parsed once) and each
 * connection's mbedTLS configuration (its own CA file, client certificate,
 * ALPN list, cipher suites, versions, and lurk's verification rules).
 *
 * Internal to src/tls: tls.c builds one lurk_tls_conf per connection.
 */
#ifndef LURK_TLS_CTX_H
#define LURK_TLS_CTX_H

#include "tls/tls.h"
#include "tls/verify.h"

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LURK_TLS_MAX_ALPN 8
#define LURK_TLS_MAX_SUITES 15

struct lurk_tls_conf {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt own_ca, cert;
    mbedtls_pk_context key;
    const char *alpn_list[LURK_TLS_MAX_ALPN + 1];
    char alpn_store[LURK_TLS_MAX_ALPN * 256];   /* names of up to 255 bytes (RFC 7301) */
    int suites[LURK_TLS_MAX_SUITES + 1];
};

/*
 * Configures c for a client connection with options o, verifying with the
 * rules in v (already initialised for the host; unused when o->insecure).
 * Returns 0, or -LURK_ETLS / -EINVAL with a sentence in err. Whatever the
 * result, c must be released with lurk_tls_conf_fini().
 */
int lurk_tls_conf_init(struct lurk_tls_conf *c, struct lurk_tls_ctx *ctx, const struct lurk_tls_opts *o,
                       struct lurk_tls_verify *v, char *err, size_t errlen);

void lurk_tls_conf_fini(struct lurk_tls_conf *c);

/* The same for a server (options in tls.h), with sni_cb (may be NULL) as
 * mbedTLS's SNI callback. */
int lurk_tls_server_conf_init(struct lurk_tls_conf *c, struct lurk_tls_ctx *ctx,
                              const struct lurk_tls_server_opts *o,
                              int (*sni_cb)(void *, mbedtls_ssl_context *, const unsigned char *, size_t),
                              char *err, size_t errlen);

/* A listener's configuration (tls.c), shared by its connections. */
struct lurk_tls_server {
    struct lurk_tls_conf conf;
    struct lurk_tls_ctx *ctx;
    enum lurk_ktls_policy ktls;
    int refs;
};

/* The random generator for mbedtls_ssl_conf_rng (after conf_init). */
void *lurk_tls_ctx_drbg(struct lurk_tls_ctx *ctx);

/* Test-only: the kTLS setup step (1 ULP, 2 RX, 3 TX) made to fail with
 * EINVAL, from LURK_KTLS_FAIL_STEP when the context was made; 0: none. */
/* True on a CPU with AES and carry-less multiply instructions (AES-GCM is
 * then the fastest AEAD, else ChaCha20-Poly1305 is). */
bool lurk_tls_hw_aes(void);

/* The default suites in preference order (see ctx.c), 0-terminated in
 * out[cap]; returns how many. */
size_t lurk_tls_order_suites(bool aes_first, int *out, size_t cap);

/*
 * Session resumption within a runtime: one session per key (origin and
 * TLS options), kept until its ticket's lifetime ends. offer sets the
 * cached session on ssl and copies its master secret (TLS 1.2: a resumed
 * handshake keeps it); false if none is cached or it expired. put moves s
 * into the cache (s is left empty).
 */
#define LURK_TLS_CACHE_SLOTS 32
bool lurk_tls_cache_offer(struct lurk_tls_ctx *c, const char *key, mbedtls_ssl_context *ssl,
                          unsigned char master[48]);
void lurk_tls_cache_put(struct lurk_tls_ctx *c, const char *key, mbedtls_ssl_session *s, uint32_t lifetime_s);

int lurk_tls_ctx_fail_step(const struct lurk_tls_ctx *ctx);

/*
 * Splits list at any of the characters in seps into at most max non-empty
 * items, copied into store (size bytes) and pointed to from items[], which
 * is NULL-terminated (items has max + 1 slots). No hidden state: safe in
 * every thread. Returns the number of items, or -EINVAL when the list does
 * not fit in store or has more than max items.
 */
int lurk_tls_split(const char *list, const char *seps, char *store, size_t size, const char **items,
                   size_t max);

#endif
