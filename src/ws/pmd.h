/*
 * pmd.h - permessage-deflate (RFC 7692) for the WebSocket client: one raw
 * deflate stream per direction, reset after each message when the peer
 * asked for no context takeover, with a cap on inflated message size.
 */
#ifndef LURK_WS_PMD_H
#define LURK_WS_PMD_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

struct lurk_pmd {
    z_stream in, out;
    bool in_ready, out_ready;
    bool in_reset, out_reset;         /* *_no_context_takeover */
    bool in_fresh;                    /* a final block just ended the stream */
    size_t max, msg_total;
};

/* server_bits / client_bits: the negotiated window sizes (9-15; 8 is taken
 * as 9, which zlib's inflate accepts for 8-bit windows too). */
int lurk_pmd_init(struct lurk_pmd *p, int server_bits, bool server_no_context, int client_bits,
                  bool client_no_context, size_t max_message);

/* Inflates a piece of a message, appending to out; end: the message ends
 * with this piece. Returns 0, -LURK_ELIMIT (over max_message) or -LURK_EWS. */
int lurk_pmd_inflate(struct lurk_pmd *p, const void *in, size_t len, bool end, struct lurk_buf *out);

/* Deflates a whole message into out (without the 00 00 ff ff tail). */
int lurk_pmd_deflate(struct lurk_pmd *p, const void *in, size_t len, struct lurk_buf *out);

void lurk_pmd_fini(struct lurk_pmd *p);

#endif
