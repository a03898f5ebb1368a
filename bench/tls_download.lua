-- Downloads /big.bin from nginx over HTTPS N times; prints client CPU per GiB.
-- usage: lurk bench/tls_download.lua PORT CAFILE SIZE [N] [CIPHER]
local port, ca, size, n, cipher = tonumber(arg[1]), arg[2], tonumber(arg[3]), tonumber(arg[4]) or 1, arg[5]
local c0, t0, s0 = os.clock(), lurk.now(), lurk.stats()
local info
for _ = 1, n do
  local s = assert(tcp.connect("localhost", port, { tls = { cafile = ca, ciphers = cipher } }))
  assert(s:send("GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
  repeat local line = assert(s:receive("*l")) until line == ""
  local left = size
  while left > 0 do
    local chunk = math.min(left, 65536)
    assert(s:receive(chunk))
    left = left - chunk
  end
  info = s.tls
  s:close()
end
local gib, s1 = size * n / 2^30, lurk.stats()
local mib = size * n / 2^20
print(("lurk  %s %s: %.2f s CPU per GiB, %.0f MiB/s wall (kTLS: %s), %.1f io_uring ops and %.1f io_uring_enter per MiB"):format(
  info.version, info.cipher, (os.clock() - c0) / gib, mib / (lurk.now() - t0), tostring(info.ktls),
  (s1.ops - s0.ops) / mib, (s1.enters - s0.enters) / mib))
