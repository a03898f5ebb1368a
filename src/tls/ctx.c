/*
 * ctx.c - the trust store and the mbedTLS configuration of each connection.
 *
 * A runtime has one lurk_tls_ctx: the random generator (seeded at the first
 * connection) and the system's CA bundle, parsed once, at the first
 * connection that verifies against it (parsing Debian's bundle costs a few
 * milliseconds, which a script that never uses TLS should not pay). A
 * connection given its own cafile/cadir parses that file for itself.
 *
 * Each connection then gets a full mbedtls_ssl_config of its own (versions,
 * suites, ALPN, client certificate, trust anchors and lurk's verification
 * rules from verify.c). Sharing one per runtime would save about 1 KiB per
 * connection; options differ per call, so they are kept apart.
 *
 * Nothing here keeps hidden state between calls (lists are split with
 * lurk_tls_split, not strtok), so runtimes in different threads never touch
 * each other's data; the PSA crypto subsystem is initialised once per
 * process.
 */
#include "tls/ctx.h"
#include "core/error.h"

#include <errno.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/base64.h>
#include <psa/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* mbedTLS verifies ECDSA signatures with lurk's mbedtls_ecdsa_verify
 * (ecdsa.c, MBEDTLS_ECDSA_VERIFY_ALT). Only libmbedcrypto calls it, and a
 * static link scans liblurk.a before it: this reference, in the object
 * every TLS user links, brings ecdsa.o in. */
__attribute__((used)) static int (*const use_lurk_ecdsa)(mbedtls_ecp_group *, const unsigned char *, size_t,
                                                          const mbedtls_ecp_point *, const mbedtls_mpi *,
                                                          const mbedtls_mpi *) = mbedtls_ecdsa_verify;

struct lurk_tls_ctx {
    bool rng_ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    int ca_state;                     /* 0: not loaded, 1: loaded, < 0: failed */
    mbedtls_x509_crt ca;
    char ca_source[256];
    double ca_load_ms;
    char *ca_file;                    /* the runtime's own trust store, or NULL */
    int fail_step;                    /* LURK_KTLS_FAIL_STEP (tests) */
    struct cached_session {
        char key[600];                /* "" when the slot is free */
        mbedtls_ssl_session s;
        int64_t expires_ms;           /* the ticket's lifetime, from when it came */
        uint64_t used;                /* for replacing the least recently stored */
    } cache[LURK_TLS_CACHE_SLOTS];
    uint64_t cache_clock;
};

int lurk_tls_ctx_new(struct lurk_tls_ctx **out, const char *ca_file)
{
    struct lurk_tls_ctx *c = calloc(1, sizeof *c);
    const char *step = getenv("LURK_KTLS_FAIL_STEP");

    *out = NULL;
    if (!c)
        return -ENOMEM;
    if (ca_file && !(c->ca_file = strdup(ca_file))) {
        free(c);
        return -ENOMEM;
    }
    c->fail_step = step ? atoi(step) : 0;
    mbedtls_x509_crt_init(&c->ca);
    *out = c;
    return 0;
}

void lurk_tls_ctx_free(struct lurk_tls_ctx *c)
{
    if (!c)
        return;
    if (c->rng_ready) {
        mbedtls_ctr_drbg_free(&c->drbg);
        mbedtls_entropy_free(&c->entropy);
    }
    mbedtls_x509_crt_free(&c->ca);
    for (size_t i = 0; i < LURK_TLS_CACHE_SLOTS; i++)
        if (c->cache[i].key[0])
            mbedtls_ssl_session_free(&c->cache[i].s);
    free(c->ca_file);
    free(c);
}

/* ---- resumption: the runtime's sessions, one per origin and options ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct cached_session *cache_find(struct lurk_tls_ctx *c, const char *key)
{
    for (size_t i = 0; i < LURK_TLS_CACHE_SLOTS; i++)
        if (c->cache[i].key[0] && strcmp(c->cache[i].key, key) == 0)
            return &c->cache[i];
    return NULL;
}

static void cache_drop(struct cached_session *e)
{
    mbedtls_ssl_session_free(&e->s);
    e->key[0] = '\0';
}

bool lurk_tls_cache_offer(struct lurk_tls_ctx *c, const char *key, mbedtls_ssl_context *ssl,
                          unsigned char master[48])
{
    struct cached_session *e = cache_find(c, key);
    bool tls13;

    if (!e)
        return false;
    if (mono_ms() >= e->expires_ms) {
        cache_drop(e);                /* expired: a full handshake */
        return false;
    }
    tls13 = e->s.MBEDTLS_PRIVATE(tls_version) == MBEDTLS_SSL_VERSION_TLS1_3;
    if (mbedtls_ssl_set_session(ssl, &e->s) != 0)
        return false;
    memcpy(master, e->s.MBEDTLS_PRIVATE(master), 48);
    /* A TLS 1.3 ticket is used once (RFC 8446 appendix C.4): the
     * connection brings its own. A TLS 1.2 ticket may serve again. */
    if (tls13)
        cache_drop(e);
    return true;
}

void lurk_tls_cache_put(struct lurk_tls_ctx *c, const char *key, mbedtls_ssl_session *s, uint32_t lifetime_s)
{
    struct cached_session *e = cache_find(c, key);

    if (!e) {
        e = &c->cache[0];
        for (size_t i = 0; i < LURK_TLS_CACHE_SLOTS; i++) {
            if (!c->cache[i].key[0]) {
                e = &c->cache[i];
                break;
            }
            if (c->cache[i].used < e->used)
                e = &c->cache[i];
        }
    }
    if (e->key[0])
        cache_drop(e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->s = *s;                        /* moved: the caller's copy is forgotten */
    mbedtls_ssl_session_init(s);
    if (lifetime_s > 7 * 24 * 3600)   /* RFC 8446 section 4.6.1: seven days at most */
        lifetime_s = 7 * 24 * 3600;
    e->expires_ms = mono_ms() + (int64_t)lifetime_s * 1000;
    e->used = ++c->cache_clock;
}

int lurk_tls_ctx_fail_step(const struct lurk_tls_ctx *ctx)
{
    return ctx->fail_step;
}

void *lurk_tls_ctx_drbg(struct lurk_tls_ctx *ctx)
{
    return &ctx->drbg;
}

static pthread_once_t psa_once = PTHREAD_ONCE_INIT;
static psa_status_t psa_status;

static void init_psa(void)
{
    /* TLS 1.3 in mbedTLS 3.6 uses PSA for its key schedule. */
    psa_status = psa_crypto_init();
}

static int ctx_rng(struct lurk_tls_ctx *c)
{
    static const char pers[] = "lurk tls";

    pthread_once(&psa_once, init_psa);
    if (psa_status != PSA_SUCCESS)
        return -LURK_ETLS;
    if (c->rng_ready)
        return 0;
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    if (mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                              (const unsigned char *)pers, sizeof pers - 1) != 0) {
        mbedtls_ctr_drbg_free(&c->drbg);
        mbedtls_entropy_free(&c->entropy);
        return -LURK_ETLS;
    }
    c->rng_ready = true;
    return 0;
}

/* The whole file, NUL-terminated; NULL (errno set) when unreadable. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)size, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

/*
 * Parses every certificate of a PEM (or single DER) file into chain, with
 * the extension callback verify.c enforces: mbedtls_x509_crt_parse_file has
 * none, so it skips a root with a critical nameConstraints, a trust anchor
 * lurk can check. Returns the number of certificates skipped (>= 0, as
 * mbedtls_x509_crt_parse_file does) or a negative mbedTLS or errno code.
 */
static int parse_pem_file(mbedtls_x509_crt *chain, const char *path)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    size_t len = 0;
    char *buf = read_file(path, &len), *p, *q;
    int skipped = 0, found = 0;

    if (!buf)
        return -errno;
    for (p = buf; (p = strstr(p, begin)) != NULL && (q = strstr(p, end)) != NULL; p = q + sizeof end - 1) {
        size_t der_len = 0;
        unsigned char *der;

        found++;
        p += sizeof begin - 1;
        mbedtls_base64_decode(NULL, 0, &der_len, (const unsigned char *)p, (size_t)(q - p));
        der = der_len ? malloc(der_len) : NULL;
        if (!der || mbedtls_base64_decode(der, der_len, &der_len, (const unsigned char *)p, (size_t)(q - p)) != 0 ||
            mbedtls_x509_crt_parse_der_with_ext_cb(chain, der, der_len, 1, lurk_tls_crt_ext_cb, NULL) != 0)
            skipped++;
        free(der);
    }
    if (!found && mbedtls_x509_crt_parse_der_with_ext_cb(chain, (unsigned char *)buf, len, 1,
                                                         lurk_tls_crt_ext_cb, NULL) != 0)
        skipped++;
    free(buf);
    return skipped;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The trust store: the runtime's ca_file, SSL_CERT_FILE, SSL_CERT_DIR, then
 * where distributions keep their bundle (the list curl uses). Parsed once
 * per runtime. */
static int ctx_ca(struct lurk_tls_ctx *c)
{
    static const char *const files[] = {
        "/etc/ssl/certs/ca-certificates.crt",               /* Debian, Ubuntu, Arch */
        "/etc/pki/tls/certs/ca-bundle.crt",                 /* Fedora, RHEL */
        "/etc/ssl/ca-bundle.pem",                           /* openSUSE */
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",                                /* Alpine, macOS-like */
    };
    const char *file = getenv("SSL_CERT_FILE"), *dir = getenv("SSL_CERT_DIR");
    double t0 = now_ms();
    int rc = -1;

    if (c->ca_state != 0)
        return c->ca_state > 0 ? 0 : -LURK_ETLS;
    if (c->ca_file) {
        rc = parse_pem_file(&c->ca, c->ca_file);
        snprintf(c->ca_source, sizeof c->ca_source, "%s (runtime option)", c->ca_file);
    } else if (file && *file) {
        rc = parse_pem_file(&c->ca, file);
        snprintf(c->ca_source, sizeof c->ca_source, "%s (SSL_CERT_FILE)", file);
    } else if (dir && *dir) {
        rc = mbedtls_x509_crt_parse_path(&c->ca, dir);
        snprintf(c->ca_source, sizeof c->ca_source, "%s (SSL_CERT_DIR)", dir);
    } else {
        for (size_t i = 0; i < sizeof files / sizeof files[0] && rc < 0; i++) {
            if (access(files[i], R_OK) != 0)
                continue;
            rc = parse_pem_file(&c->ca, files[i]);
            snprintf(c->ca_source, sizeof c->ca_source, "%s", files[i]);
        }
        if (rc < 0 && access("/etc/ssl/certs", R_OK) == 0) {
            rc = mbedtls_x509_crt_parse_path(&c->ca, "/etc/ssl/certs");
            snprintf(c->ca_source, sizeof c->ca_source, "/etc/ssl/certs");
        }
    }
    c->ca_load_ms = now_ms() - t0;
    /* parse_file returns how many certificates it skipped; any parsed is fine. */
    c->ca_state = (rc >= 0 && c->ca.raw.len > 0) ? 1 : -1;
    return c->ca_state > 0 ? 0 : -LURK_ETLS;
}

enum lurk_ktls_policy lurk_ktls_policy_env(void)
{
    const char *v = getenv("LURK_KTLS");

    if (!v || !*v || strcmp(v, "auto") == 0)
        return LURK_TLS_KTLS_AUTO;
    if (strcmp(v, "off") == 0)
        return LURK_TLS_KTLS_OFF;
    if (strcmp(v, "require") == 0)
        return LURK_TLS_KTLS_REQUIRE;
    fprintf(stderr, "lurk: LURK_KTLS=%s is not auto, off or require; using auto\n", v);
    return LURK_TLS_KTLS_AUTO;
}

/*
 * The suites offered unless the caller names its own: TLS 1.3's, and TLS
 * 1.2's with forward secrecy (ECDHE, DHE-RSA); no static RSA or ECDH key
 * exchange, no PSK, no NULL cipher, no truncated CCM-8 tags.
 *
 * Order: the AEADs lurk's record layer carries (record.c) first, so that
 * mbedTLS is freed after the handshake; among them AES-GCM first on a CPU
 * with AES and carry-less multiply instructions, else ChaCha20-Poly1305
 * first (as BoringSSL and OpenSSL decide; with nettle on this project's
 * machine AES-128-GCM runs about 2x ChaCha20-Poly1305 with AES-NI, see
 * bench/aead_ceiling.c). Then everything else (CBC, CCM, ARIA, Camellia:
 * mbedTLS keeps those records) for old servers, in mbedTLS's order.
 */
static int default_suites[128];
static pthread_once_t suites_once = PTHREAD_ONCE_INIT;

bool lurk_tls_hw_aes(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;

    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    return (c & bit_AES) && (c & bit_PCLMUL);
#elif defined(__aarch64__)
    unsigned long hw = getauxval(AT_HWCAP);

    return (hw & HWCAP_AES) && (hw & HWCAP_PMULL);
#else
    return false;
#endif
}

/* 0: not a record-layer AEAD; 1: AES-128-GCM; 2: AES-256-GCM; 3:
 * ChaCha20-Poly1305. */
static int aead_class(const char *name)
{
    if (strstr(name, "-AES-128-GCM-"))
        return 1;
    if (strstr(name, "-AES-256-GCM-"))
        return 2;
    if (strstr(name, "-CHACHA20-POLY1305-"))
        return 3;
    return 0;
}

size_t lurk_tls_order_suites(bool aes_first, int *out, size_t cap)
{
    /* a pass per class: the preferred AEADs, the other, the rest */
    int order[4] = { aes_first ? 1 : 3, aes_first ? 2 : 1, aes_first ? 3 : 2, 0 };
    size_t n = 0;

    for (int pass = 0; pass < 4; pass++) {
        for (const int *id = mbedtls_ssl_list_ciphersuites(); *id; id++) {
            const char *name = mbedtls_ssl_get_ciphersuite_name(*id);
            bool tls13 = strncmp(name, "TLS1-3-", 7) == 0;
            bool pfs = strstr(name, "-ECDHE-") || strstr(name, "-DHE-RSA-");

            if ((tls13 || pfs) && !strstr(name, "PSK") && !strstr(name, "NULL") && !strstr(name, "CCM-8") &&
                aead_class(name) == order[pass] && n + 1 < cap)
                out[n++] = *id;
        }
    }
    out[n] = 0;
    return n;
}

static void init_default_suites(void)
{
    lurk_tls_order_suites(lurk_tls_hw_aes(), default_suites, sizeof default_suites / sizeof default_suites[0]);
}

const int *lurk_tls_default_suites(void)
{
    pthread_once(&suites_once, init_default_suites);
    return default_suites;
}

int lurk_tls_split(const char *list, const char *seps, char *store, size_t size, const char **items,
                   size_t max)
{
    size_t len = strlen(list), n = 0;
    char *p = store;

    if (len >= size)
        return -EINVAL;
    memcpy(store, list, len + 1);
    while (*p) {
        size_t skip = strspn(p, seps), word;

        p += skip;
        word = strcspn(p, seps);
        if (word == 0)
            break;
        if (n == max)
            return -EINVAL;
        items[n++] = p;
        p += word;
        if (*p)
            *p++ = '\0';
    }
    items[n] = NULL;
    return (int)n;
}

static int conf_fail(char *err, size_t errlen, const char *fmt, const char *detail)
{
    snprintf(err, errlen, fmt, detail);
    return -LURK_ETLS;
}

/* "cannot load CA certificates from F: why", naming a missing file as such. */
static int load_fail(char *err, size_t errlen, const char *what, const char *path, int rc)
{
    char detail[120];

    if (access(path, R_OK) != 0)
        snprintf(detail, sizeof detail, "%s", strerror(errno));
    else if (rc >= -1)                /* read, but nothing in it parsed */
        snprintf(detail, sizeof detail, "no certificate in it that lurk can load (PEM or DER expected)");
    else
        mbedtls_strerror(rc, detail, sizeof detail);
    snprintf(err, errlen, "cannot load %s from %s: %s", what, path, detail);
    return -LURK_ETLS;
}

static int parse_suites(struct lurk_tls_conf *c, const char *list, char *err, size_t errlen)
{
    char store[512];
    const char *names[LURK_TLS_MAX_SUITES + 1];
    int n = lurk_tls_split(list, ":, ", store, sizeof store, names, LURK_TLS_MAX_SUITES);

    if (n <= 0)
        return conf_fail(err, errlen, "bad cipher list %s (at most 15 suites, separated by ':')", list);
    for (int i = 0; i < n; i++) {
        int id = mbedtls_ssl_get_ciphersuite_id(names[i]);

        if (id == 0)
            return conf_fail(err, errlen, "unknown cipher suite %s", names[i]);
        c->suites[i] = id;
    }
    c->suites[n] = 0;
    return 0;
}

/*
 * What a client's and a server's configuration share: the objects set up
 * (so lurk_tls_conf_fini works whatever fails later), mbedTLS's defaults
 * for endpoint, the random generator, the versions (0x0303 TLS 1.2, 0x0304
 * TLS 1.3, 0: either end of the range), and no renegotiation, which would
 * change keys under the kernel.
 */
static int conf_begin(struct lurk_tls_conf *c, struct lurk_tls_ctx *ctx, int endpoint, uint16_t min_version,
                      uint16_t max_version, char *err, size_t errlen)
{
    mbedtls_ssl_config *conf = &c->conf;
    int rc;

    memset(c, 0, sizeof *c);
    mbedtls_ssl_config_init(conf);
    mbedtls_x509_crt_init(&c->own_ca);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);
    if (ctx_rng(ctx) < 0)
        return conf_fail(err, errlen, "%s", "cannot seed the random generator or initialise PSA crypto");
    rc = mbedtls_ssl_config_defaults(conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc) {
        char detail[120];

        mbedtls_strerror(rc, detail, sizeof detail);
        return conf_fail(err, errlen, "TLS configuration: %s", detail);
    }
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &ctx->drbg);
    mbedtls_ssl_conf_min_tls_version(conf, min_version == 0x0304 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                                 : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, max_version == 0x0303 ? MBEDTLS_SSL_VERSION_TLS1_2
                                                                 : MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    return 0;
}

int lurk_tls_conf_init(struct lurk_tls_conf *c, struct lurk_tls_ctx *ctx, const struct lurk_tls_opts *o,
                       struct lurk_tls_verify *v, char *err, size_t errlen)
{
    mbedtls_ssl_config *conf = &c->conf;
    int rc = conf_begin(c, ctx, MBEDTLS_SSL_IS_CLIENT, o->min_version, o->max_version, err, errlen);

    if (rc < 0)
        return rc;
    /* Resumption with a fresh (EC)DHE share only (RFC 8446 section 2.2:
     * forward secrecy): TLS 1.3 tickets come after the handshake and lurk
     * reads them (tls.c); TLS 1.2 tickets come inside it. */
    mbedtls_ssl_conf_session_tickets(conf, o->insecure ? MBEDTLS_SSL_SESSION_TICKETS_DISABLED
                                                       : MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_tls13_key_exchange_modes(conf, MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL |
                                                    MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL);

    if (o->insecure) {
        mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
    } else {
        mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_verify(conf, lurk_tls_verify_cb, v);
#if defined(LURK_HAVE_CRT_EXT_CB)
        /* nameConstraints, critical or not, are lurk's to check. */
        mbedtls_ssl_conf_crt_ext_cb(conf, lurk_tls_crt_ext_cb, NULL);
#endif
        if (o->cafile || o->cadir) {
            const char *path = o->cafile ? o->cafile : o->cadir;

            rc = o->cafile ? parse_pem_file(&c->own_ca, o->cafile)
                           : mbedtls_x509_crt_parse_path(&c->own_ca, o->cadir);
            if (rc < 0 || c->own_ca.raw.len == 0)
                return load_fail(err, errlen, "CA certificates", path, rc);
            mbedtls_ssl_conf_ca_chain(conf, &c->own_ca, NULL);
        } else {
            if (ctx_ca(ctx) < 0) {
                const char *file = getenv("SSL_CERT_FILE"), *dir = getenv("SSL_CERT_DIR");

                /* The variable the trust store came from, named: a stale
                 * SSL_CERT_FILE is a common cause, and easy to miss. */
                if (file && *file && !ctx->ca_file) {
                    if (access(file, R_OK) != 0) {
                        snprintf(err, errlen, "SSL_CERT_FILE names %s, which cannot be read: %s", file,
                                 strerror(errno));
                        return -LURK_ETLS;
                    }
                    return load_fail(err, errlen, "CA certificates (SSL_CERT_FILE)", file, -1);
                }
                if (dir && *dir && !ctx->ca_file) {
                    if (access(dir, R_OK) != 0)
                        snprintf(err, errlen, "SSL_CERT_DIR names %s, which cannot be read: %s", dir,
                                 strerror(errno));
                    else
                        snprintf(err, errlen, "SSL_CERT_DIR names %s, which holds no CA certificate lurk can "
                                 "load", dir);
                    return -LURK_ETLS;
                }
                return conf_fail(err, errlen, "%s", "no CA certificates found: set SSL_CERT_FILE or "
                                 "SSL_CERT_DIR, install ca-certificates, or pass tls = { cafile = ... }");
            }
            mbedtls_ssl_conf_ca_chain(conf, &ctx->ca, NULL);
        }
    }
    if (o->cert || o->key) {
        if (!o->cert || !o->key)
            return conf_fail(err, errlen, "%s", "a client certificate needs both cert and key");
        rc = mbedtls_x509_crt_parse_file(&c->cert, o->cert);
        if (rc != 0)
            return load_fail(err, errlen, "the client certificate", o->cert, rc);
        rc = mbedtls_pk_parse_keyfile(&c->key, o->key, NULL, mbedtls_ctr_drbg_random, &ctx->drbg);
        if (rc != 0)
            return load_fail(err, errlen, "the client key", o->key, rc);
        if (mbedtls_ssl_conf_own_cert(conf, &c->cert, &c->key) != 0)
            return conf_fail(err, errlen, "%s", "the client certificate and key do not match");
    }
    if (o->alpn) {
        if (lurk_tls_split(o->alpn, ",", c->alpn_store, sizeof c->alpn_store, c->alpn_list,
                           LURK_TLS_MAX_ALPN) <= 0 ||
            mbedtls_ssl_conf_alpn_protocols(conf, c->alpn_list) != 0)
            return conf_fail(err, errlen, "bad ALPN list %s (at most 8 protocols)", o->alpn);
    }
    if (o->ciphers) {
        rc = parse_suites(c, o->ciphers, err, errlen);
        if (rc < 0)
            return rc;
        mbedtls_ssl_conf_ciphersuites(conf, c->suites);
    } else {
        mbedtls_ssl_conf_ciphersuites(conf, lurk_tls_default_suites());
    }
#if defined(MBEDTLS_DHM_C)
    mbedtls_ssl_conf_dhm_min_bitlen(conf, 2048);   /* no weak DHE groups */
#endif
    return 0;
}

void lurk_tls_conf_fini(struct lurk_tls_conf *c)
{
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->own_ca);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_pk_free(&c->key);
}

/*
 * The server's configuration: its own chain and key, a client certificate
 * asked for only when ca is given (and then required), ALPN in the
 * server's order of preference, the same suites and versions as a client.
 * No session tickets: after the handshake nothing but application data
 * leaves the server, so kTLS TX can take over at once.
 */
int lurk_tls_server_conf_init(struct lurk_tls_conf *c, struct lurk_tls_ctx *ctx,
                              const struct lurk_tls_server_opts *o,
                              int (*sni_cb)(void *, mbedtls_ssl_context *, const unsigned char *, size_t),
                              char *err, size_t errlen)
{
    mbedtls_ssl_config *conf = &c->conf;
    int rc = conf_begin(c, ctx, MBEDTLS_SSL_IS_SERVER, o->min_version, 0, err, errlen);

    if (rc < 0)
        return rc;
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_conf_session_tickets(conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
#if defined(MBEDTLS_SSL_PROTO_TLS1_3) && defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_conf_new_session_tickets(conf, 0);
#endif
    rc = mbedtls_x509_crt_parse_file(&c->cert, o->cert);
    if (rc != 0)
        return load_fail(err, errlen, "the server certificate", o->cert, rc);
    rc = mbedtls_pk_parse_keyfile(&c->key, o->key, NULL, mbedtls_ctr_drbg_random, &ctx->drbg);
    if (rc != 0)
        return load_fail(err, errlen, "the server key", o->key, rc);
    if (mbedtls_ssl_conf_own_cert(conf, &c->cert, &c->key) != 0)
        return conf_fail(err, errlen, "%s", "the server certificate and key do not match");
    if (o->ca) {
        rc = mbedtls_x509_crt_parse_file(&c->own_ca, o->ca);
        if (rc != 0)
            return load_fail(err, errlen, "the client CA file", o->ca, rc);
        mbedtls_ssl_conf_ca_chain(conf, &c->own_ca, NULL);
        mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    } else {
        mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    if (o->alpn) {
        if (lurk_tls_split(o->alpn, ",", c->alpn_store, sizeof c->alpn_store, c->alpn_list,
                           LURK_TLS_MAX_ALPN) <= 0 ||
            mbedtls_ssl_conf_alpn_protocols(conf, c->alpn_list) != 0)
            return conf_fail(err, errlen, "bad ALPN list %s (at most 8 protocols)", o->alpn);
    }
    mbedtls_ssl_conf_ciphersuites(conf, lurk_tls_default_suites());
    if (sni_cb)
        mbedtls_ssl_conf_sni(conf, sni_cb, NULL);
    return 0;
}
