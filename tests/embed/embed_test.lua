-- The embedding example (examples/embed/host.c) against local servers: one
-- runtime in the host's epoll loop, then two runtimes in two threads at
-- once. Under AddressSanitizer the host also fails on any leak.
-- env: LURK_EMBED_HOST (the built host), LURK_SUPPORT
local t = dofile(arg[0]:match("(.*/)") .. "../lua/lib/t.lua")

local host = assert(os.getenv("LURK_EMBED_HOST"), "LURK_EMBED_HOST not set")
local script = arg[0]:match("(.*/)") .. "script.lua"
local dir = t.tmpdir()
os.execute("mkdir -p " .. dir .. " && " .. t.support .. "/certs.sh " .. dir)
t.server("api.py", dir)
t.server("wsserver.js", dir)
local P, W = dofile(dir .. "/ports.lua"), dofile(dir .. "/ws-ports.lua")
local https_url = ("https://localhost:%d/get"):format(P.https)
local wss_url = ("wss://localhost:%d/echo"):format(W.wss)

-- Runs a shell command: its output and whether it exited 0 (LuaJIT's
-- popen:close() does not tell).
local function sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = f:read("*a")
  f:close()
  local body, code = out:match("^(.*)exit=(%d+)\n$")
  return body, code == "0"
end

local function run(args, env, cafile)
  return sh(("%s %s %s %s %s %s %s"):format(env or "", host, args, script, https_url, wss_url,
    cafile or (dir .. "/ca.pem")))
end

local out, ok = run("")
t.ok(ok, "the host exits 0: " .. out)
t.ok(out:find("thread 1: https 200 %d+, ws echo ok"), out)
t.ok(out:find("host 1: script finished, %d+ ticks"), out)

out, ok = run("-t 2")
t.ok(ok, "two runtimes in two threads exit 0: " .. out)
t.ok(out:find("thread 1: https 200") and out:find("thread 2: https 200"), out)
t.ok(out:find("host 1: script finished") and out:find("host 2: script finished"), out)

-- Runtime options: the CA file given to lurk_new() is the trust store of
-- every connection; a trace option prints request heads; a kTLS policy of
-- "require" fails connections the kernel cannot carry.
out, ok = run("", "EMBED_CA_FILE=" .. dir .. "/ca.pem EMBED_TRACE=http", "-")
t.ok(ok, "the runtime's ca_file option verifies the server: " .. out)
t.ok(out:find("> GET /get HTTP/1.1", 1, true) and out:find("> Host: localhost:%d+"), "trace option: " .. out)
out, ok = run("", "EMBED_CA_FILE=/nonexistent.pem", "-")
t.ok(not ok and out:find("CA", 1, true), "a bad ca_file option fails TLS: " .. out)
local ulp = io.open("/proc/sys/net/ipv4/tcp_available_ulp")
local has_ktls = ulp and (ulp:read("*a") or ""):find("tls") ~= nil
if ulp then ulp:close() end
out, ok = run("", "EMBED_KTLS=require")
if has_ktls then
  t.ok(ok and out:find("kTLS true"), "ktls = require with kTLS here: " .. out)
else
  t.ok(not ok and out:lower():find("ktls"), "ktls = require without kTLS fails the connection: " .. out)
end
out, ok = run("", "EMBED_KTLS=off")
t.ok(ok and out:find("kTLS false"), "ktls = off: " .. out)

-- A script error reaches the host as lurk_run's error, with its traceback.
local bad = dir .. "/bad.lua"
local f = assert(io.open(bad, "w"))
f:write('local https = require "lurk.https"\nassert(https.get("http://127.0.0.1:1/"))\n')
f:close()
local text, ok2 = sh(host .. " " .. bad)
t.ok(not ok2, "a failing script makes the host fail")
t.ok(text:find("host 1: connecting to 127.0.0.1:1.*bad.lua:2: in main chunk"), text)
t.done()
