-- New TLS connections, one after another: handshakes per second and CPU each.
-- usage: lurk bench/tls_handshakes.lua PORT CAFILE [N] [CONCURRENCY]
local port, ca, n, conc = tonumber(arg[1]), arg[2], tonumber(arg[3]) or 500, tonumber(arg[4]) or 1
local list = {}
for i = 1, n do list[i] = i end
local c0, t0 = os.clock(), lurk.now()
assert(lurk.map(list, function()
  local s = assert(tcp.connect("localhost", port, { tls = { cafile = ca } }))
  s:close()
end, { concurrency = conc }))
local dt = lurk.now() - t0
print(("lurk  handshakes (TLS 1.3, ECDSA P-256, concurrency %d): %.0f/s, %.2f ms CPU each"):format(conc, n / dt, (os.clock() - c0) / n * 1e3))
