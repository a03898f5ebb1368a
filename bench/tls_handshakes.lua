-- New TLS connections, one after another, each with one request (GET /,
-- Connection: close) so that TLS 1.3 tickets are read: handshakes per
-- second and CPU each, full or resumed (a session this runtime kept).
-- usage: lurk bench/tls_handshakes.lua PORT CAFILE [N] [CONCURRENCY] [full|resumed] [1.2|1.3]
local port, ca, n, conc = tonumber(arg[1]), arg[2], tonumber(arg[3]) or 500, tonumber(arg[4]) or 1
local mode, version = arg[5] or "full", arg[6] or "1.3"
local tls = { cafile = ca, resume = mode == "resumed", min_version = version, max_version = version }
local function once()
  local s = assert(tcp.connect("localhost", port, { tls = tls }))
  assert(s:send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
  assert(s:receive("*a"))
  local r = s.tls.resumed
  s:close()
  return r
end
once()                                -- warm: CA bundle parsed, a session kept
local list, resumed = {}, 0
for i = 1, n do list[i] = i end
local c0, t0 = os.clock(), lurk.now()
assert(lurk.map(list, function() if once() then resumed = resumed + 1 end end, { concurrency = conc }))
local dt = lurk.now() - t0
print(("lurk  %s handshakes (TLS %s, ECDSA P-256, concurrency %d, %d of %d resumed): %.0f/s, %.3f ms CPU each"):format(
  mode, version, conc, resumed, n, n / dt, (os.clock() - c0) / n * 1e3))
