/*
 * class.c - lurk_lua_class(), the metatable every userdata type gets, and
 * the argument checks that name the function (see class.h).
 */
#include "lua/class.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

void lurk_lua_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta)
{
    luaL_newmetatable(L, name);       /* mt */
    if (methods) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
    }
    if (meta)
        luaL_register(L, NULL, meta);
    lua_pop(L, 1);
}

void lurk_lua_class_indexed(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta,
                            lua_CFunction index)
{
    lurk_lua_class(L, name, methods, meta);
    luaL_getmetatable(L, name);
    lua_getfield(L, -1, "__index");   /* mt, methods */
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, index, 1);
    lua_setfield(L, -3, "__index");   /* mt, methods */
    lua_remove(L, -2);                /* methods */
}

static int raise_v(lua_State *L, int level, const char *fname, const char *fmt, va_list ap)
{
    luaL_where(L, level);
    lua_pushstring(L, fname);
    lua_pushliteral(L, ": ");
    lua_pushvfstring(L, fmt, ap);
    lua_concat(L, 4);
    return lua_error(L);
}

int lurk_lua_raise(lua_State *L, const char *fname, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    return raise_v(L, 1, fname, fmt, ap);   /* level 1: the script that called fname */
}

int lurk_lua_raise_at(lua_State *L, int level, const char *fname, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    return raise_v(L, level, fname, fmt, ap);
}

int lurk_lua_argerror(lua_State *L, int idx, const char *fname, const char *msg)
{
    int n = strchr(fname, ':') ? idx - 1 : idx;

    return lurk_lua_raise(L, fname, "bad argument #%d (%s)", n, msg);
}

static int type_error(lua_State *L, int idx, const char *fname, const char *want)
{
    const char *msg = lua_pushfstring(L, "%s expected, got %s", want,
                                      lua_isnone(L, idx) ? "no value" : luaL_typename(L, idx));

    return lurk_lua_argerror(L, idx, fname, msg);
}

const char *lurk_lua_checklstring(lua_State *L, int idx, const char *fname, size_t *len)
{
    const char *s = lua_tolstring(L, idx, len);

    if (!s)
        type_error(L, idx, fname, "string");
    return s;
}

lua_Number lurk_lua_checknumber(lua_State *L, int idx, const char *fname)
{
    if (!lua_isnumber(L, idx))
        type_error(L, idx, fname, "number");
    return lua_tonumber(L, idx);
}

lua_Number lurk_lua_optnumber(lua_State *L, int idx, const char *fname, lua_Number dflt)
{
    return lua_isnoneornil(L, idx) ? dflt : lurk_lua_checknumber(L, idx, fname);
}

lua_Integer lurk_lua_checkinteger(lua_State *L, int idx, const char *fname)
{
    lua_Number n = lurk_lua_checknumber(L, idx, fname);

    if (n != floor(n))
        lurk_lua_argerror(L, idx, fname, lua_pushfstring(L, "whole number expected, got %f", n));
    return (lua_Integer)n;
}

void lurk_lua_checktype(lua_State *L, int idx, const char *fname, int type)
{
    if (lua_type(L, idx) != type)
        type_error(L, idx, fname, lua_typename(L, type));
}

void *lurk_lua_checkself(lua_State *L, const char *tname, const char *fname)
{
    void *p = lua_touserdata(L, 1);

    if (p && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, tname);
        if (lua_rawequal(L, -1, -2)) {
            lua_pop(L, 2);
            return p;
        }
        lua_pop(L, 2);
    }
    /* "sock:send" -> "use sock:send(...)": the usual cause is sock.send(...). */
    lurk_lua_raise(L, fname, "use %s(...), with ':' (the first argument is %s, not a %s)", fname,
                   lua_isnone(L, 1) ? "missing" : luaL_typename(L, 1), tname);
    return NULL;
}
