/*
 * tls.c - TLS client connections: mbedTLS handshake over ring I/O, then
 * kernel TLS where the kernel takes the keys, userspace mbedTLS otherwise.
 *
 * mbedTLS never touches the socket. Its receive callback takes bytes from the
 * TCP read buffer and answers MBEDTLS_ERR_SSL_WANT_READ when it is empty,
 * remembering how many bytes mbedTLS asked for; the handshake then reads
 * exactly that many, so nothing that follows the handshake (a TLS 1.3
 * NewSessionTicket, early application data) is ever pulled into userspace:
 * it stays in the socket for the kernel to decrypt. Its send callback only
 * appends to an output queue.
 *
 * Output queue: bytes mbedTLS produces go to `q`; one TCP write at a time
 * sends `inflight`, and the two buffers are swapped when it completes, so
 * memory the kernel is reading is never moved. `queued` and `sent` count
 * bytes, so a writer knows when what it produced has left.
 *
 * After the handshake, and once every handshake byte has been sent, kTLS is
 * tried: TCP_ULP "tls", then TLS_RX, then TLS_TX. A failing step leaves a
 * usable connection: before TLS_RX nothing changed; a direction whose
 * setsockopt failed stays plain pass-through and mbedTLS keeps it. Kernel RX
 * reads with IORING_OP_RECVMSG and a control buffer, because non-data
 * records (alerts, TLS 1.3 NewSessionTicket or KeyUpdate) arrive with their
 * record type in a cmsg and would make a plain recv fail with EIO.
 *
 * Lifetime: one reference for the owner, one per operation this file has in
 * flight (raw reads and sends, kTLS receives).
 */
#include "tls/tls.h"
#include "tls/keys.h"
#include "tls/record.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/tcp.h"

#include <errno.h>
#include <linux/tls.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <psa/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define SEND_WINDOW (256 * 1024)      /* ciphertext queued ahead of the socket */
#define READ_ROOM (16 * 1024 + 64)    /* one full record of plaintext */

struct lurk_tls_ctx {
    bool rng_ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    int ca_state;                     /* 0: not loaded, 1: loaded, < 0: failed */
    mbedtls_x509_crt ca;
    char ca_source[256];
    double ca_load_ms;
    char *ca_file;                    /* the runtime's own trust store, or NULL */
};

enum state { S_NEW, S_HANDSHAKE, S_FLUSH, S_OPEN, S_FAILED, S_CLOSED };

struct lurk_tls {
    struct lurk_stream stream;        /* first: the stream view */
    struct lurk_tls_ctx *ctx;
    struct lurk_tcp *tcp;
    struct lurk_loop *loop;
    int refs;
    enum state state;
    bool closing;                     /* closed while the handshake ran */
    enum lurk_ktls_policy policy;

    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt own_ca, cert;
    mbedtls_pk_context key;
    const char *alpn_list[9];
    char alpn_store[128];
    int suites[16];

    /* handshake */
    int64_t hs_deadline;
    lurk_done_cb *hs_cb;
    void *hs_arg;
    size_t want;                      /* bytes mbedTLS last asked for */
    bool raw_reading;

    /* output queue */
    struct lurk_buf q, inflight;
    bool sending;
    uint64_t queued, sent;
    int send_err;
    int64_t send_deadline;
    bool close_after_send;

    /* plaintext input */
    struct lurk_buf rbuf;
    lurk_done_cb *rcb;
    void *rarg;
    int64_t rdeadline;

    /* writer */
    const char *wp;
    size_t wlen, woff;
    lurk_done_cb *wcb;
    void *warg;

    /* secrets from the export callback */
    uint16_t version;
    enum lurk_tls_cipher cipher;
    int prf;
    unsigned char master[48], crand[32], srand[32];
    unsigned char csecret[48], ssecret[48];
    size_t secret_len;
    bool have_master, have_csecret, have_ssecret;

    /* kernel TLS */
    bool ktls_tx, ktls_rx;
    bool released;                    /* mbedTLS state freed (kTLS both ways) */
    const char *suite_name, *alpn;    /* kept across release_mbedtls() */
    struct lurk_op *rxop;
    struct msghdr msg;
    struct iovec iov;
    union {
        size_t align;                 /* a cmsghdr's alignment (its flexible data member */
        char buf[CMSG_SPACE(sizeof(unsigned char))];   /* would make this union variable-sized) */
    } cbuf;
    /* close_notify through kTLS TX */
    struct msghdr cn_msg;
    struct iovec cn_iov;
    unsigned char cn_alert[2];
    union {
        size_t align;
        char buf[CMSG_SPACE(sizeof(unsigned char))];
    } cn_cbuf;

    int64_t t_start, t_done;          /* handshake stamps */
    unsigned char ip[16];             /* the server's IP, when connecting to a literal */
    size_t ip_len;
    char fallback[200];
    char errmsg[300];
};

static const struct lurk_stream_ops tls_stream_ops;
static int verify_ip(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags);

/* ---- per-runtime context ---- */

int lurk_tls_ctx_new(struct lurk_tls_ctx **out, const char *ca_file)
{
    struct lurk_tls_ctx *c = calloc(1, sizeof *c);

    *out = NULL;
    if (!c)
        return -ENOMEM;
    if (ca_file && !(c->ca_file = strdup(ca_file))) {
        free(c);
        return -ENOMEM;
    }
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
    free(c->ca_file);
    free(c);
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
        rc = mbedtls_x509_crt_parse_file(&c->ca, c->ca_file);
        snprintf(c->ca_source, sizeof c->ca_source, "%s (runtime option)", c->ca_file);
    } else if (file && *file) {
        rc = mbedtls_x509_crt_parse_file(&c->ca, file);
        snprintf(c->ca_source, sizeof c->ca_source, "%s (SSL_CERT_FILE)", file);
    } else if (dir && *dir) {
        rc = mbedtls_x509_crt_parse_path(&c->ca, dir);
        snprintf(c->ca_source, sizeof c->ca_source, "%s (SSL_CERT_DIR)", dir);
    } else {
        for (size_t i = 0; i < sizeof files / sizeof files[0] && rc < 0; i++) {
            if (access(files[i], R_OK) != 0)
                continue;
            rc = mbedtls_x509_crt_parse_file(&c->ca, files[i]);
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

/* ---- references and errors ---- */

static void unref(struct lurk_tls *t)
{
    if (--t->refs > 0)
        return;
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->own_ca);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_pk_free(&t->key);
    mbedtls_platform_zeroize(t->master, sizeof t->master);
    mbedtls_platform_zeroize(t->csecret, sizeof t->csecret);
    mbedtls_platform_zeroize(t->ssecret, sizeof t->ssecret);
    lurk_buf_fini(&t->q);
    lurk_buf_fini(&t->inflight);
    lurk_buf_fini(&t->rbuf);
    lurk_tcp_unref(t->tcp);
    free(t);
}

void lurk_tls_unref(struct lurk_tls *t)
{
    if (t)
        unref(t);
}

static int fail_msg(struct lurk_tls *t, const char *fmt, const char *detail)
{
    snprintf(t->errmsg, sizeof t->errmsg, fmt, detail);
    return -LURK_ETLS;
}

/* Turns an mbedTLS code into -LURK_ETLS with a sentence in errmsg. */
static int tls_error(struct lurk_tls *t, int rc, const char *what)
{
    char detail[200];

    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        char *nl;

        mbedtls_x509_crt_verify_info(detail, sizeof detail, "", flags);
        while ((nl = strchr(detail, '\n')) != NULL)
            *nl = nl[1] ? ';' : '\0';
        snprintf(t->errmsg, sizeof t->errmsg, "certificate verification failed: %s", detail);
        return -LURK_ETLS;
    }
    mbedtls_strerror(rc, detail, sizeof detail);
    snprintf(t->errmsg, sizeof t->errmsg, "%s: %s (-0x%04x)", what, detail, (unsigned)-rc);
    return -LURK_ETLS;
}

const char *lurk_tls_errmsg(const struct lurk_tls *t)
{
    return t->errmsg;
}

/* ---- mbedTLS callbacks ---- */

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
    struct lurk_tls *t = arg;

    if (lurk_buf_reserve(&t->q, len) < 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    memcpy(lurk_buf_tail(&t->q), buf, len);
    lurk_buf_commit(&t->q, len);
    t->queued += len;
    return (int)len;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
    struct lurk_tls *t = arg;
    struct lurk_buf *b = lurk_tcp_rbuf(t->tcp);
    size_t have = lurk_buf_len(b);

    if (have == 0) {
        if (lurk_tcp_at_eof(t->tcp))
            return 0;
        t->want = len;
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    if (have > len)
        have = len;
    memcpy(buf, lurk_buf_head(b), have);
    lurk_buf_consume(b, have);
    return (int)have;
}

static void export_keys(void *arg, mbedtls_ssl_key_export_type type, const unsigned char *secret,
                        size_t secret_len, const unsigned char client_random[32],
                        const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    struct lurk_tls *t = arg;

    switch (type) {
    case MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET:
        if (secret_len != sizeof t->master)
            return;
        memcpy(t->master, secret, secret_len);
        memcpy(t->crand, client_random, 32);
        memcpy(t->srand, server_random, 32);
        t->prf = prf;
        t->have_master = true;
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_APPLICATION_TRAFFIC_SECRET:
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_APPLICATION_TRAFFIC_SECRET: {
        bool client = type == MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_APPLICATION_TRAFFIC_SECRET;

        if (secret_len > sizeof t->csecret)
            return;
        memcpy(client ? t->csecret : t->ssecret, secret, secret_len);
        t->secret_len = secret_len;
        if (client)
            t->have_csecret = true;
        else
            t->have_ssecret = true;
        break;
    }
    default:
        break;                        /* handshake and early secrets: not ours */
    }
}

/* ---- the output queue ---- */

static void send_done(void *arg, int res);

static void kick_send(struct lurk_tls *t)
{
    struct lurk_buf tmp;
    int rc;

    if (t->sending || lurk_buf_len(&t->q) == 0 || t->send_err)
        return;
    tmp = t->inflight;
    t->inflight = t->q;
    t->q = tmp;
    lurk_buf_consume(&t->q, lurk_buf_len(&t->q));
    t->sending = true;
    t->refs++;
    rc = lurk_tcp_write(t->tcp, lurk_buf_head(&t->inflight), lurk_buf_len(&t->inflight),
                        t->send_deadline, send_done, t);
    if (rc < 0) {
        t->sending = false;
        t->send_err = rc;
        t->refs--;
    }
}

static void hs_step(struct lurk_tls *t);
static void writer_step(struct lurk_tls *t);

static void send_done(void *arg, int res)
{
    struct lurk_tls *t = arg;

    t->sending = false;
    if (res < 0)
        t->send_err = res;
    else
        t->sent += lurk_buf_len(&t->inflight);
    lurk_buf_consume(&t->inflight, lurk_buf_len(&t->inflight));
    if (t->state == S_HANDSHAKE || t->state == S_FLUSH)
        hs_step(t);
    else if (t->wcb)
        writer_step(t);
    kick_send(t);
    if (t->close_after_send && !t->sending) {
        t->close_after_send = false;
        lurk_tcp_close(t->tcp);
    }
    unref(t);
}

/* ---- setup ---- */

static int parse_alpn(struct lurk_tls *t, const char *list)
{
    size_t n = 0;
    char *p;

    if (strlen(list) >= sizeof t->alpn_store)
        return -EINVAL;
    strcpy(t->alpn_store, list);
    for (p = strtok(t->alpn_store, ","); p && n < 8; p = strtok(NULL, ","))
        t->alpn_list[n++] = p;
    t->alpn_list[n] = NULL;
    return n ? 0 : -EINVAL;
}

/*
 * The suites offered unless the caller names its own: TLS 1.3's, and TLS
 * 1.2's with forward secrecy (ECDHE, DHE-RSA), in mbedTLS's order; no static
 * RSA or ECDH key exchange, no PSK, no NULL cipher, no truncated CCM-8 tags.
 */
static int default_suites[128];
static pthread_once_t suites_once = PTHREAD_ONCE_INIT;

static void init_default_suites(void)
{
    size_t n = 0;

    for (const int *id = mbedtls_ssl_list_ciphersuites(); *id; id++) {
        const char *name = mbedtls_ssl_get_ciphersuite_name(*id);
        bool tls13 = strncmp(name, "TLS1-3-", 7) == 0;
        bool pfs = strstr(name, "-ECDHE-") || strstr(name, "-DHE-RSA-");

        if ((tls13 || pfs) && !strstr(name, "PSK") && !strstr(name, "NULL") &&
            !strstr(name, "CCM-8") && n < sizeof default_suites / sizeof default_suites[0] - 1)
            default_suites[n++] = *id;
    }
    default_suites[n] = 0;
}

const int *lurk_tls_default_suites(void)
{
    pthread_once(&suites_once, init_default_suites);
    return default_suites;
}

static int parse_suites(struct lurk_tls *t, const char *list)
{
    char tmp[512], *p;
    size_t n = 0;

    if (strlen(list) >= sizeof tmp)
        return -EINVAL;
    strcpy(tmp, list);
    for (p = strtok(tmp, ":,"); p && n < 15; p = strtok(NULL, ":,")) {
        int id = mbedtls_ssl_get_ciphersuite_id(p);

        if (id == 0)
            return fail_msg(t, "unknown cipher suite %s", p);
        t->suites[n++] = id;
    }
    t->suites[n] = 0;
    return n ? 0 : -EINVAL;
}

int lurk_tls_new(struct lurk_tls **out, struct lurk_tls_ctx *ctx, struct lurk_tcp *tcp,
                 const struct lurk_tls_opts *o)
{
    struct lurk_tls *t = calloc(1, sizeof *t);
    int rc;

    *out = NULL;
    if (!t)
        return -ENOMEM;
    t->stream.ops = &tls_stream_ops;
    t->stream.rbuf = &t->rbuf;
    t->ctx = ctx;
    t->tcp = tcp;
    lurk_tcp_ref(tcp);
    t->loop = lurk_tcp_loop(tcp);
    t->refs = 1;
    t->policy = o->ktls;
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_ssl_init(&t->ssl);
    mbedtls_x509_crt_init(&t->own_ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    *out = t;

    if (ctx_rng(ctx) < 0)
        return fail_msg(t, "%s", "cannot seed the random generator or initialise PSA crypto");
    rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc)
        return tls_error(t, rc, "TLS configuration");
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &ctx->drbg);
    mbedtls_ssl_conf_min_tls_version(&t->conf, o->min_version == 0x0304
                                     ? MBEDTLS_SSL_VERSION_TLS1_3 : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(&t->conf, o->max_version == 0x0303
                                     ? MBEDTLS_SSL_VERSION_TLS1_2 : MBEDTLS_SSL_VERSION_TLS1_3);
    /* Renegotiation would change keys under the kernel: never. */
    mbedtls_ssl_conf_renegotiation(&t->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);

    if (o->insecure) {
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_NONE);
    } else {
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        if (o->cafile || o->cadir) {
            rc = o->cafile ? mbedtls_x509_crt_parse_file(&t->own_ca, o->cafile)
                           : mbedtls_x509_crt_parse_path(&t->own_ca, o->cadir);
            if (rc < 0 || t->own_ca.raw.len == 0)
                return fail_msg(t, "cannot load CA certificates from %s",
                                o->cafile ? o->cafile : o->cadir);
            mbedtls_ssl_conf_ca_chain(&t->conf, &t->own_ca, NULL);
        } else {
            if (ctx_ca(ctx) < 0)
                return fail_msg(t, "%s", "no CA certificates found: set SSL_CERT_FILE or SSL_CERT_DIR, "
                                "install ca-certificates, or pass tls = { cafile = ... }");
            mbedtls_ssl_conf_ca_chain(&t->conf, &ctx->ca, NULL);
        }
    }
    if (o->cert || o->key) {
        if (!o->cert || !o->key)
            return fail_msg(t, "%s", "a client certificate needs both cert and key");
        if (mbedtls_x509_crt_parse_file(&t->cert, o->cert) != 0)
            return fail_msg(t, "cannot load the client certificate %s", o->cert);
        if (mbedtls_pk_parse_keyfile(&t->key, o->key, NULL, mbedtls_ctr_drbg_random, &ctx->drbg) != 0)
            return fail_msg(t, "cannot load the client key %s", o->key);
        if (mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key) != 0)
            return fail_msg(t, "%s", "the client certificate and key do not match");
    }
    if (o->alpn) {
        if (parse_alpn(t, o->alpn) < 0 || mbedtls_ssl_conf_alpn_protocols(&t->conf, t->alpn_list) != 0)
            return fail_msg(t, "bad ALPN list %s", o->alpn);
    }
    if (o->ciphers) {
        rc = parse_suites(t, o->ciphers);
        if (rc < 0)
            return t->errmsg[0] ? rc : fail_msg(t, "bad cipher list %s", o->ciphers);
        mbedtls_ssl_conf_ciphersuites(&t->conf, t->suites);
    } else {
        mbedtls_ssl_conf_ciphersuites(&t->conf, lurk_tls_default_suites());
    }
#if defined(MBEDTLS_DHM_C)
    mbedtls_ssl_conf_dhm_min_bitlen(&t->conf, 2048);   /* no weak DHE groups */
#endif
    rc = mbedtls_ssl_setup(&t->ssl, &t->conf);
    if (rc)
        return tls_error(t, rc, "TLS setup");
    /* SNI and the name checked against the certificate. An IP literal is
     * verified against the certificate's IP addresses; mbedTLS sends no SNI
     * for it. */
    if (o->host && *o->host && inet_pton(AF_INET, o->host, t->ip) == 1) {
        t->ip_len = 4;
    } else if (o->host && *o->host && inet_pton(AF_INET6, o->host, t->ip) == 1) {
        t->ip_len = 16;
    }
    if (t->ip_len) {
        /* NULL: no SNI and no name check by mbedTLS; verify_ip checks the IP. */
        mbedtls_ssl_set_hostname(&t->ssl, NULL);
        if (!o->insecure)
            mbedtls_ssl_set_verify(&t->ssl, verify_ip, t);
    } else if (o->host && *o->host) {
        rc = mbedtls_ssl_set_hostname(&t->ssl, o->host);
        if (rc)
            return tls_error(t, rc, "server name");
    } else if (!o->insecure) {
        return fail_msg(t, "%s", "no host name to verify the certificate against");
    }
    mbedtls_ssl_set_export_keys_cb(&t->ssl, export_keys, t);
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return 0;
}

/* Connecting to an IP literal: no SNI may carry it (RFC 6066), so mbedTLS is
 * given no host name, and the leaf certificate's iPAddress SANs are checked
 * here instead. */
static int verify_ip(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct lurk_tls *t = arg;
    bool match = false;

    if (depth != 0)
        return 0;
    for (const mbedtls_x509_sequence *seq = &crt->subject_alt_names; seq && !match; seq = seq->next) {
        mbedtls_x509_subject_alternative_name san;

        if (seq->buf.p == NULL || mbedtls_x509_parse_subject_alt_name(&seq->buf, &san) != 0)
            continue;
        if (san.type == MBEDTLS_X509_SAN_IP_ADDRESS && san.san.unstructured_name.len == t->ip_len &&
            memcmp(san.san.unstructured_name.p, t->ip, t->ip_len) == 0)
            match = true;
        mbedtls_x509_free_subject_alt_name(&san);
    }
    if (!match)
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* ---- kernel TLS ---- */

/* Test-only fault injection: LURK_KTLS_FAIL_STEP=1|2|3 makes the ULP, RX or
 * TX step fail with EINVAL, to prove each failure leaves a usable stream. */
static int ktls_setsockopt(int step, int fd, int level, int name, const void *v, socklen_t len)
{
    const char *f = getenv("LURK_KTLS_FAIL_STEP");

    if (f && atoi(f) == step)
        return -EINVAL;
    return setsockopt(fd, level, name, v, len) == 0 ? 0 : -errno;
}

static const char *cipher_name(enum lurk_tls_cipher c)
{
    return c == LURK_TLS_AES_128_GCM ? "AES-128-GCM" : c == LURK_TLS_AES_256_GCM ? "AES-256-GCM"
                                                                                 : "CHACHA20-POLY1305";
}

/* The kernel owns both directions: mbedTLS's context and its two record
 * buffers (about 33 KiB) are dead weight from here on. What the info
 * getters need (suite name, ALPN) points at static or connection-owned
 * storage, so it is captured first. */
static void release_mbedtls(struct lurk_tls *t)
{
    t->suite_name = mbedtls_ssl_get_ciphersuite(&t->ssl);
    t->alpn = mbedtls_ssl_get_alpn_protocol(&t->ssl);
    mbedtls_ssl_free(&t->ssl);        /* zeroed: freeing it again is harmless */
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->own_ca);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_pk_free(&t->key);
    lurk_buf_fini(&t->q);
    lurk_buf_fini(&t->inflight);
    t->released = true;
}

/* Tries to hand both directions to the kernel. Returns 0 (whatever the
 * outcome, with the reason in t->fallback) or -LURK_ETLS when the policy
 * requires kTLS and it could not be had. */
static int setup_ktls(struct lurk_tls *t)
{
    const char *suite = mbedtls_ssl_get_ciphersuite(&t->ssl);
    struct lurk_tls_dir_keys ck, sk;
    union {
        struct tls12_crypto_info_aes_gcm_256 a;
        struct tls12_crypto_info_chacha20_poly1305 c;
    } info;
    int fd = lurk_tcp_fd(t->tcp), rc, len;
    uint64_t seq = t->version == 0x0304 ? 0 : 1;   /* see keys.h: nothing sent since Finished */

    if (t->policy == LURK_TLS_KTLS_OFF) {
        snprintf(t->fallback, sizeof t->fallback, "kTLS disabled (LURK_KTLS=off or ktls = false)");
        return 0;
    }
    if (suite && strstr(suite, "AES-128-GCM"))
        t->cipher = LURK_TLS_AES_128_GCM;
    else if (suite && strstr(suite, "AES-256-GCM"))
        t->cipher = LURK_TLS_AES_256_GCM;
    else if (suite && strstr(suite, "CHACHA20-POLY1305"))
        t->cipher = LURK_TLS_CHACHA20_POLY1305;
    else {
        snprintf(t->fallback, sizeof t->fallback, "cipher suite %s has no kTLS support", suite ? suite : "?");
        goto done;
    }
    if (t->version == 0x0303 && t->have_master)
        rc = lurk_tls12_keys(t->prf, t->master, t->crand, t->srand, t->cipher, &ck, &sk);
    else if (t->version == 0x0304 && t->have_csecret && t->have_ssecret)
    {
        rc = lurk_tls13_keys(t->csecret, t->secret_len, t->cipher, &ck);
        if (rc == 0)
            rc = lurk_tls13_keys(t->ssecret, t->secret_len, t->cipher, &sk);
    }
    else
        rc = -LURK_ETLS;
    if (rc < 0) {
        snprintf(t->fallback, sizeof t->fallback, "session keys were not exported");
        goto done;
    }
    if (lurk_buf_len(lurk_tcp_rbuf(t->tcp)) || mbedtls_ssl_check_pending(&t->ssl)) {
        snprintf(t->fallback, sizeof t->fallback, "records already read past the handshake");
        goto wipe;
    }
    rc = ktls_setsockopt(1, fd, SOL_TCP, TCP_ULP, "tls", sizeof "tls");
    if (rc < 0) {
        snprintf(t->fallback, sizeof t->fallback, "kernel refused the tls ULP (%s)%s", lurk_errname(rc),
                 rc == -ENOENT ? ": no kTLS in this kernel (CONFIG_TLS) or module tls not loaded" : "");
        goto wipe;
    }
    /* RX first: if it fails nothing has changed yet. */
    len = lurk_ktls_info(t->version, t->cipher, &sk, seq, &info, sizeof info);
    rc = len < 0 ? len : ktls_setsockopt(2, fd, SOL_TLS, TLS_RX, &info, (socklen_t)len);
    if (rc == 0)
        t->ktls_rx = true;
    else
        snprintf(t->fallback, sizeof t->fallback, "kernel refused TLS_RX for %s (%s)",
                 cipher_name(t->cipher), lurk_errname(rc));
    len = lurk_ktls_info(t->version, t->cipher, &ck, seq, &info, sizeof info);
    rc = len < 0 ? len : ktls_setsockopt(3, fd, SOL_TLS, TLS_TX, &info, (socklen_t)len);
    if (rc == 0)
        t->ktls_tx = true;
    else
        snprintf(t->fallback + strlen(t->fallback), sizeof t->fallback - strlen(t->fallback),
                 "%skernel refused TLS_TX for %s (%s)", t->fallback[0] ? "; " : "",
                 cipher_name(t->cipher), lurk_errname(rc));
    mbedtls_platform_zeroize(&info, sizeof info);
    if (t->ktls_tx && t->ktls_rx)
        release_mbedtls(t);
wipe:
    mbedtls_platform_zeroize(&ck, sizeof ck);
    mbedtls_platform_zeroize(&sk, sizeof sk);
done:
    mbedtls_platform_zeroize(t->master, sizeof t->master);
    mbedtls_platform_zeroize(t->csecret, sizeof t->csecret);
    mbedtls_platform_zeroize(t->ssecret, sizeof t->ssecret);
    if (t->policy == LURK_TLS_KTLS_REQUIRE && !(t->ktls_rx && t->ktls_tx))
        return fail_msg(t, "kTLS required (LURK_KTLS=require) but unavailable: %s", t->fallback);
    return 0;
}

/* ---- handshake ---- */

static void hs_finish(struct lurk_tls *t, int rc)
{
    lurk_done_cb *cb = t->hs_cb;

    t->hs_cb = NULL;
    t->t_done = lurk_now_ns();
    if (t->closing && rc == 0) {
        lurk_tcp_close(t->tcp);
        rc = -LURK_ECLOSED;
    }
    t->state = t->closing ? S_CLOSED : rc == 0 ? S_OPEN : S_FAILED;
    t->stream.open = rc == 0;
    t->send_deadline = 0;
    if (cb)
        cb(t->hs_arg, rc);
}

static void hs_read_done(void *arg, int res)
{
    struct lurk_tls *t = arg;

    t->raw_reading = false;
    if (res < 0 && t->state == S_HANDSHAKE)
        hs_finish(t, res);
    else if (t->state == S_HANDSHAKE)
        hs_step(t);
    unref(t);
}

static void hs_step(struct lurk_tls *t)
{
    int rc;

    if (t->send_err) {
        hs_finish(t, t->send_err);
        return;
    }
    if (t->state == S_FLUSH) {
        /* Every handshake byte must have left before TLS_TX takes over. */
        if (t->sending || lurk_buf_len(&t->q))
            return;
        hs_finish(t, setup_ktls(t));
        return;
    }
    if (t->state != S_HANDSHAKE || t->raw_reading)
        return;
    rc = mbedtls_ssl_handshake(&t->ssl);
    kick_send(t);
    if (rc == 0) {
        t->version = mbedtls_ssl_get_version_number(&t->ssl) == MBEDTLS_SSL_VERSION_TLS1_3 ? 0x0304 : 0x0303;
        t->state = S_FLUSH;
        hs_step(t);
        return;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
        t->raw_reading = true;
        t->refs++;
        rc = lurk_tcp_read_max(t->tcp, t->want, t->hs_deadline, hs_read_done, t);
        if (rc < 0) {
            t->raw_reading = false;
            t->refs--;
            hs_finish(t, rc);
        }
        return;
    }
    if (rc == MBEDTLS_ERR_SSL_CONN_EOF)
        hs_finish(t, fail_msg(t, "%s", "the server closed the connection during the TLS handshake"));
    else
        hs_finish(t, tls_error(t, rc, "TLS handshake failed"));
}

int lurk_tls_handshake(struct lurk_tls *t, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    if (t->state != S_NEW)
        return -EINVAL;
    if (!lurk_tcp_is_open(t->tcp))
        return -LURK_ECLOSED;
    t->state = S_HANDSHAKE;
    t->t_start = lurk_now_ns();
    t->hs_deadline = deadline_ns;
    t->send_deadline = deadline_ns;
    t->hs_cb = cb;
    t->hs_arg = arg;
    hs_step(t);
    return 0;
}

void lurk_tls_cancel_handshake(struct lurk_tls *t)
{
    if (t->state != S_HANDSHAKE && t->state != S_FLUSH)
        return;
    /* The raw read or send completes with -ECANCELED and ends the handshake. */
    if (t->raw_reading)
        lurk_tcp_cancel(t->tcp, LURK_TCP_READ);
    if (t->sending)
        lurk_tcp_cancel(t->tcp, LURK_TCP_WRITE);
}

struct lurk_stream *lurk_tls_stream(struct lurk_tls *t)
{
    return &t->stream;
}

void lurk_tls_get_info(const struct lurk_tls *t, struct lurk_tls_info *info)
{
    info->version = t->version == 0x0304 ? "TLSv1.3" : t->version == 0x0303 ? "TLSv1.2" : "?";
    info->cipher = t->released ? t->suite_name : mbedtls_ssl_get_ciphersuite(&t->ssl);
    info->alpn = t->released ? t->alpn : mbedtls_ssl_get_alpn_protocol(&t->ssl);
    info->ktls_tx = t->ktls_tx;
    info->ktls_rx = t->ktls_rx;
    info->fallback = t->fallback;
    info->handshake = t->t_done > t->t_start ? (t->t_done - t->t_start) / 1e9 : 0;
}

/* ---- reading ---- */

static void read_finish(struct lurk_tls *t, int res)
{
    lurk_done_cb *cb = t->rcb;

    t->rcb = NULL;
    if (res == 0)
        t->stream.eof = 1;
    cb(t->rarg, res);
}

static void user_read_step(struct lurk_tls *t);

static void user_raw_done(void *arg, int res)
{
    struct lurk_tls *t = arg;

    t->raw_reading = false;
    if (res == -ECANCELED && t->state == S_CLOSED)
        res = -LURK_ECLOSED;
    if (!t->rcb)
        ;                             /* nobody waits any more */
    else if (res < 0)
        read_finish(t, res);
    else
        user_read_step(t);            /* res == 0: bio_recv reports the end */
    unref(t);
}

static void user_read_step(struct lurk_tls *t)
{
    for (;;) {
        int n, rc;

        if (lurk_buf_reserve(&t->rbuf, READ_ROOM) < 0) {
            read_finish(t, -ENOMEM);
            return;
        }
        n = mbedtls_ssl_read(&t->ssl, (unsigned char *)lurk_buf_tail(&t->rbuf), lurk_buf_room(&t->rbuf));
        kick_send(t);
        if (n > 0) {
            lurk_buf_commit(&t->rbuf, (size_t)n);
            read_finish(t, n);
            return;
        }
        if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF) {
            /* Without close_notify the end is still the end; the protocol
             * above reports a truncation when it knows the length. */
            read_finish(t, 0);
            return;
        }
        if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;
        if (n == MBEDTLS_ERR_SSL_WANT_READ) {
            t->raw_reading = true;
            t->refs++;
            /* Four full records a read: enough for bulk transfers, and the
             * buffer every connection keeps stays small. */
            rc = lurk_tcp_read(t->tcp, 4 * 16413, t->rdeadline, user_raw_done, t);
            if (rc < 0) {
                t->raw_reading = false;
                t->refs--;
                read_finish(t, rc);
            }
            return;
        }
        read_finish(t, tls_error(t, n, "TLS read failed"));
        return;
    }
}

static void rx_arm(struct lurk_tls *t);

static void rx_done(struct lurk_op *op, int res)
{
    struct lurk_tls *t = op->arg;
    struct cmsghdr *cm = (struct cmsghdr *)t->cbuf.buf;
    unsigned char type = 23;
    const unsigned char *p;
    const char *detail = "";

    t->rxop = NULL;
    if (!t->rcb) {
        unref(t);
        return;
    }
    if (res < 0) {
        if (res == -EBADMSG || res == -EIO)
            res = fail_msg(t, "kernel TLS: %s", res == -EBADMSG ? "a record failed authentication (EBADMSG)"
                                                                : "unreadable record (EIO)");
        else if (res == -ECANCELED && t->state == S_CLOSED)
            res = -LURK_ECLOSED;
        read_finish(t, res);
        unref(t);
        return;
    }
    if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
        type = *CMSG_DATA(cm);
    p = (const unsigned char *)lurk_buf_tail(&t->rbuf);
    switch (lurk_tls_record_action(type, p, (size_t)res, &detail)) {
    case LURK_TLS_RX_DATA:
        if (res > 0)
            lurk_buf_commit(&t->rbuf, (size_t)res);
        read_finish(t, res);          /* 0: TCP ended, with or without close_notify */
        break;
    case LURK_TLS_RX_CLOSE:
        read_finish(t, 0);            /* close_notify: stop reading now */
        break;
    case LURK_TLS_RX_SKIP:
        rx_arm(t);                    /* read the next record instead */
        break;
    case LURK_TLS_RX_ALERT:
        read_finish(t, fail_msg(t, "the server sent TLS alert %s", detail));
        break;
    case LURK_TLS_RX_FAIL:
        read_finish(t, fail_msg(t, "%s", detail));
        break;
    }
    unref(t);
}

static void rx_arm(struct lurk_tls *t)
{
    struct io_uring_sqe *sqe;

    if (lurk_buf_reserve(&t->rbuf, READ_ROOM) < 0) {
        read_finish(t, -ENOMEM);
        return;
    }
    memset(&t->cbuf, 0, sizeof t->cbuf);
    t->iov.iov_base = lurk_buf_tail(&t->rbuf);
    t->iov.iov_len = lurk_buf_room(&t->rbuf);
    memset(&t->msg, 0, sizeof t->msg);
    t->msg.msg_iov = &t->iov;
    t->msg.msg_iovlen = 1;
    t->msg.msg_control = t->cbuf.buf;
    t->msg.msg_controllen = sizeof t->cbuf.buf;
    sqe = lurk_loop_sqe(t->loop, 2);
    io_uring_prep_recvmsg(sqe, lurk_tcp_fd(t->tcp), &t->msg, 0);
    t->rxop = lurk_op_new(t->loop, rx_done, t);
    t->refs++;
    lurk_op_arm(t->loop, t->rxop, sqe, t->rdeadline);
}

static int tls_read(struct lurk_stream *st, size_t room, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    (void)room;
    if (t->state != S_OPEN)
        return t->state == S_CLOSED ? -LURK_ECLOSED : -ENOTCONN;
    if (t->rcb)
        return -EBUSY;
    if (t->stream.eof) {
        cb(arg, 0);
        return 0;
    }
    t->rcb = cb;
    t->rarg = arg;
    t->rdeadline = deadline_ns;
    if (t->ktls_rx)
        rx_arm(t);
    else
        user_read_step(t);
    return 0;
}

/* ---- writing ---- */

static void write_finish(struct lurk_tls *t, int res)
{
    lurk_done_cb *cb = t->wcb;

    t->wcb = NULL;
    t->wp = NULL;
    t->send_deadline = 0;
    cb(t->warg, res);
}

/* Encrypts up to the send window, then waits for the queue to drain. */
static void writer_step(struct lurk_tls *t)
{
    if (t->send_err) {
        write_finish(t, t->send_err);
        return;
    }
    while (t->woff < t->wlen && lurk_buf_len(&t->q) < SEND_WINDOW) {
        size_t chunk = t->wlen - t->woff;
        int n;

        if (chunk > 16384)
            chunk = 16384;
        n = mbedtls_ssl_write(&t->ssl, (const unsigned char *)t->wp + t->woff, chunk);
        if (n < 0) {
            write_finish(t, tls_error(t, n, "TLS write failed"));
            return;
        }
        t->woff += (size_t)n;
    }
    kick_send(t);
    if (t->woff == t->wlen && !t->sending && lurk_buf_len(&t->q) == 0)
        write_finish(t, (int)(t->wlen > INT32_MAX ? INT32_MAX : t->wlen));
}

static int tls_write(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    if (t->state != S_OPEN)
        return t->state == S_CLOSED ? -LURK_ECLOSED : -ENOTCONN;
    if (t->wcb)
        return -EBUSY;
    if (t->send_err)
        return t->send_err;
    if (t->ktls_tx)                   /* the kernel encrypts: plain TCP send */
        return lurk_tcp_write(t->tcp, p, len, deadline_ns, cb, arg);
    if (len == 0) {
        cb(arg, 0);
        return 0;
    }
    t->wp = p;
    t->wlen = len;
    t->woff = 0;
    t->wcb = cb;
    t->warg = arg;
    t->send_deadline = deadline_ns;
    writer_step(t);
    return 0;
}

/* ---- cancel and close ---- */

static void tls_cancel(struct lurk_stream *st, int which)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    if (which & LURK_STREAM_READ) {
        if (t->rxop)
            lurk_op_cancel(t->loop, t->rxop);
        else if (t->raw_reading)
            lurk_tcp_cancel(t->tcp, LURK_TCP_READ);
    }
    if (which & LURK_STREAM_WRITE)
        lurk_tcp_cancel(t->tcp, LURK_TCP_WRITE);
}

static void cn_done(struct lurk_op *op, int res)
{
    struct lurk_tls *t = op->arg;

    (void)res;
    lurk_tcp_close(t->tcp);
    unref(t);
}

/* close_notify on a kTLS TX socket: a one-record sendmsg of type 21. */
static void send_ktls_close_notify(struct lurk_tls *t)
{
    struct io_uring_sqe *sqe = lurk_loop_sqe(t->loop, 2);
    struct cmsghdr *cm;

    t->cn_alert[0] = 1;               /* warning */
    t->cn_alert[1] = 0;               /* close_notify */
    t->cn_iov.iov_base = t->cn_alert;
    t->cn_iov.iov_len = 2;
    memset(&t->cn_msg, 0, sizeof t->cn_msg);
    memset(&t->cn_cbuf, 0, sizeof t->cn_cbuf);
    t->cn_msg.msg_iov = &t->cn_iov;
    t->cn_msg.msg_iovlen = 1;
    t->cn_msg.msg_control = t->cn_cbuf.buf;
    t->cn_msg.msg_controllen = sizeof t->cn_cbuf.buf;
    cm = (struct cmsghdr *)t->cn_cbuf.buf;
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(cm) = 21;
    io_uring_prep_sendmsg(sqe, lurk_tcp_fd(t->tcp), &t->cn_msg, MSG_NOSIGNAL);
    t->refs++;
    lurk_op_arm(t->loop, lurk_op_new(t->loop, cn_done, t), sqe, lurk_now_ns() + 1000000000LL);
}

static void tls_close(struct lurk_stream *st)
{
    struct lurk_tls *t = (struct lurk_tls *)st;
    bool was_open = t->state == S_OPEN;

    if (t->state == S_CLOSED)
        return;
    if (t->state == S_HANDSHAKE || t->state == S_FLUSH) {
        t->closing = true;
        lurk_tcp_close(t->tcp);       /* the handshake ends with -LURK_ECLOSED */
        return;
    }
    t->state = S_CLOSED;
    t->stream.open = 0;
    tls_cancel(st, LURK_STREAM_READ);
    if (!was_open || t->send_err || t->wcb || t->sending) {
        lurk_tcp_close(t->tcp);
        return;
    }
    /* Say goodbye properly (best effort, one second at most). */
    if (t->ktls_tx) {
        send_ktls_close_notify(t);
        return;
    }
    t->send_deadline = lurk_now_ns() + 1000000000LL;
    if (mbedtls_ssl_close_notify(&t->ssl) == 0 && lurk_buf_len(&t->q)) {
        t->close_after_send = true;
        kick_send(t);
        if (t->sending)
            return;
    }
    lurk_tcp_close(t->tcp);
}

static const struct lurk_stream_ops tls_stream_ops = { tls_read, tls_write, tls_cancel, tls_close };
