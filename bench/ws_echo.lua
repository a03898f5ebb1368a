-- WebSocket echo round trips: N messages of SIZE bytes over C connections to
-- the ws server, one task per connection. Prints messages/s and CPU each.
-- usage: lurk bench/ws_echo.lua URL [N [C [SIZE]]]
local url, n, conns, size = arg[1], tonumber(arg[2]) or 100000, tonumber(arg[3]) or 64, tonumber(arg[4]) or 64
local msg = ("m"):rep(size)
local per = math.floor(n / conns)
local cs = {}
for i = 1, conns do cs[i] = assert(ws.connect(url, { compress = false })) end
local c0, t0 = os.clock(), lurk.now()
local tasks = {}
for i = 1, conns do
  local c = cs[i]
  tasks[i] = lurk.spawn(function()
    for _ = 1, per do
      assert(c:send(msg))
      assert(c:receive())
    end
  end)
end
for i, r in ipairs(lurk.wait(tasks)) do assert(r[1], ("task %d: %s"):format(i, tostring(r[2]))) end
local dt, total = lurk.now() - t0, per * conns
print(("lurk  ws echo: %d messages of %d B over %d connections: %.0f msg/s, %.2f us client CPU per round trip"):format(
  total, size, conns, total / dt, (os.clock() - c0) / total * 1e6))
for i = 1, conns do cs[i]:close() end
