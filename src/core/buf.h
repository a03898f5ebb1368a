/*
 * buf.h - a growable byte buffer with a read and a write position.
 *
 * Bytes live in data[rpos, wpos); the kernel appends at data + wpos. Never
 * grow or compact a buffer while an op is writing into it: the owner knows
 * when that is (one reader per stream).
 */
#ifndef LURK_CORE_BUF_H
#define LURK_CORE_BUF_H

#include <stddef.h>

struct lurk_buf {
    char *data;
    size_t rpos, wpos, cap;
};

static inline size_t lurk_buf_len(const struct lurk_buf *b) { return b->wpos - b->rpos; }
static inline char *lurk_buf_head(const struct lurk_buf *b) { return b->data + b->rpos; }
static inline char *lurk_buf_tail(const struct lurk_buf *b) { return b->data + b->wpos; }
static inline size_t lurk_buf_room(const struct lurk_buf *b) { return b->cap - b->wpos; }

int lurk_buf_make_room(struct lurk_buf *b, size_t room);

/*
 * Makes at least `room` bytes writable after wpos, moving unread bytes to the
 * front before growing. Returns 0 or -ENOMEM (the buffer is unchanged then).
 * Inline for the usual case, room already there (the parser calls it for
 * every piece of a response head).
 */
static inline int lurk_buf_reserve(struct lurk_buf *b, size_t room)
{
    return lurk_buf_room(b) >= room ? 0 : lurk_buf_make_room(b, room);
}

/* Marks n bytes at the tail as written / n bytes at the head as consumed. */
static inline void lurk_buf_commit(struct lurk_buf *b, size_t n) { b->wpos += n; }
void lurk_buf_consume(struct lurk_buf *b, size_t n);

void lurk_buf_fini(struct lurk_buf *b);

#endif
