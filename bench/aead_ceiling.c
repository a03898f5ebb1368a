/*
 * aead_ceiling.c - the ceiling for lurk's userspace records: how much CPU
 * nettle's AEADs (the ones src/tls/record.c uses) take per GiB on this
 * machine, opening (decrypt + verify) and sealing 16 KiB records as TLS
 * does. A download through lurk's record layer cannot cost less than the
 * "open" figure; bench/run.sh prints it next to lurk's and curl's.
 *
 * usage: aead_ceiling [MiB]     (default 1024 per cipher and direction)
 */
#include <nettle/chacha-poly1305.h>
#include <nettle/gcm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

enum { AES128, AES256, CHACHA };

static void run(int which, const char *name, int records)
{
    static unsigned char buf[16384 + 16];
    unsigned char key[32] = { 1 }, nonce[12] = { 2 }, aad[5] = { 23, 3, 3, 0x40, 0x11 }, tag[16];
    struct gcm_aes128_ctx g128;
    struct gcm_aes256_ctx g256;
    struct chacha_poly1305_ctx cp;
    double t0, seal, open;

    gcm_aes128_set_key(&g128, key);
    gcm_aes256_set_key(&g256, key);
    chacha_poly1305_set_key(&cp, key);
    for (int dir = 0; dir < 2; dir++) {
        t0 = cpu();
        for (int i = 0; i < records; i++) {
            nonce[11] = (unsigned char)i;
            switch (which) {
            case AES128:
                gcm_aes128_set_iv(&g128, 12, nonce);
                gcm_aes128_update(&g128, 5, aad);
                if (dir)
                    gcm_aes128_decrypt(&g128, 16384, buf, buf);
                else
                    gcm_aes128_encrypt(&g128, 16384, buf, buf);
                gcm_aes128_digest(&g128, 16, tag);
                break;
            case AES256:
                gcm_aes256_set_iv(&g256, 12, nonce);
                gcm_aes256_update(&g256, 5, aad);
                if (dir)
                    gcm_aes256_decrypt(&g256, 16384, buf, buf);
                else
                    gcm_aes256_encrypt(&g256, 16384, buf, buf);
                gcm_aes256_digest(&g256, 16, tag);
                break;
            default:
                chacha_poly1305_set_nonce(&cp, nonce);
                chacha_poly1305_update(&cp, 5, aad);
                if (dir)
                    chacha_poly1305_decrypt(&cp, 16384, buf, buf);
                else
                    chacha_poly1305_encrypt(&cp, 16384, buf, buf);
                chacha_poly1305_digest(&cp, 16, tag);
                break;
            }
            buf[16384] ^= tag[0];     /* keep the tag live */
        }
        if (dir)
            open = cpu() - t0;
        else
            seal = cpu() - t0;
    }
    {
        double gib = records * 16384.0 / (1 << 30);

        printf("nettle %-18s open %.3f s CPU per GiB (%4.0f MiB/s), seal %.3f s per GiB (%4.0f MiB/s)\n", name,
               open / gib, gib * 1024 / open, seal / gib, gib * 1024 / seal);
    }
}

int main(int argc, char **argv)
{
    int mib = argc > 1 ? atoi(argv[1]) : 1024, records = mib * 64;

    run(AES128, "AES-128-GCM", records);
    run(AES256, "AES-256-GCM", records);
    run(CHACHA, "CHACHA20-POLY1305", records);
    return 0;
}
