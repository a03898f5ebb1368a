/*
 * buf.c - growth policy for struct lurk_buf: compact first, then double.
 */
#include "core/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* lurk_buf_reserve's slow path: compact, or grow. */
int lurk_buf_make_room(struct lurk_buf *b, size_t room)
{
    size_t len = lurk_buf_len(b), cap;
    char *p;

    if (b->rpos > 0 && b->cap - len >= room) {
        memmove(b->data, b->data + b->rpos, len);
        b->rpos = 0;
        b->wpos = len;
        return 0;
    }
    cap = b->cap ? b->cap : 4096;
    while (cap - len < room) {
        if (cap > ((size_t)-1) / 2)
            return -ENOMEM;
        cap *= 2;
    }
    p = malloc(cap);
    if (!p)
        return -ENOMEM;
    if (len)
        memcpy(p, b->data + b->rpos, len);
    free(b->data);
    b->data = p;
    b->cap = cap;
    b->rpos = 0;
    b->wpos = len;
    return 0;
}

void lurk_buf_consume(struct lurk_buf *b, size_t n)
{
    b->rpos += n;
    if (b->rpos == b->wpos)
        b->rpos = b->wpos = 0;       /* empty: start over at the front */
}

void lurk_buf_fini(struct lurk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->rpos = b->wpos = b->cap = 0;
}
