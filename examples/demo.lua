-- lurk demo: concurrent tasks, a channel, a deadline, and a TCP exchange with
-- a loopback echo server that the demo starts (and stops) itself.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local server = assert(io.popen("exec python3 " .. here .. "/../tests/support/tcpserver.py echo"))
local port, pid = (server:read("*l") or ""):match("PORT (%d+) PID (%d+)")
assert(port, "could not start the demo's echo server (python3 is needed)")
port = tonumber(port)

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

local st = lurk.stats()
print(("io_uring: %d operations, %d io_uring_enter calls"):format(st.ops, st.enters))
os.execute("kill " .. pid)
server:close()
