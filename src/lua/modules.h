/*
 * modules.h - the C halves of lurk's Lua modules, one open function each.
 * runtime.c calls them in order when it sets up a Lua state; nothing else
 * does. Each registers into the table on top of L (void) or pushes the
 * module (int, returns 1). priv is the stack index of the private table:
 * internals the embedded Lua modules need and scripts must not see
 * (registry["lurk.private"]; tests reach it through debug.getregistry()).
 */
#ifndef LURK_LUA_MODULES_H
#define LURK_LUA_MODULES_H

#include <lua.h>

void lurk_lua_open_task(lua_State *L, int priv);  /* lurk.spawn, sleep, ... (task.c) */
void lurk_lua_open_error(lua_State *L);           /* lurk.error (error.c) */
void lurk_lua_open_file(lua_State *L, int priv);  /* files written through the ring (file.c) */
void lurk_lua_open_psl(lua_State *L, int priv);   /* public suffixes, for cookies (psl.c) */
int lurk_lua_open_tcp(lua_State *L, int priv);    /* the tcp module (tcp.c) */
void lurk_lua_open_digest(lua_State *L);          /* lurk.sha256, hmac_sha256, equal (digest.c) */
void lurk_lua_open_sendfile(lua_State *L, int priv); /* http.file's C side (sendfile.c) */
void lurk_lua_open_serve(lua_State *L, int priv); /* tcp.listen, request parsing (serve.c) */
int lurk_lua_open_json(lua_State *L);     /* the json module (json.c) */
int lurk_lua_open_http(lua_State *L);     /* lua/http.lua's C half (http.c) */
int lurk_lua_open_ws(lua_State *L);       /* lua/ws.lua's C half (ws.c) */

#endif
