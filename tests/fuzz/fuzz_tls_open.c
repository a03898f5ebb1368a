/*
 * fuzz_tls_open.c - lurk's record opener (src/tls/record.c), the code that
 * reads whatever a peer sends after the handshake.
 *
 * Input: one byte choosing version x cipher (6 pairs), two bytes choosing a
 * bit to flip, then bytes used twice:
 * - as a stream of records from a peer, each copied into a buffer of
 *   exactly its length (so ASan sees a read past it) and opened in place:
 *   every result is a plaintext no longer than the limit and the record,
 *   with a type TLS allows, or one of the four alerts the opener names;
 * - as plaintext (up to 2^14 bytes) sealed by one side and opened by the
 *   other: the same type and bytes come back; with the chosen bit flipped
 *   anywhere in the record it fails (bad_record_mac, or for the header's
 *   length and type bytes the size check).
 */
#include "fuzz.h"
#include "tls/record.h"

static void keys(struct lurk_tls_rec *r, unsigned sel)
{
    static const enum lurk_tls_cipher ciphers[] = { LURK_TLS_AES_128_GCM, LURK_TLS_AES_256_GCM,
                                                    LURK_TLS_CHACHA20_POLY1305 };
    struct lurk_tls_dir_keys k;
    uint16_t version = sel < 3 ? 0x0303 : 0x0304;
    enum lurk_tls_cipher c = ciphers[sel % 3];

    memset(&k, 0, sizeof k);
    k.key_len = c == LURK_TLS_AES_128_GCM ? 16 : 32;
    memset(k.key, 0x5a, k.key_len);
    k.iv_len = version == 0x0303 && c != LURK_TLS_CHACHA20_POLY1305 ? 4 : 12;
    memset(k.iv, 0xa5, k.iv_len);
    FUZZ_CHECK(lurk_tls_rec_init(r, version, c, &k, 1, NULL, 0) == 0);
}

static bool named(int rc)
{
    return rc == -LURK_TLS_ALERT_BAD_RECORD_MAC || rc == -LURK_TLS_ALERT_RECORD_OVERFLOW ||
           rc == -LURK_TLS_ALERT_UNEXPECTED_MESSAGE || rc == -LURK_TLS_ALERT_DECODE_ERROR;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lurk_tls_rec r, w;
    unsigned sel, type;
    size_t flip, off, n;
    unsigned char *rec;
    int len, got;

    if (size < 3)
        return 0;
    sel = data[0] % 6;
    flip = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;

    /* A peer's stream of records. */
    keys(&r, sel);
    for (off = 0; size - off >= LURK_TLS_HEADER;) {
        len = lurk_tls_rec_size(&r, data + off);
        if (len < 0) {
            FUZZ_CHECK(len == -LURK_TLS_ALERT_RECORD_OVERFLOW || len == -LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
            break;
        }
        FUZZ_CHECK(len >= LURK_TLS_HEADER && len <= LURK_TLS_MAX_RECORD);
        if ((size_t)len > size - off)
            break;
        rec = malloc((size_t)len);
        FUZZ_CHECK(rec != NULL);
        memcpy(rec, data + off, (size_t)len);
        got = lurk_tls_rec_open(&r, rec, (size_t)len, rec + lurk_tls_rec_body(&r), &type);
        FUZZ_CHECK(got >= 0 ? got <= LURK_TLS_MAX_PLAIN && (size_t)got + lurk_tls_rec_body(&r) + 16 <= (size_t)len &&
                                  type >= 21 && type <= 23
                            : named(got));
        free(rec);
        off += (size_t)len;
    }

    /* Seal, open, and tamper. */
    n = size > LURK_TLS_MAX_PLAIN ? LURK_TLS_MAX_PLAIN : size;
    keys(&w, sel);
    keys(&r, sel);
    rec = malloc(n + LURK_TLS_MAX_OVERHEAD);
    FUZZ_CHECK(rec != NULL);
    type = n && w.version == 0x0303 ? 21 + data[0] % 3 : 23;
    len = lurk_tls_rec_seal(&w, type, data, n, rec);
    FUZZ_CHECK(len > 0 && (size_t)len == n + lurk_tls_rec_overhead(&w));
    {
        unsigned char *copy = malloc((size_t)len);
        struct lurk_tls_rec r2 = r;
        size_t bit = flip % ((size_t)len * 8);

        FUZZ_CHECK(copy != NULL);
        memcpy(copy, rec, (size_t)len);
        copy[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        got = lurk_tls_rec_size(&r2, copy);
        if (bit / 8 == 0 || bit / 8 == 3 || bit / 8 == 4)
            FUZZ_CHECK(got != len || lurk_tls_rec_open(&r2, copy, (size_t)len, copy + lurk_tls_rec_body(&r2),
                                                      &type) == -LURK_TLS_ALERT_BAD_RECORD_MAC);
        else
            FUZZ_CHECK(lurk_tls_rec_open(&r2, copy, (size_t)len, copy + lurk_tls_rec_body(&r2), &type) ==
                       -LURK_TLS_ALERT_BAD_RECORD_MAC);
        free(copy);
    }
    {
        unsigned want = type;

        got = lurk_tls_rec_open(&r, rec, (size_t)len, rec + lurk_tls_rec_body(&r), &type);
        FUZZ_CHECK(got == (int)n && type == want);
        FUZZ_CHECK(n == 0 || memcmp(rec + lurk_tls_rec_body(&r), data, n) == 0);
        FUZZ_CHECK(r.seq == 2 && w.seq == 2);
    }
    free(rec);
    return 0;
}
