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
#include "lua/task.h"
#include "lua/tcp.h"
#include "core/error.h"
#include "core/random.h"
#include "core/loop.h"
#include "http/exchange.h"
#include "http/h1.h"
#include "http/inflate.h"
#include "http/request.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>

#define PARSER_MT LURK_H1_MT

/*
 * The parser object: one per connection, the exchange state machine
 * (src/http/exchange.c) and what a wait on it needs. A connection's responses
 * mostly repeat their header fields byte for byte, so it also remembers the
 * last head's fields (their bytes here; the Lua strings made of them in its
 * environment table, [2i - 1] the name and [2i] the value of field i) and
 * gives the next head the same strings where the bytes are the same, instead
 * of making and interning them again.
 */
struct parser {
    struct lurk_exchange x;           /* first, and x.h first in it: a struct lurk_h1 */
    struct lurk_buf last;             /* the last head's names and values, run together */
    struct last_field { size_t name_len, value_len; } *fields;
    int nlast, cap;
    bool last_repeats;                /* a name came twice in it */

    /* An exchange in progress (x:exchange, x:read) */
    struct lurk_rt *rt;
    struct lurk_lua_sock *k;
    struct lurk_task *t;
    enum want { W_WHOLE, W_HEAD, W_CONTINUE, W_READ } want;
    bool sending;
    int self_ref, data_ref;
    int64_t continue_by;              /* W_CONTINUE: when to stop waiting for 100 */
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
    struct lurk_h1 *h = &ps->x.h;
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

    lurk_exchange_fini(&ps->x);
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
    lurk_exchange_init(&ps->x, (size_t)max_head, (int)max_headers);
    lurk_h1_reset(&ps->x.h, head);
    ps->rt = lurk_rt_get(L);
    ps->self_ref = ps->data_ref = LUA_NOREF;
    luaL_getmetatable(L, PARSER_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 32, 0);        /* the strings of the last head (struct parser) */
    lua_setfenv(L, -2);
    return 1;
}

/* ---- the exchange: x:exchange(...), x:read(sock) ---- */

/* The exchange failed: nil, err, with whether any response had come and
 * the body that had (err.partial). */
static int exchange_failed(lua_State *L, struct parser *ps, int rc)
{
    struct lurk_exchange *x = &ps->x;
    const char *name = lurk_lua_sock_name(ps->k);
    int n;

    if (rc == -LURK_EEOF && !x->got_any)
        n = lurk_lua_errorf(L, rc, "read", "%s closed the connection without a response", name);
    else if (x->why[0] && (rc == -LURK_EHTTP || rc == -LURK_ELIMIT))
        n = lurk_lua_errorf(L, rc, "read", "invalid HTTP response from %s: %s", name, x->why);
    else
        n = lurk_lua_sock_error(L, ps->k, rc, "read");
    lua_pushboolean(L, x->got_any);
    lua_setfield(L, -2, "response_started");
    if (!x->got_any && (rc == -LURK_EEOF || rc == -ECONNRESET)) {
        lua_pushboolean(L, 1);        /* nothing was answered: safe to try again */
        lua_setfield(L, -2, "retryable");
    }
    if (x->head_seen && lurk_buf_len(&x->out)) {
        lua_pushlstring(L, lurk_buf_head(&x->out), lurk_buf_len(&x->out));
        lua_setfield(L, -2, "partial");
    }
    lurk_buf_consume(&x->out, lurk_buf_len(&x->out));
    return n;
}

/* The head is in: status, reason, headers (the fields below the results). */
static int push_head(lua_State *L, struct parser *ps, int self)
{
    struct lurk_h1 *h = &ps->x.h;
    int top;

    lua_pushinteger(L, h->status);
    lua_pushlstring(L, h->head.data && h->reason_len ? h->head.data + h->reason : "", h->reason_len);
    top = lua_gettop(L) + 1;
    lurk_lua_push_headers(L, self);   /* headers, repeated */
    return top;
}

/* The results of a whole response: status, reason, headers, body,
 * keep_alive, first byte time, repeated, end time (end_ns). */
static int push_whole(lua_State *L, struct parser *ps, int self, int64_t end_ns)
{
    struct lurk_exchange *x = &ps->x;
    int hdrs = push_head(L, ps, self);

    lua_pushlstring(L, lurk_buf_len(&x->out) ? lurk_buf_head(&x->out) : "", lurk_buf_len(&x->out));
    lurk_buf_consume(&x->out, lurk_buf_len(&x->out));
    lua_pushboolean(L, lurk_exchange_keep_alive(x));
    lua_pushnumber(L, (double)x->first_ns / 1e9);
    lua_pushvalue(L, hdrs + 1);       /* repeated fields, or nil */
    lua_remove(L, hdrs + 1);
    lua_pushnumber(L, (double)end_ns / 1e9);
    return 8;
}

/* Runs the exchange on what has arrived: the results, an error, or 0
 * to read more. self: the parser's stack index (the headers' cache). */
static int progress(lua_State *L, struct parser *ps, int self)
{
    struct lurk_exchange *x = &ps->x;
    bool first = !x->got_any;         /* the first byte may come in this step */
    int ev = lurk_exchange_step(x), hdrs;

    if (ev < 0)
        return exchange_failed(L, ps, ev);
    switch (ev) {
    case LURK_X_READ:
        return 0;
    case LURK_X_CONTINUE:
        lua_pushliteral(L, "continue");
        return 1;
    case LURK_X_HEAD:                 /* status, reason, headers, nil, nil, first, repeated */
        hdrs = push_head(L, ps, self);
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushnumber(L, (double)x->first_ns / 1e9);
        lua_pushvalue(L, hdrs + 1);
        lua_remove(L, hdrs + 1);
        return 7;
    case LURK_X_DATA:
        lua_pushlstring(L, lurk_buf_head(&x->out), lurk_buf_len(&x->out));
        lurk_buf_consume(&x->out, lurk_buf_len(&x->out));
        return 1;
    default:                          /* LURK_X_DONE */
        if (ps->want == W_WHOLE)
            /* A response whole in the step its first byte came in ended
             * then too, within the parse: no second clock read. */
            return push_whole(L, ps, self, first ? x->first_ns : lurk_now_ns());
        lua_pushboolean(L, 0);        /* x:read: the end; then whether to keep it */
        lua_pushboolean(L, lurk_exchange_keep_alive(x));
        return 2;
    }
}

/* Starts the next read; LURK_AGAIN, or nil, err when none can start.
 * now: lurk_now_ns(), just read. */
static int read_more(lua_State *L, struct parser *ps, int64_t now)
{
    struct lurk_stream *st = ps->x.st;
    int64_t deadline;
    int rc = lurk_task_check_at(ps->t, now);

    /* The read timeout is per read: a body that keeps coming may go on. */
    deadline = lurk_task_deadline_at(ps->t, lurk_lua_sock_timeout(ps->k), now);
    if (ps->want == W_CONTINUE && (deadline == 0 || ps->continue_by < deadline))
        deadline = ps->continue_by;
    if (rc == 0)
        rc = lurk_stream_read(st, 65536, deadline, lurk_task_wake, ps->t);
    if (rc < 0)
        return exchange_failed(L, ps, rc);
    return LURK_AGAIN;
}

static int exchange_results(lua_State *L, void *ud, int res)
{
    struct parser *ps = ud;
    int n;

    if (ps->sending) {
        ps->sending = false;
        lurk_unpin(ps->rt, ps->data_ref);
        ps->data_ref = LUA_NOREF;
        if (res < 0) {
            /* Part of the request may have gone out: the stream is unusable. */
            if (res == -ECANCELED || res == -ETIMEDOUT)
                lurk_stream_close(ps->x.st);
            n = lurk_lua_sock_error(L, ps->k, res, "send");
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "response_started");
            return n;
        }
    } else if (res < 0) {
        int sent = lurk_lua_sock_send_failed(ps->k, res);

        if (sent < 0) {               /* the request, sent without waiting, failed */
            n = lurk_lua_sock_error(L, ps->k, sent, "send");
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "response_started");
            return n;
        }
        if (res == -ETIMEDOUT && ps->want == W_CONTINUE && lurk_now_ns() >= ps->continue_by && !ps->x.got_any) {
            lua_pushliteral(L, "send");   /* no verdict in time: send the body */
            return 1;
        }
        if (res == -ECANCELED || res == -ETIMEDOUT)
            lurk_stream_close(ps->x.st); /* a half-read response leaves it out of step */
        return exchange_failed(L, ps, res);
    }
    lurk_pinned(ps->rt, L, ps->self_ref);
    n = progress(L, ps, lua_gettop(L));
    if (n > 0) {
        lua_remove(L, -n - 1);        /* the parser under the results */
        return n;
    }
    lua_pop(L, 1);
    return read_more(L, ps, lurk_now_ns());
}

static void exchange_cancel(void *ud)
{
    struct parser *ps = ud;

    lurk_stream_cancel(ps->x.st, ps->sending ? LURK_STREAM_WRITE : LURK_STREAM_READ);
}

static void exchange_release(void *ud)
{
    struct parser *ps = ud;

    if (ps->sending) {                /* torn down while sending */
        ps->sending = false;
        lurk_unpin(ps->rt, ps->data_ref);
        ps->data_ref = LUA_NOREF;
    }
    lurk_lua_sock_give(ps->k);
    lurk_unpin(ps->rt, ps->self_ref);
    ps->self_ref = LUA_NOREF;
    ps->t = NULL;
}

static const struct lurk_waiter exchange_waiter = { exchange_results, exchange_cancel, exchange_release };

/* Takes the socket at 2 for this parser's exchange, answers from what is
 * buffered or waits. The tail of x:exchange and x:read. */
static int run(lua_State *L, struct parser *ps, struct lurk_task *t, const char *data, size_t len)
{
    struct lurk_stream *st = ps->x.st;
    int64_t now = lurk_now_ns();      /* one clock read for the checks, the deadlines and the read */
    int n, rc;

    if (!st->open)
        return lurk_lua_sock_error(L, ps->k, -LURK_ECLOSED, data ? "send" : "read");
    rc = lurk_task_check_at(t, now);
    if (rc < 0)
        return lurk_lua_sock_error(L, ps->k, rc, data ? "send" : "read");
    if (!data) {
        n = progress(L, ps, 1);
        if (n != 0)
            return n;
    }
    lurk_lua_sock_take(L, ps->k, 2, t);
    ps->t = t;
    ps->self_ref = lurk_pin(ps->rt, L, 1);
    if (data) {
        int64_t deadline = lurk_task_deadline_at(t, lurk_lua_sock_timeout(ps->k), now);

        /* Plain TCP: the request goes without waiting and the read is armed
         * at once, one enter for both (a failed send closes the stream, and
         * the read ends with the send's error: exchange_results). */
        rc = lurk_lua_sock_send_nowait(L, ps->k, 2, 3, deadline);
        if (rc > 0) {
            n = read_more(L, ps, now);
            if (n == LURK_AGAIN)
                return lurk_task_wait(L, t, &exchange_waiter, ps);
            exchange_release(ps);
            return n;
        }
        /* Else the request goes first; its completion starts the reading. */
        if (rc == 0)
            rc = lurk_stream_write(st, data, len, deadline, lurk_task_wake, t);
        if (rc == 0) {
            ps->sending = true;
            ps->data_ref = lurk_pin(ps->rt, L, 3);
            return lurk_task_wait(L, t, &exchange_waiter, ps);
        }
        n = lurk_lua_sock_error(L, ps->k, rc, "send");
    } else {
        n = read_more(L, ps, now);
        if (n == LURK_AGAIN)
            return lurk_task_wait(L, t, &exchange_waiter, ps);
    }
    exchange_release(ps);
    return n;
}

/*
 * x:exchange(sock, request | nil, is_head, max_body, decompress, mode [, drain])
 *   mode "whole":    -> status, reason, headers, body, keep_alive, first_byte_time,
 *                       repeated, end_time
 *   mode "head":     -> status, reason, headers, nil, nil, first_byte_time, repeated
 *                       (then x:read(sock) for the body)
 *   mode "continue": like "head", or "continue" (100 came) or "send" (nothing
 *                    within a second): Expect: 100-continue
 *   | nil, err (err.response_started: whether any response byte had come;
 *     err.partial: the body that had)
 * drain: redirects will be followed; their bodies are drained up to drain
 * bytes, not kept (exchange.h). Sends the request (when given), then
 * reads: one wait for both.
 */
static int parser_exchange(lua_State *L)
{
    static const char *const modes[] = { "whole", "head", "continue", NULL };
    struct parser *ps = (struct parser *)check_parser(L);
    struct lurk_lua_sock *k = lurk_lua_sock_check(L, 2);
    size_t len = 0;
    const char *data = lua_isnil(L, 3) ? NULL : luaL_checklstring(L, 3, &len);
    bool head = lua_toboolean(L, 4);
    lua_Number max = luaL_checknumber(L, 5);
    bool decompress = lua_toboolean(L, 6);
    int mode = luaL_checkoption(L, 7, "whole", modes);
    lua_Number drain = luaL_optnumber(L, 8, 0);
    struct lurk_task *t = lurk_rt_task(L, ps->rt, "http.request");

    if (ps->t)
        return luaL_error(L, "another task is already using this connection");
    ps->k = k;
    ps->want = mode == 0 ? W_WHOLE : mode == 1 ? W_HEAD : W_CONTINUE;
    ps->continue_by = ps->want == W_CONTINUE ? lurk_now_ns() + 1000000000 : 0;
    /* max_body = math.huge (a download without a cap): no limit at all. */
    lurk_exchange_begin(&ps->x, lurk_lua_sock_stream(k), head,
                        max >= 9e18 ? SIZE_MAX : max > 0 ? (size_t)max : 0, decompress,
                        ps->want != W_WHOLE, ps->want == W_CONTINUE);
    if (drain > 0)
        lurk_exchange_drain_redirects(&ps->x, (size_t)drain);
    if (data && ps->want == W_CONTINUE)
        return luaL_error(L, "x:exchange: the continue mode sends nothing");
    return run(L, ps, t, data, len);
}

/* x:read(sock) -> decoded body bytes | false, keep_alive at the end | nil, err */
static int parser_read(lua_State *L)
{
    struct parser *ps = (struct parser *)check_parser(L);
    struct lurk_lua_sock *k = lurk_lua_sock_check(L, 2);
    struct lurk_task *t = lurk_rt_task(L, ps->rt, "res:read");

    if (ps->t)
        return luaL_error(L, "another task is already reading this response");
    if (k != ps->k || !ps->x.st)
        return luaL_error(L, "x:read: no response is being read on this socket");
    ps->want = W_READ;
    ps->x.streamed = true;
    ps->x.stop_at_continue = false;
    return run(L, ps, t, NULL, 0);
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

/* The value at idx as a header value (a string or a number), checked. */
static void field_value(lua_State *L, int idx, const char *name, struct lurk_http_field *f)
{
    bool number = lua_type(L, idx) == LUA_TNUMBER;

    if (!number && lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "header %s: value must be a string or a number (or a list of them)", name);
    f->value = lua_tolstring(L, idx, &f->value_len);
    if (number) {
        /* The string made of a number is referenced by nothing but the
         * stack slot about to be popped: anchored in the table at 6. */
        if (!lua_istable(L, 6)) {
            lua_newtable(L);
            lua_replace(L, 6);
        }
        lua_pushvalue(L, idx);
        lua_rawseti(L, 6, (int)lua_objlen(L, 6) + 1);
    }
    if (!lurk_http_value_ok(f->value, f->value_len))
        luaL_error(L, "header %s: value contains CR, LF or NUL", name);
}

/*
 * One pass over the headers table at index 4: checks every field and, with
 * out != NULL, fills out[] (a list value repeats the field). Returns the
 * number of fields. The strings stay referenced by the table.
 */
static size_t header_fields(lua_State *L, struct lurk_http_field *out)
{
    size_t n = 0;

    lua_pushnil(L);
    while (lua_next(L, 4)) {
        struct lurk_http_field f;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "invalid header name (a %s)", luaL_typename(L, -2));
        f.name = lua_tolstring(L, -2, &f.name_len);
        if (!lurk_http_is_token(f.name, f.name_len))
            luaL_error(L, "invalid header name \"%s\"", f.name);
        if (lua_istable(L, -1)) {
            int len = (int)lua_objlen(L, -1);

            for (int i = 1; i <= len; i++) {
                lua_rawgeti(L, -1, i);
                field_value(L, -1, f.name, &f);
                if (out)
                    out[n] = f;
                n++;
                lua_pop(L, 1);
            }
        } else {
            field_value(L, -1, f.name, &f);
            if (out)
                out[n] = f;
            n++;
        }
        lua_pop(L, 1);
    }
    return n;
}

/* C._head(method, target, host, headers, body_len, chunked, user_agent [, extra]) */
static int l_head(lua_State *L)
{
    struct lurk_http_request r = { 0 };
    struct lurk_http_field few[32], *fields = few;
    lua_Number body_len = luaL_optnumber(L, 5, -1);
    char small[1024], *out;
    size_t n, total;

    r.method = luaL_checklstring(L, 1, &r.method_len);
    r.target = luaL_checklstring(L, 2, &r.target_len);
    r.host = luaL_checklstring(L, 3, &r.host_len);
    r.chunked = lua_toboolean(L, 6);  /* slot 6 then anchors converted numbers */
    r.user_agent = luaL_checklstring(L, 7, &r.user_agent_len);
    r.extra = luaL_optlstring(L, 8, "", &r.extra_len);
    r.body_len = body_len >= 0 ? (long long)body_len : -1;
    lua_settop(L, 8);
    luaL_checktype(L, 4, LUA_TTABLE);
    n = header_fields(L, NULL);
    if (n > sizeof few / sizeof few[0]) {
        fields = lua_newuserdata(L, n * sizeof *fields);   /* collected with the rest */
        lua_replace(L, 5);            /* below lua_next's slots */
    }
    header_fields(L, fields);
    r.fields = fields;
    r.nfields = n;
    /* Most heads fit the stack; a bigger one gets scratch memory. */
    total = lurk_http_request_size(&r);
    out = total <= sizeof small ? small : lua_newuserdata(L, total);
    lurk_http_request_write(&r, out);
    lua_pushlstring(L, out, total);
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

/* C._inflater("gzip" | "deflate", max) -> z */
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
        { "exchange", parser_exchange },
        { "read", parser_read },
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
    lua_pushcfunction(L, parser_exchange);
    lua_setfield(L, -2, "_exchange");
    return 1;
}
