/*
 * keys.h - TLS traffic keys for kernel TLS, derived from the secrets mbedTLS
 * exports after a handshake.
 *
 * TLS 1.2: the 48-byte master secret and both randoms give the key block
 * (TLS PRF, label "key expansion", seed server_random || client_random),
 * laid out client key, server key, client IV, server IV (IV 4 bytes for
 * AES-GCM, 12 for ChaCha20-Poly1305; no MAC keys for AEAD suites).
 * TLS 1.3: each application traffic secret gives key and iv by
 * HKDF-Expand-Label(secret, "key"/"iv", "", len), with the hash chosen from
 * the secret's length (32: SHA-256, 48: SHA-384).
 *
 * Pure functions over mbedTLS's crypto; no sockets, no state.
 */
#ifndef LURK_TLS_KEYS_H
#define LURK_TLS_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum lurk_tls_cipher {
    LURK_TLS_AES_128_GCM = 1,
    LURK_TLS_AES_256_GCM,
    LURK_TLS_CHACHA20_POLY1305,
};

/* One direction's keys. */
struct lurk_tls_dir_keys {
    unsigned char key[32];
    size_t key_len;                   /* 16 or 32 */
    unsigned char iv[12];
    size_t iv_len;                    /* 4 (TLS 1.2 GCM: the salt) or 12 */
};

/* The cipher's key length, or 0 for an unknown cipher. */
size_t lurk_tls_key_len(enum lurk_tls_cipher c);

/*
 * TLS 1.2: derives both directions from the master secret. prf_type is the
 * mbedtls_tls_prf_types value mbedTLS handed to the export callback.
 * Returns 0 or -LURK_ETLS.
 */
int lurk_tls12_keys(int prf_type, const unsigned char master[48],
                    const unsigned char client_random[32], const unsigned char server_random[32],
                    enum lurk_tls_cipher cipher,
                    struct lurk_tls_dir_keys *client, struct lurk_tls_dir_keys *server);

/*
 * TLS 1.3: derives one direction's key and 12-byte iv from its application
 * traffic secret (32 or 48 bytes). Returns 0 or -LURK_ETLS.
 */
int lurk_tls13_keys(const unsigned char *secret, size_t secret_len, enum lurk_tls_cipher cipher,
                    struct lurk_tls_dir_keys *out);

/*
 * HKDF-Expand-Label (RFC 8446 section 7.1) with SHA-256 (hash_len 32) or
 * SHA-384 (48): out = HKDF-Expand(secret, HkdfLabel(len, "tls13 " label,
 * context), len). Returns 0 or -LURK_ETLS.
 */
int lurk_hkdf_expand_label(size_t hash_len, const unsigned char *secret, const char *label,
                           const unsigned char *context, size_t context_len,
                           unsigned char *out, size_t len);

/*
 * Fills a struct tls12_crypto_info_* from <linux/tls.h> for setsockopt
 * (SOL_TLS, TLS_TX/TLS_RX): version is 0x0303 or 0x0304, seq the next record
 * sequence number for that direction. For TLS 1.2 AES-GCM, the explicit
 * nonce (`iv` field) starts at seq too: mbedTLS used the sequence number as
 * explicit nonce for the Finished record, so a zero iv would repeat a nonce.
 * TLS 1.3 GCM: salt = iv[0..4), iv = iv[4..12). ChaCha20-Poly1305: the full
 * 12-byte iv, no salt. Writes at most `cap` bytes into info and returns the
 * length to pass to setsockopt, or -EINVAL.
 */
int lurk_ktls_info(uint16_t version, enum lurk_tls_cipher cipher, const struct lurk_tls_dir_keys *k,
                   uint64_t seq, void *info, size_t cap);

#endif
