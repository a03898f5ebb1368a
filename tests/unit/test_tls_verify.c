/*
 * test_tls_verify.c - lurk's host-name rules (RFC 9525 as curl applies
 * them) case by case, the host forms verify.c accepts, and lurk_tls_split,
 * which replaced strtok: two threads splitting different lists at once must
 * each get their own items (strtok's hidden state mixed them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "tls/ctx.h"
#include "tls/verify.h"

static bool match(const char *pattern, const char *host)
{
    return lurk_tls_name_match(pattern, strlen(pattern), host, strlen(host));
}

static void names(void **state)
{
    (void)state;
    assert_true(match("good.example.test", "good.example.test"));
    assert_true(match("good.example.test", "GOOD.Example.TEST"));    /* case-insensitive */
    assert_true(match("good.example.test", "good.example.test."));   /* trailing dots ignored */
    assert_true(match("good.example.test.", "good.example.test"));
    assert_false(match("good.example.test", "good.example.test.."));
    assert_false(match("good.example.test", "bad.example.test"));
    assert_false(match("good.example.test", "example.test"));
    assert_false(match("", "example.test"));

    assert_true(match("*.example.test", "a.example.test"));
    assert_true(match("*.example.test", "A.EXAMPLE.test."));
    assert_false(match("*.example.test", "a.b.example.test"));      /* one label only */
    assert_false(match("*.example.test", "example.test"));          /* not the apex */
    assert_false(match("*.example.test", ".example.test"));         /* not an empty label */
    assert_false(match("*.test", "tld.test"));                      /* two labels after it */
    assert_false(match("*.", "a."));
    assert_false(match("*", "good.example.test"));
    assert_false(match("f*.example.test", "foo.example.test"));     /* whole label only */
    assert_false(match("*f.example.test", "ff.example.test"));
    assert_false(match("a.*.example.test", "a.b.example.test"));    /* left-most only */
    assert_false(match("*.*.example.test", "a.b.example.test"));
    assert_false(match("*.example..test", "a.example..test"));
}

static void hosts(void **state)
{
    struct lurk_tls_verify v;

    (void)state;
    assert_int_equal(lurk_tls_verify_init(&v, "Good.Example.Test."), 0);
    assert_string_equal(v.host, "good.example.test");
    assert_string_equal(lurk_tls_verify_sni(&v), "good.example.test");
    assert_int_equal(lurk_tls_verify_init(&v, "127.0.0.1"), 0);
    assert_int_equal(v.ip_len, 4);
    assert_null(lurk_tls_verify_sni(&v));                          /* no SNI for IPs (RFC 6066) */
    assert_int_equal(lurk_tls_verify_init(&v, "::1"), 0);
    assert_int_equal(v.ip_len, 16);
    assert_null(lurk_tls_verify_sni(&v));
    assert_int_equal(lurk_tls_verify_init(&v, ""), -EINVAL);
    assert_int_equal(lurk_tls_verify_init(&v, NULL), -EINVAL);
}

static void split(void **state)
{
    char store[32];
    const char *items[4];

    (void)state;
    assert_int_equal(lurk_tls_split("h2,http/1.1", ",", store, sizeof store, items, 3), 2);
    assert_string_equal(items[0], "h2");
    assert_string_equal(items[1], "http/1.1");
    assert_null(items[2]);
    assert_int_equal(lurk_tls_split(",,a,,b,", ",", store, sizeof store, items, 3), 2);
    assert_string_equal(items[1], "b");
    assert_int_equal(lurk_tls_split("", ",", store, sizeof store, items, 3), 0);
    assert_int_equal(lurk_tls_split("a,b,c,d", ",", store, sizeof store, items, 3), -EINVAL);
    assert_int_equal(lurk_tls_split("a-much-longer-list-than-the-store-has-room-for", ",", store,
                                    sizeof store, items, 3), -EINVAL);
}

struct job {
    const char *list, *seps, *want[3];
    int bad;
};

static void *split_many(void *arg)
{
    struct job *j = arg;
    char store[64];
    const char *items[4];

    for (int i = 0; i < 200000; i++) {
        if (lurk_tls_split(j->list, j->seps, store, sizeof store, items, 3) != 3 ||
            strcmp(items[0], j->want[0]) || strcmp(items[1], j->want[1]) || strcmp(items[2], j->want[2]))
            j->bad++;
    }
    return NULL;
}

static void split_in_threads(void **state)
{
    struct job a = { "h2,http/1.1,spdy", ",", { "h2", "http/1.1", "spdy" }, 0 };
    struct job b = { "TLS1-3-AES-128-GCM-SHA256:X:Y", ":,", { "TLS1-3-AES-128-GCM-SHA256", "X", "Y" }, 0 };
    pthread_t ta, tb;

    (void)state;
    assert_int_equal(pthread_create(&ta, NULL, split_many, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, split_many, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.bad, 0);
    assert_int_equal(b.bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(hosts),
        cmocka_unit_test(split),
        cmocka_unit_test(split_in_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
