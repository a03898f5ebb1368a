/* test_buf: growth, compaction and consumption of struct lurk_buf. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/buf.h"

#include <string.h>

static void test_reserve_compact_grow(void **state)
{
    struct lurk_buf b = { 0 };

    (void)state;
    assert_int_equal(lurk_buf_reserve(&b, 10), 0);
    assert_true(lurk_buf_room(&b) >= 10);
    memcpy(lurk_buf_tail(&b), "0123456789", 10);
    lurk_buf_commit(&b, 10);
    assert_int_equal(lurk_buf_len(&b), 10);
    lurk_buf_consume(&b, 4);
    assert_memory_equal(lurk_buf_head(&b), "456789", 6);

    /* Room exists once the consumed prefix is reclaimed: no reallocation. */
    {
        char *before = b.data;
        size_t cap = b.cap;

        assert_int_equal(lurk_buf_reserve(&b, cap - 6), 0);
        assert_ptr_equal(b.data, before);
        assert_int_equal(b.rpos, 0);
        assert_memory_equal(lurk_buf_head(&b), "456789", 6);
    }
    /* More than fits: grows and keeps the unread bytes. */
    assert_int_equal(lurk_buf_reserve(&b, 1 << 20), 0);
    assert_true(lurk_buf_room(&b) >= (1u << 20));
    assert_memory_equal(lurk_buf_head(&b), "456789", 6);

    /* Consuming everything rewinds to the front. */
    lurk_buf_consume(&b, 6);
    assert_int_equal(b.rpos, 0);
    assert_int_equal(b.wpos, 0);
    lurk_buf_fini(&b);
    assert_null(b.data);
}

static void test_huge_reserve_fails_cleanly(void **state)
{
    struct lurk_buf b = { 0 };

    (void)state;
    assert_int_equal(lurk_buf_reserve(&b, 16), 0);
    assert_true(lurk_buf_reserve(&b, (size_t)-1 / 2 + 10) < 0);
    assert_non_null(b.data);                 /* unchanged */
    lurk_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_compact_grow),
        cmocka_unit_test(test_huge_reserve_fails_cleanly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
