/*
 * json.h - the `json` Lua module (RFC 8259 encode and decode), see json.c.
 */
#ifndef LURK_LUA_JSON_H
#define LURK_LUA_JSON_H

#include <lua.h>

/* Pushes the json module table: encode, decode, null, array, object (and
 * array_mt, the metatable that marks a table as a JSON array). Returns 1.
 * Never yields; raises only on out-of-memory. */

#endif /* LURK_LUA_JSON_H */
