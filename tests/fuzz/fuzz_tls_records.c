/*
 * fuzz_tls_records.c - the decision a kernel TLS reader makes for each
 * record (src/tls/record.h, used by tls.c's receive completion).
 *
 * Input: the record type (one byte, as the TLS_GET_RECORD_TYPE control
 * message carries it), then the record's plaintext. The plaintext is
 * passed in a buffer of exactly its length, so ASan catches a read past it,
 * and the decision must never read it at all when it is empty.
 *
 * Checked against RFC 8446 section 5 (record types) and 6 (alerts):
 * application data and the end of the stream are delivered as data, and
 * nothing else is; close_notify (alert description 0) ends the stream; any
 * other alert, even a cut-short one, fails the read and is named; a
 * NewSessionTicket is skipped; everything else (KeyUpdate, other handshake
 * messages, change_cipher_spec, unknown types) fails with a reason.
 */
#include "fuzz.h"
#include "tls/record.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *detail = NULL;
    enum lurk_tls_rx_action a;
    unsigned type;
    size_t len;
    unsigned char *p;

    if (size < 1)
        return 0;
    type = data[0];
    len = size - 1;
    /* NULL for an empty record: the decision must not look. */
    p = len ? malloc(len) : NULL;
    FUZZ_CHECK(len == 0 || p != NULL);
    if (len)
        memcpy(p, data + 1, len);

    a = lurk_tls_record_action(type, p, len, &detail);
    switch (a) {
    case LURK_TLS_RX_DATA:
        FUZZ_CHECK(len == 0 || type == 23);
        FUZZ_CHECK(detail == NULL);
        break;
    case LURK_TLS_RX_CLOSE:
        FUZZ_CHECK(type == 21 && len >= 2 && p[1] == 0);
        FUZZ_CHECK(detail == NULL);
        break;
    case LURK_TLS_RX_SKIP:
        FUZZ_CHECK(type == 22 && len >= 1 && p[0] == 4);
        FUZZ_CHECK(detail == NULL);
        break;
    case LURK_TLS_RX_ALERT:
        FUZZ_CHECK(type == 21 && len >= 1 && (len < 2 || p[1] != 0));
        FUZZ_CHECK(detail != NULL && detail[0] != '\0');
        FUZZ_CHECK(len >= 2 || strcmp(detail, "?") == 0);
        break;
    case LURK_TLS_RX_FAIL:
        FUZZ_CHECK(len >= 1 && type != 23 && type != 21);
        FUZZ_CHECK(!(type == 22 && p[0] == 4));
        FUZZ_CHECK(detail != NULL && strlen(detail) > 10);
        break;
    default:
        FUZZ_CHECK(!"unknown action");
    }
    /* Every non-data record is acted on, never passed to the reader. */
    FUZZ_CHECK((a == LURK_TLS_RX_DATA) == (len == 0 || type == 23));
    free(p);
    return 0;
}
