/* options.h - strict option tables: an unknown key raises, naming the
 * function, the key and the closest known key (see options.c). */
#ifndef LURK_LUA_OPTIONS_H
#define LURK_LUA_OPTIONS_H

#include <lua.h>

/*
 * Raises "fname: unknown option 'timout' (did you mean 'timeout'?)" for the
 * first key of the table at idx that is not in known (NULL-terminated), and
 * for a key that is not a string. Does nothing for a non-table.
 */
void lurk_lua_check_options(lua_State *L, int idx, const char *fname, const char *const *known);

/* The same, the error at the given level (as luaL_where counts: 1 is the
 * function that called the running C function), for a check made on behalf
 * of a caller further up. */
void lurk_lua_check_options_at(lua_State *L, int idx, const char *fname, const char *const *known,
                               int level);

/* Registers private.check_options(opts, fname, known_set [, level]) for the
 * Lua modules: the same check, the error at the given level (default 2,
 * the caller's caller, as error() counts). */
void lurk_lua_open_options(lua_State *L, int priv);

#endif
