-- lurk demo: concurrent tasks, a channel, a deadline, a TCP exchange and
-- HTTP/HTTPS requests, against loopback servers that the demo starts (and
-- stops) itself: an echo server, and httpbin behind nginx with a test CA.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local support = here .. "/../tests/support"
local function start(cmd)
  local f = assert(io.popen("exec python3 " .. support .. "/" .. cmd))
  local port, pid = (f:read("*l") or ""):match("PORT (%d+) PID (%d+)")
  assert(port, "could not start " .. cmd .. " (scripts/install-deps.sh installs what it needs)")
  return tonumber(port), pid, f
end
local port, pid, server = start("tcpserver.py echo")
local dir = assert(io.popen("mktemp -d /tmp/lurk-demo.XXXXXX")):read("*l")
local _, api_pid, api = start("api.py " .. dir)
local P = dofile(dir .. "/ports.lua")
local _, ws_pid, wsf = (function()
  local f = assert(io.popen("exec node " .. support .. "/wsserver.js " .. dir))
  local port, p = (f:read("*l") or ""):match("PORT (%d+) PID (%d+)")
  assert(port, "could not start the WebSocket server (node and the npm ws package are needed)")
  return tonumber(port), p, f
end)()
local WS = dofile(dir .. "/ws-ports.lua")

print(("lurk %s on %s"):format(lurk.version, _VERSION))

-- Three tasks sleep concurrently: the whole thing takes ~0.3 s, not 0.6 s.
local t0 = lurk.now()
local tasks = {}
for i, d in ipairs { 0.3, 0.1, 0.2 } do
  tasks[i] = lurk.spawn(function() lurk.sleep(d); return ("task %d slept %.1f s"):format(i, d) end)
end
for _, r in ipairs(assert(lurk.wait(tasks))) do print("  " .. r[2]) end
print(("3 sleeps, %.2f s of wall time"):format(lurk.now() - t0))

-- A producer and a consumer talking through a channel.
local ch = lurk.channel(2)
lurk.spawn(function()
  for _, word in ipairs { "io_uring", "LuaJIT", "coroutines" } do ch:send(word) end
  ch:close()
end)
local words = {}
for w in ch do words[#words + 1] = w end
print("channel delivered: " .. table.concat(words, ", "))

-- A deadline over blocking calls.
local ok, err = lurk.timeout(0.05, lurk.sleep, 10)
print(("lurk.timeout(0.05, lurk.sleep, 10) -> %s, %s (kind %s)"):format(tostring(ok), tostring(err), err.kind))

-- TCP: four tasks, each with its own connection, exchange lines with the server.
local replies = assert(lurk.map({ "alpha", "bravo", "charlie", "delta" }, function(word)
  local s = assert(tcp.connect("127.0.0.1", port, { timeout = 5 }))
  assert(s:send(word .. "\n"))
  local line = assert(s:receive("*l"))
  s:close()
  return line
end, { concurrency = 4 }))
print("echo server replied: " .. table.concat(replies, " "))

-- Errors are values with a kind, never strings to parse.
local _, cerr = tcp.connect("127.0.0.1", 1, { timeout = 2 })
print(("connecting to a closed port: %s (kind=%s, errno=%s)"):format(tostring(cerr), cerr.kind, cerr.name))

-- HTTPS against httpbin behind nginx: every method, JSON in and out.
local api_url = "https://localhost:" .. P.https
local tls = { cafile = dir .. "/ca.pem" }
local why_not
for _, m in ipairs { "get", "post", "put", "patch", "delete" } do
  local opts = { tls = tls }
  if m ~= "get" and m ~= "delete" then opts.json = { from = "lurk", method = m } end
  local res = assert(http[m](api_url .. "/" .. m, opts))
  local sent = m ~= "get" and m ~= "delete" and res:json().json and res:json().json.method or "-"
  print(("%-6s %s -> %d %s  (echoed %s; %s, kTLS: %s)"):format(m:upper(), res.url, res.status, res.reason,
    sent, res.tls.version, res.tls.ktls and "yes" or "no"))
  why_not = why_not or res.tls.fallback or nil
end
if why_not then print("kTLS not used: " .. why_not) end
local many = {}
for i = 1, 50 do many[i] = api_url .. "/get?i=" .. i end
local t1 = lurk.now()
assert(lurk.map(many, function(u) return assert(http.get(u, { tls = tls })):expect(200) end, { concurrency = 10 }))
print(("50 HTTPS GETs, 10 at a time over pooled connections: %.2f s"):format(lurk.now() - t1))

-- A WebSocket echo over wss://, with a reader task and a writer task.
local conn = assert(ws.connect("wss://localhost:" .. WS.wss .. "/echo", { tls = tls }))
local echoed = {}
local rx = lurk.spawn(function()
  for msg in conn:messages() do
    echoed[#echoed + 1] = msg
    if #echoed == 3 then return end
  end
end)
for _, word in ipairs { "hello", "over", "wss" } do assert(conn:send(word)) end
assert(rx:join())
conn:close()
print(("WebSocket echo over %s: %s (kTLS: %s)"):format(conn.tls.version, table.concat(echoed, " "),
  conn.tls.ktls and "yes" or "no"))

local st = lurk.stats()
print(("io_uring: %d operations, %d io_uring_enter calls"):format(st.ops, st.enters))
os.execute("kill " .. pid .. " " .. api_pid .. " " .. ws_pid)
server:close()
api:close()
wsf:close()
os.execute("rm -rf " .. dir)
