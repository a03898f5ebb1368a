/*
 * random.c - getrandom() drawn 4 KiB at a time per thread; bytes handed out
 * are wiped from the pool so none is ever given twice.
 */
#include "core/random.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static _Thread_local unsigned char pool[4096];
static _Thread_local size_t pool_left;

/* A signal may cut a read of the urandom pool short: ask again for the rest. */
static int refill(void)
{
    size_t have = 0;

    while (have < sizeof pool) {
        ssize_t got = getrandom(pool + have, sizeof pool - have, 0);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EIO;
        have += (size_t)got;
    }
    pool_left = sizeof pool;
    return 0;
}

int lurk_random(void *out, size_t n)
{
    unsigned char *p = out;

    while (n > 0) {
        size_t take;
        int rc;

        if (pool_left == 0 && (rc = refill()) < 0)
            return rc;
        take = n < pool_left ? n : pool_left;
        memcpy(p, pool + sizeof pool - pool_left, take);
        memset(pool + sizeof pool - pool_left, 0, take);
        pool_left -= take;
        p += take;
        n -= take;
    }
    return 0;
}
