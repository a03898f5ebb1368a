/* tcp.h - the Lua tcp module (see tcp.c). */
#ifndef LURK_LUA_TCP_H
#define LURK_LUA_TCP_H

#include <lua.h>

/* Pushes the tcp module table. */

#endif
