/* test_tls_keys: TLS 1.2/1.3 key derivation against published vectors; kTLS crypto_info layout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tls/keys.h"
#include "core/error.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <linux/tls.h>

#include <mbedtls/md.h>
#include <mbedtls/ssl.h>

/*
 * Vectors and where they come from:
 * - RFC 8448 section 3 (Simple 1-RTT Handshake), https://www.rfc-editor.org/rfc/rfc8448#section-3:
 *   handshake and application traffic secrets with their derived write keys and IVs,
 *   the master secret and the transcript hash CH..server Finished. The same values are
 *   quoted verbatim in aws/s2n-tls tests/unit/s2n_tls13_key_schedule_rfc8448_test.c.
 * - The TLS 1.2 PRF (P_SHA256) vector from the IETF TLS list,
 *   https://mailarchive.ietf.org/arch/msg/tls/fzVCzk-z3FShgGJ6DOXqM1ydxms/
 * - SHA-384 TLS 1.3 keys and TLS 1.2 server key/salt for master 00..2f, client random
 *   20..3f, server random 40..5f, as derived by Go's crypto/tls in NVIDIA/aistore's
 *   kTLS tests (TestKTLSTxLinuxCryptoInfo, TestKTLSTxLinuxTLS12CryptoInfo).
 * Every vector was also recomputed with an independent Python hmac/hashlib script.
 */

/* RFC 8448 section 3 */
#define RFC8448_S_HS_TRAFFIC "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 " \
                             "e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38"
#define RFC8448_S_HS_KEY "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"
#define RFC8448_S_HS_IV "5d 31 3e b2 67 12 76 ee 13 00 0b 30"
#define RFC8448_C_HS_TRAFFIC "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f " \
                             "3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21"
#define RFC8448_C_HS_KEY "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01"
#define RFC8448_C_HS_IV "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f"
#define RFC8448_MASTER "18 df 06 84 3d 13 a0 8b f2 a4 49 84 4c 5f 8a 47 " \
                       "80 01 bc 4d 4c 62 79 84 d5 a4 1d a8 d0 40 29 19"
#define RFC8448_TH_SF "96 08 10 2a 0f 1c cc 6d b6 25 0b 7b 7e 41 7b 1a " \
                      "00 0e aa da 3d aa e4 77 7a 76 86 c9 ff 83 df 13"
#define RFC8448_C_AP_TRAFFIC "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 " \
                             "87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5"
#define RFC8448_C_AP_KEY "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"
#define RFC8448_C_AP_IV "5b 78 92 3d ee 08 57 90 33 e5 23 d9"
#define RFC8448_S_AP_TRAFFIC "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 " \
                             "82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43"
#define RFC8448_S_AP_KEY "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"
#define RFC8448_S_AP_IV "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"

/* TLS 1.2 PRF P_SHA256 vector, label "test label" */
#define PRF_SECRET "9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"
#define PRF_SEED "a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"
#define PRF_OUT "e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 " \
                "c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a " \
                "6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af " \
                "0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab " \
                "4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba " \
                "a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01 " \
                "87 34 7b 66"

/* Decodes hex (spaces allowed) into out; fails the test unless it is exactly n bytes. */
static void unhex(const char *s, unsigned char *out, size_t n)
{
    size_t i = 0;
    int hi = -1;

    for (; *s != '\0'; s++) {
        int v;

        if (*s == ' ')
            continue;
        if (*s >= '0' && *s <= '9') {
            v = *s - '0';
        } else if (*s >= 'a' && *s <= 'f') {
            v = *s - 'a' + 10;
        } else {
            fail_msg("bad hex character '%c'", *s);
            return;
        }
        if (hi < 0) {
            hi = v;
            continue;
        }
        assert_true(i < n);
        out[i++] = (unsigned char)(hi << 4 | v);
        hi = -1;
    }
    assert_int_equal(hi, -1);
    assert_int_equal(i, n);
}

/* Asserts that the n bytes at got equal the hex string want. */
static void check_hex(const unsigned char *got, const char *want, size_t n)
{
    unsigned char buf[128];

    assert_true(n <= sizeof(buf));
    unhex(want, buf, n);
    assert_memory_equal(got, buf, n);
}

static void fill_pattern(unsigned char *p, size_t n, unsigned char start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(start + i);
}

static void put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

/*
 * RFC 5246 section 5 P_hash, written out independently of mbedTLS's TLS code:
 * A(0) = seed, A(i) = HMAC(secret, A(i-1)), out = HMAC(secret, A(1) || seed) ||
 * HMAC(secret, A(2) || seed) || ...
 */
static void compute_p_hash(mbedtls_md_type_t type, const unsigned char *secret, size_t secret_len,
                   const unsigned char *seed, size_t seed_len, unsigned char *out, size_t n)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(type);
    unsigned char a[MBEDTLS_MD_MAX_SIZE], next[MBEDTLS_MD_MAX_SIZE];
    unsigned char in[MBEDTLS_MD_MAX_SIZE + 128], block[MBEDTLS_MD_MAX_SIZE];
    size_t h;

    assert_non_null(md);
    h = mbedtls_md_get_size(md);
    assert_true(seed_len <= 128);
    assert_int_equal(mbedtls_md_hmac(md, secret, secret_len, seed, seed_len, a), 0);
    while (n > 0) {
        size_t take = n < h ? n : h;

        memcpy(in, a, h);
        memcpy(in + h, seed, seed_len);
        assert_int_equal(mbedtls_md_hmac(md, secret, secret_len, in, h + seed_len, block), 0);
        memcpy(out, block, take);
        out += take;
        n -= take;
        assert_int_equal(mbedtls_md_hmac(md, secret, secret_len, a, h, next), 0);
        memcpy(a, next, h);
    }
}

/* Both application traffic secrets of RFC 8448 section 3 give the RFC's keys and IVs. */
static void test_tls13_rfc8448_application_keys(void **state)
{
    unsigned char secret[32];
    struct lurk_tls_dir_keys k;

    (void)state;
    unhex(RFC8448_S_AP_TRAFFIC, secret, sizeof(secret));
    assert_int_equal(lurk_tls13_keys(secret, sizeof(secret), LURK_TLS_AES_128_GCM, &k), 0);
    assert_int_equal(k.key_len, 16);
    assert_int_equal(k.iv_len, 12);
    check_hex(k.key, RFC8448_S_AP_KEY, 16);
    check_hex(k.iv, RFC8448_S_AP_IV, 12);

    unhex(RFC8448_C_AP_TRAFFIC, secret, sizeof(secret));
    assert_int_equal(lurk_tls13_keys(secret, sizeof(secret), LURK_TLS_AES_128_GCM, &k), 0);
    assert_int_equal(k.key_len, 16);
    assert_int_equal(k.iv_len, 12);
    check_hex(k.key, RFC8448_C_AP_KEY, 16);
    check_hex(k.iv, RFC8448_C_AP_IV, 12);
}

/* HKDF-Expand-Label gives RFC 8448's handshake keys and, with a context, its traffic secrets. */
static void test_hkdf_expand_label_rfc8448(void **state)
{
    unsigned char secret[32], th[32], out[32];

    (void)state;
    unhex(RFC8448_S_HS_TRAFFIC, secret, sizeof(secret));
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "key", NULL, 0, out, 16), 0);
    check_hex(out, RFC8448_S_HS_KEY, 16);
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "iv", NULL, 0, out, 12), 0);
    check_hex(out, RFC8448_S_HS_IV, 12);

    unhex(RFC8448_C_HS_TRAFFIC, secret, sizeof(secret));
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "key", NULL, 0, out, 16), 0);
    check_hex(out, RFC8448_C_HS_KEY, 16);
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "iv", NULL, 0, out, 12), 0);
    check_hex(out, RFC8448_C_HS_IV, 12);

    /* Derive-Secret(master, "s ap traffic" / "c ap traffic", CH..server Finished) */
    unhex(RFC8448_MASTER, secret, sizeof(secret));
    unhex(RFC8448_TH_SF, th, sizeof(th));
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "s ap traffic", th, 32, out, 32), 0);
    check_hex(out, RFC8448_S_AP_TRAFFIC, 32);
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "c ap traffic", th, 32, out, 32), 0);
    check_hex(out, RFC8448_C_AP_TRAFFIC, 32);
}

/* A 48-byte secret selects SHA-384 (TLS_AES_256_GCM_SHA384); ChaCha20 gets a 32-byte key. */
static void test_tls13_sha384_and_chacha(void **state)
{
    unsigned char secret[48];
    unsigned char key32[32], aes_key[16];
    struct lurk_tls_dir_keys k;

    (void)state;
    fill_pattern(secret, sizeof(secret), 0x00);
    assert_int_equal(lurk_tls13_keys(secret, 48, LURK_TLS_AES_256_GCM, &k), 0);
    assert_int_equal(k.key_len, 32);
    assert_int_equal(k.iv_len, 12);
    check_hex(k.key, "68 77 d0 22 f1 c6 1d 24 eb b7 48 7c 16 75 2d 9a "
                     "47 98 e4 04 31 c7 5b 39 32 0e 53 7c 90 e2 32 25", 32);
    check_hex(k.iv, "42 82 25 31 a0 fe 88 64 8f c0 9e 9f", 12);

    /* TLS_CHACHA20_POLY1305_SHA256 on the RFC 8448 server secret: the iv is the
     * AES-128 suite's, the key a 32-byte expansion. HkdfLabel encodes L, so that
     * key does not start with the 16-byte AES key. */
    unhex(RFC8448_S_AP_TRAFFIC, secret, 32);
    assert_int_equal(lurk_tls13_keys(secret, 32, LURK_TLS_CHACHA20_POLY1305, &k), 0);
    assert_int_equal(k.key_len, 32);
    assert_int_equal(k.iv_len, 12);
    check_hex(k.iv, RFC8448_S_AP_IV, 12);
    assert_int_equal(lurk_hkdf_expand_label(32, secret, "key", NULL, 0, key32, 32), 0);
    assert_memory_equal(k.key, key32, 32);
    unhex(RFC8448_S_AP_KEY, aes_key, 16);
    assert_memory_not_equal(key32, aes_key, 16);
}

/* Bad secret lengths, ciphers and labels are refused with -LURK_ETLS. */
static void test_tls13_bad_arguments(void **state)
{
    unsigned char secret[64] = { 0 };
    unsigned char out[16];
    char label[251];
    struct lurk_tls_dir_keys k;

    (void)state;
    assert_int_equal(lurk_tls13_keys(secret, 40, LURK_TLS_AES_128_GCM, &k), -LURK_ETLS);
    assert_int_equal(lurk_tls13_keys(secret, 64, LURK_TLS_AES_128_GCM, &k), -LURK_ETLS);
    assert_int_equal(lurk_tls13_keys(secret, 32, (enum lurk_tls_cipher)0, &k), -LURK_ETLS);
    assert_int_equal(k.key_len, 0);
    assert_int_equal(lurk_hkdf_expand_label(20, secret, "key", NULL, 0, out, 16), -LURK_ETLS);

    /* "tls13 " plus 250 bytes exceeds the 255-byte label limit. */
    memset(label, 'a', sizeof(label) - 1);
    label[sizeof(label) - 1] = '\0';
    assert_int_equal(lurk_hkdf_expand_label(32, secret, label, NULL, 0, out, 16), -LURK_ETLS);
    label[249] = '\0';
    assert_int_equal(lurk_hkdf_expand_label(32, secret, label, NULL, 0, out, 16), 0);
}

/* The test's own P_hash and mbedTLS's TLS PRF both reproduce the published P_SHA256 vector. */
static void test_tls12_prf_vector(void **state)
{
    unsigned char secret[16], seed[10 + 16], out[100];

    (void)state;
    unhex(PRF_SECRET, secret, sizeof(secret));
    memcpy(seed, "test label", 10);
    unhex(PRF_SEED, seed + 10, 16);

    compute_p_hash(MBEDTLS_MD_SHA256, secret, sizeof(secret), seed, sizeof(seed), out, sizeof(out));
    check_hex(out, PRF_OUT, sizeof(out));

    memset(out, 0, sizeof(out));
    assert_int_equal(mbedtls_ssl_tls_prf(MBEDTLS_SSL_TLS_PRF_SHA256, secret, sizeof(secret),
                                         "test label", seed + 10, 16, out, sizeof(out)), 0);
    check_hex(out, PRF_OUT, sizeof(out));
}

/* The key block is PRF(master, "key expansion", server || client random), split client key,
 * server key, client IV, server IV, for both PRF hashes and every cipher. */
static void test_tls12_key_block_split(void **state)
{
    static const struct {
        int prf;
        mbedtls_md_type_t md;
    } prfs[] = {
        { MBEDTLS_SSL_TLS_PRF_SHA256, MBEDTLS_MD_SHA256 },
        { MBEDTLS_SSL_TLS_PRF_SHA384, MBEDTLS_MD_SHA384 },
    };
    static const struct {
        enum lurk_tls_cipher cipher;
        size_t key_len;
        size_t iv_len;
    } ciphers[] = {
        { LURK_TLS_AES_128_GCM, 16, 4 },
        { LURK_TLS_AES_256_GCM, 32, 4 },
        { LURK_TLS_CHACHA20_POLY1305, 32, 12 },
    };
    unsigned char master[48], cr[32], sr[32], seed[13 + 64], block[88];

    (void)state;
    for (size_t i = 0; i < sizeof(master); i++)
        master[i] = (unsigned char)(i * 7 + 1);
    fill_pattern(cr, sizeof(cr), 0x10);
    fill_pattern(sr, sizeof(sr), 0x90);
    memcpy(seed, "key expansion", 13);
    memcpy(seed + 13, sr, 32);
    memcpy(seed + 13 + 32, cr, 32);

    for (size_t p = 0; p < sizeof(prfs) / sizeof(prfs[0]); p++) {
        for (size_t c = 0; c < sizeof(ciphers) / sizeof(ciphers[0]); c++) {
            size_t kl = ciphers[c].key_len, il = ciphers[c].iv_len;
            struct lurk_tls_dir_keys ck, sk;

            compute_p_hash(prfs[p].md, master, sizeof(master), seed, sizeof(seed), block,
                   2 * kl + 2 * il);
            assert_int_equal(lurk_tls12_keys(prfs[p].prf, master, cr, sr, ciphers[c].cipher,
                                             &ck, &sk), 0);
            assert_int_equal(ck.key_len, kl);
            assert_int_equal(sk.key_len, kl);
            assert_int_equal(ck.iv_len, il);
            assert_int_equal(sk.iv_len, il);
            assert_memory_equal(ck.key, block, kl);
            assert_memory_equal(sk.key, block + kl, kl);
            assert_memory_equal(ck.iv, block + 2 * kl, il);
            assert_memory_equal(sk.iv, block + 2 * kl + il, il);
        }
    }
}

/* Known answers from another implementation (Go crypto/tls) for the server direction. */
static void test_tls12_known_answers(void **state)
{
    unsigned char master[48], cr[32], sr[32];
    struct lurk_tls_dir_keys ck, sk;

    (void)state;
    fill_pattern(master, sizeof(master), 0x00);
    fill_pattern(cr, sizeof(cr), 0x20);
    fill_pattern(sr, sizeof(sr), 0x40);

    assert_int_equal(lurk_tls12_keys(MBEDTLS_SSL_TLS_PRF_SHA256, master, cr, sr,
                                     LURK_TLS_AES_128_GCM, &ck, &sk), 0);
    check_hex(sk.key, "61 7b fc 73 13 5f e8 82 87 59 9a e2 27 8f 12 02", 16);
    check_hex(sk.iv, "3f fd fd f2", 4);

    assert_int_equal(lurk_tls12_keys(MBEDTLS_SSL_TLS_PRF_SHA384, master, cr, sr,
                                     LURK_TLS_AES_256_GCM, &ck, &sk), 0);
    check_hex(sk.key, "2b ee e8 b9 88 5b 18 47 1b 6d 98 7d 01 c2 e7 fb "
                      "36 b5 c2 cd b4 2f d5 a1 ba 07 e9 06 ae ef 53 cf", 32);
    check_hex(sk.iv, "9e 7a f7 e8", 4);
}

/* TLS 1.3 PRF types, unknown PRFs and unknown ciphers are refused. */
static void test_tls12_bad_arguments(void **state)
{
    unsigned char master[48] = { 0 }, cr[32] = { 0 }, sr[32] = { 0 };
    struct lurk_tls_dir_keys ck, sk;

    (void)state;
    assert_int_equal(lurk_tls12_keys(MBEDTLS_SSL_TLS_PRF_NONE, master, cr, sr,
                                     LURK_TLS_AES_128_GCM, &ck, &sk), -LURK_ETLS);
    assert_int_equal(lurk_tls12_keys(MBEDTLS_SSL_HKDF_EXPAND_SHA256, master, cr, sr,
                                     LURK_TLS_AES_128_GCM, &ck, &sk), -LURK_ETLS);
    assert_int_equal(lurk_tls12_keys(99, master, cr, sr, LURK_TLS_AES_128_GCM, &ck, &sk),
                     -LURK_ETLS);
    assert_int_equal(lurk_tls12_keys(MBEDTLS_SSL_TLS_PRF_SHA256, master, cr, sr,
                                     (enum lurk_tls_cipher)0, &ck, &sk), -LURK_ETLS);
}

static void test_key_len(void **state)
{
    (void)state;
    assert_int_equal(lurk_tls_key_len(LURK_TLS_AES_128_GCM), 16);
    assert_int_equal(lurk_tls_key_len(LURK_TLS_AES_256_GCM), 32);
    assert_int_equal(lurk_tls_key_len(LURK_TLS_CHACHA20_POLY1305), 32);
    assert_int_equal(lurk_tls_key_len((enum lurk_tls_cipher)0), 0);
}

/* Keys with recognisable bytes: key 0xa0.., iv 0xc0.., lengths as the version expects. */
static struct lurk_tls_dir_keys make_keys(uint16_t version, enum lurk_tls_cipher cipher)
{
    struct lurk_tls_dir_keys k;

    memset(&k, 0, sizeof(k));
    k.key_len = lurk_tls_key_len(cipher);
    fill_pattern(k.key, k.key_len, 0xa0);
    k.iv_len = (version == TLS_1_2_VERSION && cipher != LURK_TLS_CHACHA20_POLY1305) ? 4 : 12;
    fill_pattern(k.iv, k.iv_len, 0xc0);
    return k;
}

/* Checks one (version, cipher, seq) against the kernel struct, field by field. */
static void check_ktls_info(uint16_t version, enum lurk_tls_cipher cipher, uint64_t seq)
{
    struct lurk_tls_dir_keys k = make_keys(version, cipher);
    unsigned char buf[128], be[8];
    int rc;

    put_be64(be, seq);
    memset(buf, 0x5a, sizeof(buf));
    rc = lurk_ktls_info(version, cipher, &k, seq, buf, sizeof(buf));

    switch (cipher) {
    case LURK_TLS_AES_128_GCM: {
        struct tls12_crypto_info_aes_gcm_128 ci;

        assert_int_equal(rc, sizeof(ci));
        memcpy(&ci, buf, sizeof(ci));
        assert_int_equal(ci.info.version, version);
        assert_int_equal(ci.info.cipher_type, TLS_CIPHER_AES_GCM_128);
        assert_memory_equal(ci.key, k.key, 16);
        assert_memory_equal(ci.salt, k.iv, 4);
        if (version == TLS_1_2_VERSION)
            assert_memory_equal(ci.iv, be, 8);
        else
            assert_memory_equal(ci.iv, k.iv + 4, 8);
        assert_memory_equal(ci.rec_seq, be, 8);
        break;
    }
    case LURK_TLS_AES_256_GCM: {
        struct tls12_crypto_info_aes_gcm_256 ci;

        assert_int_equal(rc, sizeof(ci));
        memcpy(&ci, buf, sizeof(ci));
        assert_int_equal(ci.info.version, version);
        assert_int_equal(ci.info.cipher_type, TLS_CIPHER_AES_GCM_256);
        assert_memory_equal(ci.key, k.key, 32);
        assert_memory_equal(ci.salt, k.iv, 4);
        if (version == TLS_1_2_VERSION)
            assert_memory_equal(ci.iv, be, 8);
        else
            assert_memory_equal(ci.iv, k.iv + 4, 8);
        assert_memory_equal(ci.rec_seq, be, 8);
        break;
    }
    case LURK_TLS_CHACHA20_POLY1305: {
        struct tls12_crypto_info_chacha20_poly1305 ci;

        assert_int_equal(rc, sizeof(ci));
        memcpy(&ci, buf, sizeof(ci));
        assert_int_equal(ci.info.version, version);
        assert_int_equal(ci.info.cipher_type, TLS_CIPHER_CHACHA20_POLY1305);
        assert_memory_equal(ci.key, k.key, 32);
        assert_memory_equal(ci.iv, k.iv, 12);
        assert_memory_equal(ci.rec_seq, be, 8);
        break;
    }
    default:
        fail();
    }
    /* Nothing past the struct is written. */
    for (size_t i = (size_t)rc; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0x5a);
}

/* Every (version, cipher) pair fills its kernel struct, with seq in big-endian. */
static void test_ktls_info_layouts(void **state)
{
    static const uint16_t versions[] = { TLS_1_2_VERSION, TLS_1_3_VERSION };
    static const enum lurk_tls_cipher ciphers[] = {
        LURK_TLS_AES_128_GCM, LURK_TLS_AES_256_GCM, LURK_TLS_CHACHA20_POLY1305,
    };
    static const uint64_t seqs[] = { 1, 0x0102030405060708ULL };

    (void)state;
    assert_int_equal(TLS_1_2_VERSION, 0x0303);
    assert_int_equal(TLS_1_3_VERSION, 0x0304);
    for (size_t v = 0; v < 2; v++)
        for (size_t c = 0; c < 3; c++)
            for (size_t s = 0; s < 2; s++)
                check_ktls_info(versions[v], ciphers[c], seqs[s]);
}

/* Exact byte images for seq 1 and 0x0102030405060708, and the RFC 8448 keys end to end. */
static void test_ktls_info_bytes(void **state)
{
    struct tls12_crypto_info_aes_gcm_128 ci;
    struct lurk_tls_dir_keys k = make_keys(TLS_1_2_VERSION, LURK_TLS_AES_128_GCM);
    unsigned char secret[32];

    (void)state;
    assert_int_equal(lurk_ktls_info(TLS_1_2_VERSION, LURK_TLS_AES_128_GCM, &k, 1, &ci,
                                    sizeof(ci)), sizeof(ci));
    check_hex(ci.rec_seq, "00 00 00 00 00 00 00 01", 8);
    check_hex(ci.iv, "00 00 00 00 00 00 00 01", 8);
    check_hex(ci.salt, "c0 c1 c2 c3", 4);

    assert_int_equal(lurk_ktls_info(TLS_1_2_VERSION, LURK_TLS_AES_128_GCM, &k,
                                    0x0102030405060708ULL, &ci, sizeof(ci)), sizeof(ci));
    check_hex(ci.rec_seq, "01 02 03 04 05 06 07 08", 8);
    check_hex(ci.iv, "01 02 03 04 05 06 07 08", 8);

    unhex(RFC8448_S_AP_TRAFFIC, secret, sizeof(secret));
    assert_int_equal(lurk_tls13_keys(secret, sizeof(secret), LURK_TLS_AES_128_GCM, &k), 0);
    assert_int_equal(lurk_ktls_info(TLS_1_3_VERSION, LURK_TLS_AES_128_GCM, &k, 0, &ci,
                                    sizeof(ci)), sizeof(ci));
    check_hex(ci.key, RFC8448_S_AP_KEY, 16);
    check_hex(ci.salt, "cf 78 2b 88", 4);
    check_hex(ci.iv, "dd 83 54 9a ad f1 e9 84", 8);
    check_hex(ci.rec_seq, "00 00 00 00 00 00 00 00", 8);
}

/* Bad versions, ciphers, key/iv lengths and short buffers give -EINVAL and write nothing. */
static void test_ktls_info_errors(void **state)
{
    struct lurk_tls_dir_keys k = make_keys(TLS_1_3_VERSION, LURK_TLS_AES_128_GCM);
    unsigned char buf[128], untouched[128];

    (void)state;
    memset(buf, 0x5a, sizeof(buf));
    memcpy(untouched, buf, sizeof(buf));

    assert_int_equal(lurk_ktls_info(0x0301, LURK_TLS_AES_128_GCM, &k, 1, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(lurk_ktls_info(0x0305, LURK_TLS_AES_128_GCM, &k, 1, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(lurk_ktls_info(TLS_1_3_VERSION, (enum lurk_tls_cipher)0, &k, 1, buf,
                                    sizeof(buf)), -EINVAL);
    /* The cap must hold the whole struct; exactly its size is enough. */
    assert_int_equal(lurk_ktls_info(TLS_1_3_VERSION, LURK_TLS_AES_128_GCM, &k, 1, buf,
                                    sizeof(struct tls12_crypto_info_aes_gcm_128) - 1), -EINVAL);
    assert_int_equal(lurk_ktls_info(TLS_1_3_VERSION, LURK_TLS_AES_128_GCM, &k, 1, buf, 0),
                     -EINVAL);
    assert_memory_equal(buf, untouched, sizeof(buf));
    assert_int_equal(lurk_ktls_info(TLS_1_3_VERSION, LURK_TLS_AES_128_GCM, &k, 1, buf,
                                    sizeof(struct tls12_crypto_info_aes_gcm_128)),
                     sizeof(struct tls12_crypto_info_aes_gcm_128));

    /* TLS 1.3 keys (12-byte iv) under TLS 1.2 GCM, and a key of the wrong size. */
    memcpy(buf, untouched, sizeof(buf));
    assert_int_equal(lurk_ktls_info(TLS_1_2_VERSION, LURK_TLS_AES_128_GCM, &k, 1, buf,
                                    sizeof(buf)), -EINVAL);
    assert_int_equal(lurk_ktls_info(TLS_1_3_VERSION, LURK_TLS_AES_256_GCM, &k, 1, buf,
                                    sizeof(buf)), -EINVAL);
    assert_memory_equal(buf, untouched, sizeof(buf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_rfc8448_application_keys),
        cmocka_unit_test(test_hkdf_expand_label_rfc8448),
        cmocka_unit_test(test_tls13_sha384_and_chacha),
        cmocka_unit_test(test_tls13_bad_arguments),
        cmocka_unit_test(test_tls12_prf_vector),
        cmocka_unit_test(test_tls12_key_block_split),
        cmocka_unit_test(test_tls12_known_answers),
        cmocka_unit_test(test_tls12_bad_arguments),
        cmocka_unit_test(test_key_len),
        cmocka_unit_test(test_ktls_info_layouts),
        cmocka_unit_test(test_ktls_info_bytes),
        cmocka_unit_test(test_ktls_info_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
