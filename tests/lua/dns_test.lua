-- DNS: names resolved through a dnsmasq on loopback that the test runs, /etc/hosts, failures, fallback across addresses.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dns = t.server("dns.py")
local echo = t.server("tcpserver.py", "echo")

-- The resolver reads LURK_DNS_SERVERS when it starts, so the checks run in a
-- second lurk process pointed at the test's dnsmasq.
local function child(servers)
  local cmd = ("LURK_DNS_SERVERS=%s ECHO_PORT=%d %s %s/dns_child.lua"):format(servers, echo, t.lurk, t.support)
  local ok, how, code = os.execute(cmd)
  -- LuaJIT's os.execute returns the raw status (5.1 style) unless built with 5.2 compat.
  if type(ok) == "number" then return ok == 0 end
  return ok == true and code == 0
end

t.ok(child("127.0.0.1:" .. dns), "resolution against the test's dnsmasq")

-- A server that never answers: lookups end with the caller's deadline.
local quiet = t.server("tcpserver.py", "silent") -- a TCP-only port: UDP there is closed
t.ok(child("127.0.0.1:" .. quiet .. " DNS_UNREACHABLE=1"), "unreachable DNS server")

t.done()
