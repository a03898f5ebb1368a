/*
 * class.h - the one way lurk's bindings make a userdata type, and check
 * their arguments.
 *
 * luaL_argerror names the function from the call site's debug info, which
 * LuaJIT does not have for a function called through a local, an upvalue
 * or a tail call ("bad argument #1 to '?'"). The checks here name the
 * function as the script knows it instead ("tcp.connect", "sock:send") and
 * point at the script's line: "t.lua:3: tcp.connect: bad argument #2 (port
 * must be 1-65535)".
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

/* The same, for a class whose __index also answers fields (sock.tls): index
 * is called with (object, key) and the methods table as its upvalue, and
 * looks there first. Leaves the methods table on the stack. */
void lurk_lua_class_indexed(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta,
                            lua_CFunction index);

/*
 * Raises "<where>fname: bad argument #n (msg)", where is the calling line
 * of the script. idx is the stack index; n is the argument as the script
 * counts it: for a method (fname has a ':'), self is not counted.
 */
int lurk_lua_argerror(lua_State *L, int idx, const char *fname, const char *msg);

/* Raises "<where>fname: msg" (lua_pushfstring's formats); _at names the
 * line at level (as luaL_where counts; 1: the caller of the C function). */
int lurk_lua_raise(lua_State *L, const char *fname, const char *fmt, ...);
int lurk_lua_raise_at(lua_State *L, int level, const char *fname, const char *fmt, ...);

/* luaL_check* and luaL_opt* that name fname in their errors. An integer
 * must be a whole number. */
const char *lurk_lua_checklstring(lua_State *L, int idx, const char *fname, size_t *len);
lua_Number lurk_lua_checknumber(lua_State *L, int idx, const char *fname);
lua_Number lurk_lua_optnumber(lua_State *L, int idx, const char *fname, lua_Number dflt);
lua_Integer lurk_lua_checkinteger(lua_State *L, int idx, const char *fname);
void lurk_lua_checktype(lua_State *L, int idx, const char *fname, int type);

/*
 * The userdata of metatable tname at index 1, the self of method fname
 * ("sock:send"). A call written with '.' instead of ':' (no such userdata
 * at index 1) raises "sock:send: ... use sock:send(...)".
 */
void *lurk_lua_checkself(lua_State *L, const char *tname, const char *fname);

#endif
