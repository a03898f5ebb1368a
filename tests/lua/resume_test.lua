-- TLS session resumption within a runtime: TLS 1.3 PSK tickets (with ECDHE) and TLS 1.2 session tickets for all six pairs against openssl s_server (which says "Reused" on its page), a ticket the server cannot use and one that expired both falling back to a full handshake, and one-shot HTTPS requests resuming against nginx. Runs in user-mode-linux too, where TLS 1.3 tickets arrive on a kTLS socket.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = os.getenv("LURK_TLS_DIR") or t.tmpdir()
t.server("records.py", dir)
local R = dofile(dir .. "/records.lua")
local ca = dir .. "/ca.pem"
local ktls_required = os.getenv("LURK_KTLS") == "require"

local function get(port, pair)
  local s = assert(tcp.connect("localhost", port, { tls = { cafile = ca, min_version = pair.version,
    max_version = pair.version, ciphers = pair.suite } }))
  local info = s.tls
  assert(s:send("GET / HTTP/1.0\r\n\r\n"))
  local body = assert(s:receive("*a"))
  s:close()
  return body, info
end

local names = {}
for name in pairs(R) do names[#names + 1] = name end
table.sort(names)

for _, name in ipairs(names) do
  local pair = R[name]
  local body, info = get(pair.direct, pair)
  t.eq(info.resumed, false, name .. " first connection")
  t.ok(body:find("New, TLSv1.", 1, true), name .. ": s_server saw a new session")
  for i = 2, 3 do
    body, info = get(pair.direct, pair)
    t.eq(info.resumed, true, name .. " connection " .. i .. " resumed")
    t.ok(body:find("Reused, TLSv1.", 1, true), name .. " connection " .. i .. ": s_server says Reused")
    t.eq(info.records, ktls_required and "kernel" or "lurk", name)
  end
  -- A server with other ticket keys cannot use the ticket: a full handshake.
  body, info = get(pair.switch, pair)
  t.eq(info.resumed, false, name .. " first through switch")
  body, info = get(pair.switch, pair)
  t.eq(info.resumed, false, name .. " ticket refused by the other server: a full handshake")
  t.ok(body:find("New, TLSv1.", 1, true), name .. ": the other s_server saw a new session")
  body, info = get(pair.switch, pair)
  t.eq(info.resumed, true, name .. " and its own ticket resumes")
end

-- nginx, whose sessions last 1 s here: an expired ticket is not offered.
do
  local ndir = t.tmpdir()
  t.server("tlsserver.py", "nginx", ndir)
  local P = dofile(ndir .. "/ports.lua")
  for _, v in ipairs { "1.2", "1.3" } do
    local function once()
      local s = assert(tcp.connect("localhost", P.shortticket, { tls = { cafile = ndir .. "/ca.pem",
        min_version = v, max_version = v } }))
      local r = s.tls.resumed
      -- TLS 1.3 tickets follow the handshake: reading the answer reads them.
      assert(s:send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
      assert(s:receive("*a"))
      s:close()
      return r
    end
    t.eq(once(), false, v .. " first")
    t.eq(once(), true, v .. " resumed within the lifetime")
    lurk.sleep(1.3)
    t.eq(once(), false, v .. " expired: a full handshake")
    t.eq(once(), true, v .. " and resumed again")
  end
  -- One-shot HTTPS requests in a script (each its own connection).
  local url = ("https://localhost:%d/"):format(P.good)
  local first = t.ok(https.get(url, { tls = { cafile = ndir .. "/ca.pem" }, headers = { Connection = "close" } }))
  local second = t.ok(https.get(url, { tls = { cafile = ndir .. "/ca.pem" }, headers = { Connection = "close" } }))
  t.eq(first.tls.resumed, false, "one-shot request 1")
  t.eq(second.tls.resumed, true, "one-shot request 2 resumed")
  -- tls.resume = false: a full handshake every time.
  for _ = 1, 2 do
    local res = t.ok(https.get(url, { tls = { cafile = ndir .. "/ca.pem", resume = false },
      headers = { Connection = "close" } }))
    t.eq(res.tls.resumed, false, "resume = false")
  end
  t.raises("tls.resume must be true or false", tcp.connect, "localhost", P.good, { tls = { resume = "no" } })
end

t.done()
