/*
 * inflate.h - streaming gzip/deflate decoding of response bodies, with a cap
 * on the decoded size (a small body must not expand without bound).
 */
#ifndef LURK_HTTP_INFLATE_H
#define LURK_HTTP_INFLATE_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

enum lurk_coding { LURK_GZIP = 1, LURK_DEFLATE };

struct lurk_inflate {
    z_stream z;
    enum lurk_coding coding;
    bool started, ended, raw;
    size_t total, max;
    unsigned char first[2];           /* deflate: sniffing zlib vs raw */
    size_t nfirst;
};

/* Prepares a decoder producing at most max bytes. Returns 0 or -ENOMEM. */
int lurk_inflate_init(struct lurk_inflate *f, enum lurk_coding coding, size_t max);

/*
 * Decodes len bytes, appending the output to out. Returns 0, -LURK_ELIMIT
 * when the output would pass max, or -LURK_EHTTP for corrupt data (or data
 * after the end of the stream).
 */
int lurk_inflate_push(struct lurk_inflate *f, const void *in, size_t len, struct lurk_buf *out);

/* The body ended: 0 if the compressed stream was complete, else -LURK_EHTTP. */
int lurk_inflate_end(struct lurk_inflate *f);

void lurk_inflate_fini(struct lurk_inflate *f);

#endif
