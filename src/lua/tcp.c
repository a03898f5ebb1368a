/*
 * tcp.c - the tcp module: tcp.connect() and the socket object.
 *
 *   tcp.connect(host, port [, { timeout = s, max_buffer = n }]) -> sock | nil, err
 *   sock:send(data) -> bytes | nil, err
 *   sock:receive([n | "*l" | "*a"]) -> data | nil, err (err.partial: bytes read)
 *   sock:settimeout(s), sock:close()
 *   resolve(host [, timeout]) -> { address, ... } | nil, err  (internal)
 *       the host's addresses as strings, for lua/http/proxy.lua's socks5://
 *
 * Other bindings run protocols over a socket through tcp.h (src/lua/http.c:
 * the HTTP exchange).
 *
 * One task may receive while another sends; a second concurrent reader (or
 * writer) is a programming error and raises. A receive reads into the
 * connection's buffer until its pattern is satisfied, re-arming from its
 * results function, so it costs one yield however many reads it takes.
 *
 * The userdata owns one reference to the C socket and is pinned (lurk_pin)
 * while an operation runs, so a socket the script dropped stays alive until
 * its operations have completed. A sent string stays pinned until the
 * kernel is done with it.
 */
#include "lua/tcp.h"
#include "lua/modules.h"
#include "lua/class.h"
#include "lua/error.h"
#include "lua/task.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/dns.h"
#include "net/tcp.h"
#include "tls/tls.h"

#include "lua/options.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define SOCK_MT "lurk.tcp"
#define DEFAULT_MAX_BUFFER (64u << 20)
#define NOWAIT_MAX (64u << 10)            /* the largest send that does not wait */

enum rmode { R_BYTES, R_LINE, R_ALL, R_SOME };

struct lurk_lua_sock {
    struct lurk_rt *rt;
    struct lurk_tcp *s;
    struct lurk_stream *st;           /* what reads and writes go through */
    struct lurk_tls *tls;             /* set once TLS is set up */
    bool handshaking;
    double timeout;                   /* per operation, seconds; 0: none */
    size_t max_buffer;
    bool user_closed;
    int self_ref, anchors;

    struct lurk_task *reader;
    enum rmode rmode;
    size_t rwant;
    int64_t rdeadline;
    const char *rwhat;                /* "sock:receive", for messages */

    struct lurk_task *writer;
    bool bg;                          /* a send in flight nobody waits for */
    int bg_ref;                       /* its string */
    int bg_err;                       /* how it failed, for the next send */
    int data_ref;
    size_t wlen;
    int64_t wdeadline;

    struct lurk_task *connector;
    int64_t cdeadline;                /* of the connect or the handshake */
};

static struct lurk_lua_sock *check_sock(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SOCK_MT);
}

/* The socket's userdata must be at idx. */
static void anchor(lua_State *L, struct lurk_lua_sock *k, int idx)
{
    if (k->anchors++ == 0) {
        k->self_ref = lurk_pin(k->rt, L, idx);
    }
}

static void unanchor(struct lurk_lua_sock *k)
{
    if (--k->anchors == 0) {
        lurk_unpin(k->rt, k->self_ref);
        k->self_ref = LUA_NOREF;
    }
}

/* "host:port", with the address when it says more: "name:443 (192.0.2.1:443)". */
static const char *sock_ctx(struct lurk_lua_sock *k, char *ctx, size_t size)
{
    const char *addr = lurk_tcp_addr(k->s);

    if (addr[0] && strcmp(addr, lurk_tcp_name(k->s)) != 0 && strstr(lurk_tcp_name(k->s), addr) == NULL)
        snprintf(ctx, size, "%s (%s)", lurk_tcp_name(k->s), addr);
    else
        snprintf(ctx, size, "%s", lurk_tcp_name(k->s));
    return ctx;
}

static int sock_error(lua_State *L, struct lurk_lua_sock *k, int rc, const char *phase)
{
    char ctx[400];

    sock_ctx(k, ctx, sizeof ctx);
    if (rc == -LURK_ETLS && k->tls && lurk_tls_errmsg(k->tls)[0]) {
        const char *why = lurk_tls_errmsg(k->tls);

        /* A reason that already names the server ("the server at h:p does
         * not speak TLS") needs no prefix. */
        if (strstr(why, lurk_tcp_name(k->s)))
            return lurk_lua_errorf(L, rc, phase, "%s", why);
        return lurk_lua_errorf(L, rc, phase, "TLS with %s: %s", ctx, why);
    }
    return lurk_lua_error(L, rc, phase, ctx);
}

/*
 * sock_error for operation what ("sock:receive from") of task t, which had
 * deadline: when lurk's own deadline (the socket's timeout or lurk.timeout's)
 * ended it, the message says what timed out and which deadline it was, not
 * the errno's words.
 */
static int op_error(lua_State *L, struct lurk_lua_sock *k, int rc, const char *phase, const char *what,
                    struct lurk_task *t, int64_t deadline)
{
    if (rc == -ETIMEDOUT) {
        char ctx[400], op[480];

        snprintf(op, sizeof op, "%s %s", what, sock_ctx(k, ctx, sizeof ctx));
        if (lurk_task_timeout_error(L, t, phase, op, deadline, k->timeout))
            return 2;
    }
    return sock_error(L, k, rc, phase);
}

/* ---- connect ---- */

static int connect_results(lua_State *L, void *ud, int res)
{
    struct lurk_lua_sock *k = ud;
    int rc;

    if (res < 0) {
        bool dns = lurk_is_dns_error(res);

        lurk_stream_close(k->st);
        return op_error(L, k, res, k->handshaking ? "tls" : dns ? "dns" : "connect",
                        k->handshaking ? "TLS handshake with" : dns ? "tcp.connect resolving" : "tcp.connect to",
                        k->connector, k->cdeadline);
    }
    if (k->tls && !k->handshaking) {
        /* Connected: now the TLS handshake, on the same wait. */
        k->handshaking = true;
        k->cdeadline = lurk_task_deadline(k->connector, k->timeout);
        rc = lurk_task_check(k->connector);
        if (rc == 0)
            rc = lurk_tls_handshake(k->tls, k->cdeadline, lurk_task_wake, k->connector);
        if (rc < 0) {
            lurk_stream_close(k->st);
            return op_error(L, k, rc, "tls", "TLS handshake with", k->connector, k->cdeadline);
        }
        return LURK_AGAIN;
    }
    if (k->handshaking) {
        k->handshaking = false;
        k->st = lurk_tls_stream(k->tls);
    }
    lurk_pinned(k->rt, L, k->self_ref);
    return 1;
}

static void connect_cancel(void *ud)
{
    struct lurk_lua_sock *k = ud;

    if (k->handshaking)
        lurk_tls_cancel_handshake(k->tls);
    else
        lurk_tcp_cancel(k->s, LURK_TCP_CONNECT);
}

static void connect_release(void *ud)
{
    struct lurk_lua_sock *k = ud;

    k->connector = NULL;
    unanchor(k);
}

static const struct lurk_waiter connect_waiter = { connect_results, connect_cancel, connect_release };

/* Who checks an options table, for its errors: the function the script
 * called and the level of the script's line (as luaL_where counts). */
struct who {
    const char *fname;
    int level;
};

static double opt_timeout(lua_State *L, int idx, const struct who *w, double dflt)
{
    double v;

    lua_getfield(L, idx, "timeout");
    if (lua_isnil(L, -1))
        v = dflt;
    else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
        v = 0;                        /* timeout = false: none */
    else if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) > 0)
        v = lua_tonumber(L, -1);
    else
        return lurk_lua_raise_at(L, w->level, w->fname, "timeout must be a positive number or false (got %s)",
                                 luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static const char *opt_string(lua_State *L, int idx, const struct who *w, const char *field)
{
    const char *v;

    lua_getfield(L, idx, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        lurk_lua_raise_at(L, w->level, w->fname, "tls.%s must be a string (got %s)", field,
                          luaL_typename(L, -1));
    v = lua_tostring(L, -1);
    lua_pop(L, 1);                    /* still referenced by the options table */
    return v;
}

static uint16_t opt_version(lua_State *L, int idx, const struct who *w, const char *field)
{
    const char *v = opt_string(L, idx, w, field);

    if (!v)
        return 0;
    if (strcmp(v, "1.2") == 0)
        return 0x0303;
    if (strcmp(v, "1.3") == 0)
        return 0x0304;
    return (uint16_t)lurk_lua_raise_at(L, w->level, w->fname, "tls.%s must be \"1.2\" or \"1.3\"", field);
}

/* Every key a tls table may have (docs/api.md, "TLS options"). */
static const char *const tls_keys[] = {
    "cafile", "cadir", "cert", "key", "ciphers", "min_version", "max_version",
    "servername", "insecure", "ktls", "alpn", "resume", NULL,
};

/*
 * Reads the TLS options at idx (true or a table) into o, raising for an
 * unknown key or a wrong value (on behalf of w). Strings point into the
 * options table (or into a string pushed on the stack for alpn), valid
 * while the table is on the stack.
 */
static void check_tls_opts(lua_State *L, int idx, const char *host, struct lurk_tls_opts *o,
                           const struct who *w)
{
    const char *servername;

    memset(o, 0, sizeof *o);
    o->host = host;
    o->ktls = (enum lurk_ktls_policy)lurk_rt_ktls(lurk_rt_get(L));
    if (lua_type(L, idx) == LUA_TBOOLEAN && lua_toboolean(L, idx))
        return;
    if (!lua_istable(L, idx))
        lurk_lua_raise_at(L, w->level, w->fname, "tls must be true or a table of TLS options (got %s)",
                          luaL_typename(L, idx));
    {
        char fname[80];

        snprintf(fname, sizeof fname, "%s tls", w->fname);
        lurk_lua_check_options_at(L, idx, fname, tls_keys, w->level);
    }
    o->cafile = opt_string(L, idx, w, "cafile");
    o->cadir = opt_string(L, idx, w, "cadir");
    o->cert = opt_string(L, idx, w, "cert");
    o->key = opt_string(L, idx, w, "key");
    o->ciphers = opt_string(L, idx, w, "ciphers");
    o->min_version = opt_version(L, idx, w, "min_version");
    o->max_version = opt_version(L, idx, w, "max_version");
    servername = opt_string(L, idx, w, "servername");
    if (servername)
        o->host = servername;
    lua_getfield(L, idx, "insecure");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        lurk_lua_raise_at(L, w->level, w->fname,
                          "tls.insecure must be true or false (it turns off certificate checks)");
    o->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "resume");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        lurk_lua_raise_at(L, w->level, w->fname,
                          "tls.resume must be true or false (false: no session resumption)");
    o->no_resume = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "ktls");
    if (lua_isboolean(L, -1)) {
        o->ktls = lua_toboolean(L, -1) ? LURK_TLS_KTLS_AUTO : LURK_TLS_KTLS_OFF;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        const char *v = lua_tostring(L, -1);

        if (strcmp(v, "require") == 0)
            o->ktls = LURK_TLS_KTLS_REQUIRE;
        else if (strcmp(v, "off") == 0)
            o->ktls = LURK_TLS_KTLS_OFF;
        else if (strcmp(v, "auto") == 0)
            o->ktls = LURK_TLS_KTLS_AUTO;
        else
            lurk_lua_raise_at(L, w->level, w->fname,
                              "tls.ktls must be true, false, \"auto\", \"off\" or \"require\"");
    } else if (!lua_isnil(L, -1)) {
        lurk_lua_raise_at(L, w->level, w->fname,
                          "tls.ktls must be true, false, \"auto\", \"off\" or \"require\" (got %s)",
                          luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "alpn");
    if (lua_istable(L, -1)) {
        /* Joined in C, not in a luaL_Buffer: LuaJIT's buffer may leave
         * pieces on the stack, which would move the list's index. */
        char joined[8 * 256];
        size_t used = 0;
        int n = (int)lua_objlen(L, -1);

        for (int i = 1; i <= n; i++) {
            size_t len;
            const char *p;

            lua_rawgeti(L, -1, i);    /* list, entry */
            if (lua_type(L, -1) != LUA_TSTRING)
                lurk_lua_raise_at(L, w->level, w->fname,
                                  "tls.alpn entries must be protocol names (strings), not %s",
                                  luaL_typename(L, -1));
            p = lua_tolstring(L, -1, &len);
            if (len == 0 || len > 255 || memchr(p, ',', len))
                lurk_lua_raise_at(L, w->level, w->fname,
                                  "tls.alpn entries must be protocol names of 1 to 255 bytes without ','");
            if (used + len + 1 > sizeof joined)
                lurk_lua_raise_at(L, w->level, w->fname, "tls.alpn: at most 8 protocols");
            if (i > 1)
                joined[used++] = ',';
            memcpy(joined + used, p, len);
            used += len;
            lua_pop(L, 1);            /* list */
        }
        lua_pushlstring(L, joined, used);
        lua_replace(L, -2);           /* the joined list stays on the stack */
        o->alpn = lua_tostring(L, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        o->alpn = lua_tostring(L, -1); /* stays on the stack */
    } else if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
    } else {
        lurk_lua_raise_at(L, w->level, w->fname, "tls.alpn must be a string or a list of strings (got %s)",
                          luaL_typename(L, -1));
    }
}

/*
 * private.check_tls(tls, fname [, level]) -> tls: the checks tcp.connect
 * makes on a tls table (unknown keys, wrong values), for the Lua modules to
 * make on their caller's behalf, so the error names fname and points at
 * the script (level as error() counts; default 2). nil passes.
 */
static int l_check_tls(lua_State *L)
{
    struct lurk_tls_opts o;
    struct who w = { luaL_checkstring(L, 2), (int)luaL_optinteger(L, 3, 2) };

    if (!lua_isnil(L, 1))
        check_tls_opts(L, 1, NULL, &o, &w);
    lua_settop(L, 1);
    return 1;
}

/* Creates k->tls from the options at idx; on failure pushes nil, err
 * naming where (host:port) and why. */
static int make_tls(lua_State *L, struct lurk_lua_sock *k, int idx, const char *host, int port,
                    const struct who *w)
{
    struct lurk_tls_opts o;
    int top = lua_gettop(L), rc;

    check_tls_opts(L, idx, host, &o, w);
    rc = lurk_tls_new(&k->tls, lurk_rt_tls(k->rt), k->s, &o);
    lua_settop(L, top);
    if (rc < 0) {
        /* Not connected yet, so the socket has no name to give: host:port. */
        char where[320];
        int n;

        snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
        n = lurk_lua_errorf(L, rc, "tls", "TLS with %s: %s", where,
                            k->tls && lurk_tls_errmsg(k->tls)[0] ? lurk_tls_errmsg(k->tls) : lurk_strerror(rc));
        lurk_tls_unref(k->tls);
        k->tls = NULL;
        return n;
    }
    return 0;
}

static const char *const connect_keys[] = { "timeout", "max_buffer", "tls", NULL };

/* tcp.connect(host, port [, opts]) -> sock | nil, err */
static int l_connect(lua_State *L)
{
    static const struct who w = { "tcp.connect", 1 };
    size_t hlen;
    const char *host = lurk_lua_checklstring(L, 1, w.fname, &hlen);
    lua_Integer port = lurk_lua_checkinteger(L, 2, w.fname);
    struct lurk_rt *rt = lurk_rt_get(L);
    struct lurk_task *t = lurk_lua_task(L, "tcp.connect");
    struct lurk_lua_sock *k;
    int rc;

    if (port < 1 || port > 65535)
        return lurk_lua_argerror(L, 2, w.fname, "port must be 1-65535");
    if (host[0] == '\0')
        return lurk_lua_argerror(L, 1, w.fname, "empty host name");
    if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
        lua_pushlstring(L, host + 1, hlen - 2);   /* "[::1]" as URLs write it */
        lua_replace(L, 1);
        host = lua_tostring(L, 1);
    }
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    lurk_lua_checktype(L, 3, w.fname, LUA_TTABLE);
    lurk_lua_check_options(L, 3, w.fname, connect_keys);
    lua_settop(L, 3);

    k = lua_newuserdata(L, sizeof *k); /* index 4 */
    memset(k, 0, sizeof *k);
    k->rt = rt;
    k->self_ref = k->data_ref = k->bg_ref = LUA_NOREF;
    k->timeout = opt_timeout(L, 3, &w, LURK_DEFAULT_TIMEOUT);
    lua_getfield(L, 3, "max_buffer");
    if (lua_isnil(L, -1)) {
        k->max_buffer = DEFAULT_MAX_BUFFER;
    } else {
        lua_Number n = lua_tonumber(L, -1);

        /* Checked before the cast: a negative or huge number would wrap. */
        if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= (lua_Number)(1ull << 40)))
            return lurk_lua_raise(L, w.fname, "max_buffer must be a number of bytes from 1 to 2^40");
        k->max_buffer = (size_t)n;
    }
    lua_pop(L, 1);
    rc = lurk_tcp_new(&k->s, lurk_rt_loop(rt), lurk_rt_resolver(rt));
    if (rc < 0)
        return luaL_error(L, "out of memory");
    k->st = lurk_tcp_stream(k->s);
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, 4);

    lua_getfield(L, 3, "tls");
    if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {   /* nil, false: none */
        int n = make_tls(L, k, 5, host, (int)port, &w);

        if (n)
            return n;
    }
    lua_settop(L, 4);
    k->cdeadline = lurk_task_deadline(t, k->timeout);
    rc = lurk_task_check(t);
    if (rc == 0)
        rc = lurk_tcp_connect(k->s, host, (int)port, k->cdeadline, lurk_task_wake, t);
    if (rc < 0)
        return op_error(L, k, rc, "connect", "tcp.connect to", t, k->cdeadline);
    anchor(L, k, 4);
    k->connector = t;
    return lurk_task_wait(L, t, &connect_waiter, k);
}

/*
 * Pushes a socket object for s, a connection a listener accepted, taking
 * over the caller's reference to it (and to tls, the server side of a TLS
 * connection whose handshake is still to run, or NULL). The socket reads
 * and writes plaintext through tls once lurk_lua_sock_handshake() is done.
 */
struct lurk_lua_sock *lurk_lua_sock_push(lua_State *L, struct lurk_tcp *s, struct lurk_tls *tls)
{
    struct lurk_lua_sock *k = lua_newuserdata(L, sizeof *k);

    memset(k, 0, sizeof *k);
    k->rt = lurk_rt_get(L);
    k->self_ref = k->data_ref = LUA_NOREF;
    k->timeout = LURK_DEFAULT_TIMEOUT;
    k->max_buffer = DEFAULT_MAX_BUFFER;
    k->s = s;
    k->st = lurk_tcp_stream(s);
    k->tls = tls;
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, -2);
    return k;
}

/*
 * The server side's TLS handshake on the socket at idx (pushed by
 * lurk_lua_sock_push with tls), in three pieces for a binding whose own
 * wait runs it (listener:accept): start (0, or rc < 0 with the socket
 * closed), then, from that wait's results function, the results (the
 * socket or nil, err, as tcp.connect's), or the cancel.
 */
int lurk_lua_sock_handshake_start(lua_State *L, int idx, struct lurk_task *t, double timeout)
{
    struct lurk_lua_sock *k = check_sock(L, idx);
    int rc;

    if (!k->tls || k->st != lurk_tcp_stream(k->s) || k->handshaking)
        return luaL_error(L, "internal: no TLS handshake to run on this socket");
    k->handshaking = true;
    k->connector = t;
    k->cdeadline = lurk_task_deadline(t, timeout);
    rc = lurk_task_check(t);
    if (rc == 0)
        rc = lurk_tls_handshake(k->tls, k->cdeadline, lurk_task_wake, t);
    if (rc < 0) {
        k->handshaking = false;
        k->connector = NULL;
        lurk_stream_close(k->st);
        return rc;
    }
    anchor(L, k, idx);
    return 0;
}

int lurk_lua_sock_handshake_results(lua_State *L, struct lurk_lua_sock *k, int res)
{
    int n = connect_results(L, k, res);

    connect_release(k);
    return n;
}

void lurk_lua_sock_handshake_cancel(struct lurk_lua_sock *k)
{
    connect_cancel(k);
}

/* The same as one wait of its own, for P.handshake: the tail of a
 * lua_CFunction (-> sock | nil, err). */
int lurk_lua_sock_handshake(lua_State *L, int idx, struct lurk_task *t, double timeout)
{
    struct lurk_lua_sock *k = check_sock(L, idx);
    int rc = lurk_lua_sock_handshake_start(L, idx, t, timeout);

    if (rc < 0)
        return op_error(L, k, rc, "tls", "TLS handshake with", t, k->cdeadline);
    return lurk_task_wait(L, t, &connect_waiter, k);
}

/* ---- name lookup (private: lua/http/proxy.lua resolves for socks5://) ---- */

/* One lookup, shared by three holders that each keep a reference: the
 * c-ares query until its callback runs or it is abandoned, the deadline
 * timer until its completion, and the waiting task until its release. The
 * first of query answer, deadline and cancellation to come ends the query
 * and wakes the task (only it sees q != NULL); the last holder frees. */
struct lookup {
    struct lurk_loop *loop;
    struct lurk_query *q;             /* in flight, or NULL once ended */
    struct lurk_op *timer;            /* the deadline, or NULL */
    struct lurk_task *t;
    struct lurk_addrs *addrs;         /* the answer (ours to free) */
    int refs;
};

/* Drops n references; the last one frees. */
static void lookup_drop(struct lookup *lk, int n)
{
    lk->refs -= n;
    if (lk->refs > 0)
        return;
    free(lk->addrs);
    free(lk);
}

/* Ends the query (its callback will not run, so the caller drops the
 * query's reference) and wakes the task with rc. */
static void lookup_end(struct lookup *lk, int rc)
{
    lurk_query_abandon(lk->q);
    lk->q = NULL;
    lurk_task_wake(lk->t, rc);
}

static void lookup_done(void *arg, int rc, struct lurk_addrs *addrs)
{
    struct lookup *lk = arg;

    lk->q = NULL;
    lk->addrs = addrs;
    if (lk->timer)
        lurk_op_cancel(lk->loop, lk->timer);
    lurk_task_wake(lk->t, rc);
    lookup_drop(lk, 1);
}

static void lookup_timer_done(struct lurk_op *op, int res)
{
    struct lookup *lk = op->arg;
    int n = 1;                        /* the timer's reference */

    lk->timer = NULL;
    if (res == -ETIME && lk->q) {
        lookup_end(lk, -ETIMEDOUT);
        n++;
    }
    lookup_drop(lk, n);
}

static void lookup_cancel(void *ud)
{
    struct lookup *lk = ud;

    if (lk->q) {
        lookup_end(lk, -ECANCELED);
        lookup_drop(lk, 1);
    }
}

static int lookup_results(lua_State *L, void *ud, int res)
{
    struct lookup *lk = ud;
    char buf[64];

    if (res < 0)
        return lurk_lua_error(L, res, "dns", NULL);
    lua_createtable(L, lk->addrs->n, 0);
    for (int i = 0; i < lk->addrs->n; i++) {
        lua_pushstring(L, lurk_addr_str(&lk->addrs->addr[i], buf, sizeof buf));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static void lookup_release(void *ud)
{
    struct lookup *lk = ud;
    int n = 1;                        /* the task's reference */

    if (lk->q) {                      /* the runtime is going away mid-lookup */
        lurk_query_abandon(lk->q);
        lk->q = NULL;
        n++;                          /* and the query's */
    }
    if (lk->timer)
        lurk_op_cancel(lk->loop, lk->timer);
    lk->t = NULL;
    lookup_drop(lk, n);
}

static const struct lurk_waiter lookup_waiter = { lookup_results, lookup_cancel, lookup_release };

/* resolve(host [, timeout]) -> { "192.0.2.1", "2001:db8::1", ... } | nil, err
 * The host's addresses in the order a connect would try them, within the
 * timeout (default 30 s; false: none) and the task's deadline. */
static int l_resolve(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    struct lurk_rt *rt = lurk_rt_get(L);
    struct lurk_task *t = lurk_lua_task(L, "resolve");
    double timeout = lua_isnoneornil(L, 2) ? LURK_DEFAULT_TIMEOUT : lua_toboolean(L, 2) ? luaL_checknumber(L, 2) : 0;
    int64_t deadline;
    struct lookup *lk;
    int rc = lurk_task_check(t);

    if (rc < 0)
        return lurk_lua_error(L, rc, "dns", host);
    lk = calloc(1, sizeof *lk);
    if (!lk)
        return luaL_error(L, "out of memory");
    lk->loop = lurk_rt_loop(rt);
    lk->t = t;
    lk->refs = 2;                     /* the task's and the query's */
    deadline = lurk_task_deadline(t, timeout);
    if (deadline) {
        /* c-ares has no per-query deadline: a ring timer abandons it. */
        lk->timer = lurk_op_new(lk->loop, lookup_timer_done, lk);
        lk->refs++;
        lurk_op_timer(lk->loop, lk->timer, deadline);
    }
    rc = lurk_resolve(lurk_rt_resolver(rt), host, 0, lookup_done, lk, &lk->q);
    if (rc < 0) {
        lk->q = NULL;
        lk->refs--;                   /* the callback will not run */
        lookup_release(lk);
        return lurk_lua_error(L, rc, "dns", host);
    }
    return lurk_task_wait(L, t, &lookup_waiter, lk);
}

/* ---- receive ---- */

/* Pushes the answer to the current receive if the buffer holds it. */
static int try_receive(lua_State *L, struct lurk_lua_sock *k)
{
    struct lurk_buf *b = k->st->rbuf;
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
        if (!k->st->eof)
            return 0;
        lua_pushlstring(L, p, len);
        lurk_buf_consume(b, len);
        return 1;
    case R_SOME:
        if (len == 0 && !k->st->eof)
            return 0;
        if (len > k->rwant)
            len = k->rwant;
        lua_pushlstring(L, p, len);   /* "" at the end of the stream */
        lurk_buf_consume(b, len);
        return 1;
    }
    return 0;
}

/* The stream ended (or failed) before the pattern was met: nil, err with
 * err.partial holding what was buffered. */
static int receive_failed(lua_State *L, struct lurk_lua_sock *k, int rc)
{
    struct lurk_buf *b = k->st->rbuf;
    int sent = lurk_lua_sock_send_failed(k, rc), n;

    if (sent < 0) {
        /* Closed because a send the task did not wait for failed. */
        rc = sent;
        lua_pushliteral(L, "sock:send to");
        n = op_error(L, k, rc, "send", "sock:send to", k->reader, k->rdeadline);
    } else {
        n = op_error(L, k, rc, "read", lua_pushfstring(L, "%s from", k->rwhat), k->reader,
                     k->rdeadline);
    }
    lua_remove(L, -3);                /* the "what" string, under nil, err */

    lua_pushlstring(L, lurk_buf_len(b) ? lurk_buf_head(b) : "", lurk_buf_len(b));
    lua_setfield(L, -2, "partial");
    lurk_buf_consume(b, lurk_buf_len(b));
    return n;
}

/* Starts the next read for the current receive, or reports why not. */
static int receive_more(lua_State *L, struct lurk_lua_sock *k)
{
    struct lurk_buf *b = k->st->rbuf;
    size_t have = lurk_buf_len(b), room = 0;
    int rc;

    if (k->st->eof && k->rmode != R_SOME)
        return receive_failed(L, k, -LURK_EEOF);
    if (k->rmode == R_BYTES)
        room = k->rwant - have;
    else if (have >= k->max_buffer)
        return receive_failed(L, k, -LURK_ELIMIT);
    rc = lurk_task_check(k->reader);
    if (rc == 0)
        rc = lurk_stream_read(k->st, room, k->rdeadline, lurk_task_wake, k->reader);
    if (rc < 0)
        return receive_failed(L, k, rc);
    return LURK_AGAIN;
}

static int receive_results(lua_State *L, void *ud, int res)
{
    struct lurk_lua_sock *k = ud;
    int n;

    if (res < 0) {
        if (res == -ECANCELED)
            lurk_stream_close(k->st); /* a cancelled task's socket is closed */
        return receive_failed(L, k, res);
    }
    n = try_receive(L, k);
    if (n > 0)
        return n;
    return receive_more(L, k);
}

static void receive_cancel(void *ud)
{
    struct lurk_lua_sock *k = ud;

    lurk_stream_cancel(k->st, LURK_STREAM_READ);
}

static void receive_release(void *ud)
{
    struct lurk_lua_sock *k = ud;

    k->reader = NULL;
    unanchor(k);
}

static const struct lurk_waiter receive_waiter = { receive_results, receive_cancel, receive_release };

/* Starts reading for the receive set up in k (rmode, rwant): answers from
 * the buffer at once, or waits. The tail of sock:receive and friends. */
static int start_receive(lua_State *L, struct lurk_lua_sock *k, struct lurk_task *t)
{
    int n = try_receive(L, k);

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

/* The socket a method (fname, "sock:send") was called on; raises for a
 * call with '.' and for a socket the script closed (other closures are
 * nil, err). */
static struct lurk_lua_sock *check_self(lua_State *L, const char *fname)
{
    return lurk_lua_checkself(L, SOCK_MT, fname);
}

static struct lurk_lua_sock *check_open(lua_State *L, const char *fname)
{
    struct lurk_lua_sock *k = check_self(L, fname);

    if (k->user_closed)
        lurk_lua_raise(L, fname, "attempt to use a closed socket");
    return k;
}

/* sock:receive([n | "*l" | "*a"]) -> data | nil, err */
static int sock_receive(lua_State *L)
{
    static const char fname[] = "sock:receive";
    struct lurk_lua_sock *k = check_open(L, fname);
    struct lurk_task *t = lurk_rt_task(L, k->rt, fname);
    enum rmode mode;
    size_t want = 0;

    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, 2);

        if (!(n >= 0 && n <= (lua_Number)k->max_buffer) || n != floor(n))
            return lurk_lua_argerror(L, 2, fname, "byte count must be a whole number between 0 and the "
                                     "socket's max_buffer");
        mode = R_BYTES;
        want = (size_t)n;
    } else {
        const char *pat = lua_isnoneornil(L, 2) ? "*l" : lua_tostring(L, 2);

        if (lua_type(L, 2) != LUA_TSTRING && !lua_isnoneornil(L, 2))
            pat = "?";
        if (pat[0] == '*')
            pat++;
        if (strcmp(pat, "l") == 0)
            mode = R_LINE;
        else if (strcmp(pat, "a") == 0)
            mode = R_ALL;
        else
            return lurk_lua_argerror(L, 2, fname, "pattern must be a byte count, \"*l\" or \"*a\"");
    }
    /* Checked before the reader's mode is touched: the waiting reader keeps
     * its pattern and count. */
    if (k->reader)
        return lurk_lua_raise(L, fname, "another task is already receiving on this socket");
    k->rmode = mode;
    k->rwant = want;
    k->rwhat = fname;
    if (!k->st->open)
        return sock_error(L, k, -LURK_ECLOSED, "read");
    return start_receive(L, k, t);
}

/* sock:receive_some([max]) -> data | "" at the end of the stream | nil, err
 * Whatever has arrived (at least one byte), up to max (default 1 MiB). */
static int sock_receive_some(lua_State *L)
{
    static const char fname[] = "sock:receive_some";
    struct lurk_lua_sock *k = check_open(L, fname);
    lua_Number max = lurk_lua_optnumber(L, 2, fname, 1 << 20);
    struct lurk_task *t = lurk_rt_task(L, k->rt, fname);

    if (!(max >= 1))
        return lurk_lua_argerror(L, 2, fname, "max must be at least 1");
    if (k->reader)
        return lurk_lua_raise(L, fname, "another task is already receiving on this socket");
    k->rmode = R_SOME;
    k->rwant = (size_t)max;
    k->rwhat = fname;
    if (!k->st->open)
        return sock_error(L, k, -LURK_ECLOSED, "read");
    return start_receive(L, k, t);
}

/* The kernel is done with the data being sent: unpin it, free the writer. */
static void sent(struct lurk_lua_sock *k)
{
    k->writer = NULL;
    lurk_unpin(k->rt, k->data_ref);
    k->data_ref = LUA_NOREF;
}

/* ---- send ---- */

static int send_results(lua_State *L, void *ud, int res)
{
    struct lurk_lua_sock *k = ud;

    if (res < 0) {
        /* Part of the data may have gone out: the stream is unusable. */
        if (res == -ECANCELED || res == -ETIMEDOUT)
            lurk_stream_close(k->st);
        return op_error(L, k, res, "send", "sock:send to", k->writer, k->wdeadline);
    }
    lua_pushnumber(L, (lua_Number)k->wlen);
    return 1;
}

static void send_cancel(void *ud)
{
    struct lurk_lua_sock *k = ud;

    lurk_stream_cancel(k->st, LURK_STREAM_WRITE);
}

static void send_release(void *ud)
{
    struct lurk_lua_sock *k = ud;

    sent(k);
    unanchor(k);
}

static const struct lurk_waiter send_waiter = { send_results, send_cancel, send_release };

/* A send nobody waited for has gone out, or failed: the next send says so. */
static void bg_sent(void *arg, int res)
{
    struct lurk_lua_sock *k = arg;

    k->bg = false;
    lurk_unpin(k->rt, k->bg_ref);
    k->bg_ref = LUA_NOREF;
    if (res < 0 && !k->bg_err && k->st) {
        /* Part may have gone out: the stream is unusable. A receive waiting
         * meanwhile ends with this error (receive_failed). */
        k->bg_err = res == -LURK_ECLOSED && k->user_closed ? 0 : res;
        lurk_stream_close(k->st);
    }
    unanchor(k);
}

int lurk_lua_sock_send_nowait(lua_State *L, struct lurk_lua_sock *k, int self, int idx, int64_t deadline)
{
    size_t len;
    const char *p = lua_tolstring(L, idx, &len);
    int rc;

    /* Only small sends: a big one waits, so its timeout (a peer that stops
     * reading) is the call's own. */
    if (k->bg || !k->s || len == 0 || len > NOWAIT_MAX)
        return 0;
    /* TLS with lurk's records: sealed into its output queue, a copy. */
    if (k->st != lurk_tcp_stream(k->s)) {
        if (!k->st->ops->write_buffered)
            return 0;
        rc = k->st->ops->write_buffered(k->st, p, len, deadline);
        return rc > 0 ? 1 : rc;
    }
    rc = lurk_tcp_write_nowait(k->s, p, len, deadline, bg_sent, k);
    if (rc < 0)
        return rc;
    k->bg = true;
    k->bg_ref = lurk_pin(k->rt, L, idx);
    anchor(L, k, self);
    return 1;
}

int lurk_lua_sock_send_failed(struct lurk_lua_sock *k, int res)
{
    int rc = 0;

    if (res < 0 && k->st && res == k->st->unsent)
        return res;
    if (res == -LURK_ECLOSED || res == -ECANCELED) {
        rc = k->bg_err;
        k->bg_err = 0;
    }
    return rc;
}

/* sock:send's work for the string at idx on the socket k at 1, for task
 * t, within timeout_s (> 0; 0: none) and the task's deadline; now:
 * lurk_now_ns(), just read: bytes | nil, err, or a wait. */
static int send_string(lua_State *L, struct lurk_lua_sock *k, struct lurk_task *t, int idx, double timeout_s,
                       int64_t now)
{
    size_t len;
    const char *p = lua_tolstring(L, idx, &len);
    int rc;

    if (k->writer)
        return lurk_lua_raise(L, "sock:send", "another task is already sending on this socket");
    k->wdeadline = lurk_task_deadline_at(t, timeout_s, now);
    if (k->bg_err) {                  /* the last send failed after returning */
        rc = k->bg_err;
        k->bg_err = 0;
        return op_error(L, k, rc, "send", "sock:send to", t, k->wdeadline);
    }
    if (!k->st->open)
        return sock_error(L, k, -LURK_ECLOSED, "send");
    rc = lurk_task_check_at(t, now);
    if (rc < 0)
        return op_error(L, k, rc, "send", "sock:send to", t, k->wdeadline);
    /* Plain TCP: nobody needs to wait for the kernel to take the bytes, so
     * the task goes on (to its receive: one enter for both). A failure is
     * the next send's; a full socket makes the next send wait behind this
     * one. */
    rc = lurk_lua_sock_send_nowait(L, k, 1, idx, k->wdeadline);
    if (rc < 0)
        return sock_error(L, k, rc, "send");
    if (rc > 0) {
        lua_pushnumber(L, (lua_Number)len);
        return 1;
    }
    k->wlen = len;
    k->writer = t;
    rc = lurk_stream_write(k->st, p, len, k->wdeadline, lurk_task_wake, t);
    if (rc < 0) {
        k->writer = NULL;
        return sock_error(L, k, rc, "send");
    }
    k->data_ref = lurk_pin(k->rt, L, idx);   /* until the kernel is done */
    anchor(L, k, 1);
    return lurk_task_wait(L, t, &send_waiter, k);
}

/* sock:send(data) -> bytes | nil, err */
static int sock_send(lua_State *L)
{
    static const char fname[] = "sock:send";
    struct lurk_lua_sock *k = check_open(L, fname);
    struct lurk_task *t = lurk_rt_task(L, k->rt, fname);

    /* A number would be converted: a script that means a string says so. */
    if (lua_type(L, 2) != LUA_TSTRING)
        return lurk_lua_argerror(L, 2, fname, lua_pushfstring(L, "string expected, got %s",
                                 lua_isnone(L, 2) ? "no value" : luaL_typename(L, 2)));
    return send_string(L, k, t, 2, k->timeout, lurk_now_ns());
}

int lurk_lua_sock_send_within(lua_State *L, int idx, double timeout_s, const char *fname)
{
    struct lurk_lua_sock *k = check_open(L, fname);
    struct lurk_task *t = lurk_rt_task(L, k->rt, fname);

    /* The sooner of the socket's timeout and the caller's. */
    if (k->timeout > 0 && (timeout_s <= 0 || k->timeout < timeout_s))
        timeout_s = k->timeout;
    return send_string(L, k, t, idx, timeout_s, lurk_now_ns());
}

/* sock:starttls([opts]) -> sock | nil, err: a TLS handshake on this
 * connection; afterwards send and receive carry plaintext through TLS. */
static int sock_starttls(lua_State *L)
{
    static const struct who w = { "sock:starttls", 1 };
    struct lurk_lua_sock *k = check_open(L, w.fname);
    struct lurk_task *t = lurk_rt_task(L, k->rt, "sock:starttls");
    const char *name = lurk_tcp_name(k->s);
    char host[300];
    const char *colon;
    int rc, n;

    if (k->tls)
        return lurk_lua_raise(L, w.fname, "TLS is already set up on this socket");
    if (k->reader || k->writer)
        return lurk_lua_raise(L, w.fname, "another task uses the socket");
    if (!k->st->open)
        return sock_error(L, k, -LURK_ECLOSED, "tls");
    if (lurk_buf_len(k->st->rbuf))
        return lurk_lua_raise(L, w.fname, "unread plaintext is buffered");
    /* The host name is the one connected to: "host:port" or "[v6]:port". */
    colon = strrchr(name, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon ? colon - name : (long)strlen(name)), name);
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_pushboolean(L, 1);
    }
    n = make_tls(L, k, 2, host, colon ? atoi(colon + 1) : 0, &w);
    if (n)
        return n;
    rc = lurk_lua_sock_handshake_start(L, 1, t, k->timeout);
    if (rc < 0)
        return op_error(L, k, rc, "tls", "TLS handshake with", t, k->cdeadline);
    return lurk_task_wait(L, t, &connect_waiter, k);
}

/* sock.tls -> { version, cipher, alpn, ktls, ktls_tx, ktls_rx, records, resumed, fallback } or nil
 * sock.timings -> { dns, connect, tls } in seconds */
static void push_tls_info(lua_State *L, struct lurk_lua_sock *k)
{
    struct lurk_tls_info i;

    if (!k->tls || k->st != lurk_tls_stream(k->tls)) {
        lua_pushnil(L);
        return;
    }
    lurk_tls_get_info(k->tls, &i);
    lua_createtable(L, 0, 9);
    lua_pushstring(L, i.version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, i.cipher);
    lua_setfield(L, -2, "cipher");
    if (i.alpn) {
        lua_pushstring(L, i.alpn);
        lua_setfield(L, -2, "alpn");
    }
    lua_pushboolean(L, i.ktls_tx && i.ktls_rx);
    lua_setfield(L, -2, "ktls");
    lua_pushboolean(L, i.ktls_tx);
    lua_setfield(L, -2, "ktls_tx");
    lua_pushboolean(L, i.ktls_rx);
    lua_setfield(L, -2, "ktls_rx");
    lua_pushstring(L, i.records);
    lua_setfield(L, -2, "records");
    lua_pushboolean(L, i.resumed);
    lua_setfield(L, -2, "resumed");
    if (i.sni) {                      /* a server's connection: the name asked for */
        lua_pushstring(L, i.sni);
        lua_setfield(L, -2, "sni");
    }
    if (i.fallback[0]) {
        lua_pushstring(L, i.fallback);
        lua_setfield(L, -2, "fallback");
    } else {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "fallback");
    }
}

static int sock_index(lua_State *L)
{
    struct lurk_lua_sock *k;
    const char *key;

    /* A method first: found without checking the socket (the method will). */
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1)); /* the methods table */
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 1);
    k = check_sock(L, 1);
    key = lua_tostring(L, 2);

    if (key && strcmp(key, "tls") == 0) {
        push_tls_info(L, k);
        return 1;
    }
    if (key && strcmp(key, "timings") == 0) {
        double dns, conn;
        struct lurk_tls_info i;

        lurk_tcp_timings(k->s, &dns, &conn);
        lua_createtable(L, 0, 3);
        lua_pushnumber(L, dns);
        lua_setfield(L, -2, "dns");
        lua_pushnumber(L, conn);
        lua_setfield(L, -2, "connect");
        if (k->tls) {
            lurk_tls_get_info(k->tls, &i);
            lua_pushnumber(L, i.handshake);
            lua_setfield(L, -2, "tls");
        }
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

/* ---- for the bindings that run a protocol over a socket (tcp.h) ---- */

struct lurk_lua_sock *lurk_lua_sock_check(lua_State *L, int idx)
{
    struct lurk_lua_sock *k = check_sock(L, idx);

    if (k->user_closed)
        luaL_error(L, "attempt to use a closed socket");
    return k;
}

struct lurk_stream *lurk_lua_sock_stream(struct lurk_lua_sock *k)
{
    return k->st;
}

struct lurk_tcp *lurk_lua_sock_tcp(struct lurk_lua_sock *k)
{
    return k->s;
}

struct lurk_tls *lurk_lua_sock_tls(struct lurk_lua_sock *k)
{
    return k->tls;
}

double lurk_lua_sock_timeout(const struct lurk_lua_sock *k)
{
    return k->timeout;
}

const char *lurk_lua_sock_name(const struct lurk_lua_sock *k)
{
    return lurk_tcp_name(k->s);
}

void lurk_lua_sock_take(lua_State *L, struct lurk_lua_sock *k, int idx, struct lurk_task *t)
{
    if (k->reader || k->writer)
        luaL_error(L, "another task is already using this socket");
    k->reader = k->writer = t;
    anchor(L, k, idx);
}

void lurk_lua_sock_give(struct lurk_lua_sock *k)
{
    k->reader = k->writer = NULL;
    unanchor(k);
}

int lurk_lua_sock_error(lua_State *L, struct lurk_lua_sock *k, int rc, const char *phase)
{
    return sock_error(L, k, rc, phase);
}

/*
 * P.idle_ok(sock) -> whether a pooled connection is still fit for a request:
 * open, nothing buffered, and nothing (no byte, no end of stream) waiting in
 * the kernel. A server may write on an idle connection (a stray response,
 * a close); that must never be taken for the next request's answer. One
 * poll(2), only for a connection taken from the pool.
 */
static int l_idle_ok(lua_State *L)
{
    struct lurk_lua_sock *k = check_sock(L, 1);
    struct pollfd p = { .fd = k->s ? lurk_tcp_fd(k->s) : -1, .events = POLLIN | POLLRDHUP };
    bool ok = !k->user_closed && k->st && k->st->open && !k->st->eof && !k->reader && !k->writer &&
              !k->bg && !k->bg_err &&
              lurk_buf_len(k->st->rbuf) == 0 && lurk_buf_len(lurk_tcp_rbuf(k->s)) == 0 && p.fd >= 0 &&
              poll(&p, 1, 0) == 0;

    lua_pushboolean(L, ok);
    return 1;
}

/* ---- the rest ---- */

/* sock:settimeout(s | false) -> true */
static int sock_settimeout(lua_State *L)
{
    static const char fname[] = "sock:settimeout";
    struct lurk_lua_sock *k = check_self(L, fname);

    if (lua_isboolean(L, 2) && !lua_toboolean(L, 2))
        k->timeout = 0;
    else {
        lua_Number s = lurk_lua_checknumber(L, 2, fname);

        if (!(s > 0))
            return lurk_lua_argerror(L, 2, fname, "timeout must be positive (or false for none)");
        k->timeout = s;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sock:close() -> true; idempotent. Waiting calls get nil, err (closed). */
static int sock_close(lua_State *L)
{
    struct lurk_lua_sock *k = check_self(L, "sock:close");

    k->user_closed = true;
    if (k->st)
        lurk_stream_close(k->st);
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_gc(lua_State *L)
{
    struct lurk_lua_sock *k = check_sock(L, 1);

    if (k->st)
        lurk_stream_close(k->st);
    if (k->tls) {
        lurk_tls_unref(k->tls);
        k->tls = NULL;
    }
    if (k->s) {
        lurk_tcp_unref(k->s);
        k->s = NULL;
    }
    k->st = NULL;
    return 0;
}

static int sock_tostring(lua_State *L)
{
    struct lurk_lua_sock *k = check_sock(L, 1);

    lua_pushfstring(L, "lurk.tcp (%s%s%s)", k->s ? lurk_tcp_name(k->s) : "?", k->tls ? ", TLS" : "",
                    k->st && k->st->open ? "" : ", closed");
    return 1;
}

int lurk_lua_open_tcp(lua_State *L, int priv)
{
    static const luaL_Reg methods[] = {
        { "receive", sock_receive },
        { "receive_some", sock_receive_some },
        { "send", sock_send },
        { "settimeout", sock_settimeout },
        { "close", sock_close },
        { "starttls", sock_starttls },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", sock_gc },
        { "__tostring", sock_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg funcs[] = {
        { "connect", l_connect },
        { NULL, NULL },
    };

    /* __index also answers sock.tls and sock.timings. */
    lurk_lua_class_indexed(L, SOCK_MT, methods, meta, sock_index);
    /* For lua/http.lua, which calls them directly, without a lookup
     * through __index per call: the methods, and the pool's check. */
    lua_setfield(L, priv, "sock_methods");
    lua_pushcfunction(L, l_idle_ok);
    lua_setfield(L, priv, "idle_ok");
    lua_pushcfunction(L, l_resolve);
    lua_setfield(L, priv, "resolve");
    lua_pushcfunction(L, l_check_tls);
    lua_setfield(L, priv, "check_tls");
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
