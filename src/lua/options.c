/*
 * options.c - strict option tables (see options.h). A misspelled option
 * silently ignored is a request sent without it; a suggestion turns the
 * mistake into a one-word fix.
 */
#include "lua/options.h"
#include "lua/modules.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <string.h>

/* Edit distance (insertions, deletions, substitutions, and swaps of two
 * neighbours), for names of up to 31 bytes; more counts as far. */
static int distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    int d[32][32];

    if (n > 31 || m > 31)
        return 99;
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* A candidate for key, if close enough to be what was meant: a third of
 * the name's length, at least 1, at most 3 edits away; or a prefix either
 * way ("header" for "headers"). */
static void consider(const char *key, const char *name, const char **best, int *best_d)
{
    size_t kl = strlen(key), nl = strlen(name);
    int d = distance(key, name), limit = (int)(kl / 3);

    if (limit < 1)
        limit = 1;
    if (limit > 3)
        limit = 3;
    if (kl >= 3 && nl >= 3 && (strncmp(key, name, kl < nl ? kl : nl) == 0))
        d = d < 2 ? d : 2;
    if (d <= limit + 1 && d < *best_d) {
        *best = name;
        *best_d = d;
    }
}

/* Raises for key at level: the message, with a suggestion when one is close. */
static int unknown(lua_State *L, int level, const char *fname, const char *key, const char *best)
{
    luaL_where(L, level);
    if (best)
        lua_pushfstring(L, "%s: unknown option '%s' (did you mean '%s'?)", fname, key, best);
    else
        lua_pushfstring(L, "%s: unknown option '%s'", fname, key);
    lua_concat(L, 2);
    return lua_error(L);
}

static void not_a_name(lua_State *L, int level, const char *fname)
{
    luaL_where(L, level);
    lua_pushfstring(L, "%s: option names must be strings (got a %s key)", fname, luaL_typename(L, -2));
    lua_concat(L, 2);
    lua_error(L);
}

void lurk_lua_check_options(lua_State *L, int idx, const char *fname, const char *const *known)
{
    lurk_lua_check_options_at(L, idx, fname, known, 1);
}

void lurk_lua_check_options_at(lua_State *L, int idx, const char *fname, const char *const *known,
                               int level)
{
    if (!lua_istable(L, idx))
        return;
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *key, *best = NULL;
        int best_d = 99;
        bool found = false;

        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            not_a_name(L, level, fname);
        key = lua_tostring(L, -1);
        for (const char *const *k = known; *k && !found; k++)
            found = strcmp(*k, key) == 0;
        if (found)
            continue;
        for (const char *const *k = known; *k; k++)
            consider(key, *k, &best, &best_d);
        unknown(L, level, fname, key, best);
    }
}

/* private.check_options(opts, fname, known_set [, level]) -> opts */
static int l_check_options(lua_State *L)
{
    const char *fname = luaL_checkstring(L, 2);
    int level = (int)luaL_optinteger(L, 4, 2);   /* as error() counts from its caller */

    luaL_checktype(L, 3, LUA_TTABLE);
    if (!lua_istable(L, 1))
        return 1;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *key, *best = NULL;
        int best_d = 99;

        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            not_a_name(L, level, fname);
        lua_pushvalue(L, -1);
        lua_rawget(L, 3);
        if (lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        lua_pop(L, 1);
        key = lua_tostring(L, -1);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING)
                consider(key, lua_tostring(L, -1), &best, &best_d);
        }
        return unknown(L, level, fname, key, best);
    }
    lua_settop(L, 1);
    return 1;
}

void lurk_lua_open_options(lua_State *L, int priv)
{
    lua_pushcfunction(L, l_check_options);
    lua_setfield(L, priv, "check_options");
}
