/*
 * ktls.c - the kernel record path: handing a connection's keys to kernel TLS
 * (kTLS) after the handshake, and the stream operations of a connection the
 * kernel carries.
 *
 * Setup, once every handshake byte has been sent: TCP_ULP "tls", then
 * TLS_RX, then TLS_TX. A failing step leaves a usable connection: before
 * TLS_RX nothing changed; a direction whose setsockopt failed stays plain
 * pass-through and lurk's own record layer carries it (tls.c's userspace
 * functions serve it). Either way mbedTLS's state is freed afterwards.
 *
 * Kernel RX reads with recvmsg and a control buffer, because non-data
 * records (alerts, TLS 1.3 NewSessionTicket or KeyUpdate) arrive with their
 * record type in a cmsg and would make a plain recv fail with EIO; record.h
 * decides what each record means. Kernel TX writes application data as
 * plain TCP sends, and close_notify as a one-record sendmsg of type 21.
 * Every one of these goes through net/tcp's read or write slot, so the
 * descriptor is never closed under one of them, and close_notify can never
 * overtake a send still in flight: a close while a write is in flight
 * skips close_notify and cuts the stream (as the userspace path does).
 *
 * What it deliberately does not do: rekey (a TLS 1.3 KeyUpdate fails the
 * read, see record.h; kernels before 6.x cannot take new keys). Userspace
 * records follow KeyUpdate (tls.c).
 */
#include "tls/session.h"
#include "tls/record.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/tcp.h"

#include <errno.h>
#include <linux/tls.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define READ_ROOM (16 * 1024 + 64)    /* one full record of plaintext */

static const struct lurk_stream_ops ktls_stream_ops;

/* Test-only fault injection (LURK_KTLS_FAIL_STEP=1|2|3, read once per
 * runtime): the ULP, RX or TX step fails with EINVAL, to prove each failure
 * leaves a usable stream. */
static int ktls_setsockopt(struct lurk_tls *t, int step, int level, int name, const void *v, socklen_t len)
{
    if (lurk_tls_ctx_fail_step(t->ctx) == step)
        return -EINVAL;
    return setsockopt(lurk_tcp_fd(t->tcp), level, name, v, len) == 0 ? 0 : -errno;
}

const char *lurk_tls_cipher_name(enum lurk_tls_cipher c)
{
    return c == LURK_TLS_AES_128_GCM ? "AES-128-GCM" : c == LURK_TLS_AES_256_GCM ? "AES-256-GCM"
                                                                                 : "CHACHA20-POLY1305";
}

void lurk_ktls_setup(struct lurk_tls *t, const struct lurk_tls_dir_keys *own,
                     const struct lurk_tls_dir_keys *peer, uint64_t seq)
{
    union {
        struct tls12_crypto_info_aes_gcm_256 a;
        struct tls12_crypto_info_chacha20_poly1305 c;
    } info;
    int rc, len;

    if (lurk_buf_len(lurk_tcp_rbuf(t->tcp)) || mbedtls_ssl_check_pending(&t->ssl)) {
        snprintf(t->fallback, sizeof t->fallback, "records already read past the handshake");
        return;
    }
    rc = ktls_setsockopt(t, 1, SOL_TCP, TCP_ULP, "tls", sizeof "tls");
    if (rc < 0) {
        snprintf(t->fallback, sizeof t->fallback, "kernel refused the tls ULP (%s)%s", lurk_errname(rc),
                 rc == -ENOENT ? ": no kTLS in this kernel (CONFIG_TLS) or module tls not loaded" : "");
        return;
    }
    /* RX first: if it fails nothing has changed yet. */
    len = lurk_ktls_info(t->version, t->cipher, peer, seq, &info, sizeof info);
    rc = len < 0 ? len : ktls_setsockopt(t, 2, SOL_TLS, TLS_RX, &info, (socklen_t)len);
    if (rc == 0)
        t->ktls_rx = true;
    else
        snprintf(t->fallback, sizeof t->fallback, "kernel refused TLS_RX for %s (%s)",
                 lurk_tls_cipher_name(t->cipher), lurk_errname(rc));
    len = lurk_ktls_info(t->version, t->cipher, own, seq, &info, sizeof info);
    rc = len < 0 ? len : ktls_setsockopt(t, 3, SOL_TLS, TLS_TX, &info, (socklen_t)len);
    if (rc == 0)
        t->ktls_tx = true;
    else
        snprintf(t->fallback + strlen(t->fallback), sizeof t->fallback - strlen(t->fallback),
                 "%skernel refused TLS_TX for %s (%s)", t->fallback[0] ? "; " : "",
                 lurk_tls_cipher_name(t->cipher), lurk_errname(rc));
    mbedtls_platform_zeroize(&info, sizeof info);
    if (t->ktls_tx || t->ktls_rx)
        t->stream.ops = &ktls_stream_ops;
}

/* ---- reading ---- */

static void rx_arm(struct lurk_tls *t);

static void rx_done(void *arg, int res)
{
    struct lurk_tls *t = arg;
    struct cmsghdr *cm = (struct cmsghdr *)t->cbuf.buf;
    unsigned char type = 23;
    const unsigned char *p;
    const char *detail = "";

    t->rx_reading = false;
    if (!t->rcb) {
        lurk_tls_put(t);
        return;
    }
    if (res < 0) {
        /* Named by the alert userspace records would give (record.h). */
        if (res == -EBADMSG)
            res = lurk_tls_fail(t, "a TLS record from the server at %s failed authentication (bad_record_mac: "
                                "corrupted or tampered with on the way; kernel TLS said EBADMSG)",
                                lurk_tcp_name(t->tcp));
        else if (res == -EMSGSIZE)
            res = lurk_tls_fail(t, "the server at %s sent a TLS record over the size limit (record_overflow; "
                                "kernel TLS said EMSGSIZE)", lurk_tcp_name(t->tcp));
        else if (res == -EINVAL)        /* the header's version is not 0x0303 */
            res = lurk_tls_fail(t, "a TLS record from the server at %s failed authentication (bad_record_mac: "
                                "its header was altered; kernel TLS said EINVAL)", lurk_tcp_name(t->tcp));
        else if (res == -EIO)
            res = lurk_tls_fail(t, "%s", "kernel TLS: unreadable record (EIO)");
        else if (res == -ECANCELED && t->state == S_CLOSED)
            res = -LURK_ECLOSED;
        lurk_tls_read_finish(t, res);
        lurk_tls_put(t);
        return;
    }
    if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
        type = *CMSG_DATA(cm);
    p = (const unsigned char *)lurk_buf_tail(&t->rbuf);
    switch (lurk_tls_record_action(type, p, (size_t)res, &detail)) {
    case LURK_TLS_RX_DATA:
        if (res > 0)
            lurk_buf_commit(&t->rbuf, (size_t)res);
        else
            t->stream.cut = 1;        /* TCP ended without close_notify */
        lurk_tls_read_finish(t, res);
        break;
    case LURK_TLS_RX_CLOSE:
        lurk_tls_read_finish(t, 0);   /* close_notify: stop reading now */
        break;
    case LURK_TLS_RX_SKIP:
        /* NewSessionTicket(s): kept for resumption; then the next record. */
        for (size_t off = 0; off + 4 <= (size_t)res && p[off] == 4;) {
            size_t mlen = (size_t)p[off + 1] << 16 | (size_t)p[off + 2] << 8 | p[off + 3];

            if (off + 4 + mlen > (size_t)res)
                break;
            lurk_tls_ticket(t, p + off + 4, mlen);
            off += 4 + mlen;
        }
        rx_arm(t);
        break;
    case LURK_TLS_RX_ALERT:
        lurk_tls_read_finish(t, lurk_tls_fail(t, "the server sent TLS alert %s", detail));
        break;
    case LURK_TLS_RX_FAIL:
        lurk_tls_read_finish(t, lurk_tls_fail(t, "%s", detail));
        break;
    }
    lurk_tls_put(t);
}

/* One recvmsg into the free room of the plaintext buffer; its completion
 * finishes the read (or arms the next one, for a skipped record). */
static void rx_arm(struct lurk_tls *t)
{
    int rc;

    if (lurk_buf_reserve(&t->rbuf, READ_ROOM) < 0) {
        lurk_tls_read_finish(t, -ENOMEM);
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
    t->refs++;
    t->rx_reading = true;
    rc = lurk_tcp_recvmsg(t->tcp, &t->msg, t->rdeadline, rx_done, t);
    if (rc < 0) {
        t->rx_reading = false;
        t->refs--;
        lurk_tls_read_finish(t, rc);
    }
}

static int ktls_read(struct lurk_stream *st, size_t room, int64_t deadline_ns, lurk_done_cb *cb, void *arg)
{
    struct lurk_tls *t = (struct lurk_tls *)st;
    int rc = lurk_tls_read_begin(t, deadline_ns, cb, arg);

    (void)room;
    if (rc > 0 && t->ktls_rx)
        rx_arm(t);
    else if (rc > 0)
        lurk_tls_user_read(t);
    return rc < 0 ? rc : 0;
}

/* ---- writing ---- */

static int ktls_write(struct lurk_stream *st, const void *p, size_t len, int64_t deadline_ns,
                      lurk_done_cb *cb, void *arg)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    if (t->state != S_OPEN)
        return t->state == S_CLOSED ? -LURK_ECLOSED : -ENOTCONN;
    if (t->ktls_tx)                   /* the kernel encrypts: a plain TCP send */
        return lurk_tcp_write(t->tcp, p, len, deadline_ns, cb, arg);
    return lurk_tls_user_write(t, p, len, deadline_ns, cb, arg);
}

/* ---- cancel and close ---- */

static void ktls_cancel(struct lurk_stream *st, int which)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    if ((which & LURK_STREAM_READ) && (t->rx_reading || t->raw_reading))
        lurk_tcp_cancel(t->tcp, LURK_TCP_READ);
    if (which & LURK_STREAM_WRITE)
        lurk_tcp_cancel(t->tcp, LURK_TCP_WRITE);
}

static void cn_done(void *arg, int res)
{
    struct lurk_tls *t = arg;

    (void)res;
    lurk_tcp_close(t->tcp);
    lurk_tls_put(t);
}

/* close_notify on a kTLS TX socket: a one-record sendmsg of type 21, in the
 * write slot, so only when no send is in flight. Returns 0 when it went out
 * (cn_done closes TCP), < 0 when it could not. */
static int send_close_notify(struct lurk_tls *t)
{
    struct cmsghdr *cm;
    int rc;

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
    t->refs++;
    rc = lurk_tcp_sendmsg(t->tcp, &t->cn_msg, lurk_now_ns() + 1000000000LL, cn_done, t);
    if (rc < 0)
        t->refs--;
    return rc;
}

static void ktls_close(struct lurk_stream *st)
{
    struct lurk_tls *t = (struct lurk_tls *)st;

    if (t->state == S_CLOSED)
        return;
    t->state = S_CLOSED;
    t->stream.open = 0;
    ktls_cancel(st, LURK_STREAM_READ);
    if (!t->ktls_tx) {
        lurk_tls_user_close(t);
        return;
    }
    /* close_notify must be the last record: with a send in flight (another
     * task writing), the stream is cut instead. */
    if (lurk_tcp_writing(t->tcp) || send_close_notify(t) < 0)
        lurk_tcp_close(t->tcp);
}

static const struct lurk_stream_ops ktls_stream_ops = { ktls_read, ktls_write, ktls_cancel, ktls_close, NULL };
