/*
 * keys.c - traffic keys for kernel TLS, derived from the secrets mbedTLS
 * exports after a handshake, and the <linux/tls.h> structs that carry them.
 *
 * mbedTLS keeps its record keys private, so ktls.c asks it for the secrets
 * instead (the key-export callback) and this file repeats the last step of
 * the key schedule: the TLS 1.2 key block (RFC 5246 section 6.3) or the
 * TLS 1.3 HKDF-Expand-Label of each application traffic secret (RFC 8446
 * section 7.3). Only AEAD suites exist here, so there are never MAC keys.
 *
 * This file does not touch sockets, mbedTLS contexts or any state: every
 * function is pure, and calls only mbedTLS's md/HKDF/TLS-PRF code, none of
 * which needs psa_crypto_init() while MBEDTLS_USE_PSA_CRYPTO is off.
 *
 * Invariants:
 * - Key material in temporaries (key block, staged kernel struct) is wiped
 *   with mbedtls_platform_zeroize() on every return path.
 * - A failed call never leaves an output half-filled with key bytes:
 *   lurk_tls12_keys() leaves its outputs untouched, the others zero theirs.
 */
#include "tls/keys.h"

#include "core/error.h"

#include <errno.h>
#include <string.h>

#include <linux/tls.h>

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>

#define TLS12_GCM_SALT_LEN 4     /* RFC 5288: the implicit part of the nonce */
#define AEAD_NONCE_LEN 12
#define HKDF_LABEL_PREFIX "tls13 "
#define HKDF_LABEL_PREFIX_LEN (sizeof(HKDF_LABEL_PREFIX) - 1)
/* uint16 length, uint8 + up to 255 label bytes, uint8 + up to 255 context bytes */
#define HKDF_LABEL_MAX (2 + 1 + 255 + 1 + 255)

size_t lurk_tls_key_len(enum lurk_tls_cipher c)
{
    switch (c) {
    case LURK_TLS_AES_128_GCM:
        return 16;
    case LURK_TLS_AES_256_GCM:
    case LURK_TLS_CHACHA20_POLY1305:
        return 32;
    }
    return 0;
}

/* The TLS 1.2 fixed IV length: the 4-byte salt for AES-GCM (RFC 5288), the
 * whole 12-byte nonce mask for ChaCha20-Poly1305 (RFC 7905). 0 if unknown. */
static size_t get_fixed_iv_len(enum lurk_tls_cipher c)
{
    switch (c) {
    case LURK_TLS_AES_128_GCM:
    case LURK_TLS_AES_256_GCM:
        return TLS12_GCM_SALT_LEN;
    case LURK_TLS_CHACHA20_POLY1305:
        return AEAD_NONCE_LEN;
    }
    return 0;
}

/* SHA-256 for 32-byte secrets, SHA-384 for 48-byte ones, NULL otherwise. */
static const mbedtls_md_info_t *pick_md(size_t hash_len)
{
    if (hash_len == 32)
        return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (hash_len == 48)
        return mbedtls_md_info_from_type(MBEDTLS_MD_SHA384);
    return NULL;
}

static void put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

/*
 * TLS 1.2: key_block = PRF(master, "key expansion", server_random ||
 * client_random), split as client key, server key, client IV, server IV.
 * Returns 0, or -LURK_ETLS for an unknown prf_type or cipher, or when
 * mbedTLS fails. client and server are written only on success.
 */
int lurk_tls12_keys(int prf_type, const unsigned char master[48],
                    const unsigned char client_random[32], const unsigned char server_random[32],
                    enum lurk_tls_cipher cipher,
                    struct lurk_tls_dir_keys *client, struct lurk_tls_dir_keys *server)
{
    size_t key_len = lurk_tls_key_len(cipher);
    size_t iv_len = get_fixed_iv_len(cipher);
    unsigned char seed[64];
    unsigned char block[2 * 32 + 2 * AEAD_NONCE_LEN];
    size_t n = 2 * key_len + 2 * iv_len;
    const unsigned char *p = block;

    /* Only the two TLS 1.2 PRFs; the HKDF types belong to TLS 1.3. */
    if (prf_type != MBEDTLS_SSL_TLS_PRF_SHA256 && prf_type != MBEDTLS_SSL_TLS_PRF_SHA384)
        return -LURK_ETLS;
    if (key_len == 0 || iv_len == 0)
        return -LURK_ETLS;

    /* Server random first for key expansion (the master secret uses the other order). */
    memcpy(seed, server_random, 32);
    memcpy(seed + 32, client_random, 32);
    if (mbedtls_ssl_tls_prf((mbedtls_tls_prf_types)prf_type, master, 48, "key expansion",
                            seed, sizeof(seed), block, n) != 0) {
        mbedtls_platform_zeroize(block, sizeof(block));
        return -LURK_ETLS;
    }

    memset(client, 0, sizeof(*client));
    memset(server, 0, sizeof(*server));
    memcpy(client->key, p, key_len);
    p += key_len;
    memcpy(server->key, p, key_len);
    p += key_len;
    memcpy(client->iv, p, iv_len);
    p += iv_len;
    memcpy(server->iv, p, iv_len);
    client->key_len = server->key_len = key_len;
    client->iv_len = server->iv_len = iv_len;

    mbedtls_platform_zeroize(block, sizeof(block));
    return 0;
}

/*
 * HKDF-Expand-Label(secret, label, context, len) per RFC 8446 section 7.1,
 * with SHA-256 (hash_len 32) or SHA-384 (48). label is a NUL-terminated
 * string without the "tls13 " prefix (at most 249 bytes); context may be
 * NULL when context_len is 0 (at most 255 bytes). Returns 0, or -LURK_ETLS
 * for a bad argument or an mbedTLS failure, in which case out is zeroed.
 */
int lurk_hkdf_expand_label(size_t hash_len, const unsigned char *secret, const char *label,
                           const unsigned char *context, size_t context_len,
                           unsigned char *out, size_t len)
{
    const mbedtls_md_info_t *md = pick_md(hash_len);
    size_t label_len = strlen(label);
    unsigned char info[HKDF_LABEL_MAX];
    size_t i = 0;

    if (md == NULL || len > 0xffff || HKDF_LABEL_PREFIX_LEN + label_len > 255 ||
        context_len > 255 || (context == NULL && context_len > 0)) {
        memset(out, 0, len);
        return -LURK_ETLS;
    }

    /* struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel */
    info[i++] = (unsigned char)(len >> 8);
    info[i++] = (unsigned char)(len & 0xff);
    info[i++] = (unsigned char)(HKDF_LABEL_PREFIX_LEN + label_len);
    memcpy(info + i, HKDF_LABEL_PREFIX, HKDF_LABEL_PREFIX_LEN);
    i += HKDF_LABEL_PREFIX_LEN;
    memcpy(info + i, label, label_len);
    i += label_len;
    info[i++] = (unsigned char)context_len;
    if (context_len > 0)
        memcpy(info + i, context, context_len);
    i += context_len;

    /* Rejects len > 255 * hash_len itself. */
    if (mbedtls_hkdf_expand(md, secret, hash_len, info, i, out, len) != 0) {
        mbedtls_platform_zeroize(out, len);
        return -LURK_ETLS;
    }
    return 0;
}

/*
 * TLS 1.3: key = HKDF-Expand-Label(secret, "key", "", key_len) and
 * iv = HKDF-Expand-Label(secret, "iv", "", 12), the hash chosen by
 * secret_len (32: SHA-256, 48: SHA-384). Returns 0, or -LURK_ETLS for another
 * length, an unknown cipher or an mbedTLS failure (out is then zeroed).
 */
int lurk_tls13_keys(const unsigned char *secret, size_t secret_len, enum lurk_tls_cipher cipher,
                    struct lurk_tls_dir_keys *out)
{
    size_t key_len = lurk_tls_key_len(cipher);

    memset(out, 0, sizeof(*out));
    if (key_len == 0 || pick_md(secret_len) == NULL)
        return -LURK_ETLS;
    if (lurk_hkdf_expand_label(secret_len, secret, "key", NULL, 0, out->key, key_len) != 0 ||
        lurk_hkdf_expand_label(secret_len, secret, "iv", NULL, 0, out->iv, AEAD_NONCE_LEN) != 0) {
        mbedtls_platform_zeroize(out, sizeof(*out));
        return -LURK_ETLS;
    }
    out->key_len = key_len;
    out->iv_len = AEAD_NONCE_LEN;
    return 0;
}

/*
 * Fills the AES-GCM fields shared by the 128- and 256-bit kernel structs.
 * TLS 1.2: salt is the 4-byte fixed IV and iv the explicit nonce of the next
 * record. mbedTLS used each earlier record's sequence number as its explicit
 * nonce (the Finished record: 0), and the kernel increments iv per record, so
 * starting iv at seq continues that series instead of reusing a nonce.
 * TLS 1.3: salt || iv is the 12-byte static IV, which the kernel XORs with
 * the sequence number.
 */
static void fill_gcm(uint16_t version, const struct lurk_tls_dir_keys *k, uint64_t seq,
                     unsigned char *salt, unsigned char *iv, unsigned char *key,
                     unsigned char *rec_seq)
{
    memcpy(key, k->key, k->key_len);
    memcpy(salt, k->iv, TLS12_GCM_SALT_LEN);
    if (version == TLS_1_2_VERSION)
        put_be64(iv, seq);
    else
        memcpy(iv, k->iv + TLS12_GCM_SALT_LEN, AEAD_NONCE_LEN - TLS12_GCM_SALT_LEN);
    put_be64(rec_seq, seq);
}

/*
 * Builds the setsockopt(SOL_TLS, TLS_TX/TLS_RX) argument for one direction:
 * version 0x0303 or 0x0304, seq the next record's sequence number, k keys
 * whose lengths match the cipher (TLS 1.2 AES-GCM: iv_len 4, otherwise 12).
 * Writes the struct into info (at most cap bytes) and returns its size, or
 * returns -EINVAL for a bad version, cipher, key/iv length or a short cap,
 * writing nothing. The caller should wipe info after the setsockopt.
 */
int lurk_ktls_info(uint16_t version, enum lurk_tls_cipher cipher, const struct lurk_tls_dir_keys *k,
                   uint64_t seq, void *info, size_t cap)
{
    union {
        struct tls12_crypto_info_aes_gcm_128 gcm128;
        struct tls12_crypto_info_aes_gcm_256 gcm256;
        struct tls12_crypto_info_chacha20_poly1305 chacha;
    } ci;
    size_t want_iv;
    size_t size;

    if (version != TLS_1_2_VERSION && version != TLS_1_3_VERSION)
        return -EINVAL;
    if (k == NULL || info == NULL || k->key_len != lurk_tls_key_len(cipher) || k->key_len == 0)
        return -EINVAL;
    want_iv = (version == TLS_1_2_VERSION) ? get_fixed_iv_len(cipher) : AEAD_NONCE_LEN;
    if (k->iv_len != want_iv)
        return -EINVAL;

    memset(&ci, 0, sizeof(ci));
    switch (cipher) {
    case LURK_TLS_AES_128_GCM:
        ci.gcm128.info.version = version;
        ci.gcm128.info.cipher_type = TLS_CIPHER_AES_GCM_128;
        fill_gcm(version, k, seq, ci.gcm128.salt, ci.gcm128.iv, ci.gcm128.key, ci.gcm128.rec_seq);
        size = sizeof(ci.gcm128);
        break;
    case LURK_TLS_AES_256_GCM:
        ci.gcm256.info.version = version;
        ci.gcm256.info.cipher_type = TLS_CIPHER_AES_GCM_256;
        fill_gcm(version, k, seq, ci.gcm256.salt, ci.gcm256.iv, ci.gcm256.key, ci.gcm256.rec_seq);
        size = sizeof(ci.gcm256);
        break;
    case LURK_TLS_CHACHA20_POLY1305:
        /* Both versions: nonce = iv XOR seq (RFC 7905, RFC 8446); the struct's salt is empty. */
        ci.chacha.info.version = version;
        ci.chacha.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        memcpy(ci.chacha.iv, k->iv, AEAD_NONCE_LEN);
        memcpy(ci.chacha.key, k->key, k->key_len);
        put_be64(ci.chacha.rec_seq, seq);
        size = sizeof(ci.chacha);
        break;
    default:
        return -EINVAL;
    }

    if (cap < size) {
        mbedtls_platform_zeroize(&ci, sizeof(ci));
        return -EINVAL;
    }
    memcpy(info, &ci, size);
    mbedtls_platform_zeroize(&ci, sizeof(ci));
    return (int)size;
}
