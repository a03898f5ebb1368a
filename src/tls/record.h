/*
 * record.h - TLS records after the handshake: lurk's own record protection
 * (record.c, nettle's AEADs), and what a kernel TLS reader does with each
 * record it receives.
 *
 * Record protection: one struct lurk_tls_rec per direction, holding that
 * direction's AEAD key, IV and sequence number (and, for TLS 1.3, its
 * traffic secret, for KeyUpdate). Sealing and opening are pure functions of
 * that state and the bytes: no sockets, no connection, no role (the caller
 * gives each direction its own keys, so a client and a server use the same
 * code). Failures are named by the alert they call for: an open that fails
 * returns -20 (bad_record_mac), -22 (record_overflow), -10
 * (unexpected_message) or -50 (decode_error).
 *
 * The kernel reader's part:
 * With kTLS RX the kernel decrypts records itself and hands application
 * data (type 23) up as plain bytes; any other record arrives alone, one per
 * recvmsg, with its type in a TLS_GET_RECORD_TYPE control message. tls.c's
 * receive completion reads that type and then asks lurk_tls_record_action()
 * what the record means. The decision is kept here, apart from the I/O, as
 * a pure function of the record (no connection state, no system calls), so
 * it can be tested and fuzzed on its own (tests/fuzz/fuzz_tls_records.c).
 *
 * What it deliberately does not do: follow a TLS 1.3 KeyUpdate (kernels
 * without rekey support cannot take new keys, so the read fails and says
 * why), or look past the first handshake message of a record.
 *
 * Header-only: the function is small and has two users, tls.c and the
 * fuzz target.
 */
#ifndef LURK_TLS_RECORD_H
#define LURK_TLS_RECORD_H

#include "tls/keys.h"

#include <nettle/chacha-poly1305.h>
#include <nettle/gcm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    LURK_TLS_ALERT_CLOSE_NOTIFY = 0,
    LURK_TLS_ALERT_UNEXPECTED_MESSAGE = 10,
    LURK_TLS_ALERT_BAD_RECORD_MAC = 20,
    LURK_TLS_ALERT_RECORD_OVERFLOW = 22,
    LURK_TLS_ALERT_DECODE_ERROR = 50,
    LURK_TLS_ALERT_INTERNAL_ERROR = 80,
};

#define LURK_TLS_MAX_PLAIN 16384          /* 2^14 (RFC 8446 section 5.1, RFC 5246 6.2.1) */
#define LURK_TLS_HEADER 5
/* The most a sealed record adds to its plaintext: header, TLS 1.2 GCM's
 * explicit nonce or TLS 1.3's inner type, and the tag. */
#define LURK_TLS_MAX_OVERHEAD (LURK_TLS_HEADER + 8 + 16)
/* The largest record lurk accepts: TLS 1.2 allows 2^14 + 2048 bytes of
 * ciphertext (RFC 5246 section 6.2.3), TLS 1.3 2^14 + 256 (RFC 8446 5.2). */
#define LURK_TLS_MAX_RECORD (LURK_TLS_HEADER + LURK_TLS_MAX_PLAIN + 2048)

/* One direction's record protection. */
struct lurk_tls_rec {
    union {
        struct gcm_aes128_ctx g128;
        struct gcm_aes256_ctx g256;
        struct chacha_poly1305_ctx cp;
    } aead;
    uint64_t seq;                     /* the next record's sequence number */
    unsigned char iv[12];             /* TLS 1.2 GCM: the 4-byte salt, then zeros */
    uint16_t version;                 /* 0x0303 or 0x0304 */
    enum lurk_tls_cipher cipher;
    bool seq_spent;                   /* 2^64 records used: the next one is fatal */
    unsigned char secret[48];         /* TLS 1.3: this direction's traffic secret */
    size_t secret_len;
};

/*
 * Sets up one direction: version 0x0303 or 0x0304, the direction's key and
 * IV (keys.h), the next sequence number, and for TLS 1.3 the traffic secret
 * the keys came from (KeyUpdate derives the next one; NULL: no KeyUpdate).
 * Returns 0 or -EINVAL.
 */
int lurk_tls_rec_init(struct lurk_tls_rec *r, uint16_t version, enum lurk_tls_cipher cipher,
                      const struct lurk_tls_dir_keys *k, uint64_t seq,
                      const unsigned char *secret, size_t secret_len);

/* Wipes the keys. */
void lurk_tls_rec_wipe(struct lurk_tls_rec *r);

/* What sealing len bytes adds (header, nonce or inner type, tag). */
size_t lurk_tls_rec_overhead(const struct lurk_tls_rec *r);

/*
 * Seals one record of content type `type` (21, 22, 23) holding in[0..len),
 * len <= LURK_TLS_MAX_PLAIN, into out (room for len +
 * lurk_tls_rec_overhead() bytes; in and out must not overlap). Returns the
 * record's length, or -LURK_TLS_ALERT_INTERNAL_ERROR when the sequence
 * numbers are spent (RFC 8446 section 5.3: rekey or close instead).
 */
int lurk_tls_rec_seal(struct lurk_tls_rec *r, unsigned type, const void *in, size_t len, unsigned char *out);

/*
 * The length of the whole record whose header starts at p (have >= 5
 * bytes there), or -record_overflow for a length over the limit, or
 * -unexpected_message for a record type that cannot come after the
 * handshake (change_cipher_spec, or not a TLS type).
 */
int lurk_tls_rec_size(const struct lurk_tls_rec *r, const unsigned char *p);

/*
 * Opens one whole record rec[0..len) (len as lurk_tls_rec_size said): the
 * plaintext goes to out, which is either rec + lurk_tls_rec_body(r) (in
 * place) or a buffer not overlapping rec, with room for len bytes. Sets
 * *type to the content type (TLS 1.3: the inner one). Returns the
 * plaintext's length, or minus the alert the failure calls for; the
 * sequence number advances only on success. Nothing in out may be used
 * after a failure.
 */
int lurk_tls_rec_open(struct lurk_tls_rec *r, const unsigned char *rec, size_t len, unsigned char *out,
                      unsigned *type);

/* Where the ciphertext starts in a record (after the header, and TLS 1.2
 * GCM's explicit nonce). */
size_t lurk_tls_rec_body(const struct lurk_tls_rec *r);

/*
 * TLS 1.3 KeyUpdate (RFC 8446 section 7.2): the next traffic secret,
 * HKDF-Expand-Label(secret, "traffic upd", "", Hash.length), and its key and
 * IV, sequence number 0. Returns 0 or -LURK_ETLS (no secret kept).
 */
int lurk_tls_rec_update(struct lurk_tls_rec *r);

enum lurk_tls_rx_action {
    LURK_TLS_RX_DATA,                 /* application data, or len 0: the TCP stream ended */
    LURK_TLS_RX_CLOSE,                /* close_notify: the end of the stream */
    LURK_TLS_RX_SKIP,                 /* a TLS 1.3 NewSessionTicket: kept for resumption (ktls.c), read on */
    LURK_TLS_RX_ALERT,                /* another alert: fail the read; *detail names it */
    LURK_TLS_RX_FAIL,                 /* fail the read; *detail says why */
};

/* The name of a TLS alert description (RFC 8446 section 6), for messages. */
static inline const char *lurk_tls_alert_name(unsigned desc)
{
    switch (desc) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "alert";
    }
}

/*
 * Decides what a record read from a kTLS socket asks of the reader: type
 * is the record type (23 when no control message came), p[0..len) the
 * record's plaintext as received (len 0: the peer closed TCP). Reads only
 * p[0..len). Sets *detail for LURK_TLS_RX_ALERT (the alert's name, "?" if
 * the alert is cut short) and LURK_TLS_RX_FAIL (a sentence), to a static
 * string; leaves it alone otherwise.
 */
static inline enum lurk_tls_rx_action lurk_tls_record_action(unsigned type, const unsigned char *p,
                                                             size_t len, const char **detail)
{
    if (len == 0 || type == 23)
        return LURK_TLS_RX_DATA;
    if (type == 21) {                 /* alert: level, description */
        if (len >= 2 && p[1] == 0)
            return LURK_TLS_RX_CLOSE;
        *detail = len >= 2 ? lurk_tls_alert_name(p[1]) : "?";
        return LURK_TLS_RX_ALERT;
    }
    if (type == 22 && p[0] == 4)      /* handshake: msg_type first */
        return LURK_TLS_RX_SKIP;
    if (type == 22 && p[0] == 24) {
        *detail = "the server sent a TLS 1.3 KeyUpdate, which kernel TLS on this kernel "
                  "cannot follow (no rekey support)";
        return LURK_TLS_RX_FAIL;
    }
    *detail = "unexpected TLS record on a kernel TLS socket";
    return LURK_TLS_RX_FAIL;
}

#endif
