/*
 * class.h - the one way lurk's bindings make a userdata type.
 */
#ifndef LURK_LUA_CLASS_H
#define LURK_LUA_CLASS_H

#include <lauxlib.h>
#include <lua.h>

/*
 * Registers the metatable `name` (luaL_newmetatable, so luaL_checkudata
 * finds it): __index is a new table holding `methods` (NULL: no __index),
 * and `meta` supplies the metamethods (__gc, __tostring, __eq; NULL: none).
 * Stack: unchanged.
 */
void lurk_lua_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta);

#endif
