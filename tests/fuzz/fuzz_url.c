/*
 * fuzz_url.c - lurk's URL parser, http.parse_url() in lua/http.lua, on
 * arbitrary strings (script arguments, redirect targets, proxy variables).
 *
 * Input: the URL, as is.
 *
 * The module runs where scripts see it: one runtime (lurk_new) is made on
 * the first input and kept, and the checker below gets require "lurk.http".
 * It runs under lua_pcall, so a raise is a finding. parse_url must return
 * a table or nil and a message, and a table must hold: scheme http or
 * https; a non-empty lower-case host without spaces or control characters
 * (it goes into the Host header and to the resolver); an integer port in
 * 1..65535; a target starting with "/" without spaces, control characters
 * or a fragment; an origin that matches. Writing the URL back out and
 * parsing it again must give the same parts, and changing a returned table
 * must not change what a second parse of the same string returns (results
 * are cached).
 *
 * libFuzzer sees coverage of C code only, and the parser is Lua: a line
 * hook reports which Lua lines ran, and the checker's verdict (the error
 * message, or the shape of the URL) is hashed into a second range of
 * counters, both in libFuzzer's extra counters section, so inputs that take
 * new paths through the Lua code are kept and mutated further. Without
 * libFuzzer (replay.c) that section is just an array.
 */
#include "fuzz.h"
#include "lurk.h"

#include <lauxlib.h>
#include <lua.h>

static const char checker[] =
    "local http = require 'lurk.http'\n"
    "local parse = http.parse_url\n"
    "local function check(u, s)\n"
    "  assert(u.scheme == 'http' or u.scheme == 'https', 'scheme')\n"
    "  assert(type(u.host) == 'string' and u.host ~= '', 'empty host')\n"
    "  assert(u.host == u.host:lower(), 'host not lower case')\n"
    "  assert(not u.host:find('[%s%c]'), 'host with spaces or control characters')\n"
    "  assert(type(u.port) == 'number' and u.port == math.floor(u.port), 'port not an integer')\n"
    "  assert(u.port >= 1 and u.port <= 65535, 'port out of range')\n"
    "  assert(type(u.target) == 'string' and u.target:sub(1, 1) == '/', 'target')\n"
    "  assert(not u.target:find('[%s%c#]'), 'target with spaces, controls or #')\n"
    "  assert(u.userinfo == nil or type(u.userinfo) == 'string', 'userinfo')\n"
    "  assert(u.origin == u.scheme .. '://' .. u.host .. ':' .. u.port, 'origin')\n"
    "end\n"
    "return function(s)\n"
    "  local u, err = parse(s)\n"
    "  if u == nil then\n"
    "    assert(type(err) == 'string' and err ~= '', 'failure without a message')\n"
    "    return err\n"
    "  end\n"
    "  assert(type(u) == 'table' and err == nil, 'bad result')\n"
    "  check(u, s)\n"
    "  local host = u.host:find(':', 1, true) and '[' .. u.host .. ']' or u.host\n"
    "  local again = u.scheme .. '://' .. host .. ':' .. u.port .. u.target\n"
    "  local v = assert(parse(again), 'written back, it does not parse: ' .. again)\n"
    "  assert(v.scheme == u.scheme and v.host == u.host and v.port == u.port and\n"
    "         v.target == u.target, 'written back, it parses differently: ' .. again)\n"
    "  local target = u.target\n"
    "  u.target, u.host = '/changed', 'changed'\n"
    "  local w = parse(s)\n"
    "  assert(w.target == target and w.host == v.host, 'the cache handed out its own table')\n"
    "  return table.concat({ v.scheme, v.port, v.userinfo and 'u' or '', host == v.host and '' or '6',\n"
    "                        v.target:find('?', 1, true) and 'q' or '' }, ' ')\n"
    "end\n";

static uint8_t lua_paths[1024] __attribute__((section("__libfuzzer_extra_counters")));

static void count_line(lua_State *L, lua_Debug *ar)
{
    lua_paths[(unsigned)ar->currentline % 768]++;
}

/* Counts a verdict string in the upper quarter of lua_paths (FNV-1a). */
static void count_verdict(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    lua_paths[768 + h % 256]++;
}

static struct lurk *rt;
static lua_State *L;
static int check_ref;

static void setup(void)
{
    int rc = lurk_new(&rt, NULL);

    if (rc < 0) {
        fprintf(stderr, "fuzz_url: lurk_new: %s\n", lurk_strerror_setup(rc));
        abort();
    }
    L = lurk_lua(rt);
    if (luaL_loadbuffer(L, checker, sizeof checker - 1, "=fuzz_url") != 0 ||
        lua_pcall(L, 0, 1, 0) != 0) {
        fprintf(stderr, "fuzz_url: %s\n", lua_tostring(L, -1));
        abort();
    }
    check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rt)
        setup();
    lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
    lua_pushlstring(L, (const char *)data, size);
    lua_sethook(L, count_line, LUA_MASKLINE, 0);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        fprintf(stderr, "fuzz_url: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_sethook(L, NULL, 0, 0);
    {
        size_t len;
        const char *verdict = lua_tolstring(L, -1, &len);

        FUZZ_CHECK(verdict != NULL);
        count_verdict(verdict, len);
    }
    lua_pop(L, 1);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
