-- TCP echo round trips over loopback: N round trips spread over C connections.
-- usage: lurk bench/echo.lua PORT [N [C [SIZE]]]
local port, total, conns, size = tonumber(arg[1]), tonumber(arg[2]) or 100000, tonumber(arg[3]) or 64, tonumber(arg[4]) or 64
local msg = ("x"):rep(size - 1) .. "\n"
local per = math.floor(total / conns)
local socks = {}
for i = 1, conns do socks[i] = assert(tcp.connect("127.0.0.1", port)) end
local s0, c0, t0 = lurk.stats(), os.clock(), lurk.now()
local tasks = {}
for i = 1, conns do
  local s = socks[i]
  tasks[i] = lurk.spawn(function()
    for _ = 1, per do
      assert(s:send(msg))
      assert(s:receive(size))
    end
  end)
end
for i, r in ipairs(lurk.wait(tasks)) do assert(r[1], ("task %d: %s"):format(i, tostring(r[2]))) end
local dt, cpu, s1 = lurk.now() - t0, os.clock() - c0, lurk.stats()
local n = per * conns
local ops = s1.ops - s0.ops
print(("lurk echo: %d round trips, %d conns, %d B: %.0f RT/s, %.2f us CPU/RT, %d io_uring_enter = %.3f per op (%d ops)")
  :format(n, conns, size, n / dt, cpu / n * 1e6, s1.enters - s0.enters, (s1.enters - s0.enters) / ops, ops))
for i = 1, conns do socks[i]:close() end
