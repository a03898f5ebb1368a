/*
 * test_tls_record: lurk's record protection (src/tls/record.c). RFC 8448
 * section 3's protected records open and re-seal byte for byte; TLS 1.2
 * records agree with an independent AEAD computation (mbedTLS's GCM and
 * ChaCha20-Poly1305, nonce and additional data built here from RFC 5246,
 * 5288 and 7905); TLS 1.3 padding; every tampered byte, a truncated or
 * oversized record, and spent sequence numbers fail with the alert due.
 *
 * The RFC 8448 records (https://www.rfc-editor.org/rfc/rfc8448#section-3):
 * "{client} send application_data record", "{server} send application_data
 * record" (server seq 1: its NewSessionTicket was 0), the two close_notify
 * alert records, and the client's Finished under its handshake keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tls/record.h"
#include "core/error.h"

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define C_AP_KEY "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"
#define C_AP_IV "5b 78 92 3d ee 08 57 90 33 e5 23 d9"
#define S_AP_KEY "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"
#define S_AP_IV "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"
#define C_HS_KEY "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01"
#define C_HS_IV "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f"

#define C_APP_REC "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea " \
                  "42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b " \
                  "62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4"
#define S_APP_REC "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc " \
                  "32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 " \
                  "fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d"
#define C_ALERT_REC "17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3"
#define S_ALERT_REC "17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9"
#define C_FIN_REC "17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0 " \
                  "51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c " \
                  "ae ac ab 68 67 d7 26 c4 05 46"

static size_t unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t i = 0;
    int hi = -1;

    for (; *s; s++) {
        int v;

        if (*s == ' ')
            continue;
        v = *s >= 'a' ? *s - 'a' + 10 : *s - '0';
        if (hi < 0) {
            hi = v;
            continue;
        }
        assert_true(i < cap);
        out[i++] = (unsigned char)(hi << 4 | v);
        hi = -1;
    }
    return i;
}

static void keys13(struct lurk_tls_dir_keys *k, const char *key, const char *iv)
{
    memset(k, 0, sizeof *k);
    k->key_len = unhex(key, k->key, sizeof k->key);
    k->iv_len = unhex(iv, k->iv, sizeof k->iv);
}

/* Opens rec (a copy, in place) with the given keys at seq, checks type and
 * plaintext, then seals the plaintext again at seq: the same bytes. */
static void vector(const char *key, const char *iv, uint64_t seq, const char *rechex, unsigned want_type,
                   const unsigned char *want, size_t want_cmp, size_t want_len)
{
    struct lurk_tls_dir_keys k;
    struct lurk_tls_rec r;
    unsigned char rec[128], copy[128], again[128 + LURK_TLS_MAX_OVERHEAD];
    size_t len = unhex(rechex, rec, sizeof rec);
    unsigned type = 0;
    int n;

    keys13(&k, key, iv);
    memcpy(copy, rec, len);
    assert_int_equal(lurk_tls_rec_init(&r, 0x0304, LURK_TLS_AES_128_GCM, &k, seq, NULL, 0), 0);
    assert_int_equal(lurk_tls_rec_size(&r, copy), (int)len);
    n = lurk_tls_rec_open(&r, copy, len, copy + lurk_tls_rec_body(&r), &type);
    assert_int_equal(n, (int)want_len);
    assert_int_equal(type, want_type);
    assert_memory_equal(copy + LURK_TLS_HEADER, want, want_cmp);
    assert_int_equal(r.seq, seq + 1);

    assert_int_equal(lurk_tls_rec_init(&r, 0x0304, LURK_TLS_AES_128_GCM, &k, seq, NULL, 0), 0);
    assert_int_equal(lurk_tls_rec_seal(&r, type, copy + LURK_TLS_HEADER, (size_t)n, again), (int)len);
    assert_memory_equal(again, rec, len);
}

static void rfc8448_records(void **state)
{
    unsigned char data[50], alert[2] = { 1, 0 };

    (void)state;
    for (int i = 0; i < 50; i++)
        data[i] = (unsigned char)i;
    vector(C_AP_KEY, C_AP_IV, 0, C_APP_REC, 23, data, sizeof data, sizeof data);
    vector(S_AP_KEY, S_AP_IV, 1, S_APP_REC, 23, data, sizeof data, sizeof data);
    vector(C_AP_KEY, C_AP_IV, 1, C_ALERT_REC, 21, alert, sizeof alert, sizeof alert);
    vector(S_AP_KEY, S_AP_IV, 2, S_ALERT_REC, 21, alert, sizeof alert, sizeof alert);
    /* Finished: msg_type 20, length 32, then verify_data */
    vector(C_HS_KEY, C_HS_IV, 0, C_FIN_REC, 22, (const unsigned char *)"\x14\x00\x00\x20", 4, 36);
}

/* Every byte of a protected record flipped, one at a time: the header
 * (covered by the additional data), the ciphertext and the tag; then a
 * record cut short (its length fixed up) and one over the size limit. */
static void tampering(void **state)
{
    struct lurk_tls_dir_keys k;
    struct lurk_tls_rec r;
    unsigned char rec[128], copy[128];
    size_t len = unhex(C_APP_REC, rec, sizeof rec);
    unsigned type;

    (void)state;
    keys13(&k, C_AP_KEY, C_AP_IV);
    for (size_t i = 1; i < len; i++) {
        memcpy(copy, rec, len);
        copy[i] ^= 0x01;
        assert_int_equal(lurk_tls_rec_init(&r, 0x0304, LURK_TLS_AES_128_GCM, &k, 0, NULL, 0), 0);
        if (i == 3 || i == 4) {       /* the length: no longer this record */
            assert_int_not_equal(lurk_tls_rec_size(&r, copy), (int)len);
            continue;
        }
        assert_int_equal(lurk_tls_rec_open(&r, copy, len, copy + 5, &type), -LURK_TLS_ALERT_BAD_RECORD_MAC);
        assert_int_equal(r.seq, 0);   /* no advance on failure */
    }
    /* the outer type of a TLS 1.3 record is always application_data:
     * another TLS type fails authentication, change_cipher_spec or a
     * non-TLS type is refused at the header */
    memcpy(copy, rec, len);
    copy[0] = 22;
    assert_int_equal(lurk_tls_rec_open(&r, copy, len, copy + 5, &type), -LURK_TLS_ALERT_BAD_RECORD_MAC);
    copy[0] = 20;
    assert_int_equal(lurk_tls_rec_size(&r, copy), -LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
    copy[0] = 99;
    assert_int_equal(lurk_tls_rec_size(&r, copy), -LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
    /* truncated: ten bytes fewer, the length saying so */
    memcpy(copy, rec, len);
    copy[4] -= 10;
    assert_int_equal(lurk_tls_rec_open(&r, copy, len - 10, copy + 5, &type), -LURK_TLS_ALERT_BAD_RECORD_MAC);
    /* shorter than a tag */
    copy[3] = 0;
    copy[4] = 15;
    assert_int_equal(lurk_tls_rec_open(&r, copy, 20, copy + 5, &type), -LURK_TLS_ALERT_BAD_RECORD_MAC);
    /* the right sequence number is still needed: seq 1 cannot open record 0 */
    memcpy(copy, rec, len);
    assert_int_equal(lurk_tls_rec_init(&r, 0x0304, LURK_TLS_AES_128_GCM, &k, 1, NULL, 0), 0);
    assert_int_equal(lurk_tls_rec_open(&r, copy, len, copy + 5, &type), -LURK_TLS_ALERT_BAD_RECORD_MAC);
    /* over the limit: 2^14 + 256 + 1 (TLS 1.3), 2^14 + 2048 + 1 (TLS 1.2) */
    copy[3] = (16384 + 257) >> 8;
    copy[4] = (16384 + 257) & 0xff;
    assert_int_equal(lurk_tls_rec_size(&r, copy), -LURK_TLS_ALERT_RECORD_OVERFLOW);
    copy[4]--;
    assert_int_equal(lurk_tls_rec_size(&r, copy), 5 + 16384 + 256);
    k.iv_len = 4;
    assert_int_equal(lurk_tls_rec_init(&r, 0x0303, LURK_TLS_AES_128_GCM, &k, 1, NULL, 0), 0);
    copy[3] = (16384 + 2049) >> 8;
    copy[4] = (16384 + 2049) & 0xff;
    assert_int_equal(lurk_tls_rec_size(&r, copy), -LURK_TLS_ALERT_RECORD_OVERFLOW);
    /* TLS 1.2: a ciphertext of more than 2^14 bytes of plaintext */
    copy[0] = 23;
    copy[3] = (16384 + 1 + 8 + 16) >> 8;
    copy[4] = (16384 + 1 + 8 + 16) & 0xff;
    {
        unsigned char *big = calloc(1, 5 + 16384 + 1 + 8 + 16);

        memcpy(big, copy, 5);
        assert_int_equal(lurk_tls_rec_open(&r, big, 5 + 16384 + 1 + 8 + 16, big + 13, &type),
                         -LURK_TLS_ALERT_RECORD_OVERFLOW);
        free(big);
    }
}

/* TLS 1.3 padding: zeros after the inner type are stripped; all zeros is
 * unexpected_message. Records made here with mbedTLS's GCM. */
static void seal_raw13(const struct lurk_tls_dir_keys *k, uint64_t seq, const unsigned char *inner, size_t n,
                       unsigned char *out)
{
    mbedtls_gcm_context g;
    unsigned char nonce[12];

    memcpy(nonce, k->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] ^= (unsigned char)(seq >> (56 - 8 * i));
    out[0] = 23;
    out[1] = 3;
    out[2] = 3;
    out[3] = (unsigned char)((n + 16) >> 8);
    out[4] = (unsigned char)(n + 16);
    mbedtls_gcm_init(&g);
    assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k->key, 128), 0);
    assert_int_equal(mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n, nonce, 12, out, 5, inner, out + 5,
                                               16, out + 5 + n), 0);
    mbedtls_gcm_free(&g);
}

static void padding13(void **state)
{
    struct lurk_tls_dir_keys k;
    struct lurk_tls_rec r;
    unsigned char inner[64] = "hello", rec[128], out[128];
    unsigned type = 0;

    (void)state;
    keys13(&k, C_AP_KEY, C_AP_IV);
    inner[5] = 23;                    /* then 20 zeros of padding */
    seal_raw13(&k, 0, inner, 26, rec);
    assert_int_equal(lurk_tls_rec_init(&r, 0x0304, LURK_TLS_AES_128_GCM, &k, 0, NULL, 0), 0);
    assert_int_equal(lurk_tls_rec_open(&r, rec, 5 + 26 + 16, out, &type), 5);
    assert_int_equal(type, 23);
    assert_memory_equal(out, "hello", 5);
    memset(inner, 0, sizeof inner);   /* no type at all */
    seal_raw13(&k, 1, inner, 26, rec);
    assert_int_equal(lurk_tls_rec_open(&r, rec, 5 + 26 + 16, out, &type), -LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
    inner[0] = 22;                    /* an empty handshake record */
    seal_raw13(&k, 2, inner, 1, rec);
    r.seq = 2;
    assert_int_equal(lurk_tls_rec_open(&r, rec, 5 + 1 + 16, out, &type), -LURK_TLS_ALERT_UNEXPECTED_MESSAGE);
}

/* TLS 1.2: lurk's records against an independent computation. GCM: nonce
 * salt || explicit (the sequence number, carried in the record); ChaCha:
 * iv XOR seq; additional data seq || type || version || length. */
static void tls12_independent(void **state)
{
    static const enum lurk_tls_cipher ciphers[] = { LURK_TLS_AES_128_GCM, LURK_TLS_AES_256_GCM,
                                                    LURK_TLS_CHACHA20_POLY1305 };

    (void)state;
    for (size_t c = 0; c < 3; c++) {
        struct lurk_tls_dir_keys k;
        struct lurk_tls_rec r, o;
        size_t lens[] = { 0, 1, 63, 64, 65, 1000, 16384 };
        bool chacha = ciphers[c] == LURK_TLS_CHACHA20_POLY1305;
        unsigned char *in = malloc(16384), *rec = malloc(16384 + 64), *want = malloc(16384 + 64);

        memset(&k, 0, sizeof k);
        k.key_len = ciphers[c] == LURK_TLS_AES_128_GCM ? 16 : 32;
        for (size_t i = 0; i < k.key_len; i++)
            k.key[i] = (unsigned char)(0x40 + i);
        k.iv_len = chacha ? 12 : 4;
        for (size_t i = 0; i < k.iv_len; i++)
            k.iv[i] = (unsigned char)(0x90 + i);
        for (size_t i = 0; i < 16384; i++)
            in[i] = (unsigned char)(i * 7);
        assert_int_equal(lurk_tls_rec_init(&r, 0x0303, ciphers[c], &k, 1, NULL, 0), 0);
        assert_int_equal(lurk_tls_rec_init(&o, 0x0303, ciphers[c], &k, 1, NULL, 0), 0);
        for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
            uint64_t seq = r.seq;
            size_t n = lens[t], body = chacha ? 5 : 13;
            unsigned char nonce[12], aad[13];
            unsigned type = 0;
            int got = lurk_tls_rec_seal(&r, 23, in, n, rec);

            assert_int_equal(got, (int)(body + n + 16));
            /* the expected record */
            want[0] = 23, want[1] = 3, want[2] = 3;
            want[3] = (unsigned char)((got - 5) >> 8), want[4] = (unsigned char)(got - 5);
            for (int i = 0; i < 8; i++)
                aad[i] = (unsigned char)(seq >> (56 - 8 * i));
            aad[8] = 23, aad[9] = 3, aad[10] = 3, aad[11] = (unsigned char)(n >> 8), aad[12] = (unsigned char)n;
            memcpy(nonce, k.iv, 12);
            if (chacha) {
                for (int i = 0; i < 8; i++)
                    nonce[4 + i] ^= aad[i];
                mbedtls_chachapoly_context cp;

                mbedtls_chachapoly_init(&cp);
                mbedtls_chachapoly_setkey(&cp, k.key);
                assert_int_equal(mbedtls_chachapoly_encrypt_and_tag(&cp, n, nonce, aad, 13, in, want + 5,
                                                                    want + 5 + n), 0);
                mbedtls_chachapoly_free(&cp);
            } else {
                mbedtls_gcm_context g;

                memcpy(nonce + 4, aad, 8);
                memcpy(want + 5, aad, 8);    /* the explicit nonce */
                mbedtls_gcm_init(&g);
                mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k.key, (unsigned)k.key_len * 8);
                assert_int_equal(mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n, nonce, 12, aad, 13, in,
                                                           want + 13, 16, want + 13 + n), 0);
                mbedtls_gcm_free(&g);
            }
            assert_memory_equal(rec, want, (size_t)got);
            /* and it opens, in place */
            assert_int_equal(lurk_tls_rec_open(&o, rec, (size_t)got, rec + body, &type), (int)n);
            assert_int_equal(type, 23);
            assert_memory_equal(rec + body, in, n);
            /* a flipped tag bit */
            if (n == 64) {
                unsigned char *copy = malloc((size_t)got);
                struct lurk_tls_rec o2 = o;

                o2.seq--;
                want[got - 1] ^= 0x80;
                memcpy(copy, want, (size_t)got);
                assert_int_equal(lurk_tls_rec_open(&o2, copy, (size_t)got, copy + body, &type),
                                 -LURK_TLS_ALERT_BAD_RECORD_MAC);
                free(copy);
            }
        }
        free(in);
        free(rec);
        free(want);
    }
}

/* The sequence number never wraps: record 2^64 - 1 is the last. */
static void sequence_spent(void **state)
{
    struct lurk_tls_dir_keys k;
    struct lurk_tls_rec r;
    unsigned char rec[64];

    (void)state;
    keys13(&k, C_AP_KEY, C_AP_IV);
    assert_int_equal(lurk_tls_rec_init(&r, 0x0304, LURK_TLS_AES_128_GCM, &k, UINT64_MAX, NULL, 0), 0);
    assert_true(lurk_tls_rec_seal(&r, 23, "x", 1, rec) > 0);
    assert_int_equal(lurk_tls_rec_seal(&r, 23, "x", 1, rec), -LURK_TLS_ALERT_INTERNAL_ERROR);
}

/* KeyUpdate: the next secret is HKDF-Expand-Label(secret, "traffic upd"),
 * and both sides derive the same keys (seal after update, open after
 * update); the old keys no longer open. */
static void key_update(void **state)
{
    struct lurk_tls_dir_keys k;
    struct lurk_tls_rec w, rd, old;
    unsigned char secret[32], next[32], rec[64], out[64];
    unsigned type;

    (void)state;
    for (int i = 0; i < 32; i++)
        secret[i] = (unsigned char)i;
    assert_int_equal(lurk_tls13_keys(secret, 32, LURK_TLS_CHACHA20_POLY1305, &k), 0);
    assert_int_equal(lurk_tls_rec_init(&w, 0x0304, LURK_TLS_CHACHA20_POLY1305, &k, 5, secret, 32), 0);
    rd = w;
    old = w;
    assert_int_equal(lurk_tls_rec_update(&w), 0);
    assert_int_equal(lurk_tls_rec_update(&rd), 0);
    assert_int_equal(w.seq, 0);
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "traffic upd", NULL, 0, next, 32), 0);
    assert_memory_equal(w.secret, next, 32);
    assert_int_equal(lurk_tls_rec_seal(&w, 23, "abc", 3, rec), 5 + 4 + 16);
    assert_int_equal(lurk_tls_rec_open(&old, rec, 25, out, &type), -LURK_TLS_ALERT_BAD_RECORD_MAC);
    assert_int_equal(lurk_tls_rec_open(&rd, rec, 25, out, &type), 3);
    assert_memory_equal(out, "abc", 3);
    /* no secret kept: no update */
    assert_int_equal(lurk_tls_rec_init(&w, 0x0304, LURK_TLS_CHACHA20_POLY1305, &k, 0, NULL, 0), 0);
    assert_int_equal(lurk_tls_rec_update(&w), -LURK_ETLS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc8448_records),
        cmocka_unit_test(tampering),
        cmocka_unit_test(padding13),
        cmocka_unit_test(tls12_independent),
        cmocka_unit_test(sequence_spent),
        cmocka_unit_test(key_update),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
