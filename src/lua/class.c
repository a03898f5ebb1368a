/*
 * class.c - lurk_lua_class(), the metatable every userdata type gets.
 */
#include "lua/class.h"

void lurk_lua_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta)
{
    luaL_newmetatable(L, name);       /* mt */
    if (methods) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
    }
    if (meta)
        luaL_register(L, NULL, meta);
    lua_pop(L, 1);
}
