/*
 * http.c - the C half of the http module: a response parser object over
 * src/http/h1.c for lua/http.lua, which does the rest (URLs, pooling,
 * redirects, response objects).
 *
 *   p = C._parser(is_head, max_head, max_headers)      (C: this module, lua/http.lua's C half)
 *   p:feed(data, i) -> "more", j
 *                    | "head", j, status, reason, headers, repeated
 *                    | "body", j, chunk
 *                    | "done", j, keep_alive
 *                    | "interim", j, status  (1xx before the final response)
 *                    | nil, err              (kind protocol or limit)
 *   p:finish()      -> "done" | nil, err     (the peer closed the connection)
 *
 * i and j are 1-based positions in data: j is where the next call starts.
 * headers[name] = value with names in lower case; a repeated field's values
 * are joined with ", " there and listed in repeated[name] (repeated is nil
 * when no field repeats).
 *
 *   C._random_hex(n) -> 2n random hex digits (multipart boundaries)
 *   C._head(method, target, host, headers, body_len, chunked, user_agent [, extra])
 *       -> the request head: the caller's headers checked (names are tokens,
 *          values have no CR, LF or NUL; a list value repeats the field),
 *          Host, User-Agent, Accept, Content-Length or Transfer-Encoding
 *          added unless the caller set them; extra: preformatted lines.
 */
#include "lua/http.h"
#include "lua/modules.h"
#include "lua/class.h"
#include "lua/error.h"
#include "core/error.h"
#include "core/random.h"
#include "http/h1.h"
#include "http/inflate.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>

#define PARSER_MT LURK_H1_MT

/*
 * The parser object. A connection's responses mostly repeat their header
 * fields byte for byte, so it remembers the last head's fields (their bytes
 * here; the Lua strings made of them in its environment table, [2i - 1]
 * the name and [2i] the value of field i) and gives the next head the same
 * strings where the bytes are the same, instead of making and interning
 * them again.
 */
struct parser {
    struct lurk_h1 h;                 /* first: sockets take it as a struct lurk_h1 */
    struct lurk_buf last;             /* the last head's names and values, run together */
    struct last_field { size_t name_len, value_len; } *fields;
    int nlast, cap;
    bool last_repeats;                /* a name came twice in it */
};

static struct lurk_h1 *check_parser(lua_State *L)
{
    return luaL_checkudata(L, 1, PARSER_MT);
}

/* Whether header i's name came earlier in this head. (Heads with very many
 * fields skip the quadratic check: any name may repeat.) */
static bool name_seen_before(const struct lurk_h1 *h, int i)
{
    const char *hd = h->head.data, *name = hd + h->hdr[i].name;
    size_t len = h->hdr[i].name_len;

    if (h->nhdr > 64)
        return true;
    for (int j = 0; j < i; j++)
        if (h->hdr[j].name_len == len && memcmp(hd + h->hdr[j].name, name, len) == 0)
            return true;
    return false;
}

/* A repeated field (its name, the value so far and this value on the
 * stack; the headers table at hdrs, the repeated table's slot after it):
 * the value joins the others. */
static void repeat_field(lua_State *L, int hdrs)
{
    int rep = hdrs + 1;

    if (lua_isnil(L, rep)) {
        lua_newtable(L);
        lua_replace(L, rep);
    }
    lua_pushvalue(L, -3);
    lua_rawget(L, rep);               /* name, previous, value, list */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 2, 0);
        lua_pushvalue(L, -3);
        lua_rawseti(L, -2, 1);
        lua_pushvalue(L, -4);
        lua_pushvalue(L, -2);
        lua_rawset(L, rep);
    }
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
    lua_pop(L, 1);                    /* name, previous, value */
    lua_pushliteral(L, ", ");
    lua_insert(L, -2);
    lua_concat(L, 3);
    lua_rawset(L, hdrs);
}

/* Pushes the string for piece k (2i - 1: field i's name, 2i: its value):
 * the cached one if it was these bytes last time, else a new one, cached. */
static void push_piece(lua_State *L, int cache, int k, bool same, const char *p, size_t len)
{
    if (same) {
        lua_rawgeti(L, cache, k);
        return;
    }
    lua_pushlstring(L, p, len);
    lua_pushvalue(L, -1);
    lua_rawseti(L, cache, k);
}

/* Remembers h's fields as the last head's (their strings are cached
 * already). Without memory, nothing is remembered: no reuse, no harm. */
static void remember(struct parser *ps, const struct lurk_h1 *h, const char *fields, size_t len, bool repeats)
{
    if (h->nhdr > ps->cap) {
        struct last_field *f = realloc(ps->fields, (size_t)h->nhdr * sizeof *f);

        if (!f)
            return;
        ps->fields = f;
        ps->cap = h->nhdr;
    }
    lurk_buf_consume(&ps->last, lurk_buf_len(&ps->last));
    if (lurk_buf_reserve(&ps->last, len) < 0)
        return;
    if (len)
        memcpy(lurk_buf_tail(&ps->last), fields, len);
    lurk_buf_commit(&ps->last, len);
    for (int i = 0; i < h->nhdr; i++) {
        ps->fields[i].name_len = h->hdr[i].name_len;
        ps->fields[i].value_len = h->hdr[i].value_len;
    }
    ps->nlast = h->nhdr;
    ps->last_repeats = repeats;
}

void lurk_lua_push_headers(lua_State *L, int idx)
{
    struct parser *ps = lua_touserdata(L, idx);
    struct lurk_h1 *h = &ps->h;
    /* The head buffer holds the fields run together, in order (h1.c). */
    const char *hd = h->head.data, *fields = h->nhdr ? hd + h->hdr[0].name : "";
    const char *last = ps->last.data;
    size_t len = 0, off = 0;
    int hdrs, cache, nlast = ps->nlast;
    bool whole, repeats = false;

    for (int i = 0; i < h->nhdr; i++)
        len += h->hdr[i].name_len + h->hdr[i].value_len;
    /* The same head as last time (the usual case): the same strings. */
    whole = nlast == h->nhdr && !ps->last_repeats && lurk_buf_len(&ps->last) == len &&
            (len == 0 || memcmp(last, fields, len) == 0);
    for (int i = 0; whole && i < h->nhdr; i++)
        whole = ps->fields[i].name_len == h->hdr[i].name_len && ps->fields[i].value_len == h->hdr[i].value_len;
    ps->nlast = 0;                    /* until the cache matches a head again */
    lua_getfenv(L, idx);
    cache = lua_gettop(L);
    lua_createtable(L, 0, h->nhdr);
    hdrs = lua_gettop(L);
    lua_pushnil(L);                   /* becomes the repeated-fields table */
    for (int i = 0; i < h->nhdr; i++) {
        const char *name = hd + h->hdr[i].name, *value = h->hdr[i].value_len ? hd + h->hdr[i].value : "";
        size_t nlen = h->hdr[i].name_len, vlen = h->hdr[i].value_len;
        bool known, same;

        if (whole) {
            lua_rawgeti(L, cache, 2 * i + 1);
            lua_rawgeti(L, cache, 2 * i + 2);
            lua_rawset(L, hdrs);
            continue;
        }
        known = i < nlast && ps->fields[i].name_len == nlen && memcmp(last + off, name, nlen) == 0;
        same = known && ps->fields[i].value_len == vlen && memcmp(last + off + nlen, value, vlen) == 0;
        if (i < nlast)
            off += ps->fields[i].name_len + ps->fields[i].value_len;
        push_piece(L, cache, 2 * i + 1, known, name, nlen);
        if (name_seen_before(h, i)) {
            lua_pushvalue(L, -1);
            lua_rawget(L, hdrs);      /* name, previous */
            if (!lua_isnil(L, -1)) {
                push_piece(L, cache, 2 * i + 2, same, value, vlen);
                repeat_field(L, hdrs);
                repeats = true;
                continue;
            }
            lua_pop(L, 1);
        }
        push_piece(L, cache, 2 * i + 2, same, value, vlen);
        lua_rawset(L, hdrs);
    }
    if (whole)
        ps->nlast = nlast;
    else
        remember(ps, h, fields, len, repeats);
    lua_remove(L, cache);
}

static int parse_error(lua_State *L, struct lurk_h1 *h, int rc)
{
    return lurk_lua_errorf(L, rc, "read", "invalid HTTP response: %s", h->error ? h->error : lurk_strerror(rc));
}

static int parser_feed(lua_State *L)
{
    struct lurk_h1 *h = check_parser(L);
    size_t len, used;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    int ev;

    luaL_argcheck(L, i >= 1 && (size_t)i <= len + 1, 3, "position out of range");
    ev = lurk_h1_feed(h, data + i - 1, len - (size_t)(i - 1), &used);
    if (ev < 0)
        return parse_error(L, h, ev);
    lua_pushinteger(L, i + (lua_Integer)used);
    switch (ev) {
    case LURK_H1_HEAD:
        lua_pushliteral(L, "head");
        lua_insert(L, -2);
        lua_pushinteger(L, h->status);
        lua_pushlstring(L, h->head.data ? h->head.data + h->reason : "", h->reason_len);
        lurk_lua_push_headers(L, 1);
        return 6;
    case LURK_H1_BODY:
        lua_pushliteral(L, "body");
        lua_insert(L, -2);
        lua_pushlstring(L, h->body, h->body_len);
        return 3;
    case LURK_H1_DONE:
        lua_pushliteral(L, "done");
        lua_insert(L, -2);
        lua_pushboolean(L, lurk_h1_keep_alive(h));
        return 3;
    case LURK_H1_INTERIM:
        lua_pushliteral(L, "interim");
        lua_insert(L, -2);
        lua_pushinteger(L, h->status);
        return 3;
    default:
        lua_pushliteral(L, "more");
        lua_insert(L, -2);
        return 2;
    }
}

static int parser_finish(lua_State *L)
{
    struct lurk_h1 *h = check_parser(L);
    int ev = lurk_h1_finish(h);

    if (ev < 0)
        return parse_error(L, h, ev);
    lua_pushliteral(L, "done");
    return 1;
}

/* p:reset(is_head): ready for the next response on the same connection */
static int parser_reset(lua_State *L)
{
    lurk_h1_reset(check_parser(L), lua_toboolean(L, 2));
    return 0;
}

static int parser_gc(lua_State *L)
{
    struct parser *ps = (struct parser *)check_parser(L);

    lurk_h1_fini(&ps->h);
    lurk_buf_fini(&ps->last);
    free(ps->fields);
    ps->fields = NULL;
    return 0;
}

/* C._parser(is_head, max_head, max_headers) -> parser */
static int l_parser(lua_State *L)
{
    int head = lua_toboolean(L, 1);
    lua_Integer max_head = luaL_optinteger(L, 2, 64 * 1024);
    lua_Integer max_headers = luaL_optinteger(L, 3, 100);
    struct parser *ps;

    luaL_argcheck(L, max_head > 0, 2, "max_head must be positive");
    luaL_argcheck(L, max_headers > 0 && max_headers < 100000, 3, "max_headers out of range");
    ps = lua_newuserdata(L, sizeof *ps);
    memset(ps, 0, sizeof *ps);
    lurk_h1_init(&ps->h, head, (size_t)max_head, (int)max_headers);
    luaL_getmetatable(L, PARSER_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 32, 0);        /* the strings of the last head (struct parser) */
    lua_setfenv(L, -2);
    return 1;
}

/* ---- decoders ---- */

#define INFLATE_MT "lurk.inflate"

struct inflater {
    struct lurk_inflate f;
    struct lurk_buf out;
};

static int inflate_error(lua_State *L, int rc, const char *what)
{
    if (rc == -LURK_ELIMIT)
        return lurk_lua_errorf(L, rc, "read", "decompressed response body larger than max_body");
    return lurk_lua_errorf(L, rc, "read", "invalid %s-encoded response body", what);
}

/* z:push(data) -> decoded | nil, err */
static int inflater_push(lua_State *L)
{
    struct inflater *z = luaL_checkudata(L, 1, INFLATE_MT);
    size_t len;
    const char *in = luaL_checklstring(L, 2, &len);
    int rc = lurk_inflate_push(&z->f, in, len, &z->out);

    if (rc < 0)
        return inflate_error(L, rc, z->f.coding == LURK_GZIP ? "gzip" : "deflate");
    lua_pushlstring(L, lurk_buf_len(&z->out) ? lurk_buf_head(&z->out) : "", lurk_buf_len(&z->out));
    lurk_buf_consume(&z->out, lurk_buf_len(&z->out));
    return 1;
}

/* z:finish() -> true | nil, err (the compressed stream was cut short) */
static int inflater_finish(lua_State *L)
{
    struct inflater *z = luaL_checkudata(L, 1, INFLATE_MT);
    int rc = lurk_inflate_end(&z->f);

    if (rc < 0)
        return inflate_error(L, rc, z->f.coding == LURK_GZIP ? "gzip" : "deflate");
    lua_pushboolean(L, 1);
    return 1;
}

static int inflater_gc(lua_State *L)
{
    struct inflater *z = luaL_checkudata(L, 1, INFLATE_MT);

    lurk_inflate_fini(&z->f);
    lurk_buf_fini(&z->out);
    return 0;
}

/* C._inflater("gzip" | "deflate", max) -> z */
static bool is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr(extra, c))))
            return false;
    }
    return true;
}

enum { H_HOST = 1, H_UA = 2, H_ACCEPT = 4, H_LENGTH = 8, H_TE = 16 };

static int seen_flag(const char *n, size_t len)
{
    static const struct { const char *name; int flag; } known[] = {
        { "host", H_HOST }, { "user-agent", H_UA }, { "accept", H_ACCEPT },
        { "content-length", H_LENGTH }, { "transfer-encoding", H_TE },
    };

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, n, len) == 0)
            return known[i].flag;
    return 0;
}

/* The value at idx as a header value (a string or a number), checked. */
static const char *field_value(lua_State *L, int idx, const char *name, size_t *len)
{
    const char *v;

    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "header %s: value must be a string or a number (or a list of them)", name);
    v = lua_tolstring(L, idx, len);
    for (size_t i = 0; i < *len; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            luaL_error(L, "header %s: value contains CR, LF or NUL", name);
    return v;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* "name: value\r\n" for the value on top of the stack, checked: written
 * at out unless it is NULL; returns its length. */
static size_t one_field(lua_State *L, char *out, const char *name, size_t nlen)
{
    size_t vlen;
    const char *v = field_value(L, -1, name, &vlen);

    if (out) {
        out = put(out, name, nlen);
        out = put(out, ": ", 2);
        out = put(out, v, vlen);
        put(out, "\r\n", 2);
    }
    return nlen + vlen + 4;
}

/* One pass over the headers table (at index 4): with out == NULL, checks
 * every field and returns the bytes they need (and which known fields the
 * caller set, in *seen); else writes them at out and returns the end. */
static size_t header_fields(lua_State *L, char *out, int *seen)
{
    size_t total = 0;

    lua_pushnil(L);
    while (lua_next(L, 4)) {
        size_t nlen;
        const char *name;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "invalid header name (a %s)", luaL_typename(L, -2));
        if (!is_token(lua_tostring(L, -2), lua_objlen(L, -2)))
            luaL_error(L, "invalid header name \"%s\"", lua_tostring(L, -2));
        name = lua_tolstring(L, -2, &nlen);
        if (!out)
            *seen |= seen_flag(name, nlen);
        if (lua_istable(L, -1)) {
            int n = (int)lua_objlen(L, -1);

            for (int i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                total += one_field(L, out ? out + total : NULL, name, nlen);
                lua_pop(L, 1);
            }
        } else {
            total += one_field(L, out ? out + total : NULL, name, nlen);
        }
        lua_pop(L, 1);
    }
    return total;
}

static int l_head(lua_State *L)
{
    size_t mlen, tlen, hlen, ualen, xlen = 0, total;
    const char *method = luaL_checklstring(L, 1, &mlen);
    const char *target = luaL_checklstring(L, 2, &tlen);
    const char *host = luaL_checklstring(L, 3, &hlen);
    lua_Number body_len = luaL_optnumber(L, 5, -1);
    bool chunked = lua_toboolean(L, 6);
    const char *ua = luaL_checklstring(L, 7, &ualen);
    const char *extra = luaL_optlstring(L, 8, "", &xlen);
    char num[32] = "", small[1024], *out, *p;
    int seen = 0, nlen = 0;

    lua_settop(L, 8);                 /* slot 5 takes the scratch buffer below */
    luaL_checktype(L, 4, LUA_TTABLE);
    total = header_fields(L, NULL, &seen);
    if (body_len >= 0 && !(seen & H_LENGTH))
        nlen = snprintf(num, sizeof num, "%.0f", body_len);
    total += mlen + 1 + tlen + sizeof " HTTP/1.1\r\n" - 1 + xlen + 2;
    if (!(seen & H_HOST))
        total += sizeof "Host: \r\n" - 1 + hlen;
    if (!(seen & H_UA))
        total += sizeof "User-Agent: \r\n" - 1 + ualen;
    if (!(seen & H_ACCEPT))
        total += sizeof "Accept: */*\r\n" - 1;
    if (nlen)
        total += sizeof "Content-Length: \r\n" - 1 + (size_t)nlen;
    if (chunked && !(seen & H_TE))
        total += sizeof "Transfer-Encoding: chunked\r\n" - 1;

    /* Most heads fit the stack; a bigger one gets scratch memory that is
     * collected with the rest. */
    out = total <= sizeof small ? small : lua_newuserdata(L, total);
    p = put(out, method, mlen);
    p = put(p, " ", 1);
    p = put(p, target, tlen);
    p = put(p, " HTTP/1.1\r\n", sizeof " HTTP/1.1\r\n" - 1);
    if (!(seen & H_HOST)) {
        p = put(p, "Host: ", 6);
        p = put(p, host, hlen);
        p = put(p, "\r\n", 2);
    }
    p = put(p, extra, xlen);
    if (out != small)
        lua_replace(L, 5);            /* keep the scratch below lua_next's slots */
    p += header_fields(L, p, &seen);
    if (!(seen & H_UA)) {
        p = put(p, "User-Agent: ", 12);
        p = put(p, ua, ualen);
        p = put(p, "\r\n", 2);
    }
    if (!(seen & H_ACCEPT))
        p = put(p, "Accept: */*\r\n", sizeof "Accept: */*\r\n" - 1);
    if (nlen) {
        p = put(p, "Content-Length: ", 16);
        p = put(p, num, (size_t)nlen);
        p = put(p, "\r\n", 2);
    }
    if (chunked && !(seen & H_TE))
        p = put(p, "Transfer-Encoding: chunked\r\n", sizeof "Transfer-Encoding: chunked\r\n" - 1);
    p = put(p, "\r\n", 2);
    lua_pushlstring(L, out, (size_t)(p - out));
    return 1;
}

static int l_random_hex(lua_State *L)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[32];
    char hex[64];
    int n = (int)luaL_checkinteger(L, 1);

    luaL_argcheck(L, n > 0 && n <= (int)sizeof raw, 1, "1 to 32 bytes");
    if (lurk_random(raw, (size_t)n) < 0)
        return luaL_error(L, "getrandom failed");
    for (int i = 0; i < n; i++) {
        hex[2 * i] = digits[raw[i] >> 4];
        hex[2 * i + 1] = digits[raw[i] & 15];
    }
    lua_pushlstring(L, hex, (size_t)(2 * n));
    return 1;
}

static int l_inflater(lua_State *L)
{
    static const char *const names[] = { "gzip", "deflate", NULL };
    int which = luaL_checkoption(L, 1, NULL, names);
    lua_Number max = luaL_checknumber(L, 2);
    struct inflater *z = lua_newuserdata(L, sizeof *z);

    memset(z, 0, sizeof *z);
    lurk_inflate_init(&z->f, which == 0 ? LURK_GZIP : LURK_DEFLATE, max > 0 ? (size_t)max : 0);
    luaL_getmetatable(L, INFLATE_MT);
    lua_setmetatable(L, -2);
    return 1;
}

int lurk_lua_open_http(lua_State *L)
{
    static const luaL_Reg zmethods[] = {
        { "push", inflater_push },
        { "finish", inflater_finish },
        { NULL, NULL },
    };

    static const luaL_Reg methods[] = {
        { "feed", parser_feed },
        { "finish", parser_finish },
        { "reset", parser_reset },
        { NULL, NULL },
    };

    static const luaL_Reg meta[] = {
        { "__gc", parser_gc },
        { NULL, NULL },
    };
    static const luaL_Reg zmeta[] = {
        { "__gc", inflater_gc },
        { NULL, NULL },
    };

    lurk_lua_class(L, PARSER_MT, methods, meta);
    lurk_lua_class(L, INFLATE_MT, zmethods, zmeta);
    lua_newtable(L);
    lua_pushcfunction(L, l_parser);
    lua_setfield(L, -2, "_parser");
    lua_pushcfunction(L, l_inflater);
    lua_setfield(L, -2, "_inflater");
    lua_pushcfunction(L, l_random_hex);
    lua_setfield(L, -2, "_random_hex");
    lua_pushcfunction(L, l_head);
    lua_setfield(L, -2, "_head");
    return 1;
}
