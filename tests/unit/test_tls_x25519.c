/* test_tls_x25519: the X25519 public key PSA exports (lurk's mbedTLS patch
 * computes it with Everest's ladder: the TLS 1.3 key share) against RFC 7748's
 * test vectors and against mbedTLS's generic curve code. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <mbedtls/ecp.h>
#include <psa/crypto.h>

#include <string.h>
#include <sys/random.h>

static int rng(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    return getrandom(out, n, 0) == (ssize_t)n ? 0 : -1;
}

static void hex(unsigned char *out, const char *s)
{
    for (size_t i = 0; s[2 * i]; i++) {
        unsigned v;

        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

/* The public key of a 32-byte private key, through PSA. */
static void psa_public(const unsigned char priv[32], unsigned char pub[32])
{
    psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
    psa_key_id_t id;
    size_t n = 0;

    psa_set_key_type(&a, PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY));
    psa_set_key_bits(&a, 255);
    psa_set_key_usage_flags(&a, PSA_KEY_USAGE_DERIVE);
    psa_set_key_algorithm(&a, PSA_ALG_ECDH);
    assert_int_equal(psa_import_key(&a, priv, 32, &id), PSA_SUCCESS);
    assert_int_equal(psa_export_public_key(id, pub, 32, &n), PSA_SUCCESS);
    assert_int_equal(n, 32);
    psa_destroy_key(id);
}

/* RFC 7748 section 6.1: Alice's and Bob's key pairs. */
static void test_rfc7748(void **state)
{
    unsigned char priv[32], want[32], got[32];

    (void)state;
    assert_int_equal(psa_crypto_init(), PSA_SUCCESS);
    hex(priv, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    hex(want, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    psa_public(priv, got);
    assert_memory_equal(got, want, 32);
    hex(priv, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    hex(want, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    psa_public(priv, got);
    assert_memory_equal(got, want, 32);
}

/* Random keys: the same public key as mbedTLS's own ladder computes. */
static void test_matches_generic(void **state)
{
    mbedtls_ecp_group grp;

    (void)state;
    assert_int_equal(psa_crypto_init(), PSA_SUCCESS);
    mbedtls_ecp_group_init(&grp);
    assert_int_equal(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519), 0);
    for (int i = 0; i < 50; i++) {
        unsigned char priv[32], want[32], got[32];
        mbedtls_mpi d;
        mbedtls_ecp_point Q;
        size_t n;

        mbedtls_mpi_init(&d);
        mbedtls_ecp_point_init(&Q);
        assert_int_equal(rng(NULL, priv, sizeof priv), 0);
        priv[0] &= 248;                /* RFC 7748's clamping, as mbedTLS reads keys */
        priv[31] &= 127;
        priv[31] |= 64;
        assert_int_equal(mbedtls_mpi_read_binary_le(&d, priv, 32), 0);
        assert_int_equal(mbedtls_ecp_mul(&grp, &Q, &d, &grp.G, rng, NULL), 0);
        assert_int_equal(mbedtls_ecp_point_write_binary(&grp, &Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &n, want,
                                                        sizeof want), 0);
        assert_int_equal(n, 32);
        psa_public(priv, got);
        assert_memory_equal(got, want, 32);
        mbedtls_ecp_point_free(&Q);
        mbedtls_mpi_free(&d);
    }
    mbedtls_ecp_group_free(&grp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7748),
        cmocka_unit_test(test_matches_generic),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
