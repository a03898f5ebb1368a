/*
 * error.h - the one place that turns lurk's error codes into Lua error values.
 */
#ifndef LURK_LUA_ERROR_H
#define LURK_LUA_ERROR_H

#include <lua.h>

/*
 * Pushes nil and an error table for code rc (-errno or -LURK_E*) and returns
 * 2, so a binding can `return lurk_lua_error(L, rc, "read", name);`. phase is
 * one of dns, connect, tls, send, wait, read; context (may be NULL) names
 * what was being talked to, e.g. "example.com:443 (93.184.216.34)".
 */
int lurk_lua_error(lua_State *L, int rc, const char *phase, const char *context);

/*
 * The same, with the message written from fmt (lua_pushfstring's formats)
 * instead of derived from rc and a context: for failures whose words say
 * more than the code (a parser's reason, a TLS library's). kind, errno,
 * name and retryable still come from rc. Returns 2 (nil, err).
 */
int lurk_lua_errorf(lua_State *L, int rc, const char *phase, const char *fmt, ...);

/* Pushes just the error table. */
void lurk_lua_push_error(lua_State *L, int rc, const char *phase, const char *context);

/* The kind lurk reports for a code met in a phase ("timeout", "closed", ...). */
const char *lurk_error_kind(int rc, const char *phase);


#endif
