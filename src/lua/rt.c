/*
 * rt.c - the runtime: creating and tearing it down (the ring, the resolver,
 * the Lua state and lurk's modules in it), its accessors, pins, and the
 * hand-off of a fatal task's error.
 *
 * Teardown order matters because the kernel may still hold pointers into
 * memory that Lua owns (strings being sent, buffers being filled):
 *   1. mark the runtime closing, so completions no longer queue tasks;
 *   2. release what waiting tasks pinned, then cancel every op and reap
 *      until none is in flight (lurk_loop_drain);
 *   3. close the Lua state: finalizers close sockets, now with nothing in
 *      flight, so their descriptors close at once;
 *   4. close the resolver, free the loop, then the task records.
 */
#include "lua/rt.h"
#include "lua/task.h"
#include "lua/error.h"
#include "lua/modules.h"
#include "lua/options.h"
#include "core/error.h"
#include "core/loop.h"
#include "net/dns.h"
#include "tls/tls.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_lurk.h"                 /* luaJIT_BC_lurk: lua/lurk.lua, compiled */
#include "lua_http.h"                 /* luaJIT_BC_http: lua/http.lua */
#include "lua_ws.h"                   /* luaJIT_BC_ws: lua/ws.lua */
#include "lua_http_url.h"             /* lua/http/: the http module's parts */
#include "lua_http_cookies.h"
#include "lua_http_proxy.h"
#include "lua_http_pool.h"
#include "lua_http_response.h"
#include "lua_http_server.h"

struct lurk_rt {
    struct lurk_rt_head h;            /* first: L, loop, sched, closing (rt.h) */
    struct lurk_resolver *resolver;
    struct lurk_tls_ctx *tls;         /* RNG and CA bundle, set up lazily */
    bool failed;                      /* a task marked fatal raised an error */
    char *errmsg;                     /* its message and traceback (or a note) */
    lurk_rt_error_cb *on_error;       /* spawned tasks' uncaught errors; NULL: stderr */
    void *on_error_ud;
    bool owns_L;                      /* false: a host's state (require "lurk") */
    int ktls;                         /* default enum lurk_ktls_policy */
    struct lurk_rt **upbox;           /* the lurk.* functions' upvalue */
    int pins_ref;                     /* the pins table (lurk_pin) */
    int *free_pins, nfree_pins, cap_free_pins, npins;
};

static char rt_key;                   /* the registry key of a state's runtime */

struct lurk_rt *lurk_rt_get(lua_State *L)
{
    struct lurk_rt *rt;

    lua_pushlightuserdata(L, &rt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return rt;
}

/* Binds rt to L (NULL unbinds: a host's state outlives the runtime). */
static void bind_state(lua_State *L, struct lurk_rt *rt)
{
    lua_pushlightuserdata(L, &rt_key);
    lua_pushlightuserdata(L, rt);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

struct lurk_resolver *lurk_rt_resolver(const struct lurk_rt *rt)
{
    return rt->resolver;
}

struct lurk_tls_ctx *lurk_rt_tls(const struct lurk_rt *rt)
{
    return rt->tls;
}

int lurk_rt_ktls(const struct lurk_rt *rt)
{
    return rt->ktls;
}

void lurk_rt_set_upbox(struct lurk_rt *rt, struct lurk_rt **box)
{
    rt->upbox = box;
}

static void set_errmsg(struct lurk_rt *rt, const char *msg)
{
    char *copy = msg ? strdup(msg) : NULL;   /* before the free: msg may be errmsg */

    free(rt->errmsg);
    rt->errmsg = copy;
}

void lurk_rt_fail(struct lurk_rt *rt, const char *msg)
{
    rt->failed = true;
    set_errmsg(rt, msg);
}

void lurk_rt_note(struct lurk_rt *rt, const char *msg)
{
    set_errmsg(rt, msg);
}

bool lurk_rt_failed(const struct lurk_rt *rt)
{
    return rt->failed;
}

const char *lurk_rt_errmsg(const struct lurk_rt *rt)
{
    return rt->errmsg;
}

void lurk_rt_clear_failure(struct lurk_rt *rt)
{
    rt->failed = false;
}

void lurk_rt_set_error_handler(struct lurk_rt *rt, lurk_rt_error_cb *fn, void *ud)
{
    rt->on_error = fn;
    rt->on_error_ud = ud;
}

void lurk_rt_task_error(struct lurk_rt *rt, const char *msg)
{
    if (rt->on_error)
        rt->on_error(rt->on_error_ud, msg);
    else
        fprintf(stderr, "lurk: error in task: %s\n", msg);
}

/* package.loaded[name] = value on top (popped); also a global if asked. */
static void publish(lua_State *L, const char *name, const char *global)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
    if (global)
        lua_setglobal(L, global);
    else
        lua_pop(L, 1);
}

/* Stack index of the private table while open_modules runs. */
#define PRIV 3

/* Runs an embedded lua/ module chunk with (its C half, lurk.tcp, lurk,
 * package.loaded[extra], the private table) as arguments, leaving the
 * module on the stack. */
static void load_lua_module(lua_State *L, const unsigned char *bc, size_t size, const char *name,
                            lua_CFunction open_c, const char *extra)
{
    if (luaL_loadbuffer(L, (const char *)bc, size, name))
        lua_error(L);
    open_c(L);                        /* chunk, C half */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_remove(L, -2);
    lua_getfield(L, -1, "lurk.tcp");
    lua_getfield(L, -2, "lurk");
    lua_getfield(L, -3, extra);
    lua_remove(L, -4);                /* chunk, C half, tcp, lurk, extra */
    lua_pushvalue(L, PRIV);
    lua_call(L, 5, 1);
}

/* Runs lua/http/<name>.lua with (the private table, lurk, lurk.tcp,
 * lurk.json) as arguments; what it returns becomes private.<name>. */
static void load_part(lua_State *L, const unsigned char *bc, size_t size, const char *name)
{
    char chunk[64];

    snprintf(chunk, sizeof chunk, "=http/%s.lua", name);
    if (luaL_loadbuffer(L, (const char *)bc, size, chunk))
        lua_error(L);
    lua_pushvalue(L, PRIV);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_remove(L, -2);
    lua_getfield(L, -1, "lurk");
    lua_getfield(L, -2, "lurk.tcp");
    lua_getfield(L, -3, "lurk.json");
    lua_remove(L, -4);                /* chunk, private, lurk, tcp, json */
    lua_call(L, 4, 1);
    lua_setfield(L, PRIV, name);
}

/* The options as the Lua modules see them: private.options { trace, timeout }. */
static void set_lua_options(lua_State *L, const struct lurk_rt_opts *o)
{
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, LURK_DEFAULT_TIMEOUT);
    lua_setfield(L, -2, "timeout");
    if (o->trace) {
        lua_pushstring(L, o->trace);
        lua_setfield(L, -2, "trace");
    }
    lua_setfield(L, PRIV, "options");
}

static int open_modules(lua_State *L)
{
    bool globals = lua_toboolean(L, 1);
    const struct lurk_rt_opts *o = lua_touserdata(L, 2);

    if (lurk_rt_get(L)->owns_L)
        luaL_openlibs(L);

    /* The private table (PRIV): what the embedded Lua modules share and
     * scripts do not see. Also in the registry, for lurk's own tests. */
    lua_settop(L, 2);
    lua_newtable(L);
    lua_pushvalue(L, PRIV);
    lua_setfield(L, LUA_REGISTRYINDEX, "lurk.private");
    set_lua_options(L, o);
    lurk_lua_open_options(L, PRIV);

    lua_newtable(L);                  /* the lurk module */
    lurk_lua_open_task(L, PRIV);
    lurk_lua_open_error(L);
    lurk_lua_open_file(L, PRIV);
    lurk_lua_open_digest(L);
    lua_pushstring(L, "0.1.0");
    lua_setfield(L, -2, "version");
    if (luaL_loadbuffer(L, (const char *)luaJIT_BC_lurk, luaJIT_BC_lurk_SIZE, "=lurk.lua"))
        return lua_error(L);
    lua_insert(L, -2);                /* chunk under the module table */
    lua_pushvalue(L, PRIV);
    lua_call(L, 2, 1);
    publish(L, "lurk", globals ? "lurk" : NULL);

    lurk_lua_open_tcp(L, PRIV);
    lurk_lua_open_serve(L, PRIV);
    publish(L, "lurk.tcp", globals ? "tcp" : NULL);
    lurk_lua_open_json(L);
    publish(L, "lurk.json", globals ? "json" : NULL);

    /* The parts in lua/http/, in the order they build on each other, then
     * lua/http.lua and lua/ws.lua with their C half and the modules they
     * build on. */
    lurk_lua_open_psl(L, PRIV);       /* before the cookie jar, which keeps it */
    load_part(L, luaJIT_BC_http_url, luaJIT_BC_http_url_SIZE, "url");
    load_part(L, luaJIT_BC_http_cookies, luaJIT_BC_http_cookies_SIZE, "cookies");
    load_part(L, luaJIT_BC_http_proxy, luaJIT_BC_http_proxy_SIZE, "proxy");
    load_part(L, luaJIT_BC_http_pool, luaJIT_BC_http_pool_SIZE, "pool");
    load_part(L, luaJIT_BC_http_response, luaJIT_BC_http_response_SIZE, "response");
    load_lua_module(L, luaJIT_BC_http, luaJIT_BC_http_SIZE, "=http.lua", lurk_lua_open_http, "lurk.json");
    /* The server half (http.serve, http.file) extends the http module. */
    lua_pushvalue(L, -1);
    lua_setfield(L, PRIV, "http_module");
    load_part(L, luaJIT_BC_http_server, luaJIT_BC_http_server_SIZE, "server");
    lua_pushvalue(L, -1);
    publish(L, "lurk.http", globals ? "http" : NULL);
    publish(L, "lurk.https", globals ? "https" : NULL);
    load_lua_module(L, luaJIT_BC_ws, luaJIT_BC_ws_SIZE, "=ws.lua", lurk_lua_open_ws, "lurk.http");
    publish(L, "lurk.ws", globals ? "ws" : NULL);
    return 0;
}

int lurk_pin(struct lurk_rt *rt, lua_State *L, int idx)
{
    int pin = rt->nfree_pins > 0 ? rt->free_pins[--rt->nfree_pins] : ++rt->npins;

    if (idx < 0 && idx > LUA_REGISTRYINDEX)
        idx--;                        /* the pins table goes on top first */
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->pins_ref);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, pin);
    lua_pop(L, 1);
    return pin;
}

void lurk_pinned(struct lurk_rt *rt, lua_State *L, int pin)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->pins_ref);
    lua_rawgeti(L, -1, pin);
    lua_remove(L, -2);
}

void lurk_unpin(struct lurk_rt *rt, int pin)
{
    lua_State *L = rt->h.L;

    if (pin <= 0)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->pins_ref);
    lua_pushnil(L);
    lua_rawseti(L, -2, pin);
    lua_pop(L, 1);
    if (rt->nfree_pins == rt->cap_free_pins) {
        int cap = rt->cap_free_pins ? 2 * rt->cap_free_pins : 64;
        int *n = realloc(rt->free_pins, (size_t)cap * sizeof *n);

        if (!n)
            return;                   /* the slot stays unused: nothing leaks but a number */
        rt->free_pins = n;
        rt->cap_free_pins = cap;
    }
    rt->free_pins[rt->nfree_pins++] = pin;
}

int lurk_rt_new(struct lurk_rt **out, lua_State *L, const struct lurk_rt_opts *o, char **errmsg)
{
    struct lurk_rt *rt = calloc(1, sizeof *rt);
    int rc;

    *out = NULL;
    *errmsg = NULL;
    if (!rt)
        return -ENOMEM;
    rt->pins_ref = LUA_NOREF;
    rt->ktls = o->ktls >= 0 ? o->ktls : (int)lurk_ktls_policy_env();
    rt->h.sched = lurk_sched_new();
    if (!rt->h.sched) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = lurk_loop_new(&rt->h.loop, 4096);
    if (rc < 0)
        goto fail;
    rc = lurk_resolver_new(&rt->resolver, rt->h.loop);
    if (rc < 0)
        goto fail;
    rc = lurk_tls_ctx_new(&rt->tls, o->ca_file);
    if (rc < 0)
        goto fail;
    rt->owns_L = L == NULL;
    rt->h.L = L ? L : luaL_newstate();
    if (!rt->h.L) {
        rc = -ENOMEM;
        goto fail;
    }
    bind_state(rt->h.L, rt);
    lua_createtable(rt->h.L, 64, 0);
    rt->pins_ref = luaL_ref(rt->h.L, LUA_REGISTRYINDEX);
    lua_pushcfunction(rt->h.L, open_modules);
    lua_pushboolean(rt->h.L, o->globals);
    lua_pushlightuserdata(rt->h.L, (void *)o);
    if (lua_pcall(rt->h.L, 2, 0, 0) != 0) {
        *errmsg = strdup(lua_tostring(rt->h.L, -1));
        lua_pop(rt->h.L, 1);
        rc = -LURK_ESCRIPT;
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    lurk_rt_free(rt);
    return rc;
}

void lurk_rt_free(struct lurk_rt *rt)
{
    if (!rt)
        return;
    rt->h.closing = true;
    if (rt->upbox)
        *rt->upbox = NULL;            /* lurk.* functions may outlive us */
    lurk_rt_release_tasks(rt);
    if (rt->h.loop && lurk_loop_drain(rt->h.loop) < 0) {
        /* The kernel still holds ops into Lua strings and socket buffers:
         * leak the whole runtime rather than free what it may touch. */
        fprintf(stderr, "lurk: %u io_uring operation(s) would not cancel; "
                "leaking the runtime instead of freeing memory the kernel uses\n",
                lurk_loop_in_flight(rt->h.loop));
        return;
    }
    if (rt->h.L && rt->owns_L) {
        lua_close(rt->h.L);
    } else if (rt->h.L) {
        bind_state(rt->h.L, NULL);  /* the host's state outlives us */
        luaL_unref(rt->h.L, LUA_REGISTRYINDEX, rt->pins_ref);
    }
    free(rt->free_pins);
    lurk_resolver_close(rt->resolver);
    lurk_loop_free(rt->h.loop);
    lurk_tls_ctx_free(rt->tls);
    lurk_sched_free(rt->h.sched);
    free(rt->errmsg);
    free(rt);
}
