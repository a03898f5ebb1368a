/*
 * test_tls_suites.c - the cipher suites lurk offers by default: forward
 * secret or TLS 1.3 only, and every suite kTLS can carry among them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <mbedtls/ssl.h>
#include <string.h>

#include "tls/tls.h"
#include "tls/ctx.h"

static bool offered(const char *name)
{
    for (const int *id = lurk_tls_default_suites(); *id; id++)
        if (strcmp(mbedtls_ssl_get_ciphersuite_name(*id), name) == 0)
            return true;
    return false;
}

static void only_forward_secret_suites(void **state)
{
    size_t n = 0;

    (void)state;
    for (const int *id = lurk_tls_default_suites(); *id; id++, n++) {
        const char *name = mbedtls_ssl_get_ciphersuite_name(*id);

        assert_true(strncmp(name, "TLS1-3-", 7) == 0 || strstr(name, "-ECDHE-") ||
                    strstr(name, "-DHE-RSA-"));
        assert_null(strstr(name, "PSK"));
        assert_null(strstr(name, "NULL"));
        assert_null(strstr(name, "CCM-8"));
    }
    assert_true(n >= 6);
    assert_false(offered("TLS-RSA-WITH-AES-128-GCM-SHA256"));      /* static RSA */
    assert_false(offered("TLS-ECDH-ECDSA-WITH-AES-128-GCM-SHA256"));   /* static ECDH */
}

static void ktls_suites_offered(void **state)
{
    (void)state;
    assert_true(offered("TLS1-3-AES-128-GCM-SHA256"));
    assert_true(offered("TLS1-3-AES-256-GCM-SHA384"));
    assert_true(offered("TLS1-3-CHACHA20-POLY1305-SHA256"));
    assert_true(offered("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"));
    assert_true(offered("TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"));
    assert_true(offered("TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"));
}

/* The record layer's AEADs come first, AES-GCM first with AES-NI and
 * ChaCha20-Poly1305 first without; the default follows this CPU. */
static int klass(int id)
{
    const char *name = mbedtls_ssl_get_ciphersuite_name(id);

    return strstr(name, "-AES-128-GCM-") || strstr(name, "-AES-256-GCM-") ? 1
         : strstr(name, "CHACHA20-POLY1305") ? 2 : 0;
}

static void aead_preference(void **state)
{
    int ids[128];

    (void)state;
    for (int aes = 0; aes <= 1; aes++) {
        size_t n = lurk_tls_order_suites(aes, ids, 128), i = 0;
        int first = aes ? 1 : 2, second = aes ? 2 : 1;

        assert_true(n >= 6);
        while (i < n && klass(ids[i]) == first)
            i++;
        assert_true(i >= 3);          /* TLS 1.3 and at least two TLS 1.2 suites */
        while (i < n && klass(ids[i]) == second)
            i++;
        for (; i < n; i++)
            assert_int_equal(klass(ids[i]), 0);   /* the rest: neither */
    }
    assert_int_equal(klass(lurk_tls_default_suites()[0]), lurk_tls_hw_aes() ? 1 : 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aead_preference),
        cmocka_unit_test(only_forward_secret_suites),
        cmocka_unit_test(ktls_suites_offered),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
