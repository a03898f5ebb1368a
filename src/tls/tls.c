/*
 * tls.c - TLS client connections: the mbedTLS handshake over ring I/O, and
 * records in userspace through mbedTLS when the kernel does not carry them.
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
 * After the handshake, and once every handshake byte has been sent, the
 * connection becomes a record stream with known keys (carry_records):
 * lurk_ktls_setup() (ktls.c) offers them to the kernel, lurk's own record
 * layer (record.c, nettle) takes each direction the kernel did not, and
 * mbedTLS's context is freed. Only a suite record.c does not do (CBC, CCM:
 * offered last, for old servers) leaves the records with mbedTLS.
 *
 * Userspace records: whole records are read into the TCP buffer and opened
 * straight into the reader's buffer (the decryption is the only copy);
 * written ones are sealed into the output queue. Post-handshake messages
 * (alerts, NewSessionTicket, KeyUpdate) are handled here.
 *
 * Roles: t->is_server says which keys are ours; nothing below assumes the
 * client writes with the client's keys. Certificates are checked by mbedTLS
 * plus lurk's rules (verify.c); the configuration comes from ctx.c.
 */
#include "tls/session.h"
#include "tls/record.h"
#include "tls/keys.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/tcp.h"

#include <errno.h>
#include <mbedtls/error.h>
#include <mbedtls/platform_time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SEND_WINDOW (256 * 1024)      /* ciphertext queued ahead of the socket */
#define READ_ROOM (16 * 1024 + 64)    /* one full record of plaintext */
#define RAW_ROOM (4 * 16413)          /* four full records of ciphertext a read, in bulk */
#define RAW_ROOM_MIN (16413 + 512)    /* one, otherwise (a heap buffer, not an mmap) */
#define HS_MAX 65536                  /* the longest post-handshake message kept */

static const struct lurk_stream_ops tls_stream_ops;

/* ---- references and errors ---- */

void lurk_tls_put(struct lurk_tls *t)
{
    if (--t->refs > 0)
        return;
    mbedtls_ssl_free(&t->ssl);
    if (t->conf)
        lurk_tls_conf_fini(t->conf);
    free(t->conf);
    free(t->verify);
    free(t->alpn);
    mbedtls_platform_zeroize(t->master, sizeof t->master);
    mbedtls_platform_zeroize(t->csecret, sizeof t->csecret);
    mbedtls_platform_zeroize(t->ssecret, sizeof t->ssecret);
    lurk_buf_fini(&t->q);
    lurk_buf_fini(&t->inflight);
    lurk_buf_fini(&t->rbuf);
    lurk_buf_fini(&t->hs);
    if (t->tmpl)
        mbedtls_ssl_session_free(t->tmpl);
    free(t->tmpl);
    mbedtls_platform_zeroize(t->res_secret, sizeof t->res_secret);
    if (t->rx)
        lurk_tls_rec_wipe(t->rx);
    if (t->tx)
        lurk_tls_rec_wipe(t->tx);
    free(t->rx);
    free(t->tx);
    lurk_tcp_unref(t->tcp);
    lurk_tls_server_free(t->srv);
    free(t);
}

void lurk_tls_unref(struct lurk_tls *t)
{
    if (t)
        lurk_tls_put(t);
}

int lurk_tls_fail(struct lurk_tls *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->errmsg, sizeof t->errmsg, fmt, ap);
    va_end(ap);
    return -LURK_ETLS;
}

/* The first bytes of what a server that is not speaking TLS sent, as
 * printable text ("HTTP/1.1 400 Bad Request"), up to the end of the line;
 * false if they are not text. */
static bool first_line(const struct lurk_tls *t, char *out, size_t size)
{
    size_t n = 0;

    for (size_t i = 0; i < t->nfirst && n + 1 < size; i++) {
        unsigned char c = t->first[i];

        if (c == '\r' || c == '\n')
            break;
        if (c < 0x20 || c > 0x7e)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n > 0;
}

/* Why the server refused, for the alerts a refusal usually carries. */
static const char *alert_hint(unsigned desc)
{
    switch (desc) {
    case 40: return " (no cipher suite or key exchange in common?)";
    case 70: return " (no TLS version in common: lurk speaks TLS 1.2 and 1.3, see tls.min_version)";
    case 71: return " (it wants stronger cipher suites)";
    case 112: return " (it does not serve this host name)";
    case 116: return " (it wants a client certificate: tls.cert and tls.key)";
    case 120: return " (no ALPN protocol in common, see tls.alpn)";
    case 42: case 43: case 44: case 45: case 46: case 48:
        return " (it did not accept lurk's client certificate)";
    default: return "";
    }
}

/*
 * A failed handshake in words, naming the server: a peer that answered
 * with something other than TLS (plain HTTP on an https port, a mail
 * server's banner), a refusal by alert, or what mbedTLS found wrong. 0 if
 * rc is not one of these.
 */
static int handshake_error(struct lurk_tls *t, int rc)
{
    const char *who = lurk_tcp_name(t->tcp);
    char line[sizeof t->first + 1];

    /* A TLS record starts with its type, 20-24 (RFC 8446 section 5.1). */
    if (t->nfirst && (t->first[0] < 20 || t->first[0] > 24)) {
        /* mbedTLS read only a record header's worth; the rest of the line
         * may still wait in the kernel: a look without taking it. */
        int fd = lurk_tcp_fd(t->tcp);

        if (fd >= 0 && t->nfirst < sizeof t->first) {
            ssize_t n = recv(fd, t->first + t->nfirst, sizeof t->first - t->nfirst, MSG_PEEK | MSG_DONTWAIT);

            if (n > 0)
                t->nfirst += (size_t)n;
        }
        if (!first_line(t, line, sizeof line))
            return lurk_tls_fail(t, "the server at %s does not speak TLS (its first bytes are not a TLS record)",
                                 who);
        if (strncmp(line, "HTTP/", 5) == 0)
            return lurk_tls_fail(t, "the server at %s does not speak TLS (is it plain HTTP?): it answered \"%s\"",
                                 who, line);
        return lurk_tls_fail(t, "the server at %s does not speak TLS: it sent \"%s\" in plain text", who, line);
    }
    switch (rc) {
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
        /* mbedTLS keeps the alert it read (level, description) in in_msg. */
        unsigned desc = t->ssl.MBEDTLS_PRIVATE(in_msgtype) == MBEDTLS_SSL_MSG_ALERT && t->ssl.MBEDTLS_PRIVATE(in_msg)
                        ? t->ssl.MBEDTLS_PRIVATE(in_msg)[1] : 256;

        if (desc > 255)
            return lurk_tls_fail(t, "the server at %s ended the TLS handshake with a fatal alert", who);
        return lurk_tls_fail(t, "the server at %s refused the TLS handshake with alert %s%s", who,
                             lurk_tls_alert_name(desc), alert_hint(desc));
    }
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
        return lurk_tls_fail(t, "no cipher suite or key exchange in common with the server at %s", who);
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
        return lurk_tls_fail(t, "the server at %s chose a TLS version lurk does not allow here "
                             "(lurk speaks TLS 1.2 and 1.3; see tls.min_version and tls.max_version)", who);
    case MBEDTLS_ERR_SSL_NO_APPLICATION_PROTOCOL:
        return lurk_tls_fail(t, "the server at %s chose no ALPN protocol lurk offered (tls.alpn)", who);
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
        return lurk_tls_fail(t, "the server at %s sent a malformed TLS record", who);
    case MBEDTLS_ERR_SSL_INVALID_MAC:
        return lurk_tls_fail(t, "a TLS record from the server at %s failed authentication "
                             "(corrupted or tampered with on the way)", who);
    case MBEDTLS_ERR_SSL_DECODE_ERROR:
    case MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER:
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
    case MBEDTLS_ERR_SSL_UNSUPPORTED_EXTENSION:
        return lurk_tls_fail(t, "the server at %s broke the TLS handshake protocol (a malformed or "
                             "unexpected message)", who);
    default:
        return 0;
    }
}

/* Turns an mbedTLS code into -LURK_ETLS with a sentence in errmsg. */
static int tls_error(struct lurk_tls *t, int rc, const char *what)
{
    char detail[200];

    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        char *nl;

        if (lurk_tls_verify_reason(t->verify)[0])
            return lurk_tls_fail(t, "certificate verification failed: %s", lurk_tls_verify_reason(t->verify));
        mbedtls_x509_crt_verify_info(detail, sizeof detail, "", flags);
        while ((nl = strchr(detail, '\n')) != NULL)
            *nl = nl[1] ? ';' : '\0';
        return lurk_tls_fail(t, "certificate verification failed: %s", detail);
    }
    mbedtls_strerror(rc, detail, sizeof detail);
    return lurk_tls_fail(t, "%s: %s (-0x%04x)", what, detail, (unsigned)-rc);
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
    if (t->nfirst == 0) {
        /* The first bytes that arrived, more than mbedTLS asks for (a record
         * header): enough to quote the line of a server speaking plain text. */
        t->nfirst = have < sizeof t->first ? have : sizeof t->first;
        memcpy(t->first, lurk_buf_head(b), t->nfirst);
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

    if (t->sending && lurk_buf_len(&t->q))
        lurk_tcp_await(t->tcp);       /* its callback sends the queue next */
    if (t->sending || lurk_buf_len(&t->q) == 0 || t->send_err)
        return;
    tmp = t->inflight;
    t->inflight = t->q;
    t->q = tmp;
    lurk_buf_consume(&t->q, lurk_buf_len(&t->q));
    t->sending = true;
    t->refs++;
    /* With nothing waiting on it (records queued by write_buffered, an
     * alert, close_notify), the send shares the enter of whatever the
     * caller waits for next; a writer waits behind it (lurk_tcp_await). */
    if (t->state == S_OPEN && !t->wcb)
        rc = lurk_tcp_write_nowait(t->tcp, lurk_buf_head(&t->inflight), lurk_buf_len(&t->inflight),
                                   t->send_deadline, send_done, t);
    else
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
    if (res < 0) {
        t->send_err = res;
        /* Records nobody waited for did not go out: the reads say so (a
         * reply to them will not come), as plain TCP's do. */
        if (!t->wcb && t->state == S_OPEN && !t->rx_err) {
            t->rx_err = res;
            t->stream.unsent = res;
            if (t->raw_reading)
                lurk_tcp_cancel(t->tcp, LURK_TCP_READ);
        }
    } else
        t->sent += lurk_buf_len(&t->inflight);
    lurk_buf_consume(&t->inflight, lurk_buf_len(&t->inflight));
    if (t->released && lurk_buf_len(&t->q) == 0) {
        /* Drained: an idle connection keeps no output buffers. */
        lurk_buf_fini(&t->inflight);
        lurk_buf_fini(&t->q);
    }
    if (t->state == S_HANDSHAKE || t->state == S_FLUSH)
        hs_step(t);
    else if (t->wcb)
        writer_step(t);
    kick_send(t);
    if (t->close_after_send && !t->sending) {
        t->close_after_send = false;
        lurk_tcp_close(t->tcp);
    }
    lurk_tls_put(t);
}

/* ---- setup ---- */

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
    /* The handshake's reads must leave what follows it in the kernel. */
    lurk_tcp_multishot(tcp, false);
    t->loop = lurk_tcp_loop(tcp);
    t->refs = 1;
    t->policy = o->ktls;
    mbedtls_ssl_init(&t->ssl);
    *out = t;

    /* conf is zeroed, which lurk_tls_conf_fini() takes as well. */
    t->conf = calloc(1, sizeof *t->conf);
    t->verify = calloc(1, sizeof *t->verify);
    if (!t->conf || !t->verify)
        return -ENOMEM;
    if (lurk_tls_verify_init(t->verify, o->host) < 0 && !o->insecure)
        return lurk_tls_fail(t, "%s", "no host name to verify the certificate against");
    rc = lurk_tls_conf_init(t->conf, ctx, o, t->verify, t->errmsg, sizeof t->errmsg);
    if (rc < 0)
        return rc;
    rc = mbedtls_ssl_setup(&t->ssl, &t->conf->conf);
    if (rc)
        return tls_error(t, rc, "TLS setup");
    /* SNI: the name, without a trailing dot; none for an IP literal (RFC
     * 6066). mbedTLS's own name check is replaced by verify.c's. */
    rc = mbedtls_ssl_set_hostname(&t->ssl, lurk_tls_verify_sni(t->verify));
    if (rc)
        return tls_error(t, rc, "server name");
    mbedtls_ssl_set_export_keys_cb(&t->ssl, export_keys, t);
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    /* Sessions are kept per origin and every option that shapes the
     * handshake; never for insecure connections (nothing was verified). */
    if (!o->insecure && !o->no_resume)   /* the origin (host:port) is added by lurk_tls_handshake */
        snprintf(t->cache_key, sizeof t->cache_key, "|%s|%s|%s|%s|%s|%s|%x-%x|%s",
                 o->host ? o->host : "", o->cafile ? o->cafile : "", o->cadir ? o->cadir : "",
                 o->cert ? o->cert : "", o->key ? o->key : "", o->alpn ? o->alpn : "", o->min_version,
                 o->max_version, o->ciphers ? o->ciphers : "");
    return 0;
}

/* The handshake is over, mbedTLS still holds its state: whether the server
 * resumed what was offered, and what to keep for the next connection. TLS
 * 1.2: the session (and its ticket) is complete now. TLS 1.3: tickets come
 * after the handshake, so the session is kept as a template, with the
 * resumption secret, for lurk_tls_ticket(). */
static void keep_session(struct lurk_tls *t)
{
    if (!t->cache_key[0])
        return;
    if (t->version == 0x0303) {
        mbedtls_ssl_session s;

        t->resumed = t->offered && t->have_master && memcmp(t->master, t->offered_master, 48) == 0;
        mbedtls_ssl_session_init(&s);
        if (mbedtls_ssl_get_session(&t->ssl, &s) == 0) {
            uint32_t life = s.MBEDTLS_PRIVATE(ticket_len) ? s.MBEDTLS_PRIVATE(ticket_lifetime) : 0;

            lurk_tls_cache_put(t->ctx, t->cache_key, &s, life ? life : 300);
        }
        mbedtls_ssl_session_free(&s);
        return;
    }
    /* A resumed TLS 1.3 handshake has no Certificate message. */
    t->resumed = t->offered && t->verify->certs_seen == 0;
    t->tmpl = calloc(1, sizeof *t->tmpl);
    if (!t->tmpl || t->secret_len > sizeof t->res_secret)
        goto fail;
    mbedtls_ssl_session_init(t->tmpl);
    if (mbedtls_ssl_get_session(&t->ssl, t->tmpl) != 0)
        goto fail;
    memcpy(t->res_secret, t->ssl.MBEDTLS_PRIVATE(session)->MBEDTLS_PRIVATE(app_secrets).resumption_master_secret,
           t->secret_len);
#if defined(MBEDTLS_SSL_SERVER_NAME_INDICATION)
    /* mbedTLS offers a ticket only to the name it was issued for. */
    if (!t->tmpl->MBEDTLS_PRIVATE(hostname) && lurk_tls_verify_sni(t->verify))
        t->tmpl->MBEDTLS_PRIVATE(hostname) = strdup(lurk_tls_verify_sni(t->verify));
#endif
    return;
fail:
    if (t->tmpl)
        mbedtls_ssl_session_free(t->tmpl);
    free(t->tmpl);
    t->tmpl = NULL;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void lurk_tls_ticket(struct lurk_tls *t, const unsigned char *p, size_t len)
{
    mbedtls_ssl_session *s = t->tmpl;
    uint32_t lifetime;
    size_t nlen, tlen;
    unsigned char *ticket;

    /* RFC 8446 section 4.6.1: lifetime, age_add, nonce<0..255>,
     * ticket<1..2^16-1>, extensions<0..2^16-2>. */
    if (!s || len < 9)
        return;
    lifetime = be32(p);
    nlen = p[8];
    if (len < 9 + nlen + 2)
        return;
    tlen = (size_t)p[9 + nlen] << 8 | p[10 + nlen];
    if (tlen == 0 || len < 11 + nlen + tlen + 2 || lifetime == 0)
        return;
    if (lurk_hkdf_expand_label(t->secret_len, t->res_secret, "resumption", p + 9, nlen,
                               s->MBEDTLS_PRIVATE(resumption_key), t->secret_len) < 0)
        return;
    ticket = malloc(tlen);
    if (!ticket)
        return;
    memcpy(ticket, p + 11 + nlen, tlen);
    free(s->MBEDTLS_PRIVATE(ticket));
    s->MBEDTLS_PRIVATE(ticket) = ticket;
    s->MBEDTLS_PRIVATE(ticket_len) = tlen;
    s->MBEDTLS_PRIVATE(ticket_lifetime) = lifetime;
    s->MBEDTLS_PRIVATE(ticket_age_add) = be32(p + 4);
    s->MBEDTLS_PRIVATE(resumption_key_len) = (uint8_t)t->secret_len;
    s->MBEDTLS_PRIVATE(ticket_flags) = MBEDTLS_SSL_TLS1_3_TICKET_ALLOW_PSK_EPHEMERAL_RESUMPTION;
    s->MBEDTLS_PRIVATE(ticket_reception_time) = mbedtls_ms_time();
    lurk_tls_cache_put(t->ctx, t->cache_key, s, lifetime);
    mbedtls_ssl_session_free(s);
    free(s);
    t->tmpl = NULL;
    mbedtls_platform_zeroize(t->res_secret, sizeof t->res_secret);
}

/* The kernel or lurk's record layer owns both directions: mbedTLS's
 * context and its two record buffers (about 33 KiB) are dead weight from
 * here on. What the info getters need (suite name, ALPN) points at static
 * or connection-owned storage, so it is captured first. */
void lurk_tls_release_mbedtls(struct lurk_tls *t)
{
    const char *alpn = mbedtls_ssl_get_alpn_protocol(&t->ssl);

    t->suite_name = mbedtls_ssl_get_ciphersuite(&t->ssl);
    t->alpn = alpn ? strdup(alpn) : NULL;
    mbedtls_ssl_free(&t->ssl);        /* zeroed: freeing it again is harmless */
    if (t->conf)                      /* a server's connection shares its listener's */
        lurk_tls_conf_fini(t->conf);
    free(t->conf);
    free(t->verify);
    t->conf = NULL;
    t->verify = NULL;
    /* The handshake's input buffer, empty now: an idle connection keeps
     * no buffer (reads reserve their own room). */
    if (lurk_buf_len(lurk_tcp_rbuf(t->tcp)) == 0)
        lurk_buf_fini(lurk_tcp_rbuf(t->tcp));
    lurk_buf_fini(&t->q);
    lurk_buf_fini(&t->inflight);
    t->released = true;
}

/* ---- handshake ---- */

static enum lurk_tls_cipher suite_cipher(const char *suite)
{
    if (!suite)
        return 0;
    if (strstr(suite, "AES-128-GCM"))
        return LURK_TLS_AES_128_GCM;
    if (strstr(suite, "AES-256-GCM"))
        return LURK_TLS_AES_256_GCM;
    if (strstr(suite, "CHACHA20-POLY1305"))
        return LURK_TLS_CHACHA20_POLY1305;
    return 0;
}

static struct lurk_tls_rec *new_rec(const struct lurk_tls *t, const struct lurk_tls_dir_keys *k, uint64_t seq,
                                    const unsigned char *secret)
{
    struct lurk_tls_rec *r = malloc(sizeof *r);

    if (r && lurk_tls_rec_init(r, t->version, t->cipher, k, seq, t->version == 0x0304 ? secret : NULL,
                               t->version == 0x0304 ? t->secret_len : 0) < 0) {
        free(r);
        r = NULL;
    }
    return r;
}

/*
 * The handshake is over and flushed: each direction's keys go to the
 * kernel if it takes them, else to lurk's record layer, and mbedTLS's
 * context is freed. Returns 0, or -LURK_ETLS when kTLS is required and
 * not had, or -ENOMEM.
 */
static int carry_records(struct lurk_tls *t)
{
    const char *suite = mbedtls_ssl_get_ciphersuite(&t->ssl);
    struct lurk_tls_dir_keys ck, sk;
    const struct lurk_tls_dir_keys *own = t->is_server ? &sk : &ck, *peer = t->is_server ? &ck : &sk;
    const unsigned char *own_secret = t->is_server ? t->ssecret : t->csecret;
    const unsigned char *peer_secret = t->is_server ? t->csecret : t->ssecret;
    /* TLS 1.2: each side's Finished was record 0 under the new keys. */
    uint64_t seq = t->version == 0x0304 ? 0 : 1;
    int rc = 0;

    memset(&ck, 0, sizeof ck);
    memset(&sk, 0, sizeof sk);
    keep_session(t);
    t->cipher = suite_cipher(suite);
    if (!t->cipher) {
        snprintf(t->fallback, sizeof t->fallback, "cipher suite %s has no kTLS support", suite ? suite : "?");
        goto done;                    /* mbedTLS keeps the records */
    }
    if (t->version == 0x0303 && t->have_master)
        rc = lurk_tls12_keys(t->prf, t->master, t->crand, t->srand, t->cipher, &ck, &sk);
    else if (t->version == 0x0304 && t->have_csecret && t->have_ssecret) {
        rc = lurk_tls13_keys(t->csecret, t->secret_len, t->cipher, &ck);
        if (rc == 0)
            rc = lurk_tls13_keys(t->ssecret, t->secret_len, t->cipher, &sk);
    } else
        rc = -LURK_ETLS;
    if (rc < 0) {
        snprintf(t->fallback, sizeof t->fallback, "session keys were not exported");
        rc = 0;
        goto done;                    /* mbedTLS keeps the records */
    }
    if (t->policy == LURK_TLS_KTLS_OFF)
        snprintf(t->fallback, sizeof t->fallback, "kTLS disabled (LURK_KTLS=off or ktls = false)");
    else
        lurk_ktls_setup(t, own, peer, seq);
    if (!t->ktls_rx && !(t->rx = new_rec(t, peer, seq, peer_secret)))
        rc = -ENOMEM;
    /* lurk's records come from the read buffer: multishot may fill it. */
    if (t->rx)
        lurk_tcp_multishot(t->tcp, true);
    if (!t->ktls_tx && !(t->tx = new_rec(t, own, seq, own_secret)))
        rc = -ENOMEM;
    if (rc == 0)
        lurk_tls_release_mbedtls(t);
done:
    mbedtls_platform_zeroize(&ck, sizeof ck);
    mbedtls_platform_zeroize(&sk, sizeof sk);
    mbedtls_platform_zeroize(t->master, sizeof t->master);
    mbedtls_platform_zeroize(t->csecret, sizeof t->csecret);
    mbedtls_platform_zeroize(t->ssecret, sizeof t->ssecret);
    if (rc < 0)
        return rc;
    if (t->policy == LURK_TLS_KTLS_REQUIRE && !(t->ktls_rx && t->ktls_tx))
        return lurk_tls_fail(t, "kTLS required (LURK_KTLS=require) but unavailable: %s", t->fallback);
    return 0;
}

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
    lurk_tls_put(t);
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
        hs_finish(t, carry_records(t));
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
    if (rc == MBEDTLS_ERR_SSL_CONN_EOF && t->nfirst == 0)
        hs_finish(t, lurk_tls_fail(t, "the server at %s closed the connection without answering the TLS "
                                   "handshake (does it speak TLS on this port?)", lurk_tcp_name(t->tcp)));
    else if (rc == MBEDTLS_ERR_SSL_CONN_EOF && (t->first[0] >= 20 && t->first[0] <= 24))
        hs_finish(t, lurk_tls_fail(t, "%s", "the server closed the connection during the TLS handshake"));
    else if (rc != MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && handshake_error(t, rc) < 0)
        hs_finish(t, -LURK_ETLS);
    else
        hs_finish(t, tls_error(t, rc, "TLS handshake failed"));
}

int lurk_tls_handshake(struct lurk_tls *t, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    if (t->state != S_NEW)
        return -EINVAL;
    if (!lurk_tcp_is_open(t->tcp))
        return -LURK_ECLOSED;
    if (t->cache_key[0]) {
        char opts[sizeof t->cache_key];

        memcpy(opts, t->cache_key, sizeof opts);
        snprintf(t->cache_key, sizeof t->cache_key, "%s%s", lurk_tcp_name(t->tcp), opts);
        t->offered = lurk_tls_cache_offer(t->ctx, t->cache_key, &t->ssl, t->offered_master);
    }
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
    info->resumed = t->resumed;
    info->records = t->ktls_tx && t->ktls_rx ? "kernel" : t->rx || t->tx ? "lurk" : "mbedtls";
    info->handshake = t->t_done > t->t_start ? (t->t_done - t->t_start) / 1e9 : 0;
    info->sni = t->srv && t->sni[0] ? t->sni : NULL;
}

/* ---- reading ---- */

void lurk_tls_read_finish(struct lurk_tls *t, int res)
{
    lurk_done_cb *cb = t->rcb;

    t->rcb = NULL;
    if (res == 0)
        t->stream.eof = 1;
    cb(t->rarg, res);
}

static void user_raw_done(void *arg, int res)
{
    struct lurk_tls *t = arg;

    t->raw_reading = false;
    if (res == -ECANCELED && t->state == S_CLOSED)
        res = -LURK_ECLOSED;
    else if (res == -ECANCELED && t->rx_err)
        res = t->rx_err;              /* cancelled by send_done */
    if (res == 0)
        t->raw_eof = true;
    /* A read that filled most of its room is a bulk transfer: read four
     * records at a time; otherwise one. */
    t->raw_room = res > 0 && (size_t)res >= t->raw_room / 2 ? RAW_ROOM : RAW_ROOM_MIN;
    if (!t->rcb)
        ;                             /* nobody waits any more */
    else if (res < 0)
        lurk_tls_read_finish(t, res);
    else
        lurk_tls_user_read(t);            /* res == 0: the end is reported there */
    lurk_tls_put(t);
}

/* Reads more ciphertext from the socket (at least `more` bytes of room);
 * user_raw_done goes on. */
static void raw_read(struct lurk_tls *t, size_t more)
{
    int rc;

    if (t->raw_room < RAW_ROOM_MIN)
        t->raw_room = RAW_ROOM_MIN;
    if (more > t->raw_room)
        t->raw_room = more;
    t->raw_reading = true;
    t->refs++;
    rc = lurk_tcp_read(t->tcp, t->raw_room, t->rdeadline, user_raw_done, t);
    if (rc < 0) {
        t->raw_reading = false;
        t->refs--;
        lurk_tls_read_finish(t, rc);
    }
}

static const char *peer_role(const struct lurk_tls *t)
{
    return t->is_server ? "client" : "server";
}

/* Seals one record into the output queue. Returns 0 or < 0. */
static int put_record(struct lurk_tls *t, unsigned type, const void *p, size_t len)
{
    int n;

    if (lurk_buf_reserve(&t->q, len + LURK_TLS_MAX_OVERHEAD) < 0)
        return -ENOMEM;
    n = lurk_tls_rec_seal(t->tx, type, p, len, (unsigned char *)lurk_buf_tail(&t->q));
    if (n < 0)
        return lurk_tls_fail(t, "TLS sequence numbers spent (internal_error): the connection must be closed");
    lurk_buf_commit(&t->q, (size_t)n);
    return 0;
}

/*
 * The read side fails for good with `alert` (a description, record.h):
 * every later read fails the same way, and the peer is told with a fatal
 * alert when lurk writes the records (best effort; no more writes).
 */
static void rx_fail(struct lurk_tls *t, int alert)
{
    const char *who = lurk_tcp_name(t->tcp), *name = lurk_tls_alert_name((unsigned)alert);

    switch (alert) {
    case LURK_TLS_ALERT_BAD_RECORD_MAC:
        t->rx_err = lurk_tls_fail(t, "a TLS record from the %s at %s failed authentication (%s: corrupted "
                                  "or tampered with on the way)", peer_role(t), who, name);
        break;
    case LURK_TLS_ALERT_RECORD_OVERFLOW:
        t->rx_err = lurk_tls_fail(t, "the %s at %s sent a TLS record over the size limit (%s)", peer_role(t),
                                  who, name);
        break;
    case LURK_TLS_ALERT_UNEXPECTED_MESSAGE:
        t->rx_err = lurk_tls_fail(t, "the %s at %s sent a TLS record or message that cannot come now (%s)",
                                  peer_role(t), who, name);
        break;
    case LURK_TLS_ALERT_DECODE_ERROR:
        t->rx_err = lurk_tls_fail(t, "the %s at %s sent a malformed TLS message (%s)", peer_role(t), who, name);
        break;
    default:
        t->rx_err = lurk_tls_fail(t, "TLS record from the %s at %s refused (%s)", peer_role(t), who, name);
        break;
    }
    if (t->tx && !t->fatal && !t->send_err) {
        unsigned char a[2] = { 2, (unsigned char)alert };   /* fatal */

        if (put_record(t, 21, a, 2) == 0)
            kick_send(t);
    }
    t->fatal = true;
}

/*
 * One post-handshake message: NewSessionTicket (not kept yet), KeyUpdate
 * (RFC 8446 section 4.6.3: the peer's next keys; update_requested is
 * answered with our own KeyUpdate before anything else we send), a TLS 1.2
 * HelloRequest (ignored: lurk does not renegotiate, RFC 5246 7.4.1.1).
 */
static void handshake_message(struct lurk_tls *t, unsigned type, const unsigned char *p, size_t len)
{
    if (t->version == 0x0303) {
        if (type == 0 && !t->is_server && len == 0)
            return;
        rx_fail(t, LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
        return;
    }
    if (type == 4 && !t->is_server) {
        lurk_tls_ticket(t, p, len);   /* kept for resumption */
        return;
    }
    if (type != 24) {
        rx_fail(t, LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
        return;
    }
    if (len != 1 || p[0] > 1) {
        rx_fail(t, LURK_TLS_ALERT_DECODE_ERROR);
        return;
    }
    /* A key change must end its record (RFC 8446 section 5.1). */
    if (lurk_buf_len(&t->hs) != 5) {
        rx_fail(t, LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
        return;
    }
    if (lurk_tls_rec_update(t->rx) < 0) {
        t->rx_err = lurk_tls_fail(t, "%s", "TLS KeyUpdate: the next keys could not be derived");
        return;
    }
    if (p[0] == 1 && !t->fatal) {
        static const unsigned char ku[5] = { 24, 0, 0, 1, 0 };   /* update_not_requested */
        int rc;

        if (!t->tx) {
            t->rx_err = lurk_tls_fail(t, "the %s asked for a TLS KeyUpdate, which kernel TLS on this kernel "
                                      "cannot send", peer_role(t));
            return;
        }
        rc = put_record(t, 22, ku, sizeof ku);
        if (rc == 0)
            rc = lurk_tls_rec_update(t->tx);
        if (rc < 0) {
            t->rx_err = rc == -LURK_ETLS ? rc : lurk_tls_fail(t, "%s", "TLS KeyUpdate: out of memory");
            return;
        }
        kick_send(t);
    }
}

/* A record that is not application data: an alert or handshake messages
 * (which may span records, never interleaved with other types). */
static void control_record(struct lurk_tls *t, unsigned type, const unsigned char *p, size_t n)
{
    if (type == 21) {
        if (n != 2) {
            rx_fail(t, LURK_TLS_ALERT_DECODE_ERROR);
        } else if (p[1] == LURK_TLS_ALERT_CLOSE_NOTIFY) {
            t->rx_closed = true;
        } else if (!(p[1] == 90 && p[0] == 1)) {   /* user_canceled is followed by close_notify */
            t->rx_err = lurk_tls_fail(t, "the %s sent TLS alert %s", peer_role(t), lurk_tls_alert_name(p[1]));
            t->fatal = true;
        }
        return;
    }
    if (lurk_buf_len(&t->hs) + n > HS_MAX || lurk_buf_reserve(&t->hs, n) < 0) {
        rx_fail(t, LURK_TLS_ALERT_DECODE_ERROR);
        return;
    }
    memcpy(lurk_buf_tail(&t->hs), p, n);
    lurk_buf_commit(&t->hs, n);
    while (!t->rx_err && lurk_buf_len(&t->hs) >= 4) {
        const unsigned char *m = (const unsigned char *)lurk_buf_head(&t->hs);
        size_t len = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];

        if (len > HS_MAX) {
            rx_fail(t, LURK_TLS_ALERT_DECODE_ERROR);
            return;
        }
        if (lurk_buf_len(&t->hs) < 4 + len)
            return;
        handshake_message(t, m[0], m + 4, len);
        lurk_buf_consume(&t->hs, 4 + len);
    }
    if (lurk_buf_len(&t->hs) == 0)
        lurk_buf_fini(&t->hs);        /* nothing kept between messages */
}

/* lurk's records: opens every whole record buffered, straight into the
 * reader's buffer; reads more when none is whole. */
static void rec_read(struct lurk_tls *t)
{
    struct lurk_buf *in = lurk_tcp_rbuf(t->tcp);
    size_t produced = 0, more = 0;

    while (!t->rx_err && !t->rx_closed && produced < 4 * LURK_TLS_MAX_PLAIN) {
        const unsigned char *p = (const unsigned char *)lurk_buf_head(in);
        size_t have = lurk_buf_len(in);
        unsigned type;
        int need, n;

        if (have < LURK_TLS_HEADER) {
            more = LURK_TLS_HEADER - have;
            break;
        }
        need = lurk_tls_rec_size(t->rx, p);
        if (need < 0) {
            rx_fail(t, -need);
            break;
        }
        if (have < (size_t)need) {
            more = (size_t)need - have;
            break;
        }
        if (lurk_buf_reserve(&t->rbuf, (size_t)need) < 0) {
            t->rx_err = -ENOMEM;
            break;
        }
        n = lurk_tls_rec_open(t->rx, p, (size_t)need, (unsigned char *)lurk_buf_tail(&t->rbuf), &type);
        if (n < 0) {
            rx_fail(t, -n);
            break;
        }
        if (type == 23 && lurk_buf_len(&t->hs)) {
            rx_fail(t, LURK_TLS_ALERT_UNEXPECTED_MESSAGE);   /* inside a handshake message */
            break;
        }
        if (type == 23) {
            lurk_buf_commit(&t->rbuf, (size_t)n);
            produced += (size_t)n;
        } else {
            control_record(t, type, (const unsigned char *)lurk_buf_tail(&t->rbuf), (size_t)n);
        }
        lurk_buf_consume(in, (size_t)need);
    }
    /* Data first; an error or the end is reported by the next read. */
    if (produced > 0)
        lurk_tls_read_finish(t, (int)(produced > INT32_MAX ? INT32_MAX : produced));
    else if (t->rx_err)
        lurk_tls_read_finish(t, t->rx_err);
    else if (t->rx_closed)
        lurk_tls_read_finish(t, 0);
    else if (t->raw_eof || lurk_tcp_at_eof(t->tcp)) {
        /* Without close_notify the end is still the end, but marked: the
         * protocol above decides whether that truncated anything. */
        t->stream.cut = 1;
        lurk_tls_read_finish(t, 0);
    } else
        raw_read(t, more);
}

/* mbedTLS's records (a suite lurk's record layer does not do). */
static void mbedtls_read(struct lurk_tls *t)
{
    for (;;) {
        int n;

        if (lurk_buf_reserve(&t->rbuf, READ_ROOM) < 0) {
            lurk_tls_read_finish(t, -ENOMEM);
            return;
        }
        n = mbedtls_ssl_read(&t->ssl, (unsigned char *)lurk_buf_tail(&t->rbuf), lurk_buf_room(&t->rbuf));
        kick_send(t);
        if (n > 0) {
            lurk_buf_commit(&t->rbuf, (size_t)n);
            lurk_tls_read_finish(t, n);
            return;
        }
        if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF) {
            t->stream.cut = n != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY;
            lurk_tls_read_finish(t, 0);
            return;
        }
        if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;
        if (n == MBEDTLS_ERR_SSL_WANT_READ) {
            raw_read(t, 0);
            return;
        }
        lurk_tls_read_finish(t, tls_error(t, n, "TLS read failed"));
        return;
    }
}

void lurk_tls_user_read(struct lurk_tls *t)
{
    if (t->rx)
        rec_read(t);
    else if (t->rx_err)
        lurk_tls_read_finish(t, t->rx_err);
    else
        mbedtls_read(t);
}

int lurk_tls_read_begin(struct lurk_tls *t, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
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
    return 1;
}

/* The stream's read while mbedTLS carries the records. */
static int tls_read(struct lurk_stream *st, size_t room, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    struct lurk_tls *t = (struct lurk_tls *)st;
    int rc = lurk_tls_read_begin(t, deadline_ns, cb, arg);

    (void)room;
    if (rc > 0)
        lurk_tls_user_read(t);
    return rc < 0 ? rc : 0;
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

        if (chunk > LURK_TLS_MAX_PLAIN)
            chunk = LURK_TLS_MAX_PLAIN;
        if (t->tx) {
            n = put_record(t, 23, t->wp + t->woff, chunk);
            if (n == 0)
                n = (int)chunk;
        } else {
            n = mbedtls_ssl_write(&t->ssl, (const unsigned char *)t->wp + t->woff, chunk);
            if (n < 0)
                n = tls_error(t, n, "TLS write failed");
        }
        if (n < 0) {
            write_finish(t, n);
            return;
        }
        t->woff += (size_t)n;
    }
    kick_send(t);
    if (t->woff == t->wlen && !t->sending && lurk_buf_len(&t->q) == 0)
        write_finish(t, (int)(t->wlen > INT32_MAX ? INT32_MAX : t->wlen));
    else if (t->sending)
        lurk_tcp_await(t->tcp);       /* this writer waits for that send */
}

/* Why the connection takes no more writes (a send failed, or it is
 * broken), or 0. */
static int write_refused(const struct lurk_tls *t)
{
    if (t->send_err)
        return t->send_err;
    if (t->fatal)
        return t->rx_err ? t->rx_err : -LURK_ETLS;
    return 0;
}

int lurk_tls_user_write(struct lurk_tls *t, const void *p, size_t len, int64_t deadline_ns,
                        lurk_done_cb *cb, void *arg)
{
    int rc = t->wcb ? -EBUSY : write_refused(t);

    if (rc < 0)
        return rc;
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

static int tls_write(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns,
                     lurk_done_cb *cb, void *arg)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    if (t->state != S_OPEN)
        return t->state == S_CLOSED ? -LURK_ECLOSED : -ENOTCONN;
    return lurk_tls_user_write(t, p, len, deadline_ns, cb, arg);
}

/* Small writes on an open connection whose records lurk writes: encrypted
 * into the output queue now, sent without anyone waiting. */
#define BUFFERED_MAX (64 * 1024)

static int tls_write_buffered(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns)
{
    struct lurk_tls *t = (struct lurk_tls *)st;
    size_t off = 0;
    int rc = t->state == S_OPEN ? write_refused(t) : t->state == S_CLOSED ? -LURK_ECLOSED : -ENOTCONN;

    if (rc < 0)
        return rc;
    if (!t->tx || t->wcb || len == 0 || len > BUFFERED_MAX ||
        lurk_buf_len(&t->q) + lurk_buf_len(&t->inflight) + len > SEND_WINDOW)
        return 0;
    while (off < len) {
        size_t chunk = len - off > LURK_TLS_MAX_PLAIN ? LURK_TLS_MAX_PLAIN : len - off;

        rc = put_record(t, 23, (const char *)p + off, chunk);
        if (rc < 0)
            return rc;
        off += chunk;
    }
    t->send_deadline = deadline_ns;
    kick_send(t);
    return t->send_err ? t->send_err : (int)len;
}

/* ---- cancel and close ---- */

static void tls_cancel(struct lurk_stream *st, int which)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    if ((which & LURK_STREAM_READ) && t->raw_reading)
        lurk_tcp_cancel(t->tcp, LURK_TCP_READ);
    if (which & LURK_STREAM_WRITE)
        lurk_tcp_cancel(t->tcp, LURK_TCP_WRITE);
}

/* Ends an open connection whose records mbedTLS writes: close_notify as the
 * last record when nothing else is being written (best effort, one second
 * at most), else just the TCP close (the peer sees a cut stream, never a
 * close_notify with a record torn behind it). */
void lurk_tls_user_close(struct lurk_tls *t)
{
    if (t->send_err || t->wcb) {
        lurk_tcp_close(t->tcp);
        return;
    }
    t->send_deadline = lurk_now_ns() + 1000000000LL;
    if (t->fatal) {
        /* the fatal alert already queued is the last record */
    } else if (t->tx) {
        static const unsigned char cn[2] = { 1, 0 };   /* warning, close_notify */

        put_record(t, 21, cn, sizeof cn);
    } else if (t->released || mbedtls_ssl_close_notify(&t->ssl) != 0) {
        lurk_tcp_close(t->tcp);
        return;
    }
    if (lurk_buf_len(&t->q)) {
        t->close_after_send = true;
        kick_send(t);
        lurk_tcp_await(t->tcp);       /* the close follows that send */
        if (t->sending)
            return;
    }
    lurk_tcp_close(t->tcp);
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
    if (was_open)
        lurk_tls_user_close(t);
    else
        lurk_tcp_close(t->tcp);
}

static const struct lurk_stream_ops tls_stream_ops = {
    tls_read, tls_write, tls_cancel, tls_close, tls_write_buffered
};

/* ---- the server role ----
 *
 * A server connection differs from a client's only in its configuration
 * (the listener's, shared, loaded once) and in which keys go which way
 * (ktls.c: TX with the server's keys). The handshake, the output queue,
 * the userspace record path and the kTLS fallbacks are the same code. */

/* mbedTLS's SNI callback: remembers the name the client asked for. Any
 * name is accepted: a listener has one certificate. */
static int server_sni(void *unused, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
    struct lurk_tls *t = mbedtls_ssl_get_user_data_p(ssl);

    (void)unused;
    if (t && len < sizeof t->sni) {
        memcpy(t->sni, name, len);
        t->sni[len] = '\0';
    }
    return 0;
}

int lurk_tls_server_new(struct lurk_tls_server **out, struct lurk_tls_ctx *ctx,
                        const struct lurk_tls_server_opts *o, char *err, size_t errlen)
{
    struct lurk_tls_server *s = calloc(1, sizeof *s);
    int rc;

    *out = NULL;
    if (!s)
        return -ENOMEM;
    rc = lurk_tls_server_conf_init(&s->conf, ctx, o, server_sni, err, errlen);
    if (rc < 0) {
        lurk_tls_conf_fini(&s->conf);
        free(s);
        return rc;
    }
    s->ctx = ctx;
    s->ktls = o->ktls;
    s->refs = 1;
    *out = s;
    return 0;
}

void lurk_tls_server_free(struct lurk_tls_server *s)
{
    if (!s || --s->refs > 0)
        return;
    lurk_tls_conf_fini(&s->conf);
    free(s);
}

int lurk_tls_new_server(struct lurk_tls **out, struct lurk_tls_server *srv, struct lurk_tcp *tcp)
{
    struct lurk_tls *t = calloc(1, sizeof *t);
    int rc;

    *out = NULL;
    if (!t)
        return -ENOMEM;
    t->stream.ops = &tls_stream_ops;
    t->stream.rbuf = &t->rbuf;
    t->ctx = srv->ctx;
    t->tcp = tcp;
    lurk_tcp_ref(tcp);
    /* The handshake's reads must leave what follows it in the kernel. */
    lurk_tcp_multishot(tcp, false);
    t->loop = lurk_tcp_loop(tcp);
    t->refs = 1;
    t->policy = srv->ktls;
    t->is_server = true;              /* our keys are the server's (record.c, ktls.c) */
    t->srv = srv;
    srv->refs++;
    mbedtls_ssl_init(&t->ssl);
    *out = t;
    rc = mbedtls_ssl_setup(&t->ssl, &srv->conf.conf);
    if (rc)
        return tls_error(t, rc, "TLS setup");
    mbedtls_ssl_set_user_data_p(&t->ssl, t);
    mbedtls_ssl_set_export_keys_cb(&t->ssl, export_keys, t);
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return 0;
}
