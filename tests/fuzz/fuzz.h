/*
 * fuzz.h - what the fuzz targets in tests/fuzz share: an invariant check
 * that aborts (libFuzzer, and replay.c, report the abort with the input),
 * and split plans, which let the input choose how its bytes are cut into the
 * reads a parser is fed.
 *
 * A split plan is read from the front of the input: one byte n (only its
 * low 4 bits count, so 0-15), then n bytes, each a piece length minus one
 * (1-256), used in turn and then cycled. With n = 0 the rest arrives in one
 * piece. Every target that takes a plan also runs the same bytes in one
 * piece, and checks that both ways give the same result.
 */
#ifndef LURK_FUZZ_H
#define LURK_FUZZ_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))

static inline _Noreturn void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
    abort();
}

struct fuzz_splits {
    const uint8_t *size;
    size_t n, next;
};

/* Takes a split plan off the front of data[0..*len). */
static inline void fuzz_splits_take(struct fuzz_splits *s, const uint8_t **data, size_t *len)
{
    size_t n = 0;

    if (*len > 0) {
        n = **data & 15;
        (*data)++;
        (*len)--;
    }
    if (n > *len)
        n = *len;
    s->size = *data;
    s->n = n;
    s->next = 0;
    *data += n;
    *len -= n;
}

/* The length of the next piece, when left bytes remain (left if no plan). */
static inline size_t fuzz_splits_next(struct fuzz_splits *s, size_t left)
{
    size_t k;

    if (s->n == 0)
        return left;
    k = (size_t)s->size[s->next++ % s->n] + 1;
    return k < left ? k : left;
}

/* A plan that leaves the input whole. */
static inline struct fuzz_splits fuzz_whole(void)
{
    struct fuzz_splits s = { NULL, 0, 0 };

    return s;
}

/* Two event logs: whether a is where b starts, and whether they are equal. */
static inline bool fuzz_buf_is_prefix(const struct lurk_buf *a, const struct lurk_buf *b)
{
    return lurk_buf_len(a) <= lurk_buf_len(b) &&
           (lurk_buf_len(a) == 0 || memcmp(a->data, b->data, lurk_buf_len(a)) == 0);
}

static inline bool fuzz_buf_same(const struct lurk_buf *a, const struct lurk_buf *b)
{
    return lurk_buf_len(a) == lurk_buf_len(b) && fuzz_buf_is_prefix(a, b);
}

#endif
