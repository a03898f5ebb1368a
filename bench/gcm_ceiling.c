/*
 * gcm_ceiling.c - how fast mbedTLS's AES-GCM runs on this CPU, in MiB/s
 * (encrypting 16 KiB records, as TLS does): the ceiling for lurk's userspace
 * TLS path. Also ChaCha20-Poly1305.
 */
#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    static unsigned char in[16384], out[16384];
    unsigned char key[32] = { 1 }, iv[12] = { 2 }, tag[16];
    const int records = 16384;        /* 256 MiB */
    mbedtls_gcm_context g;
    mbedtls_chachapoly_context c;
    double t0;

    for (int bits = 128; bits <= 256; bits += 128) {
        mbedtls_gcm_init(&g);
        mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, bits);
        t0 = now();
        for (int i = 0; i < records; i++) {
            iv[11] = (unsigned char)i;
            mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, sizeof in, iv, 12, NULL, 0, in, out, 16, tag);
        }
        printf("mbedTLS AES-%d-GCM: %.0f MiB/s per core\n", bits, records * 16384.0 / (1 << 20) / (now() - t0));
        mbedtls_gcm_free(&g);
    }
    mbedtls_chachapoly_init(&c);
    mbedtls_chachapoly_setkey(&c, key);
    t0 = now();
    for (int i = 0; i < records; i++) {
        iv[11] = (unsigned char)i;
        mbedtls_chachapoly_encrypt_and_tag(&c, sizeof in, iv, NULL, 0, in, out, tag);
    }
    printf("mbedTLS ChaCha20-Poly1305: %.0f MiB/s per core\n", records * 16384.0 / (1 << 20) / (now() - t0));
    mbedtls_chachapoly_free(&c);
    (void)memset;
    return 0;
}
