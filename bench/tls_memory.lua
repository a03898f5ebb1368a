-- Memory per open TLS connection: RSS growth over N idle connections.
-- usage: lurk bench/tls_memory.lua PORT CAFILE [N]
local port, ca, n = tonumber(arg[1]), arg[2], tonumber(arg[3]) or 200
local function rss()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
-- One connection first, so the CA bundle, RNG and code pages are in.
local warm = assert(tcp.connect("localhost", port, { tls = { cafile = ca } }))
collectgarbage(); collectgarbage()
local r0, socks = rss(), {}
for i = 1, n do socks[i] = assert(tcp.connect("localhost", port, { tls = { cafile = ca } })) end
collectgarbage(); collectgarbage()
print(("lurk  %d idle TLS connections (kTLS: %s): %.1f KiB RSS each"):format(n, tostring(socks[1].tls.ktls), (rss() - r0) / n))
for i = 1, n do socks[i]:close() end
warm:close()
