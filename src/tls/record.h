/*
 * record.h - what a kernel TLS reader does with each record it receives.
 *
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

#include <stddef.h>

enum lurk_tls_rx_action {
    LURK_TLS_RX_DATA,                 /* application data, or len 0: the TCP stream ended */
    LURK_TLS_RX_CLOSE,                /* close_notify: the end of the stream */
    LURK_TLS_RX_SKIP,                 /* a TLS 1.3 NewSessionTicket: not needed, read on */
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
