-- A stock luajit loading lurk as a C module: require "lurk", then drive
-- the loop with lurk.run(). Run by /usr/bin/luajit with LUA_CPATH set to
-- the built lurk.so.
local t = dofile(arg[0]:match("(.*/)") .. "../lua/lib/t.lua")

local lurk = require "lurk"
local https = require "lurk.https"
local json = require "lurk.json"
t.eq(require "lurk", lurk, "require is idempotent")
t.eq(type(lurk.run), "function")
t.eq(rawget(_G, "https"), nil, "no globals are set for a C module user")

local dir = t.tmpdir()
os.execute("mkdir -p " .. dir .. " && " .. t.support .. "/certs.sh " .. dir)
t.server("api.py", dir)
local P = dofile(dir .. "/ports.lua")
local url = ("https://localhost:%d/get?from=luajit"):format(P.https)

-- lurk.run(fn) runs fn as a task and returns its results.
local status, from = lurk.run(function()
  local res = assert(https.get(url, { tls = { cafile = dir .. "/ca.pem" } }))
  return res.status, json.decode(res.body).args.from
end)
t.eq(status, 200)
t.eq(from, "luajit")

-- Tasks spawned outside run() start at once and lurk.run() finishes them.
local done = 0
for _ = 1, 3 do lurk.spawn(function() lurk.sleep(0.01); done = done + 1 end) end
t.eq(lurk.run(), nil)
t.eq(done, 3)

-- An error in fn is raised by lurk.run, with its traceback; the runtime
-- stays usable.
t.raises("require_test.lua:%d+: boom.*stack traceback", lurk.run, function() error("boom") end)
t.eq(lurk.run(function() return "again" end), "again")

-- Inside a task, lurk.run is refused (the loop is already running).
local ok, err = lurk.run(function() return pcall(lurk.run, function() end) end)
t.eq(ok, false)
t.ok(tostring(err):find("outside tasks"), err)

-- A socket still open when the state closes: the collector may finalize
-- the runtime first, and the socket's finalizer must not reach into the
-- ring (and its file table) that went with it. An ASan build checks this.
held = lurk.run(function() return assert(require("lurk.tcp").connect("127.0.0.1", P.http)) end)
t.ok(held, "a connection left open until the state closes")
-- Tasks too: a finished task's handle and a task still asleep (its object
-- held by the runtime until it ends) are alive when the state closes.
-- LuaJIT finalizes the newest objects first, so their finalizers run while
-- the runtime is still there; should the order change, lurk_sched_free
-- has cut them off from its records (an ASan build would see a slip).
done_task = lurk.spawn(function() return "done" end)
asleep = lurk.spawn(function() lurk.sleep(3600) end)
t.eq(done_task:status(), "done"); t.eq(asleep:status(), "waiting")
t.done()
