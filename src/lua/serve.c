/*
 * serve.c - the server side's bindings: tcp.listen and its listener
 * object, and the request parser lua/http/server.lua reads requests with.
 *
 *   tcp.listen(host, port [, { backlog, tls }]) -> listener | nil, err
 *   listener:accept([timeout]) -> sock | nil, err   (yields; TLS: after the handshake)
 *   listener:clients() -> iterator over accepted sockets (ends when closed)
 *   listener:close() -> true;  listener.port
 *   P.accept_raw(listener [, timeout]) -> sock | nil, err  (TLS: handshake not yet run)
 *   P.handshake(sock [, timeout]) -> sock | nil, err       (the server's TLS handshake)
 *   P.request_parser(max_head, max_headers) -> parser
 *   parser:feed(data, i) -> "more", j
 *                         | "head", j, method, target, headers, version, length, chunked
 *                         | "body", j, slice
 *                         | "done", j, keep_alive, upgrade
 *                         | nil, why, status (400 or 431)
 *   parser:reset()
 *   P.sock_peer(sock) -> "ip:port"
 *
 * The listener's C object (net/listen.c) holds the accept op; the userdata
 * holds a reference and is pinned while a task waits in accept, so a
 * listener the script dropped while waiting stays alive until the wait ends.
 */
#include "lua/class.h"
#include "lua/error.h"
#include "lua/modules.h"
#include "lua/options.h"
#include "lua/rt.h"
#include "lua/task.h"
#include "lua/tcp.h"
#include "core/error.h"
#include "core/loop.h"
#include "http/server.h"
#include "net/listen.h"
#include "net/tcp.h"
#include "tls/tls.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTENER_MT "lurk.listener"
#define PARSER_MT "lurk.request_parser"

struct listener {
    struct lurk_rt *rt;
    struct lurk_listener *ln;
    struct lurk_tls_server *tls;      /* the TLS server configuration, or NULL */
    struct lurk_task *waiter;
    struct lurk_lua_sock *hs;         /* the accepted socket while its handshake runs */
    int self_ref;
    int fd;                           /* the accepted descriptor, for the results */
    bool closed, handshake;           /* handshake: this accept runs it too */
    double timeout;                   /* handshake timeout, seconds */
    char name[80];                    /* "127.0.0.1:8080", for messages */
};

static struct listener *check_listener(lua_State *L, const char *fname)
{
    struct listener *s = lurk_lua_checkself(L, LISTENER_MT, fname);

    if (s->closed)
        lurk_lua_raise(L, fname, "attempt to use a closed listener");
    return s;
}

/* Wraps the accepted fd in a socket object (pushed); NULL if out of memory. */
static struct lurk_lua_sock *push_accepted(lua_State *L, struct listener *s, int fd)
{
    struct lurk_tcp *c;
    struct lurk_tls *t = NULL;

    if (lurk_tcp_new(&c, lurk_rt_loop(s->rt), lurk_rt_resolver(s->rt)) < 0) {
        close(fd);
        return NULL;
    }
    lurk_tcp_adopt(c, fd);
    if (s->tls && lurk_tls_new_server(&t, s->tls, c) < 0) {
        lurk_tls_unref(t);
        t = NULL;
        lurk_tcp_close(c);
        lurk_tcp_unref(c);
        return NULL;
    }
    return lurk_lua_sock_push(L, c, t);
}

static int accept_results(lua_State *L, void *ud, int res)
{
    struct listener *s = ud;
    int rc;

    if (s->hs) {                      /* the handshake's result */
        struct lurk_lua_sock *k = s->hs;

        s->hs = NULL;
        return lurk_lua_sock_handshake_results(L, k, res);
    }
    if (res < 0) {
        if (res == -ETIMEDOUT)
            return lurk_lua_errorf(L, res, "wait", "listener:accept on %s timed out", s->name);
        return lurk_lua_error(L, res, "wait", s->name);
    }
    if (!push_accepted(L, s, res))
        return lurk_lua_error(L, -ENOMEM, "wait", s->name);
    if (!s->tls || !s->handshake)
        return 1;
    /* The handshake runs on the same wait: its completion comes back here. */
    s->hs = lurk_lua_sock_check(L, -1);
    rc = lurk_lua_sock_handshake_start(L, lua_gettop(L), s->waiter, s->timeout);
    if (rc < 0) {
        s->hs = NULL;
        return lurk_lua_errorf(L, rc, "tls", "TLS handshake with a client of %s failed", s->name);
    }
    lua_pop(L, 1);                    /* anchored by the handshake */
    return LURK_AGAIN;
}

static void accept_cancel(void *ud)
{
    struct listener *s = ud;

    if (s->hs)
        lurk_lua_sock_handshake_cancel(s->hs);
    else
        lurk_listener_cancel(s->ln);
}

static void accept_release(void *ud)
{
    struct listener *s = ud;

    s->waiter = NULL;
    lurk_unpin(s->rt, s->self_ref);
    s->self_ref = LUA_NOREF;
}

static const struct lurk_waiter accept_waiter = { accept_results, accept_cancel, accept_release };

static int do_accept(lua_State *L, const char *fname, double timeout, bool handshake)
{
    struct listener *s = check_listener(L, fname);
    struct lurk_task *t = lurk_rt_task(L, s->rt, fname);
    int64_t deadline;
    int rc;

    if (s->waiter)
        return lurk_lua_raise(L, fname, "another task is already accepting on this listener");
    deadline = lurk_task_deadline(t, timeout);
    rc = lurk_task_check(t);
    if (rc < 0)
        return lurk_lua_error(L, rc, "wait", s->name);
    s->handshake = handshake;
    s->waiter = t;
    lua_settop(L, 1);
    s->self_ref = lurk_pin(s->rt, L, 1);
    rc = lurk_listener_accept(s->ln, deadline, lurk_task_wake, t);
    if (rc < 0) {
        accept_release(s);
        return lurk_lua_error(L, rc, "wait", s->name);
    }
    return lurk_task_wait(L, t, &accept_waiter, s);
}

static double opt_timeout(lua_State *L, int idx, const char *fname)
{
    if (lua_isnoneornil(L, idx) || (lua_isboolean(L, idx) && !lua_toboolean(L, idx)))
        return 0;
    if (lua_type(L, idx) != LUA_TNUMBER || !(lua_tonumber(L, idx) > 0))
        return lurk_lua_argerror(L, idx, fname, "timeout must be a positive number");
    return lua_tonumber(L, idx);
}

/* listener:accept([timeout]) -> sock | nil, err */
static int listener_accept(lua_State *L)
{
    return do_accept(L, "listener:accept", opt_timeout(L, 2, "listener:accept"), true);
}

/* The iterator of listener:clients(): the next socket, or nil once the
 * listener is closed (or fails). The control value is ignored. */
static int clients_next(lua_State *L)
{
    struct listener *s = lurk_lua_checkself(L, LISTENER_MT, "listener:clients");

    if (s->closed)
        return 0;
    lua_settop(L, 1);
    return do_accept(L, "listener:clients", 0, true);
}

/* for sock in listener:clients() do ... end */
static int listener_clients(lua_State *L)
{
    check_listener(L, "listener:clients");
    lua_pushcfunction(L, clients_next);
    lua_pushvalue(L, 1);
    return 2;
}

/* P.accept_raw(listener [, timeout]) */
static int l_accept_raw(lua_State *L)
{
    return do_accept(L, "listener:accept", opt_timeout(L, 2, "listener:accept"), false);
}

/* P.handshake(sock [, timeout]) */
static int l_handshake(lua_State *L)
{
    double timeout = opt_timeout(L, 2, "handshake");

    lurk_lua_sock_check(L, 1);
    lua_settop(L, 1);
    return lurk_lua_sock_handshake(L, 1, lurk_lua_task(L, "handshake"), timeout);
}

/* P.sock_peer(sock) -> "ip:port" of the peer */
static int l_sock_peer(lua_State *L)
{
    lua_pushstring(L, lurk_lua_sock_name(lurk_lua_sock_check(L, 1)));
    return 1;
}

/* listener:close() -> true (idempotent): a waiting accept gets nil, err (closed). */
static int listener_close(lua_State *L)
{
    struct listener *s = lurk_lua_checkself(L, LISTENER_MT, "listener:close");

    if (!s->closed) {
        s->closed = true;
        lurk_listener_close(s->ln);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int listener_gc(lua_State *L)
{
    struct listener *s = luaL_checkudata(L, 1, LISTENER_MT);

    if (s->ln) {
        lurk_listener_close(s->ln);
        lurk_listener_unref(s->ln);
        s->ln = NULL;
    }
    lurk_tls_server_free(s->tls);
    s->tls = NULL;
    return 0;
}

static int listener_tostring(lua_State *L)
{
    struct listener *s = luaL_checkudata(L, 1, LISTENER_MT);

    lua_pushfstring(L, "lurk.listener (%s%s%s)", s->name, s->tls ? ", TLS" : "", s->closed ? ", closed" : "");
    return 1;
}

static int listener_index(lua_State *L)
{
    struct listener *s = luaL_checkudata(L, 1, LISTENER_MT);
    const char *key = lua_tostring(L, 2);

    if (key && strcmp(key, "port") == 0) {
        lua_pushinteger(L, s->ln ? lurk_listener_port(s->ln) : 0);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

static const char *const listen_keys[] = { "backlog", "tls", NULL };
static const char *const tls_server_keys[] = { "cert", "key", "ca", "alpn", "ktls", "min_version", NULL };

static const char *tls_string(lua_State *L, int idx, const char *field, bool required)
{
    const char *v;

    lua_getfield(L, idx, field);
    if (lua_isnil(L, -1) && !required) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        lurk_lua_raise(L, "tcp.listen", "tls.%s must be %s (got %s)", field,
                       required ? "a file name" : "a string", luaL_typename(L, -1));
    v = lua_tostring(L, -1);
    lua_pop(L, 1);                    /* still referenced by the table */
    return v;
}

/* Reads the tls table at idx into o (strings point into the table). */
static void check_tls(lua_State *L, int idx, struct lurk_tls_server_opts *o)
{
    const char *v;

    memset(o, 0, sizeof *o);
    o->ktls = (enum lurk_ktls_policy)lurk_rt_ktls(lurk_rt_get(L));
    if (!lua_istable(L, idx))
        lurk_lua_raise(L, "tcp.listen", "tls must be a table { cert = ..., key = ... } (got %s)",
                       luaL_typename(L, idx));
    lurk_lua_check_options(L, idx, "tcp.listen tls", tls_server_keys);
    o->cert = tls_string(L, idx, "cert", true);
    o->key = tls_string(L, idx, "key", true);
    o->ca = tls_string(L, idx, "ca", false);
    /* alpn: a string or a list, joined with ','; the joined string stays
     * on the stack (above idx) until the configuration has copied it. */
    lua_getfield(L, idx, "alpn");
    if (lua_istable(L, -1)) {
        int n = (int)lua_objlen(L, -1);

        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) != LUA_TSTRING)
                lurk_lua_raise(L, "tcp.listen", "tls.alpn entries must be strings");
            lua_pop(L, 1);
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "concat");
        lua_remove(L, -2);            /* list, concat */
        lua_insert(L, -2);            /* concat, list */
        lua_pushliteral(L, ",");
        lua_call(L, 2, 1);            /* joined */
        o->alpn = lua_tostring(L, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        o->alpn = lua_tostring(L, -1);
    } else if (!lua_isnil(L, -1)) {
        lurk_lua_raise(L, "tcp.listen", "tls.alpn must be a string or a list of strings");
    }
    lua_getfield(L, idx, "ktls");
    if (lua_isboolean(L, -1))
        o->ktls = lua_toboolean(L, -1) ? LURK_TLS_KTLS_AUTO : LURK_TLS_KTLS_OFF;
    else if (lua_type(L, -1) == LUA_TSTRING) {
        v = lua_tostring(L, -1);
        if (strcmp(v, "require") == 0)
            o->ktls = LURK_TLS_KTLS_REQUIRE;
        else if (strcmp(v, "off") == 0)
            o->ktls = LURK_TLS_KTLS_OFF;
        else if (strcmp(v, "auto") == 0)
            o->ktls = LURK_TLS_KTLS_AUTO;
        else
            lurk_lua_raise(L, "tcp.listen", "tls.ktls must be true, false, \"auto\", \"off\" or \"require\"");
    } else if (!lua_isnil(L, -1))
        lurk_lua_raise(L, "tcp.listen", "tls.ktls must be true, false, \"auto\", \"off\" or \"require\"");
    lua_pop(L, 1);
    v = tls_string(L, idx, "min_version", false);
    if (v && strcmp(v, "1.2") == 0)
        o->min_version = 0x0303;
    else if (v && strcmp(v, "1.3") == 0)
        o->min_version = 0x0304;
    else if (v)
        lurk_lua_raise(L, "tcp.listen", "tls.min_version must be \"1.2\" or \"1.3\"");
}

/* tcp.listen(host, port [, opts]) -> listener | nil, err */
static int l_listen(lua_State *L)
{
    static const char fname[] = "tcp.listen";
    const char *host = lurk_lua_checklstring(L, 1, fname, NULL);
    lua_Integer port = lurk_lua_checkinteger(L, 2, fname);
    struct lurk_rt *rt = lurk_rt_get(L);
    struct listener *s;
    int backlog = 0, rc;

    if (port < 0 || port > 65535)
        return lurk_lua_argerror(L, 2, fname, "port must be 0-65535 (0: any free port)");
    if (!lua_isnoneornil(L, 3)) {
        lurk_lua_checktype(L, 3, fname, LUA_TTABLE);
        lurk_lua_check_options(L, 3, fname, listen_keys);
    } else {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    lua_settop(L, 3);
    lua_getfield(L, 3, "backlog");
    if (!lua_isnil(L, -1)) {
        lua_Number n = lua_tonumber(L, -1);

        if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 65535))
            return lurk_lua_raise(L, fname, "backlog must be a number from 1 to 65535");
        backlog = (int)n;
    }
    lua_pop(L, 1);
    s = lua_newuserdata(L, sizeof *s);    /* index 4 */
    memset(s, 0, sizeof *s);
    s->rt = rt;
    s->self_ref = LUA_NOREF;
    s->timeout = LURK_DEFAULT_TIMEOUT;
    luaL_getmetatable(L, LISTENER_MT);
    lua_setmetatable(L, 4);
    lua_getfield(L, 3, "tls");
    if (!lua_isnil(L, -1)) {
        struct lurk_tls_server_opts o;
        char err[400];

        check_tls(L, 5, &o);
        rc = lurk_tls_server_new(&s->tls, lurk_rt_tls(rt), &o, err, sizeof err);
        if (rc < 0)
            return lurk_lua_errorf(L, rc, "tls", "tcp.listen: %s", err);
    }
    lua_settop(L, 4);
    rc = lurk_listener_new(&s->ln, lurk_rt_loop(rt), host, (int)port, backlog);
    if (rc == -EINVAL)
        return lurk_lua_argerror(L, 1, fname, "host must be an IP address (\"127.0.0.1\", \"::1\", "
                                 "\"0.0.0.0\", \"::\") or \"localhost\"");
    if (rc < 0) {
        char where[300];

        snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, (int)port);
        return lurk_lua_error(L, rc, "listen", where);
    }
    snprintf(s->name, sizeof s->name, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, lurk_listener_port(s->ln));
    return 1;
}

/* ---- the request parser ---- */

struct parser {
    struct lurk_h1_request r;
};

static struct parser *check_parser(lua_State *L)
{
    return luaL_checkudata(L, 1, PARSER_MT);
}

/* P.request_parser(max_head, max_headers) */
static int l_request_parser(lua_State *L)
{
    lua_Number max_head = luaL_checknumber(L, 1);
    lua_Integer max_headers = luaL_optinteger(L, 2, 100);
    struct parser *ps = lua_newuserdata(L, sizeof *ps);

    lurk_h1_request_init(&ps->r, (size_t)max_head, (int)max_headers);
    luaL_getmetatable(L, PARSER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* The head's fields as a table, names in lower case, a repeated field's
 * values joined with ", " (as the client's res.headers). */
static void push_headers(lua_State *L, const struct lurk_h1_request *r)
{
    const char *hd = lurk_buf_head(&r->head);
    int t;

    lua_createtable(L, 0, r->nhdr);
    t = lua_gettop(L);
    for (int i = 0; i < r->nhdr; i++) {
        const struct lurk_h1_header *h = &r->hdr[i];

        lua_pushlstring(L, hd + h->name, h->name_len);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value_len ? hd + h->value : "", h->value_len);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value_len ? hd + h->value : "", h->value_len);
            lua_concat(L, 3);
        }
        lua_rawset(L, t);
    }
}

/* parser:feed(data, i) */
static int parser_feed(lua_State *L)
{
    struct parser *ps = check_parser(L);
    size_t len, used;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    struct lurk_h1_request *r = &ps->r;
    int ev;

    if (i < 1 || (size_t)i > len + 1)
        return luaL_argerror(L, 3, "position out of range");
    ev = lurk_h1_request_feed(r, data + i - 1, len - (size_t)(i - 1), &used);
    if (ev < 0) {
        lua_pushnil(L);
        lua_pushstring(L, r->error ? r->error : "bad request");
        lua_pushinteger(L, ev == -LURK_ELIMIT ? 431 : 400);
        return 3;
    }
    switch (ev) {
    case LURK_H1_HEAD: {
        const char *hd = lurk_buf_head(&r->head);
        int64_t n = lurk_h1_request_length(r);

        lua_pushliteral(L, "head");
        lua_pushinteger(L, i + (lua_Integer)used);
        lua_pushlstring(L, hd, r->method_len);
        lua_pushlstring(L, r->target_len ? hd + r->target : "", r->target_len);
        push_headers(L, r);
        lua_pushstring(L, lurk_h1_request_version(r) == 10 ? "1.0" : "1.1");
        if (n >= 0)
            lua_pushnumber(L, (lua_Number)n);
        else
            lua_pushnil(L);
        lua_pushboolean(L, lurk_h1_request_chunked(r));
        return 8;
    }
    case LURK_H1_BODY:
        lua_pushliteral(L, "body");
        lua_pushinteger(L, i + (lua_Integer)used);
        lua_pushlstring(L, r->body, r->body_len);
        return 3;
    case LURK_H1_DONE:
        lua_pushliteral(L, "done");
        lua_pushinteger(L, i + (lua_Integer)used);
        lua_pushboolean(L, lurk_h1_request_keep_alive(r));
        lua_pushboolean(L, r->upgrade);
        return 4;
    default:
        lua_pushliteral(L, "more");
        lua_pushinteger(L, i + (lua_Integer)used);
        return 2;
    }
}

static int parser_reset(lua_State *L)
{
    lurk_h1_request_reset(&check_parser(L)->r);
    return 0;
}

static int parser_gc(lua_State *L)
{
    lurk_h1_request_fini(&check_parser(L)->r);
    return 0;
}

/* Registers tcp.listen into the tcp module table on top of L, and the
 * private functions into priv. */
void lurk_lua_open_serve(lua_State *L, int priv)
{
    static const luaL_Reg methods[] = {
        { "accept", listener_accept },
        { "clients", listener_clients },
        { "close", listener_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", listener_gc },
        { "__tostring", listener_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg pmethods[] = {
        { "feed", parser_feed },
        { "reset", parser_reset },
        { NULL, NULL },
    };
    static const luaL_Reg pmeta[] = {
        { "__gc", parser_gc },
        { NULL, NULL },
    };

    lurk_lua_class_indexed(L, LISTENER_MT, methods, meta, listener_index);
    lua_pop(L, 1);
    lurk_lua_class(L, PARSER_MT, pmethods, pmeta);

    lua_pushcfunction(L, l_listen);
    lua_setfield(L, -2, "listen");
    lua_pushcfunction(L, l_accept_raw);
    lua_setfield(L, priv, "accept_raw");
    lua_pushcfunction(L, l_handshake);
    lua_setfield(L, priv, "handshake");
    lua_pushcfunction(L, l_sock_peer);
    lua_setfield(L, priv, "sock_peer");
    lua_pushcfunction(L, l_request_parser);
    lua_setfield(L, priv, "request_parser");
    lurk_lua_open_sendfile(L, priv);
}
