/*
 * frame.h - the RFC 6455 frame codec for a WebSocket client.
 *
 * Encoding: client frames are always masked; the caller picks the mask
 * (fresh random bytes per frame) and masks the payload with lurk_ws_mask().
 *
 * Decoding is incremental over the bytes the server sends: feed what has
 * arrived, get one event at a time (a slice of a data frame's payload
 * pointing into the input, or a whole control frame), validated as RFC 6455
 * requires of a client: no masked frames, no reserved bits or opcodes (no
 * extension is negotiated), control frames of at most 125 bytes and never
 * fragmented, continuation only inside a message, text that is valid UTF-8
 * (checked as it arrives, across fragments; for a compressed message the
 * caller checks the inflated text), messages no larger than the
 * limit, valid close codes. A violation returns -LURK_EWS with the close
 * code to send (1002, 1007 or 1009) and a reason.
 */
#ifndef LURK_WS_FRAME_H
#define LURK_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lurk_ws_opcode {
    LURK_WS_CONT = 0x0,
    LURK_WS_TEXT = 0x1,
    LURK_WS_BINARY = 0x2,
    LURK_WS_CLOSE = 0x8,
    LURK_WS_PING = 0x9,
    LURK_WS_PONG = 0xA,
};

/* Writes the header of a masked client frame carrying len payload bytes
 * into out (at most 14 bytes) and returns its length; with mask NULL, of an
 * unmasked server frame (at most 10 bytes). */
size_t lurk_ws_header(unsigned char out[14], enum lurk_ws_opcode op, bool fin, uint64_t len,
                      const unsigned char mask[4]);

/* XORs p[0..len) with the mask, starting at position `offset` of the
 * payload (so a payload can be masked in pieces). */
void lurk_ws_mask(unsigned char *p, size_t len, const unsigned char mask[4], uint64_t offset);

/* Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF). state starts at 0; returns false at the first bad byte.
 * A message is complete and valid only if the state is 0 at its end. */
bool lurk_utf8_feed(uint32_t *state, const unsigned char *p, size_t len);

enum lurk_ws_event_kind {
    LURK_WS_NEED_MORE,                /* everything consumed */
    LURK_WS_DATA,                     /* a slice of a text or binary message */
    LURK_WS_CONTROL,                  /* a whole close, ping or pong frame */
};

struct lurk_ws_event {
    enum lurk_ws_event_kind kind;
    enum lurk_ws_opcode opcode;       /* DATA: TEXT or BINARY (of the message); CONTROL: its opcode */
    const unsigned char *data;        /* DATA: into the input; CONTROL: into the decoder */
    size_t len;
    bool message_end;                 /* DATA: this slice ends the message */
    bool compressed;                  /* DATA: the message is permessage-deflate compressed */
    int close_code;                   /* CONTROL close: the code, 1005 if none was sent */
};

struct lurk_ws_decoder {
    /* frame being parsed */
    int state;
    unsigned char hdr[14];
    size_t hdr_len, hdr_need;
    enum lurk_ws_opcode op;
    bool fin;
    uint64_t remaining;               /* payload bytes of the frame still to come */
    /* message being assembled */
    bool in_message;
    enum lurk_ws_opcode msg_op;
    uint64_t msg_size, max_message;
    uint32_t utf8;
    bool allow_rsv1;                  /* permessage-deflate was negotiated (set by the caller) */
    bool rsv1, msg_compressed;
    /* a control frame being collected */
    unsigned char ctl[125];
    size_t ctl_len;
    /* on error */
    int close_code;                   /* 1002, 1007 or 1009 */
    const char *error;
    /* the server role (lurk_ws_decoder_serve): client frames must be
     * masked; data slices are unmasked into scratch */
    bool server;
    unsigned char mask[4];
    uint64_t mask_off;                /* payload bytes of the frame unmasked so far */
    unsigned char *scratch;
    size_t scratch_cap;
};

/* max_message: the largest message accepted (payload bytes, all fragments). */
void lurk_ws_decoder_init(struct lurk_ws_decoder *d, uint64_t max_message);

/* Turns an initialised decoder into a server's: every frame must be masked
 * (an unmasked one fails with 1002), and data slices point into the
 * decoder's own buffer, unmasked, instead of into the input. Such a decoder
 * owns memory: lurk_ws_decoder_fini() frees it. */
void lurk_ws_decoder_serve(struct lurk_ws_decoder *d);
void lurk_ws_decoder_fini(struct lurk_ws_decoder *d);

/*
 * Decodes from in[0..len): returns 0 and fills ev (kind NEED_MORE when all
 * input is consumed without an event), setting *used to the bytes consumed;
 * or -LURK_EWS with d->close_code and d->error set (the connection must then
 * be failed: send a close frame with that code, then close).
 */
int lurk_ws_decode(struct lurk_ws_decoder *d, const unsigned char *in, size_t len, size_t *used,
                   struct lurk_ws_event *ev);

#endif
