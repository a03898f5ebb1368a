/*
 * session.h - the TLS connection object, shared by the two files that carry
 * its records: tls.c (the handshake, and records in userspace through
 * mbedTLS) and ktls.c (records through the kernel once it has the keys).
 *
 * Internal to src/tls. The stream view's operations are tls.c's until
 * lurk_ktls_setup() hands a direction to the kernel; then they are ktls.c's,
 * which pass a direction the kernel did not take back to tls.c's userspace
 * functions.
 *
 * Lifetime: one reference for the owner, one per operation in flight that
 * points at the object (raw reads and sends, kTLS receives and the kTLS
 * close_notify).
 */
#ifndef LURK_TLS_SESSION_H
#define LURK_TLS_SESSION_H

#include "tls/ctx.h"
#include "tls/keys.h"
#include "tls/tls.h"
#include "tls/verify.h"
#include "core/buf.h"

#include <mbedtls/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum lurk_tls_state { S_NEW, S_HANDSHAKE, S_FLUSH, S_OPEN, S_FAILED, S_CLOSED };

struct lurk_tls_rec;

struct lurk_tls {
    struct lurk_stream stream;        /* first: the stream view */
    struct lurk_tls_ctx *ctx;
    struct lurk_tcp *tcp;
    struct lurk_loop *loop;
    int refs;
    enum lurk_tls_state state;
    bool closing;                     /* closed while the handshake ran */
    enum lurk_ktls_policy policy;
    bool is_server;                   /* the role: which direction's keys are ours */

    /* handshake state, freed with mbedTLS's context once the records are
     * lurk's or the kernel's (about 6 KiB an idle connection need not keep) */
    struct lurk_tls_conf *conf;
    struct lurk_tls_verify *verify;
    mbedtls_ssl_context ssl;

    /* handshake */
    int64_t hs_deadline;
    lurk_done_cb *hs_cb;
    void *hs_arg;
    size_t want;                      /* bytes mbedTLS last asked for */
    bool raw_reading;
    unsigned char first[64];          /* the server's first bytes, to tell */
    size_t nfirst;                    /* a peer that does not speak TLS */

    /* output queue (userspace records) */
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

    /* writer (userspace records) */
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
    const char *suite_name;           /* kept across lurk_tls_release_mbedtls() */
    char *alpn;                       /* a copy, likewise */
    bool rx_reading;                  /* a kTLS recvmsg is in flight */
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

    /* the server role (lurk_tls_new_server): its listener's configuration
     * instead of conf, and the name the client asked for */
    struct lurk_tls_server *srv;
    char sni[256];

    /* lurk's record layer (record.c), for each direction the kernel does
     * not carry; both NULL while mbedTLS carries the records (the
     * handshake, or a suite record.c does not do) */
    struct lurk_tls_rec *rx, *tx;
    struct lurk_buf hs;               /* a post-handshake message split over records */
    bool raw_eof;                     /* the TCP stream ended */
    size_t raw_room;                  /* room the next ciphertext read asks for */
    bool rx_closed;                   /* close_notify read */
    int rx_err;                       /* the read side failed for good (sticky) */
    bool fatal;                       /* a fatal alert was sent or read: no more writes */

    /* resumption (ctx.c's cache) */
    char cache_key[600];              /* origin and options; "" when sessions are not kept */
    bool offered, resumed;            /* a cached session was offered; the server took it */
    unsigned char offered_master[48]; /* TLS 1.2: a resumed session keeps its master secret */
    mbedtls_ssl_session *tmpl;        /* TLS 1.3: the session a ticket completes */
    unsigned char res_secret[48];     /* TLS 1.3: resumption_master_secret */

    int64_t t_start, t_done;          /* handshake stamps */
    char fallback[200];
    char errmsg[400];
};

/* Sets errmsg from a printf format and returns -LURK_ETLS. */
int lurk_tls_fail(struct lurk_tls *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drops a reference; the last one frees the object. */
void lurk_tls_put(struct lurk_tls *t);

/* tls.c's userspace record path, for a direction the kernel did not take. */
void lurk_tls_user_read(struct lurk_tls *t);   /* the reader set by lurk_tls_read_begin */
int lurk_tls_user_write(struct lurk_tls *t, const void *p, size_t len, int64_t deadline_ns,
                        lurk_done_cb *cb, void *arg);
void lurk_tls_user_close(struct lurk_tls *t);

/*
 * The checks every read of the stream starts with (one reader, an open
 * stream, nothing after the end). Returns 1 when the read goes on (the
 * reader and its deadline recorded), 0 when it ended at once (cb ran with
 * 0: end of stream), or a negative code (nothing started).
 */
int lurk_tls_read_begin(struct lurk_tls *t, int64_t deadline_ns, lurk_done_cb *cb, void *arg);

/* Calls the reader's callback (after which another read may start). */
void lurk_tls_read_finish(struct lurk_tls *t, int res);

/*
 * A TLS 1.3 NewSessionTicket's body (after its 4-byte header), read after
 * the handshake by lurk's record layer or from a kTLS socket: the first one
 * completes the session kept for resumption; later ones are ignored.
 * Malformed tickets are ignored too (resumption is an optimisation).
 */
void lurk_tls_ticket(struct lurk_tls *t, const unsigned char *p, size_t len);

/* Frees mbedTLS's state once the kernel carries both directions. */
void lurk_tls_release_mbedtls(struct lurk_tls *t);

/*
 * ktls.c: tries to hand both directions to the kernel after the handshake,
 * every handshake byte having been sent: own the keys we send with, peer
 * the keys we receive with, seq both directions' next sequence number.
 * Sets t->ktls_rx / ktls_tx for what the kernel took (the reason for what
 * it did not in t->fallback) and swaps the stream's operations to ktls.c's
 * when it took a direction. The caller gives lurk's record layer the rest.
 */
void lurk_ktls_setup(struct lurk_tls *t, const struct lurk_tls_dir_keys *own,
                     const struct lurk_tls_dir_keys *peer, uint64_t seq);

/* "AES-128-GCM" etc., for messages. */
const char *lurk_tls_cipher_name(enum lurk_tls_cipher c);

#endif
