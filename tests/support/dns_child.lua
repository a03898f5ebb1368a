-- Run by tests/lua/dns_test.lua with LURK_DNS_SERVERS pointing at a dnsmasq
-- on loopback (or, with DNS_UNREACHABLE=1, at a port where nothing answers).
local t = dofile(arg[0]:match("(.*/)") .. "../lua/lib/t.lua")
local echo = tonumber(os.getenv("ECHO_PORT"))

if os.getenv("DNS_UNREACHABLE") then
  local t0 = lurk.now()
  local err = t.fails("dns", tcp.connect("nothing.lurk.test", echo, { timeout = 5 }))
  t.ok(err.message:find("nothing.lurk.test", 1, true), "message names the host: " .. err.message)
  t.ok(lurk.now() - t0 < 5, "a refused DNS server fails fast")
  -- /etc/hosts still answers without any DNS server
  local s = t.ok(tcp.connect("localhost", echo))
  s:close()
  t.done()
  return
end

-- A name the server knows.
local s = t.ok(tcp.connect("ok.lurk.test", echo))
t.eq(s:send("ping\n"), 5)
t.eq(s:receive(), "ping")
s:close()

-- A name that does not exist: kind dns, not retryable, the name in the message.
local err = t.fails("dns", tcp.connect("missing.lurk.test", echo))
t.eq(err.phase, "dns")
t.eq(err.name, "LURK_EDNS_NOTFOUND")
t.eq(err.retryable, false)
t.ok(err.message:find("missing.lurk.test", 1, true), "message names the host: " .. err.message)

-- IPv6 only: ::1 has no listener on that port, so the connect is refused there.
err = t.fails("connect", tcp.connect("v6.lurk.test", echo))
t.ok(err.message:find("::1", 1, true), "the address tried is named: " .. err.message)

-- Two addresses, the first refused: the next one is tried and works.
-- (On a port where neither listens, the error names both, in the order tried:
-- ::1 first, as RFC 6724 sorting puts it.)
err = t.fails("connect", tcp.connect("both.lurk.test", 1))
t.ok(err.message:find("(::1, 127.0.0.1)", 1, true), "both addresses tried: " .. err.message)
s = t.ok(tcp.connect("both.lurk.test", echo))
t.eq(s:send("two\n"), 4)
t.eq(s:receive(), "two")
s:close()

-- Many lookups at once.
local names = {}
for i = 1, 50 do names[i] = (i % 2 == 0) and "ok.lurk.test" or "missing.lurk.test" end
local kinds = t.ok(lurk.map(names, function(name)
  local c, e = tcp.connect(name, echo)
  if c then c:close() return "ok" end
  return e.kind
end, { concurrency = 50 }))
t.eq(kinds[2], "ok"); t.eq(kinds[1], "dns"); t.eq(kinds[50], "ok")

-- Literals never go to DNS.
s = t.ok(tcp.connect("[127.0.0.1]", echo)); s:close()

t.done()
