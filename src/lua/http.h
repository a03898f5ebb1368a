/* http.h - the C half of the Lua http module (see http.c). */
#ifndef LURK_LUA_HTTP_H
#define LURK_LUA_HTTP_H

#include <lua.h>

/* The metatable of http._parser objects (a struct lurk_h1 userdata). */
#define LURK_H1_MT "lurk.h1"

/* Pushes a table with http._parser; lua/http.lua builds the module on it. */

/* Pushes headers, repeated (see the top of http.c) for the head the parser
 * at idx (an http._parser object) has just parsed. */
void lurk_lua_push_headers(lua_State *L, int idx);

#endif
