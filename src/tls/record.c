/*
 * record.c - TLS 1.2 and 1.3 record protection with nettle's AEADs
 * (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305): what lurk uses after the
 * handshake when the kernel does not carry a direction, so that mbedTLS
 * only ever does handshakes.
 *
 * Nonces: TLS 1.3 and TLS 1.2 ChaCha20-Poly1305 XOR the 64-bit sequence
 * number into the last 8 bytes of the 12-byte IV (RFC 8446 section 5.3,
 * RFC 7905 section 2); TLS 1.2 GCM uses the 4-byte salt and an 8-byte
 * explicit nonce carried in the record (RFC 5288 section 3), for which
 * lurk sends the sequence number, as mbedTLS and the kernel do.
 * Additional data: TLS 1.3 the record header (RFC 8446 5.2); TLS 1.2
 * seq || type || version || plaintext length (RFC 5246 6.2.3.3).
 *
 * nettle's AEADs take their input in pieces, but every piece except the
 * last must be a whole number of blocks (64 bytes for ChaCha20, a multiple
 * of GCM's 16). TLS 1.3's inner content type follows the data: sealing
 * encrypts the data's whole blocks straight from the caller's buffer and
 * the tail, with the type byte, from a small copy, so nothing is copied
 * twice.
 */
#include "tls/record.h"
#include "core/error.h"

#include <errno.h>
#include <nettle/memops.h>
#include <string.h>

#define TAG 16

enum { T_CCS = 20, T_ALERT = 21, T_HANDSHAKE = 22, T_DATA = 23 };

static void put16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static int set_key(struct lurk_tls_rec *r, const struct lurk_tls_dir_keys *k)
{
    switch (r->cipher) {
    case LURK_TLS_AES_128_GCM:
        if (k->key_len != 16)
            return -EINVAL;
        gcm_aes128_set_key(&r->aead.g128, k->key);
        return 0;
    case LURK_TLS_AES_256_GCM:
        if (k->key_len != 32)
            return -EINVAL;
        gcm_aes256_set_key(&r->aead.g256, k->key);
        return 0;
    case LURK_TLS_CHACHA20_POLY1305:
        if (k->key_len != 32)
            return -EINVAL;
        chacha_poly1305_set_key(&r->aead.cp, k->key);
        return 0;
    }
    return -EINVAL;
}

int lurk_tls_rec_init(struct lurk_tls_rec *r, uint16_t version, enum lurk_tls_cipher cipher,
                      const struct lurk_tls_dir_keys *k, uint64_t seq,
                      const unsigned char *secret, size_t secret_len)
{
    bool salt = version == 0x0303 && cipher != LURK_TLS_CHACHA20_POLY1305;

    if ((version != 0x0303 && version != 0x0304) || k->iv_len != (salt ? 4u : 12u) ||
        secret_len > sizeof r->secret)
        return -EINVAL;
    memset(r, 0, sizeof *r);
    r->version = version;
    r->cipher = cipher;
    r->seq = seq;
    memcpy(r->iv, k->iv, k->iv_len);
    if (secret && secret_len) {
        memcpy(r->secret, secret, secret_len);
        r->secret_len = secret_len;
    }
    return set_key(r, k);
}

/* nettle has no wipe of its own: volatile stores the compiler keeps. */
static void wipe(void *v, size_t n)
{
    volatile unsigned char *p = v;

    for (size_t i = 0; i < n; i++)
        p[i] = 0;
}

void lurk_tls_rec_wipe(struct lurk_tls_rec *r)
{
    wipe(r, sizeof *r);
}

size_t lurk_tls_rec_body(const struct lurk_tls_rec *r)
{
    return LURK_TLS_HEADER + (r->version == 0x0303 && r->cipher != LURK_TLS_CHACHA20_POLY1305 ? 8 : 0);
}

size_t lurk_tls_rec_overhead(const struct lurk_tls_rec *r)
{
    return lurk_tls_rec_body(r) + (r->version == 0x0304 ? 1 : 0) + TAG;
}

/* Starts a record: the nonce for r->seq (explicit is the 8 bytes a TLS 1.2
 * GCM record carries) and the additional data. */
static void start(struct lurk_tls_rec *r, const unsigned char *explicit, const unsigned char *aad, size_t aad_len)
{
    unsigned char nonce[12];

    memcpy(nonce, r->iv, 12);
    if (r->version == 0x0303 && r->cipher != LURK_TLS_CHACHA20_POLY1305) {
        memcpy(nonce + 4, explicit, 8);
    } else {
        unsigned char s[8];

        put64(s, r->seq);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] ^= s[i];
    }
    switch (r->cipher) {
    case LURK_TLS_AES_128_GCM:
        gcm_aes128_set_iv(&r->aead.g128, 12, nonce);
        gcm_aes128_update(&r->aead.g128, aad_len, aad);
        break;
    case LURK_TLS_AES_256_GCM:
        gcm_aes256_set_iv(&r->aead.g256, 12, nonce);
        gcm_aes256_update(&r->aead.g256, aad_len, aad);
        break;
    case LURK_TLS_CHACHA20_POLY1305:
        chacha_poly1305_set_nonce(&r->aead.cp, nonce);
        chacha_poly1305_update(&r->aead.cp, aad_len, aad);
        break;
    }
}

static void encrypt(struct lurk_tls_rec *r, size_t len, unsigned char *dst, const unsigned char *src)
{
    switch (r->cipher) {
    case LURK_TLS_AES_128_GCM: gcm_aes128_encrypt(&r->aead.g128, len, dst, src); break;
    case LURK_TLS_AES_256_GCM: gcm_aes256_encrypt(&r->aead.g256, len, dst, src); break;
    case LURK_TLS_CHACHA20_POLY1305: chacha_poly1305_encrypt(&r->aead.cp, len, dst, src); break;
    }
}

static void decrypt(struct lurk_tls_rec *r, size_t len, unsigned char *dst, const unsigned char *src)
{
    switch (r->cipher) {
    case LURK_TLS_AES_128_GCM: gcm_aes128_decrypt(&r->aead.g128, len, dst, src); break;
    case LURK_TLS_AES_256_GCM: gcm_aes256_decrypt(&r->aead.g256, len, dst, src); break;
    case LURK_TLS_CHACHA20_POLY1305: chacha_poly1305_decrypt(&r->aead.cp, len, dst, src); break;
    }
}

static void digest(struct lurk_tls_rec *r, unsigned char tag[TAG])
{
    switch (r->cipher) {
    case LURK_TLS_AES_128_GCM: gcm_aes128_digest(&r->aead.g128, TAG, tag); break;
    case LURK_TLS_AES_256_GCM: gcm_aes256_digest(&r->aead.g256, TAG, tag); break;
    case LURK_TLS_CHACHA20_POLY1305: chacha_poly1305_digest(&r->aead.cp, TAG, tag); break;
    }
}

/* TLS 1.2's additional data: seq || type || version || length. */
static void aad12(unsigned char aad[13], uint64_t seq, unsigned type, const unsigned char version[2], size_t len)
{
    put64(aad, seq);
    aad[8] = (unsigned char)type;
    aad[9] = version[0];
    aad[10] = version[1];
    put16(aad + 11, len);
}

int lurk_tls_rec_seal(struct lurk_tls_rec *r, unsigned type, const void *in, size_t len, unsigned char *out)
{
    const unsigned char *src = in;
    size_t body = lurk_tls_rec_body(r), ct;
    unsigned char *p = out + body;

    if (r->seq_spent || len > LURK_TLS_MAX_PLAIN)
        return -LURK_TLS_ALERT_INTERNAL_ERROR;
    if (r->version == 0x0304) {
        /* The whole 64-byte blocks directly, the rest with the type byte. */
        unsigned char tail[64 + 1];
        size_t whole = len & ~(size_t)63, rest = len - whole;

        ct = len + 1;
        out[0] = T_DATA;
        out[1] = 3;
        out[2] = 3;
        put16(out + 3, ct + TAG);
        start(r, NULL, out, LURK_TLS_HEADER);
        if (whole)
            encrypt(r, whole, p, src);
        memcpy(tail, src + whole, rest);
        tail[rest] = (unsigned char)type;
        encrypt(r, rest + 1, p + whole, tail);
    } else {
        unsigned char aad[13];

        ct = len;
        out[0] = (unsigned char)type;
        out[1] = 3;
        out[2] = 3;
        put16(out + 3, body - LURK_TLS_HEADER + ct + TAG);
        if (body > LURK_TLS_HEADER)
            put64(out + LURK_TLS_HEADER, r->seq);   /* the explicit nonce */
        aad12(aad, r->seq, type, out + 1, len);
        start(r, out + LURK_TLS_HEADER, aad, sizeof aad);
        if (len)
            encrypt(r, len, p, src);
    }
    digest(r, p + ct);
    if (++r->seq == 0)
        r->seq_spent = true;
    return (int)(body + ct + TAG);
}

int lurk_tls_rec_size(const struct lurk_tls_rec *r, const unsigned char *p)
{
    size_t len = (size_t)p[3] << 8 | p[4];

    /* After the handshake TLS 1.2 carries alerts, handshake messages and
     * data, each protected; change_cipher_spec cannot come. A TLS 1.3
     * record is always application_data on the outside (RFC 8446 section
     * 5), but the outer type is in the additional data: another one (an
     * alert or handshake type) fails authentication, as with kernel TLS,
     * and is named bad_record_mac. */
    if (p[0] < T_ALERT || p[0] > T_DATA)
        return -LURK_TLS_ALERT_UNEXPECTED_MESSAGE;
    if (len > (r->version == 0x0304 ? LURK_TLS_MAX_PLAIN + 256 : LURK_TLS_MAX_PLAIN + 2048))
        return -LURK_TLS_ALERT_RECORD_OVERFLOW;
    return (int)(LURK_TLS_HEADER + len);
}

int lurk_tls_rec_open(struct lurk_tls_rec *r, const unsigned char *rec, size_t len, unsigned char *out,
                      unsigned *type)
{
    size_t body = lurk_tls_rec_body(r), ct;
    unsigned char tag[TAG];
    int n = lurk_tls_rec_size(r, rec);

    if (n < 0)
        return n;
    if ((size_t)n != len || len < body + TAG)
        return -LURK_TLS_ALERT_BAD_RECORD_MAC;   /* too short to hold a tag: cannot authenticate */
    if (r->seq_spent)
        return -LURK_TLS_ALERT_INTERNAL_ERROR;
    ct = len - body - TAG;
    if (r->version == 0x0304) {
        start(r, NULL, rec, LURK_TLS_HEADER);
    } else {
        unsigned char aad[13];

        if (ct > LURK_TLS_MAX_PLAIN)
            return -LURK_TLS_ALERT_RECORD_OVERFLOW;
        aad12(aad, r->seq, rec[0], rec + 1, ct);
        start(r, rec + LURK_TLS_HEADER, aad, sizeof aad);
    }
    if (ct)
        decrypt(r, ct, out, rec + body);
    digest(r, tag);
    if (!memeql_sec(tag, rec + body + ct, TAG))
        return -LURK_TLS_ALERT_BAD_RECORD_MAC;
    if (++r->seq == 0)
        r->seq_spent = true;
    if (r->version == 0x0303) {
        *type = rec[0];
        return (int)ct;
    }
    /* TLS 1.3: the content type is the last non-zero byte (padding
     * follows it); all zeros is an error (RFC 8446 section 5.4). */
    while (ct > 0 && out[ct - 1] == 0)
        ct--;
    if (ct == 0)
        return -LURK_TLS_ALERT_UNEXPECTED_MESSAGE;
    *type = out[--ct];
    if (ct > LURK_TLS_MAX_PLAIN)
        return -LURK_TLS_ALERT_RECORD_OVERFLOW;
    if (*type != T_DATA && *type != T_ALERT && *type != T_HANDSHAKE)
        return -LURK_TLS_ALERT_UNEXPECTED_MESSAGE;
    if (ct == 0 && *type != T_DATA)
        return -LURK_TLS_ALERT_UNEXPECTED_MESSAGE;   /* RFC 8446 5.1: never empty */
    return (int)ct;
}

int lurk_tls_rec_update(struct lurk_tls_rec *r)
{
    unsigned char next[48];
    struct lurk_tls_dir_keys k;
    int rc;

    if (r->version != 0x0304 || !r->secret_len)
        return -LURK_ETLS;
    rc = lurk_hkdf_expand_label(r->secret_len, r->secret, "traffic upd", NULL, 0, next, r->secret_len);
    if (rc == 0)
        rc = lurk_tls13_keys(next, r->secret_len, r->cipher, &k);
    if (rc == 0) {
        size_t n = r->secret_len;

        rc = lurk_tls_rec_init(r, 0x0304, r->cipher, &k, 0, next, n) < 0 ? -LURK_ETLS : 0;
    }
    wipe(next, sizeof next);
    wipe(&k, sizeof k);
    return rc;
}
