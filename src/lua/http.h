/* http.h - the C half of the Lua http module (see http.c). */
#ifndef LURK_LUA_HTTP_H
#define LURK_LUA_HTTP_H

#include <lua.h>

/* The metatable of parser objects (a struct lurk_h1 userdata; the C half's _parser). */
#define LURK_H1_MT "lurk.h1"

/* Pushes lua/http.lua's C half (_parser, _inflater, _random_hex, _head). */

/* Pushes headers, repeated (see the top of http.c) for the head the parser
 * at idx (a parser object) has just parsed. */
void lurk_lua_push_headers(lua_State *L, int idx);

#endif
