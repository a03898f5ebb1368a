/*
 * verify.h - the certificate rules lurk adds to mbedTLS's chain check.
 *
 * mbedTLS builds and checks the chain (signatures, validity dates,
 * basicConstraints, pathLenConstraint, keyUsage, the leaf's
 * extendedKeyUsage, SHA-1 and short RSA keys through its default profile).
 * It does not check that CA certificates may issue server certificates, does
 * not enforce nameConstraints, and matches host names more loosely than
 * curl and browsers (CN fallback, wildcards over a single label). Its verify
 * callback, called once per certificate of the chain from the root down to
 * the leaf, is where lurk applies those rules:
 *
 *  - every CA certificate with extendedKeyUsage lists serverAuth or
 *    anyExtendedKeyUsage;
 *  - nameConstraints (RFC 5280 section 4.2.1.10), critical or not, on every
 *    certificate below the CA that carries them: dNSName and iPAddress
 *    subtrees are evaluated against the subjectAltName entries and the host
 *    being verified; a form lurk cannot evaluate (directoryName, URI,
 *    otherName, ...) fails the chain, naming the form;
 *  - the host (RFC 9525): subjectAltName only, never the CN; a wildcard only
 *    as the whole left-most label with at least two labels after it,
 *    matching exactly one label; IP literals only against iPAddress entries;
 *    case-insensitive; a trailing dot on either side ignored.
 *
 * The first rule that fails is kept as a sentence naming the rule and the
 * certificate ("intermediate CN=X may not issue server certificates
 * (extendedKeyUsage: emailProtection)"), for the handshake's error.
 *
 * Pure functions of the certificates and the host: no I/O, no globals.
 */
#ifndef LURK_TLS_VERIFY_H
#define LURK_TLS_VERIFY_H

#include <mbedtls/x509_crt.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LURK_VERIFY_MAX_NC 8          /* CAs with nameConstraints in one chain */

struct lurk_tls_verify {
    char host[256];                   /* the name verified, lower-case, no trailing dot; "" for an IP */
    unsigned char ip[16];             /* the IP verified, when ip_len is 4 or 16 */
    size_t ip_len;

    /* one pass over a chain, root first */
    bool in_pass;
    int top;                          /* depth of the pass's first certificate */
    const mbedtls_x509_crt *untrusted;   /* the top, when no trusted CA signed it */
    int n_nc;
    struct {
        const unsigned char *p;       /* the extension's value, inside the CA's raw DER */
        size_t len;
        char who[160];                /* "intermediate CN=..." */
    } nc[LURK_VERIFY_MAX_NC];
    char reason[400];                 /* the first rule that failed, or "" */
    unsigned certs_seen;              /* certificates checked this handshake (none when
                                         the server resumed a TLS 1.3 session) */
};

/*
 * Sets up the rules for one connection. host is a DNS name (a trailing dot
 * is dropped) or an IPv4/IPv6 literal. Returns 0, or -EINVAL when the host
 * is empty or too long.
 */
int lurk_tls_verify_init(struct lurk_tls_verify *v, const char *host);

/* The name to send as SNI (NULL for an IP literal: RFC 6066 forbids it). */
const char *lurk_tls_verify_sni(const struct lurk_tls_verify *v);

/*
 * mbedTLS's verify callback (mbedtls_ssl_set_verify with v as context): adds
 * MBEDTLS_X509_BADCERT_* flags for every rule a certificate breaks, and
 * replaces mbedTLS's own host-name verdict with lurk's. Always returns 0.
 */
int lurk_tls_verify_cb(void *v, mbedtls_x509_crt *crt, int depth, uint32_t *flags);

/*
 * The callback for certificate extensions mbedTLS does not know, while the
 * peer's chain is parsed (mbedtls_x509_crt_parse_der_with_ext_cb's
 * contract): accepts nameConstraints, which lurk_tls_verify_cb enforces,
 * and refuses every other unknown critical extension.
 */
int lurk_tls_crt_ext_cb(void *ctx, mbedtls_x509_crt const *crt, mbedtls_x509_buf const *oid,
                        int critical, const unsigned char *p, const unsigned char *end);

/* The first rule that failed in the last pass, or "" when none did. */
const char *lurk_tls_verify_reason(const struct lurk_tls_verify *v);

/*
 * Whether the DNS name pattern from a certificate (possibly a wildcard)
 * matches host, by the rules above. Both without their trailing dots or
 * with them; lengths explicit (certificate strings are not terminated).
 */
bool lurk_tls_name_match(const char *pattern, size_t plen, const char *host, size_t hlen);

#endif
