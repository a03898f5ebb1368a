/*
 * error.c - error values as the Lua API contract describes them.
 *
 * An error is a table with a metatable whose __tostring gives its message:
 *   kind      what went wrong, for scripts to branch on (dns, connect, tls,
 *             timeout, protocol, closed, cancelled, limit, proxy, status)
 *   phase     where: dns, connect, tls, send, wait, read
 *   message   a sentence naming the peer and the cause
 *   errno     the errno number, when the cause was one; name its symbol
 *   retryable true when trying again may well succeed
 * Scripts never need to match message strings.
 */
#include "lua/error.h"
#include "lua/modules.h"
#include "core/error.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#define ERROR_MT "lurk.error"

const char *lurk_error_kind(int rc, const char *phase)
{
    /* A local file that cannot be opened or written is kind io whatever
     * the errno (EMFILE, ENOSPC, ...): a disk problem, not a network limit. */
    if (phase && strcmp(phase, "io") == 0 && rc != -ETIMEDOUT && rc != -ECANCELED)
        return "io";
    switch (-rc) {
    case ETIMEDOUT:
        return "timeout";
    case ECANCELED:
        return "cancelled";
    case LURK_EDNS_NOTFOUND:
    case LURK_EDNS_TIMEOUT:
    case LURK_EDNS_FAIL:
    case LURK_EDNS_NOSERVER:
        return "dns";
    case LURK_ECLOSED:
    case LURK_EEOF:
        return "closed";
    case LURK_ELIMIT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
        return "limit";
    case LURK_ETLS:
        return "tls";
    case LURK_EHTTP:
    case LURK_EWS:
    case LURK_EPROTO:
        return "protocol";
    default:
        break;
    }
    if (phase && strcmp(phase, "io") == 0)
        return "io";                  /* a local file, not the network */
    if (phase && strcmp(phase, "connect") == 0)
        return "connect";
    if (phase && strcmp(phase, "dns") == 0)
        return "dns";
    return "closed";
}

static bool retryable(int rc)
{
    switch (-rc) {
    case ETIMEDOUT:
    case ECONNREFUSED:
    case ECONNRESET:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case LURK_EDNS_TIMEOUT:
    case LURK_EDNS_FAIL:
        return true;
    default:
        return false;
    }
}

static const char *doing(const char *phase)
{
    if (!phase)
        return NULL;
    if (strcmp(phase, "dns") == 0)
        return "resolving";
    if (strcmp(phase, "connect") == 0)
        return "connecting to";
    if (strcmp(phase, "send") == 0)
        return "sending to";
    if (strcmp(phase, "read") == 0)
        return "reading from";
    if (strcmp(phase, "tls") == 0)
        return "TLS with";
    if (strcmp(phase, "io") == 0)
        return "writing";
    return NULL;
}

/* The error table for rc in phase, its message on top of the stack
 * (popped): the one place an err is made. */
static void push_error_with(lua_State *L, int rc, const char *phase)
{
    lua_createtable(L, 0, 7);
    lua_insert(L, -2);                /* err, message */
    lua_setfield(L, -2, "message");
    lua_pushstring(L, lurk_error_kind(rc, phase));
    lua_setfield(L, -2, "kind");
    if (phase) {
        lua_pushstring(L, phase);
        lua_setfield(L, -2, "phase");
    }
    if (-rc > 0 && -rc < LURK_EBASE) {
        lua_pushinteger(L, -rc);
        lua_setfield(L, -2, "errno");
    }
    lua_pushstring(L, lurk_errname(rc));
    lua_setfield(L, -2, "name");
    lua_pushboolean(L, retryable(rc));
    lua_setfield(L, -2, "retryable");
    luaL_getmetatable(L, ERROR_MT);
    lua_setmetatable(L, -2);
}

void lurk_lua_push_error(lua_State *L, int rc, const char *phase, const char *context)
{
    const char *verb = doing(phase);

    if (verb && context)
        lua_pushfstring(L, "%s %s: %s", verb, context, lurk_strerror(rc));
    else if (context)
        lua_pushfstring(L, "%s: %s", context, lurk_strerror(rc));
    else if (-rc == ETIMEDOUT)
        lua_pushstring(L, "timed out");
    else if (-rc == ECANCELED)
        lua_pushstring(L, "cancelled");
    else
        lua_pushstring(L, lurk_strerror(rc));
    push_error_with(L, rc, phase);
}

int lurk_lua_errorf(lua_State *L, int rc, const char *phase, const char *fmt, ...)
{
    va_list ap;

    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    push_error_with(L, rc, phase);
    return 2;
}

int lurk_lua_error(lua_State *L, int rc, const char *phase, const char *context)
{
    lua_pushnil(L);
    lurk_lua_push_error(L, rc, phase, context);
    return 2;
}

static int error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1)) {
        lua_getfield(L, 1, "kind");
        lua_pushfstring(L, "lurk error (%s)", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    }
    return 1;
}

/* lurk.error(fields) -> err: makes fields (kind and message required) an
 * error value, for Lua code that reports failures the way lurk does. */
static int l_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "kind");
    if (!lua_isstring(L, -1))
        return luaL_argerror(L, 1, "field 'kind' must be a string");
    lua_getfield(L, 1, "message");
    if (lua_isnil(L, -1)) {
        lua_pushvalue(L, -2);
        lua_setfield(L, 1, "message");
    }
    lua_getfield(L, 1, "retryable");
    if (lua_isnil(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, 1, "retryable");
    }
    lua_settop(L, 1);
    luaL_getmetatable(L, ERROR_MT);
    lua_setmetatable(L, 1);
    return 1;
}

void lurk_lua_open_error(lua_State *L)
{
    luaL_newmetatable(L, ERROR_MT);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "lurk.error");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_error);
    lua_setfield(L, -2, "error");
}
