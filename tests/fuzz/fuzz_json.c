/*
 * fuzz_json.c - json.decode() on untrusted text, through the Lua bindings
 * in src/lua/json.c, as scripts call it on HTTP bodies and WebSocket
 * messages.
 *
 * Input: the text, as is.
 *
 * One bare Lua state with the json module is made on the first input and
 * kept. For each input, the checker below (Lua, run under lua_pcall, so a
 * raise from json is a finding too) checks that decode returns a value, or
 * nil and an err table of kind "protocol" with a message; and when it
 * returns a value, that encode accepts it, that decode(encode(v)) is equal
 * to v (arrays stay arrays, [] and {} included), that encoding is then a
 * fixed point, and that the pretty-printed form decodes to the same value.
 */
#include "fuzz.h"
#include "lua/json.h"
#include "lua/modules.h"

#include <lauxlib.h>
#include <lualib.h>

static const char checker[] =
    "local json = ...\n"
    "local null, array_mt = json.null, json.array_mt\n"
    "local function equal(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  if (getmetatable(a) == array_mt) ~= (getmetatable(b) == array_mt) then return false end\n"
    "  for k, v in pairs(a) do if not equal(v, rawget(b, k)) then return false end end\n"
    "  for k in pairs(b) do if rawget(a, k) == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "return function(text)\n"
    "  local v, err = json.decode(text)\n"
    "  if v == nil then\n"
    "    assert(type(err) == 'table' and err.kind == 'protocol', 'decode: bad err')\n"
    "    assert(type(err.message) == 'string' and err.message:find('^json: '), 'decode: bad message')\n"
    "    assert(tostring(err) == err.message, 'decode: err does not print its message')\n"
    "    return\n"
    "  end\n"
    "  assert(err == nil, 'decode: a value and an err')\n"
    "  local s, eerr = json.encode(v)\n"
    "  assert(s, 'encode refused a decoded value: ' .. tostring(eerr))\n"
    "  local v2, err2 = json.decode(s)\n"
    "  assert(v2 ~= nil, 'decode refused encode output: ' .. tostring(err2))\n"
    "  assert(equal(v, v2), 'round trip changed the value: ' .. s)\n"
    "  assert(json.encode(v2) == s, 'encoding is not a fixed point: ' .. s)\n"
    "  local pretty = assert(json.encode(v, { indent = 2 }))\n"
    "  assert(equal(json.decode(pretty), v), 'pretty form decodes differently: ' .. pretty)\n"
    "end\n";

static lua_State *L;
static int check_ref;

static void setup(void)
{
    L = luaL_newstate();
    FUZZ_CHECK(L != NULL);
    luaL_openlibs(L);
    lua_newtable(L);                  /* lurk.error's metatable, as a runtime has it */
    lurk_lua_open_error(L);
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, checker, sizeof checker - 1, "=fuzz_json") != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        abort();
    }
    lurk_lua_open_json(L);            /* chunk, json */
    lua_call(L, 1, 1);                /* the check function */
    check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        setup();
    lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != 0) {
        fprintf(stderr, "fuzz_json: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* Keep memory flat across millions of inputs. */
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
