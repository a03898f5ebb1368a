/*
 * ECDSA verification for mbedTLS (MBEDTLS_ECDSA_VERIFY_ALT, set by
 * scripts/install-deps.sh when it builds mbedTLS): mbedTLS calls this for
 * every ECDSA signature it checks, a certificate's and a TLS handshake's.
 *
 * On the NIST curves nettle does the work (its P-256 field arithmetic is
 * assembly here): a TLS 1.3 handshake with an ECDSA P-256 certificate
 * verifies two signatures, which took 75% of the handshake's CPU in
 * mbedTLS's generic bignum code. Other curves (Brainpool) take the textbook
 * algorithm on mbedTLS's own point arithmetic, as mbedTLS would.
 */
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>

#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <nettle/ecdsa.h>

#include <gmp.h>
#include <stdint.h>

static const struct ecc_curve *nettle_curve(mbedtls_ecp_group_id id)
{
    switch (id) {
    case MBEDTLS_ECP_DP_SECP256R1:
        return nettle_get_secp_256r1();
    case MBEDTLS_ECP_DP_SECP384R1:
        return nettle_get_secp_384r1();
    case MBEDTLS_ECP_DP_SECP521R1:
        return nettle_get_secp_521r1();
    default:
        return NULL;
    }
}

/* An mbedTLS integer as a GMP one (both non-negative here). */
static int to_mpz(mpz_t out, const mbedtls_mpi *x)
{
    unsigned char buf[MBEDTLS_ECP_MAX_BYTES + 1];
    size_t n = mbedtls_mpi_size(x);

    if (mbedtls_mpi_cmp_int(x, 0) < 0 || n > sizeof buf || mbedtls_mpi_write_binary(x, buf, n) != 0)
        return -1;
    mpz_import(out, n, 1, 1, 1, 0, buf);
    return 0;
}

static int verify_nettle(const struct ecc_curve *curve, const unsigned char *buf, size_t blen,
                         const mbedtls_ecp_point *Q, const mbedtls_mpi *r, const mbedtls_mpi *s)
{
    struct ecc_point pub;
    struct dsa_signature sig;
    mpz_t x, y;
    int ok = 0;

    mpz_init(x);
    mpz_init(y);
    ecc_point_init(&pub, curve);
    dsa_signature_init(&sig);
    /* ecc_point_set refuses a point off the curve; ecdsa_verify refuses r
     * and s outside [1, n-1] and takes the hash's leftmost bits, as FIPS
     * 186-4 and mbedTLS do. */
    if (mbedtls_mpi_cmp_int(&Q->MBEDTLS_PRIVATE(Z), 1) == 0 && to_mpz(x, &Q->MBEDTLS_PRIVATE(X)) == 0 &&
        to_mpz(y, &Q->MBEDTLS_PRIVATE(Y)) == 0 &&
        ecc_point_set(&pub, x, y) && to_mpz(sig.r, r) == 0 && to_mpz(sig.s, s) == 0)
        ok = ecdsa_verify(&pub, blen, buf, &sig);
    dsa_signature_clear(&sig);
    ecc_point_clear(&pub);
    mpz_clear(y);
    mpz_clear(x);
    return ok ? 0 : MBEDTLS_ERR_ECP_VERIFY_FAILED;
}

/* SEC1 4.1.4 on mbedTLS's arithmetic, for the curves nettle lacks. */
static int verify_generic(mbedtls_ecp_group *grp, const unsigned char *buf, size_t blen,
                          const mbedtls_ecp_point *Q, const mbedtls_mpi *r, const mbedtls_mpi *s)
{
    mbedtls_mpi e, w, u1, u2;
    mbedtls_ecp_point R;
    size_t nbits = grp->nbits;
    int rc;

    if (mbedtls_mpi_cmp_int(&grp->N, 0) == 0)
        return MBEDTLS_ERR_ECP_BAD_INPUT_DATA;   /* Curve25519 and the like: no ECDSA */
    if (mbedtls_mpi_cmp_int(r, 1) < 0 || mbedtls_mpi_cmp_mpi(r, &grp->N) >= 0 ||
        mbedtls_mpi_cmp_int(s, 1) < 0 || mbedtls_mpi_cmp_mpi(s, &grp->N) >= 0)
        return MBEDTLS_ERR_ECP_VERIFY_FAILED;
    rc = mbedtls_ecp_check_pubkey(grp, Q);
    if (rc != 0)
        return rc;
    mbedtls_mpi_init(&e);
    mbedtls_mpi_init(&w);
    mbedtls_mpi_init(&u1);
    mbedtls_mpi_init(&u2);
    mbedtls_ecp_point_init(&R);
    /* e: the hash's leftmost nbits bits. */
    if (blen > (nbits + 7) / 8)
        blen = (nbits + 7) / 8;
    rc = mbedtls_mpi_read_binary(&e, buf, blen);
    if (rc == 0 && blen * 8 > nbits)
        rc = mbedtls_mpi_shift_r(&e, blen * 8 - nbits);
    if (rc == 0 && mbedtls_mpi_cmp_mpi(&e, &grp->N) >= 0)
        rc = mbedtls_mpi_sub_mpi(&e, &e, &grp->N);
    if (rc == 0)
        rc = mbedtls_mpi_inv_mod(&w, s, &grp->N);
    if (rc == 0)
        rc = mbedtls_mpi_mul_mpi(&u1, &e, &w);
    if (rc == 0)
        rc = mbedtls_mpi_mod_mpi(&u1, &u1, &grp->N);
    if (rc == 0)
        rc = mbedtls_mpi_mul_mpi(&u2, r, &w);
    if (rc == 0)
        rc = mbedtls_mpi_mod_mpi(&u2, &u2, &grp->N);
    /* R = u1 G + u2 Q; valid when R is not zero and R.x mod n == r. */
    if (rc == 0)
        rc = mbedtls_ecp_muladd(grp, &R, &u1, &grp->G, &u2, Q);
    if (rc == 0 && mbedtls_ecp_is_zero(&R))
        rc = MBEDTLS_ERR_ECP_VERIFY_FAILED;
    if (rc == 0)
        rc = mbedtls_mpi_mod_mpi(&R.MBEDTLS_PRIVATE(X), &R.MBEDTLS_PRIVATE(X), &grp->N);
    if (rc == 0 && mbedtls_mpi_cmp_mpi(&R.MBEDTLS_PRIVATE(X), r) != 0)
        rc = MBEDTLS_ERR_ECP_VERIFY_FAILED;
    mbedtls_ecp_point_free(&R);
    mbedtls_mpi_free(&u2);
    mbedtls_mpi_free(&u1);
    mbedtls_mpi_free(&w);
    mbedtls_mpi_free(&e);
    return rc;
}

int mbedtls_ecdsa_verify(mbedtls_ecp_group *grp, const unsigned char *buf, size_t blen,
                         const mbedtls_ecp_point *Q, const mbedtls_mpi *r, const mbedtls_mpi *s)
{
    const struct ecc_curve *curve = nettle_curve(grp->id);

    return curve ? verify_nettle(curve, buf, blen, Q, r, s) : verify_generic(grp, buf, blen, Q, r, s);
}
