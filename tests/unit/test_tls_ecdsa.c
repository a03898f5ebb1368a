/* test_tls_ecdsa: lurk's mbedtls_ecdsa_verify (src/tls/ecdsa.c: nettle on the
 * NIST curves, mbedTLS's point arithmetic on the others) against signatures
 * mbedTLS's own signer makes, and the forgeries it must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/error.h>

#include <string.h>
#include <sys/random.h>

static int rng(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    return getrandom(out, n, 0) == (ssize_t)n ? 0 : -1;
}

struct signed_hash {
    mbedtls_ecdsa_context key, other;
    mbedtls_mpi r, s;
    unsigned char hash[64];
    size_t hlen;
};

static void sign(struct signed_hash *h, mbedtls_ecp_group_id id, size_t hlen)
{
    mbedtls_ecdsa_init(&h->key);
    mbedtls_ecdsa_init(&h->other);
    mbedtls_mpi_init(&h->r);
    mbedtls_mpi_init(&h->s);
    h->hlen = hlen;
    assert_int_equal(rng(NULL, h->hash, sizeof h->hash), 0);
    assert_int_equal(mbedtls_ecdsa_genkey(&h->key, id, rng, NULL), 0);
    assert_int_equal(mbedtls_ecdsa_genkey(&h->other, id, rng, NULL), 0);
    assert_int_equal(mbedtls_ecdsa_sign(&h->key.MBEDTLS_PRIVATE(grp), &h->r, &h->s, &h->key.MBEDTLS_PRIVATE(d),
                                        h->hash, hlen, rng, NULL), 0);
}

static void done(struct signed_hash *h)
{
    mbedtls_mpi_free(&h->s);
    mbedtls_mpi_free(&h->r);
    mbedtls_ecdsa_free(&h->other);
    mbedtls_ecdsa_free(&h->key);
}

static int verify(struct signed_hash *h, const mbedtls_ecp_point *Q, const mbedtls_mpi *r, const mbedtls_mpi *s)
{
    return mbedtls_ecdsa_verify(&h->key.MBEDTLS_PRIVATE(grp), h->hash, h->hlen, Q, r, s);
}

static void check_curve(mbedtls_ecp_group_id id, size_t hlen)
{
    struct signed_hash h;
    mbedtls_ecp_group *grp;
    mbedtls_ecp_point *Q;
    mbedtls_ecp_point bad;
    mbedtls_mpi x;

    sign(&h, id, hlen);
    grp = &h.key.MBEDTLS_PRIVATE(grp);
    Q = &h.key.MBEDTLS_PRIVATE(Q);
    mbedtls_mpi_init(&x);
    mbedtls_ecp_point_init(&bad);

    /* The genuine signature verifies, and through the parsing path too. */
    assert_int_equal(verify(&h, Q, &h.r, &h.s), 0);
    {
        unsigned char sig[MBEDTLS_ECDSA_MAX_LEN];
        size_t slen;

        assert_int_equal(mbedtls_ecdsa_write_signature(&h.key, MBEDTLS_MD_SHA256, h.hash, h.hlen, sig,
                                                       sizeof sig, &slen, rng, NULL), 0);
        assert_int_equal(mbedtls_ecdsa_read_signature(&h.key, h.hash, h.hlen, sig, slen), 0);
        sig[slen - 1] ^= 1;
        assert_int_not_equal(mbedtls_ecdsa_read_signature(&h.key, h.hash, h.hlen, sig, slen), 0);
    }
    /* Another hash, another key. */
    h.hash[0] ^= 0x80;
    assert_int_equal(verify(&h, Q, &h.r, &h.s), MBEDTLS_ERR_ECP_VERIFY_FAILED);
    h.hash[0] ^= 0x80;
    assert_int_equal(verify(&h, &h.other.MBEDTLS_PRIVATE(Q), &h.r, &h.s), MBEDTLS_ERR_ECP_VERIFY_FAILED);
    /* r + 1, r = 0, s = 0, s = n, r = n. */
    assert_int_equal(mbedtls_mpi_add_int(&x, &h.r, 1), 0);
    assert_int_equal(verify(&h, Q, &x, &h.s), MBEDTLS_ERR_ECP_VERIFY_FAILED);
    assert_int_equal(mbedtls_mpi_lset(&x, 0), 0);
    assert_int_equal(verify(&h, Q, &x, &h.s), MBEDTLS_ERR_ECP_VERIFY_FAILED);
    assert_int_equal(verify(&h, Q, &h.r, &x), MBEDTLS_ERR_ECP_VERIFY_FAILED);
    assert_int_equal(verify(&h, Q, &grp->N, &h.s), MBEDTLS_ERR_ECP_VERIFY_FAILED);
    assert_int_equal(verify(&h, Q, &h.r, &grp->N), MBEDTLS_ERR_ECP_VERIFY_FAILED);
    /* s replaced by n - s verifies (ECDSA's malleability, as in mbedTLS). */
    assert_int_equal(mbedtls_mpi_sub_mpi(&x, &grp->N, &h.s), 0);
    assert_int_equal(verify(&h, Q, &h.r, &x), 0);
    /* A public key off the curve. */
    assert_int_equal(mbedtls_ecp_copy(&bad, Q), 0);
    assert_int_equal(mbedtls_mpi_add_int(&bad.MBEDTLS_PRIVATE(Y), &bad.MBEDTLS_PRIVATE(Y), 1), 0);
    assert_int_not_equal(verify(&h, &bad, &h.r, &h.s), 0);

    mbedtls_ecp_point_free(&bad);
    mbedtls_mpi_free(&x);
    done(&h);
}

static void test_p256(void **state)
{
    (void)state;
    check_curve(MBEDTLS_ECP_DP_SECP256R1, 32);
    check_curve(MBEDTLS_ECP_DP_SECP256R1, 64);   /* a longer hash: its leftmost bits */
    check_curve(MBEDTLS_ECP_DP_SECP256R1, 20);
}

static void test_p384_p521(void **state)
{
    (void)state;
    check_curve(MBEDTLS_ECP_DP_SECP384R1, 48);
    check_curve(MBEDTLS_ECP_DP_SECP521R1, 64);
    check_curve(MBEDTLS_ECP_DP_SECP521R1, 32);
}

static void test_brainpool_generic(void **state)
{
    (void)state;
    check_curve(MBEDTLS_ECP_DP_BP256R1, 32);
    check_curve(MBEDTLS_ECP_DP_BP384R1, 64);
    check_curve(MBEDTLS_ECP_DP_SECP256K1, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_p256),
        cmocka_unit_test(test_p384_p521),
        cmocka_unit_test(test_brainpool_generic),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
