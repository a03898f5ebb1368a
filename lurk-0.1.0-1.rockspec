-- lurk as a LuaRocks rock: the C module lurk.so (with lurk's Lua modules
-- compiled in) for LuaJIT. In a clone:
--   luarocks --lua-version=5.1 make --tree=DIR
--   eval "$(luarocks --lua-version=5.1 --tree=DIR path)"
--   luajit -e 'print(require("lurk").run(function() return 42 end))'
-- scripts/install-deps.sh runs first (it returns at once when everything is
-- present; when something is missing it needs root, as `make` does). A
-- LuaJIT older than the 2023 rolling release (Debian 12's luajit) is refused
-- by require "lurk": see README.md, Install.
rockspec_format = "3.0"
package = "lurk"
version = "0.1.0-1"
source = {
  -- Built from a clone with `luarocks make`; the project has no public
  -- release archive yet.
  url = "git+file:///nonexistent/lurk.git",
}
description = {
  summary = "Lua-scriptable networking runtime: io_uring, kernel TLS, HTTP/1.1 and WebSocket for LuaJIT",
  detailed = [[
lurk runs Lua code whose HTTP, WebSocket and TCP calls read like plain
sequential code; every call that would block submits io_uring operations and
yields the calling coroutine. The module is require "lurk" (and lurk.http,
lurk.https, lurk.ws, lurk.tcp, lurk.json); lurk.run(fn) drives the loop.
]],
  license = "MIT",
  labels = { "http", "websocket", "io_uring", "tls" },
}
supported_platforms = { "linux" }
dependencies = { "lua >= 5.1, < 5.2" }
build = {
  type = "command",
  build_command = [[scripts/install-deps.sh && cmake -S . -B build.luarocks -DCMAKE_BUILD_TYPE=Release ]]
    .. [[-DLURK_BUILD_TESTS=OFF -DLURK_INSTALL_MODULE_ONLY=ON "-DLURK_LUA_CMOD_DIR=$(LIBDIR)" >/dev/null ]]
    .. [[&& cmake --build build.luarocks --target lurk_module -j 2]],
  install_command = [[cmake --install build.luarocks]],
}
