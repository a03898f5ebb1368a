/*
 * tcp.c - the tcp module: tcp.connect() and the socket object.
 *
 *   tcp.connect(host, port [, { timeout = s, max_buffer = n }]) -> sock | nil, err
 *   sock:send(data) -> bytes | nil, err
 *   sock:receive([n | "*l" | "*a"]) -> data | nil, err (err.partial: bytes read)
 *   sock:settimeout(s), sock:close()
 *
 * One task may receive while another sends; a second concurrent reader (or
 * writer) is a programming error and raises. A receive reads into the
 * connection's buffer until its pattern is satisfied, re-arming from its
 * results function, so it costs one yield however many reads it takes.
 *
 * The userdata owns one reference to the C socket and is anchored in the
 * registry while an operation runs, so a socket the script dropped stays
 * alive until its operations have completed. A sent string stays pinned by a
 * registry reference until the kernel is done with it.
 */
#include "lua/tcp.h"
#include "lua/error.h"
#include "lua/task.h"
#include "core/error.h"
#include "net/tcp.h"

#include <errno.h>
#include <lauxlib.h>
#include <string.h>

#define SOCK_MT "lurk.tcp"
#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_MAX_BUFFER (64u << 20)

enum rmode { R_BYTES, R_LINE, R_ALL };

struct sock {
    struct lurk_rt *rt;
    struct lurk_tcp *s;
    double timeout;                   /* per operation, seconds; 0: none */
    size_t max_buffer;
    bool user_closed;
    int self_ref, anchors;

    struct lurk_task *reader;
    enum rmode rmode;
    size_t rwant;
    int64_t rdeadline;

    struct lurk_task *writer;
    int data_ref;
    size_t wlen;

    struct lurk_task *connector;
};

static struct sock *check_sock(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SOCK_MT);
}

/* The socket's userdata must be at idx. */
static void anchor(lua_State *L, struct sock *k, int idx)
{
    if (k->anchors++ == 0) {
        lua_pushvalue(L, idx);
        k->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

static void unanchor(struct sock *k)
{
    if (--k->anchors == 0) {
        luaL_unref(k->rt->L, LUA_REGISTRYINDEX, k->self_ref);
        k->self_ref = LUA_NOREF;
    }
}

static int sock_error(lua_State *L, struct sock *k, int rc, const char *phase)
{
    char ctx[400];
    const char *addr = lurk_tcp_addr(k->s);

    if (addr[0] && strcmp(addr, lurk_tcp_name(k->s)) != 0 && strstr(lurk_tcp_name(k->s), addr) == NULL)
        snprintf(ctx, sizeof ctx, "%s (%s)", lurk_tcp_name(k->s), addr);
    else
        snprintf(ctx, sizeof ctx, "%s", lurk_tcp_name(k->s));
    return lurk_lua_error(L, rc, phase, ctx);
}

/* ---- connect ---- */

static int connect_results(lua_State *L, void *ud, int res)
{
    struct sock *k = ud;

    if (res < 0) {
        bool dns = strcmp(lurk_error_kind(res, "connect"), "dns") == 0;

        lurk_tcp_close(k->s);
        return sock_error(L, k, res, dns ? "dns" : "connect");
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->self_ref);
    return 1;
}

static void connect_cancel(void *ud)
{
    struct sock *k = ud;

    lurk_tcp_cancel(k->s, LURK_TCP_CONNECT);
}

static void connect_release(void *ud)
{
    struct sock *k = ud;

    k->connector = NULL;
    unanchor(k);
}

static const struct lurk_waiter connect_waiter = { connect_results, connect_cancel, connect_release };

static double opt_timeout(lua_State *L, int idx, double dflt)
{
    double v;

    lua_getfield(L, idx, "timeout");
    if (lua_isnil(L, -1))
        v = dflt;
    else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
        v = 0;                        /* timeout = false: none */
    else if (lua_isnumber(L, -1) && lua_tonumber(L, -1) > 0)
        v = lua_tonumber(L, -1);
    else
        return luaL_argerror(L, idx, "timeout must be a positive number or false");
    lua_pop(L, 1);
    return v;
}

/* tcp.connect(host, port [, opts]) -> sock | nil, err */
static int l_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    struct lurk_rt *rt = lurk_rt_get(L);
    struct lurk_task *t = lurk_lua_task(L, "tcp.connect");
    struct sock *k;
    int rc;

    luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be 1-65535");
    luaL_argcheck(L, host[0] != '\0', 1, "empty host name");
    if (lua_isnoneornil(L, 3))
        lua_newtable(L);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);

    k = lua_newuserdata(L, sizeof *k); /* index 4 */
    memset(k, 0, sizeof *k);
    k->rt = rt;
    k->self_ref = k->data_ref = LUA_NOREF;
    k->timeout = opt_timeout(L, 3, DEFAULT_TIMEOUT);
    lua_getfield(L, 3, "max_buffer");
    k->max_buffer = lua_isnumber(L, -1) ? (size_t)lua_tonumber(L, -1) : DEFAULT_MAX_BUFFER;
    lua_pop(L, 1);
    rc = lurk_tcp_new(&k->s, rt->loop, rt->resolver);
    if (rc < 0)
        return luaL_error(L, "out of memory");
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, 4);

    rc = lurk_task_check(t);
    if (rc == 0)
        rc = lurk_tcp_connect(k->s, host, (int)port, lurk_task_deadline(t, k->timeout),
                              lurk_task_wake, t);
    if (rc < 0)
        return sock_error(L, k, rc, "connect");
    anchor(L, k, 4);
    k->connector = t;
    return lurk_task_wait(L, t, &connect_waiter, k);
}

/* ---- receive ---- */

/* Pushes the answer to the current receive if the buffer holds it. */
static int try_receive(lua_State *L, struct sock *k)
{
    struct lurk_buf *b = lurk_tcp_rbuf(k->s);
    size_t len = lurk_buf_len(b);
    const char *p = len ? lurk_buf_head(b) : "";  /* data may be NULL when empty */

    switch (k->rmode) {
    case R_BYTES:
        if (len < k->rwant)
            return 0;
        lua_pushlstring(L, p, k->rwant);
        lurk_buf_consume(b, k->rwant);
        return 1;
    case R_LINE: {
        const char *nl = len ? memchr(p, '\n', len) : NULL;
        size_t n;

        if (!nl)
            return 0;
        n = (size_t)(nl - p);
        lua_pushlstring(L, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n);
        lurk_buf_consume(b, n + 1);
        return 1;
    }
    case R_ALL:
        if (!lurk_tcp_at_eof(k->s))
            return 0;
        lua_pushlstring(L, p, len);
        lurk_buf_consume(b, len);
        return 1;
    }
    return 0;
}

/* The stream ended (or failed) before the pattern was met: nil, err with
 * err.partial holding what was buffered. */
static int receive_failed(lua_State *L, struct sock *k, int rc)
{
    struct lurk_buf *b = lurk_tcp_rbuf(k->s);
    int n = sock_error(L, k, rc, "read");

    lua_pushlstring(L, lurk_buf_len(b) ? lurk_buf_head(b) : "", lurk_buf_len(b));
    lua_setfield(L, -2, "partial");
    lurk_buf_consume(b, lurk_buf_len(b));
    return n;
}

/* Starts the next read for the current receive, or reports why not. */
static int receive_more(lua_State *L, struct sock *k)
{
    struct lurk_buf *b = lurk_tcp_rbuf(k->s);
    size_t have = lurk_buf_len(b), room = 0;
    int rc;

    if (lurk_tcp_at_eof(k->s))
        return receive_failed(L, k, -LURK_EEOF);
    if (k->rmode == R_BYTES)
        room = k->rwant - have;
    else if (have >= k->max_buffer)
        return receive_failed(L, k, -LURK_ELIMIT);
    rc = lurk_task_check(k->reader);
    if (rc == 0)
        rc = lurk_tcp_read(k->s, room, k->rdeadline, lurk_task_wake, k->reader);
    if (rc < 0)
        return receive_failed(L, k, rc);
    return LURK_AGAIN;
}

static int receive_results(lua_State *L, void *ud, int res)
{
    struct sock *k = ud;
    int n;

    if (res < 0) {
        if (res == -ECANCELED)
            lurk_tcp_close(k->s);     /* a cancelled task's socket is closed */
        return receive_failed(L, k, res);
    }
    n = try_receive(L, k);
    if (n > 0)
        return n;
    return receive_more(L, k);
}

static void receive_cancel(void *ud)
{
    struct sock *k = ud;

    lurk_tcp_cancel(k->s, LURK_TCP_READ);
}

static void receive_release(void *ud)
{
    struct sock *k = ud;

    k->reader = NULL;
    unanchor(k);
}

static const struct lurk_waiter receive_waiter = { receive_results, receive_cancel, receive_release };

/* Raises for a socket the script closed; other closures are nil, err. */
static struct sock *check_open(lua_State *L)
{
    struct sock *k = check_sock(L, 1);

    if (k->user_closed)
        luaL_error(L, "attempt to use a closed socket");
    return k;
}

/* sock:receive([n | "*l" | "*a"]) -> data | nil, err */
static int sock_receive(lua_State *L)
{
    struct sock *k = check_open(L);
    struct lurk_task *t = lurk_lua_task(L, "sock:receive");
    int n;

    if (lua_isnumber(L, 2)) {
        lua_Number want = lua_tonumber(L, 2);

        luaL_argcheck(L, want >= 0 && want <= (lua_Number)k->max_buffer, 2,
                      "byte count must be between 0 and the socket's max_buffer");
        k->rmode = R_BYTES;
        k->rwant = (size_t)want;
    } else {
        const char *pat = luaL_optstring(L, 2, "*l");

        if (pat[0] == '*')
            pat++;
        if (pat[0] == 'l')
            k->rmode = R_LINE;
        else if (pat[0] == 'a')
            k->rmode = R_ALL;
        else
            return luaL_argerror(L, 2, "pattern must be a byte count, \"*l\" or \"*a\"");
    }
    if (k->reader)
        return luaL_error(L, "another task is already receiving on this socket");
    if (!lurk_tcp_is_open(k->s))
        return sock_error(L, k, -LURK_ECLOSED, "read");
    n = try_receive(L, k);
    if (n > 0)
        return n;
    k->reader = t;
    k->rdeadline = lurk_task_deadline(t, k->timeout);
    n = receive_more(L, k);
    if (n != LURK_AGAIN) {
        k->reader = NULL;
        return n;
    }
    anchor(L, k, 1);
    return lurk_task_wait(L, t, &receive_waiter, k);
}

/* ---- send ---- */

static int send_results(lua_State *L, void *ud, int res)
{
    struct sock *k = ud;

    if (res < 0) {
        /* Part of the data may have gone out: the stream is unusable. */
        if (res == -ECANCELED || res == -ETIMEDOUT)
            lurk_tcp_close(k->s);
        return sock_error(L, k, res, "send");
    }
    lua_pushnumber(L, (lua_Number)k->wlen);
    return 1;
}

static void send_cancel(void *ud)
{
    struct sock *k = ud;

    lurk_tcp_cancel(k->s, LURK_TCP_WRITE);
}

static void send_release(void *ud)
{
    struct sock *k = ud;

    k->writer = NULL;
    luaL_unref(k->rt->L, LUA_REGISTRYINDEX, k->data_ref);
    k->data_ref = LUA_NOREF;
    unanchor(k);
}

static const struct lurk_waiter send_waiter = { send_results, send_cancel, send_release };

/* sock:send(data) -> bytes | nil, err */
static int sock_send(lua_State *L)
{
    struct sock *k = check_open(L);
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    struct lurk_task *t = lurk_lua_task(L, "sock:send");
    int rc;

    if (k->writer)
        return luaL_error(L, "another task is already sending on this socket");
    if (!lurk_tcp_is_open(k->s))
        return sock_error(L, k, -LURK_ECLOSED, "send");
    rc = lurk_task_check(t);
    if (rc < 0)
        return sock_error(L, k, rc, "send");
    k->wlen = len;
    k->writer = t;
    rc = lurk_tcp_write(k->s, p, len, lurk_task_deadline(t, k->timeout), lurk_task_wake, t);
    if (rc < 0) {
        k->writer = NULL;
        return sock_error(L, k, rc, "send");
    }
    lua_pushvalue(L, 2);              /* pinned until the kernel is done */
    k->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    anchor(L, k, 1);
    return lurk_task_wait(L, t, &send_waiter, k);
}

/* ---- the rest ---- */

/* sock:settimeout(s | false) -> true */
static int sock_settimeout(lua_State *L)
{
    struct sock *k = check_sock(L, 1);

    if (lua_isboolean(L, 2) && !lua_toboolean(L, 2))
        k->timeout = 0;
    else {
        lua_Number s = luaL_checknumber(L, 2);

        luaL_argcheck(L, s > 0, 2, "timeout must be positive (or false for none)");
        k->timeout = s;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sock:close() -> true; idempotent. Waiting calls get nil, err (closed). */
static int sock_close(lua_State *L)
{
    struct sock *k = check_sock(L, 1);

    k->user_closed = true;
    if (k->s)
        lurk_tcp_close(k->s);
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_gc(lua_State *L)
{
    struct sock *k = check_sock(L, 1);

    if (k->s) {
        lurk_tcp_close(k->s);
        lurk_tcp_unref(k->s);
        k->s = NULL;
    }
    return 0;
}

static int sock_tostring(lua_State *L)
{
    struct sock *k = check_sock(L, 1);

    lua_pushfstring(L, "lurk.tcp (%s%s)", k->s ? lurk_tcp_name(k->s) : "?",
                    k->s && lurk_tcp_is_open(k->s) ? "" : ", closed");
    return 1;
}

int lurk_lua_open_tcp(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "receive", sock_receive },
        { "send", sock_send },
        { "settimeout", sock_settimeout },
        { "close", sock_close },
        { NULL, NULL },
    };
    static const luaL_Reg funcs[] = {
        { "connect", l_connect },
        { NULL, NULL },
    };

    luaL_newmetatable(L, SOCK_MT);
    lua_newtable(L);
    luaL_register(L, NULL, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sock_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, sock_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
