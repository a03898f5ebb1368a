/*
 * module.c - lurk as a C module for a stock luajit: require "lurk".
 *
 * The runtime lives in the requiring Lua state. A full userdata kept in the
 * registry frees it when the state closes; being the first object with a
 * finalizer, it is finalized last, after the sockets (Lua 5.1 and LuaJIT
 * finalize userdata in reverse order of creation).
 *
 * The loading luajit is not lurk's own, so it is checked first: LuaJIT before
 * the 2023 rolling release (jit.version_num 20199), such as Debian 12's
 * 2.1.0-beta3 snapshot, miscompiles pairs() loops (LuaJIT issue 827), and a
 * script would silently skip table entries. The lurk program and liblurk
 * carry a good LuaJIT and need no check.
 */
#include "core/error.h"              /* first: lurk.h defines the codes otherwise */
#include "lurk.h"
#include "lua/task.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define ANCHOR_MT "lurk.module"
#define GOOD_LUAJIT_VERSION_NUM 20199

/* Raises unless the running LuaJIT is one known to compile correctly, or
 * LURK_ALLOW_OLD_LUAJIT=1. Reads package.loaded.jit, which scripts cannot
 * shadow by accident as they can the global. */
static void check_luajit(lua_State *L)
{
    const char *allow = getenv("LURK_ALLOW_OLD_LUAJIT");
    const char *version;
    lua_Number num;

    if (allow && strcmp(allow, "1") == 0)
        return;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "jit");                 /* package, loaded, jit */
    if (!lua_istable(L, -1))
        luaL_error(L, "lurk: needs LuaJIT 2.1 (this Lua has no jit module)");
    lua_getfield(L, -1, "version_num");
    lua_getfield(L, -2, "version");             /* ..., jit, version_num, version */
    num = lua_tonumber(L, -2);
    version = lua_tostring(L, -1);
    if (num >= GOOD_LUAJIT_VERSION_NUM) {
        lua_pop(L, 5);
        return;
    }
    luaL_error(L, "lurk: %s (jit.version_num %d) is known to miscompile Lua code: compiled "
               "pairs() loops can end early and skip entries (LuaJIT issue 827). Run the script "
               "with the lurk program, which carries a good LuaJIT, or use a LuaJIT 2.1 from "
               "2023 or later (jit.version_num %d); LURK_ALLOW_OLD_LUAJIT=1 loads lurk anyway",
               version ? version : "this LuaJIT", (int)num, GOOD_LUAJIT_VERSION_NUM);
}

static int anchor_gc(lua_State *L)
{
    struct lurk_rt **box = luaL_checkudata(L, 1, ANCHOR_MT);

    lurk_rt_free(*box);
    *box = NULL;
    return 0;
}

int luaopen_lurk(lua_State *L)
{
    struct lurk_rt_opts o = { .ktls = -1 };
    struct lurk_rt *rt, **box;
    char *msg = NULL;
    int rc;

    if (!lurk_rt_get(L)) {
        check_luajit(L);
        box = lua_newuserdata(L, sizeof *box);
        *box = NULL;
        luaL_newmetatable(L, ANCHOR_MT);
        lua_pushcfunction(L, anchor_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        luaL_ref(L, LUA_REGISTRYINDEX);
        rc = lurk_rt_new(&rt, L, &o, &msg);
        if (rc < 0) {
            lua_pushfstring(L, "lurk: cannot start: %s: %s", msg ? msg : lurk_strerror(rc),
                            lurk_strerror_setup(rc));
            free(msg);
            return lua_error(L);
        }
        *box = rt;
    }
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "lurk");
    return 1;
}

/* require "lurk.http" and friends, found in lurk.so by the all-in-one
 * loader, set up the runtime first. */
static int submodule(lua_State *L, const char *name)
{
    luaopen_lurk(L);
    lua_getfield(L, -2, name);
    return 1;
}

LURK_API int luaopen_lurk_http(lua_State *L);
LURK_API int luaopen_lurk_https(lua_State *L);
LURK_API int luaopen_lurk_ws(lua_State *L);
LURK_API int luaopen_lurk_tcp(lua_State *L);
LURK_API int luaopen_lurk_json(lua_State *L);

int luaopen_lurk_http(lua_State *L) { return submodule(L, "lurk.http"); }
int luaopen_lurk_https(lua_State *L) { return submodule(L, "lurk.https"); }
int luaopen_lurk_ws(lua_State *L) { return submodule(L, "lurk.ws"); }
int luaopen_lurk_tcp(lua_State *L) { return submodule(L, "lurk.tcp"); }
int luaopen_lurk_json(lua_State *L) { return submodule(L, "lurk.json"); }
