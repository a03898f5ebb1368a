/*
 * ws.c - the C half of the ws module: frame codec and handshake crypto for
 * lua/ws.lua, which runs connections (handshake, reader task, close).
 *
 *   d = ws._decoder(max_message)
 *   d:feed(data, i) -> "more", j
 *                    | "data", j, "text"|"binary", message, compressed
 *                    | "control", j, "close"|"ping"|"pong", payload, close_code
 *                    | nil, err   (kind "protocol", err.code: the close code to send)
 *   ws._send(sock, opcode, payload, fin, rsv1, server, send_timeout)
 *                    -> the frame (a client's masked with a fresh mask) sent
 *                       on sock: sock:send's results
 *   ws._key()        -> a fresh Sec-WebSocket-Key
 *   ws._accept(key)  -> the Sec-WebSocket-Accept the server must answer
 *
 * Masks and keys come from getrandom() (src/core/random.c).
 *
 * The decoder hands Lua whole messages only. Fragments are appended to a
 * lurk_buf (which doubles as it grows) inside feed's loop, so a message sent
 * as millions of 1-byte fragments costs one pass in C and about its own size
 * twice (the buffer, then the Lua string), not a Lua string and a table slot
 * per fragment. A message in one frame that arrived in one read is pushed
 * straight from the input, without the buffer.
 */
#include "lua/error.h"
#include "lua/modules.h"
#include "lua/class.h"
#include "lua/tcp.h"
#include "core/error.h"
#include "core/random.h"
#include "ws/frame.h"
#include "ws/pmd.h"

#include <errno.h>
#include <lauxlib.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <string.h>

#define DECODER_MT "lurk.ws.decoder"

static const char *const opnames[16] = {
    [LURK_WS_TEXT] = "text", [LURK_WS_BINARY] = "binary",
    [LURK_WS_CLOSE] = "close", [LURK_WS_PING] = "ping", [LURK_WS_PONG] = "pong",
};

struct decoder {
    struct lurk_ws_decoder d;
    struct lurk_buf msg;              /* the fragments so far of the message being received */
};

/* Empties the message buffer; a large one is freed, so a connection that
 * once took a big message does not keep its memory. */
static void msg_reset(struct lurk_buf *b)
{
    if (b->cap > 64 * 1024)
        lurk_buf_fini(b);
    else
        lurk_buf_consume(b, lurk_buf_len(b));
}

static int msg_append(struct lurk_buf *b, const unsigned char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (lurk_buf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(lurk_buf_tail(b), p, n);
    lurk_buf_commit(b, n);
    return 0;
}

/* d:feed(data, i): decodes from data[i..] up to the next message, control
 * frame or the end of data (see the file header). */
static int decoder_feed(lua_State *L)
{
    struct decoder *z = luaL_checkudata(L, 1, DECODER_MT);
    size_t len, used, pos;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    const unsigned char *in = (const unsigned char *)data;
    struct lurk_ws_event ev;
    int rc;

    luaL_argcheck(L, i >= 1 && (size_t)i <= len + 1, 3, "position out of range");
    pos = (size_t)(i - 1);
    for (;;) {
        rc = lurk_ws_decode(&z->d, in + pos, len - pos, &used, &ev);
        pos += used;
        if (rc == 0 && ev.kind == LURK_WS_DATA) {
            if (!ev.message_end || lurk_buf_len(&z->msg) > 0)
                rc = msg_append(&z->msg, ev.data, ev.len);
            if (rc == 0 && !ev.message_end)
                continue;                 /* the next fragment, in this loop */
        }
        break;
    }
    if (rc < 0) {
        msg_reset(&z->msg);
        if (rc == -ENOMEM) {
            lurk_lua_errorf(L, rc, "read", "WebSocket message too large for memory");
            lua_pushinteger(L, 1009);
        } else {
            lurk_lua_errorf(L, rc, "read", "WebSocket protocol error: %s", z->d.error ? z->d.error : "?");
            lua_pushinteger(L, z->d.close_code);
        }
        lua_setfield(L, -2, "code");
        return 2;
    }
    switch (ev.kind) {
    case LURK_WS_DATA:
        lua_pushliteral(L, "data");
        lua_pushinteger(L, (lua_Integer)pos + 1);
        lua_pushstring(L, opnames[ev.opcode]);
        if (lurk_buf_len(&z->msg) > 0) {
            lua_pushlstring(L, lurk_buf_head(&z->msg), lurk_buf_len(&z->msg));
            msg_reset(&z->msg);
        } else {
            lua_pushlstring(L, (const char *)ev.data, ev.len);
        }
        lua_pushboolean(L, ev.compressed);
        return 5;
    case LURK_WS_CONTROL:
        lua_pushliteral(L, "control");
        lua_pushinteger(L, (lua_Integer)pos + 1);
        lua_pushstring(L, opnames[ev.opcode]);
        lua_pushlstring(L, (const char *)ev.data, ev.len);
        lua_pushinteger(L, ev.close_code);
        return 5;
    default:
        lua_pushliteral(L, "more");
        lua_pushinteger(L, (lua_Integer)pos + 1);
        return 2;
    }
}

static int decoder_gc(lua_State *L)
{
    struct decoder *z = luaL_checkudata(L, 1, DECODER_MT);

    lurk_ws_decoder_fini(&z->d);      /* a server's decoder owns its unmasking buffer */
    lurk_buf_fini(&z->msg);
    return 0;
}

/* d:allow_compressed(): permessage-deflate was negotiated (RSV1 allowed) */
static int decoder_allow(lua_State *L)
{
    struct decoder *z = luaL_checkudata(L, 1, DECODER_MT);

    z->d.allow_rsv1 = true;
    return 0;
}


/* ws._decoder(max_message [, server]) -> decoder */
static int l_decoder(lua_State *L)
{
    lua_Number max = luaL_checknumber(L, 1);
    bool server = lua_toboolean(L, 2);
    struct decoder *z;

    luaL_argcheck(L, max >= 1, 1, "max_message must be at least 1");
    z = lua_newuserdata(L, sizeof *z);
    memset(&z->msg, 0, sizeof z->msg);
    /* math.huge and beyond: no limit (a double that large does not convert). */
    lurk_ws_decoder_init(&z->d, max >= 1.8e19 ? UINT64_MAX : (uint64_t)max);
    if (server)
        lurk_ws_decoder_serve(&z->d); /* ws.upgrade: masked frames from a client */
    luaL_getmetatable(L, DECODER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* ---- permessage-deflate ---- */

#define PMD_MT "lurk.ws.pmd"

struct pmd {
    struct lurk_pmd p;
    struct lurk_buf out;
};

/* pmd:inflate(piece, message_end) -> text so far | nil, err (err.code) */
static int pmd_inflate(lua_State *L)
{
    struct pmd *z = luaL_checkudata(L, 1, PMD_MT);
    size_t len;
    const char *in = luaL_checklstring(L, 2, &len);
    int rc = lurk_pmd_inflate(&z->p, in, len, lua_toboolean(L, 3), &z->out);

    if (rc < 0) {
        lurk_buf_consume(&z->out, lurk_buf_len(&z->out));
        lurk_lua_errorf(L, rc == -LURK_ELIMIT ? -LURK_EWS : rc, "read", "%s",
                        rc == -LURK_ELIMIT ? "WebSocket protocol error: message too large once inflated"
                                           : "WebSocket protocol error: invalid compressed data");
        lua_pushinteger(L, rc == -LURK_ELIMIT ? 1009 : 1007);
        lua_setfield(L, -2, "code");
        return 2;
    }
    lua_pushlstring(L, lurk_buf_len(&z->out) ? lurk_buf_head(&z->out) : "", lurk_buf_len(&z->out));
    msg_reset(&z->out);
    return 1;
}

/* pmd:deflate(message) -> compressed payload */
static int pmd_deflate(lua_State *L)
{
    struct pmd *z = luaL_checkudata(L, 1, PMD_MT);
    size_t len;
    const char *in = luaL_checklstring(L, 2, &len);

    if (lurk_pmd_deflate(&z->p, in, len, &z->out) < 0)
        return luaL_error(L, "deflate failed");
    lua_pushlstring(L, lurk_buf_len(&z->out) ? lurk_buf_head(&z->out) : "", lurk_buf_len(&z->out));
    lurk_buf_consume(&z->out, lurk_buf_len(&z->out));
    return 1;
}

static int pmd_gc(lua_State *L)
{
    struct pmd *z = luaL_checkudata(L, 1, PMD_MT);

    lurk_pmd_fini(&z->p);
    lurk_buf_fini(&z->out);
    return 0;
}

/* ws._pmd(server_bits, server_no_context, client_bits, client_no_context, max) -> pmd */
static int l_pmd(lua_State *L)
{
    int sb = (int)luaL_checkinteger(L, 1), cb = (int)luaL_checkinteger(L, 3);
    lua_Number max = luaL_checknumber(L, 5);
    struct pmd *z;

    luaL_argcheck(L, sb >= 8 && sb <= 15, 1, "window bits must be 8-15");
    luaL_argcheck(L, cb >= 8 && cb <= 15, 3, "window bits must be 8-15");
    z = lua_newuserdata(L, sizeof *z);
    memset(z, 0, sizeof *z);
    if (lurk_pmd_init(&z->p, sb, lua_toboolean(L, 2), cb, lua_toboolean(L, 4),
                      max >= 1.8e19 ? SIZE_MAX : (size_t)max) < 0)
        return luaL_error(L, "out of memory");
    luaL_getmetatable(L, PMD_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* Pushes the frame of the arguments from base on: opcode, payload [, fin =
 * true [, rsv1 [, server]]] (a server's frame is not masked). */
static void push_frame(lua_State *L, int base)
{
    static const char *const ops[] = { "text", "binary", "close", "ping", "pong", "cont", NULL };
    static const enum lurk_ws_opcode codes[] = { LURK_WS_TEXT, LURK_WS_BINARY, LURK_WS_CLOSE,
                                                 LURK_WS_PING, LURK_WS_PONG, LURK_WS_CONT };
    enum lurk_ws_opcode op = codes[luaL_checkoption(L, base, NULL, ops)];
    size_t len;
    const char *payload = luaL_optlstring(L, base + 1, "", &len);
    bool fin = lua_isnoneornil(L, base + 2) || lua_toboolean(L, base + 2);
    bool server = lua_toboolean(L, base + 4);
    unsigned char mask[4], hdr[14], small[256], *out;
    size_t hlen;

    if (op >= LURK_WS_CLOSE && len > 125)
        luaL_argerror(L, base + 1, "control frame payloads are limited to 125 bytes");
    if (!server && lurk_random(mask, sizeof mask) < 0)
        luaL_error(L, "getrandom failed");
    hlen = lurk_ws_header(hdr, op, fin, len, server ? NULL : mask);
    if (lua_toboolean(L, base + 3))
        hdr[0] |= 0x40;               /* RSV1: a permessage-deflate message */
    /* Assemble on the stack, or a big frame in a scratch userdata
     * (collected even if pushing raises). */
    out = hlen + len <= sizeof small ? small : lua_newuserdata(L, hlen + len);
    memcpy(out, hdr, hlen);
    memcpy(out + hlen, payload, len);
    if (!server)
        lurk_ws_mask(out + hlen, len, mask, 0);
    lua_pushlstring(L, (const char *)out, hlen + len);
    if (out != small)
        lua_remove(L, -2);
}

/* ws._send(sock, opcode, payload, fin, rsv1, server, send_timeout) -> bytes
 * | nil, err: the frame sent as sock:send sends, within send_timeout (nil:
 * none) too: one C call per frame. */
static int l_send(lua_State *L)
{
    double timeout = luaL_optnumber(L, 7, 0);

    lua_settop(L, 7);
    push_frame(L, 2);
    return lurk_lua_sock_send_within(L, 8, timeout, "conn:send");
}

/* ws._key() -> base64 of 16 random bytes */
static int l_key(lua_State *L)
{
    unsigned char raw[16], enc[32];
    size_t olen;

    if (lurk_random(raw, sizeof raw) < 0)
        return luaL_error(L, "getrandom failed");
    mbedtls_base64_encode(enc, sizeof enc, &olen, raw, sizeof raw);
    lua_pushlstring(L, (const char *)enc, olen);
    return 1;
}

/* ws._accept(key) -> base64(SHA-1(key .. GUID)) */
static int l_accept(lua_State *L)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    unsigned char sum[20], enc[40];
    mbedtls_sha1_context c;
    size_t olen;

    mbedtls_sha1_init(&c);
    mbedtls_sha1_starts(&c);
    mbedtls_sha1_update(&c, (const unsigned char *)key, klen);
    mbedtls_sha1_update(&c, (const unsigned char *)guid, sizeof guid - 1);
    mbedtls_sha1_finish(&c, sum);
    mbedtls_sha1_free(&c);
    mbedtls_base64_encode(enc, sizeof enc, &olen, sum, sizeof sum);
    lua_pushlstring(L, (const char *)enc, olen);
    return 1;
}

/* ws._utf8(s) -> true if s is valid UTF-8 */
static int l_utf8(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    uint32_t st = 0;

    lua_pushboolean(L, lurk_utf8_feed(&st, (const unsigned char *)s, len) && st == 0);
    return 1;
}

int lurk_lua_open_ws(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "_decoder", l_decoder },
        { "_send", l_send },
        { "_key", l_key },
        { "_accept", l_accept },
        { "_utf8", l_utf8 },
        { "_pmd", l_pmd },
        { NULL, NULL },
    };

    static const luaL_Reg decoder_methods[] = {
        { "feed", decoder_feed },
        { "allow_compressed", decoder_allow },
        { NULL, NULL },
    };
    static const luaL_Reg pmd_methods[] = {
        { "inflate", pmd_inflate },
        { "deflate", pmd_deflate },
        { NULL, NULL },
    };
    static const luaL_Reg pmd_meta[] = {
        { "__gc", pmd_gc },
        { NULL, NULL },
    };
    static const luaL_Reg decoder_meta[] = {
        { "__gc", decoder_gc },
        { NULL, NULL },
    };

    lurk_lua_class(L, DECODER_MT, decoder_methods, decoder_meta);
    lurk_lua_class(L, PMD_MT, pmd_methods, pmd_meta);
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
