-- TLS: versions and ciphers against nginx, certificate failures, starttls, close_notify/truncation/reset, kTLS fallback reporting.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = os.getenv("LURK_TLS_DIR") or t.tmpdir()
t.server("tlsserver.py", "nginx", dir)
local P = dofile(dir .. "/ports.lua")
local ca = dir .. "/ca.pem"
local ktls_required = os.getenv("LURK_KTLS") == "require"

local function get(port, path, tls, host)
  local s, err = tcp.connect(host or "localhost", port, { tls = tls or { cafile = ca } })
  if not s then return nil, err end
  assert(s:send(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"):format(path)))
  local data, rerr = s:receive("*a")
  local info = s.tls
  s:close()
  if not data then return nil, rerr end
  return data, info
end

-- Every version x cipher: the handshake, the suite, and what carried it.
local matrix = {
  { "tls12_aes128", "TLSv1.2", "AES-128-GCM" }, { "tls12_aes256", "TLSv1.2", "AES-256-GCM" },
  { "tls12_chacha", "TLSv1.2", "CHACHA20-POLY1305" }, { "tls13_aes128", "TLSv1.3", "AES-128-GCM" },
  { "tls13_aes256", "TLSv1.3", "AES-256-GCM" }, { "tls13_chacha", "TLSv1.3", "CHACHA20-POLY1305" },
}
for _, m in ipairs(matrix) do
  local body, info = get(P[m[1]], "/")
  t.ok(body, m[1] .. ": " .. tostring(info))
  t.ok(body:find("hello from nginx", 1, true), m[1] .. " body")
  t.eq(info.version, m[2], m[1])
  t.ok(info.cipher:find(m[3], 1, true), m[1] .. " cipher " .. info.cipher)
  if ktls_required then
    t.eq(info.ktls, true, m[1] .. " kTLS engaged")
    t.eq(info.fallback, false)
    t.eq(info.records, "kernel", m[1])
  else
    t.eq(info.records, info.ktls and "kernel" or "lurk", m[1] .. ": lurk's record layer, mbedTLS freed")
    t.eq(type(info.ktls), "boolean")
    if not info.ktls then t.eq(type(info.fallback), "string", m[1] .. " says why not kTLS") end
  end
end

-- A large download, checked byte for byte (64 MiB by default).
do
  local s = t.ok(tcp.connect("127.0.0.1", P.good, { tls = { cafile = ca } }))
  t.ok(s:send("GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
  local head = {}
  while true do
    local line = assert(s:receive("*l"))
    if line == "" then break end
    head[#head + 1] = line
  end
  t.eq(head[1], "HTTP/1.1 200 OK")
  local body = t.ok(s:receive(P.big_size))
  local f = io.open(dir .. "/got.bin", "wb"); f:write(body); f:close()
  local h = io.popen("sha256sum " .. dir .. "/got.bin"):read("*l"):match("^(%x+)")
  t.eq(h, P.big_sha256, "big download intact")
  os.remove(dir .. "/got.bin")
  s:close()
end

-- Certificates that must be refused, each with a reason that says why.
local bad = {
  { "expired", "expired" }, { "future", "future" }, { "wronghost", "does not match host localhost" },
  { "selfsigned", "is self-signed and not in the trust store" },
  { "unknownca", "was issued by CN=some other CA, which is not in the trust store" },
}
for _, b in ipairs(bad) do
  local err = t.fails("tls", get(P[b[1]], "/"))
  t.eq(err.phase, "tls")
  t.ok(err.message:find(b[2], 1, true), b[1] .. ": " .. err.message)
end
do -- an IP literal is checked against the certificate's IP addresses
  t.ok(get(P.good, "/", { cafile = ca }, "127.0.0.1"), "IP SAN matches")
  local err = t.fails("tls", get(P.ipmismatch, "/", { cafile = ca }, "127.0.0.1"))
  t.ok(err.message:find("certificate verification failed", 1, true), err.message)
end
-- SNI: sent for names, never for IP literals (RFC 6066). This server fails
-- any handshake that carries a name other than nomatch.example.
do
  local port = t.server("tlsserver.py", "sni", dir)
  local s = t.ok(tcp.connect("127.0.0.1", port, { tls = { cafile = ca } }), "no SNI for an IP literal")
  s:close()
  t.fails("tls", tcp.connect("localhost", port, { tls = { cafile = ca } }))   -- SNI "localhost": refused
end
-- A server that asks for a client certificate.
do
  local body = t.ok(get(P.clientcert, "/whoami", { cafile = ca, cert = dir .. "/client.pem", key = dir .. "/client.key" }))
  t.ok(body:find("CN=client", 1, true), "the server saw our certificate: " .. body)
  local without = get(P.clientcert, "/whoami")
  t.ok(without == nil or without:find("400 ", 1, true), "without a certificate the server refuses")
  t.fails("tls", tcp.connect("localhost", P.clientcert, { tls = { cafile = ca, cert = dir .. "/client.pem" } }))
end
-- Without cafile the system store is used, which does not know the test CA.
t.fails("tls", get(P.good, "/", true))
-- insecure = true skips verification, explicitly.
t.ok(get(P.selfsigned, "/", { insecure = true }))
-- TLS 1.0/1.1-only servers are refused.
do
  local err = t.fails("tls", get(P.tls10, "/"))
  t.ok(err.message:find("refused the TLS handshake with alert protocol_version (no TLS version in common",
                        1, true), err.message)
end
-- min_version 1.3 refuses a 1.2-only server; max_version 1.2 gets 1.2.
t.fails("tls", get(P.tls12_aes128, "/", { cafile = ca, min_version = "1.3" }))
t.eq(select(2, get(P.good, "/", { cafile = ca, max_version = "1.2" })).version, "TLSv1.2")
-- A suite the kernel cannot carry falls back to userspace, saying so.
do
  local body, info = get(P.tls12_cbc, "/", { cafile = ca, ktls = "auto" })
  t.ok(body, tostring(info))
  t.eq(info.ktls, false)
  t.eq(info.records, "mbedtls", "a CBC suite stays with mbedTLS")
  t.ok(info.fallback:find("has no kTLS support", 1, true), info.fallback)
  local err = t.fails("tls", get(P.tls12_cbc, "/", { cafile = ca, ktls = "require" }))
  t.ok(err.message:find("kTLS required", 1, true), err.message)
end
-- ALPN.
do
  local s = t.ok(tcp.connect("localhost", P.good, { tls = { cafile = ca, alpn = { "h2", "http/1.1" } } }))
  t.eq(s.tls.alpn, "http/1.1")
  s:close()
  -- a long entry before another (LuaJIT's string buffer used to move the
  -- list under its reader), and entries that are no protocol names
  s = t.ok(tcp.connect("localhost", P.good, { tls = { cafile = ca, alpn = { ("x"):rep(255), "http/1.1" } } }))
  t.eq(s.tls.alpn, "http/1.1")
  s:close()
  for _, bad in ipairs { { ("x"):rep(9000), "http/1.1" }, { "" }, { 42 }, { "a,b" } } do
    t.raises("tls.alpn entries must be", tcp.connect, "localhost", P.good, { tls = { cafile = ca, alpn = bad } })
  end
end
-- ktls = false is honoured and reported.
do
  local _, info = get(P.good, "/", { cafile = ca, ktls = false })
  t.eq(info.ktls, false)
  t.ok(info.fallback:find("disabled", 1, true), info.fallback)
end
-- Bad options raise or fail clearly.
t.raises("tls.min_version", tcp.connect, "localhost", P.good, { tls = { min_version = "1.1" } })
t.fails("tls", tcp.connect("localhost", P.good, { tls = { cafile = dir .. "/missing.pem" } }))
t.fails("tls", tcp.connect("localhost", P.good, { tls = { cafile = ca, ciphers = "NOT-A-SUITE" } }))

-- Echo in both directions with a Python (OpenSSL) peer, and starttls.
do
  local port = t.server("tlsserver.py", "echo", dir)
  local s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca } }))
  local blob = ("0123456789abcdef"):rep(65536 * 4)     -- 4 MiB
  local reader = lurk.spawn(function() return s:receive(#blob) end)
  t.eq(s:send(blob), #blob)
  local ok, back = reader:join()
  t.ok(ok and back == blob, "4 MiB echoed intact over TLS")
  s:close()

  local st = t.server("tlsserver.py", "starttls", dir)
  local p = t.ok(tcp.connect("localhost", st))
  t.ok(p:send("STARTTLS\n"))
  t.eq(p:receive(), "GO")
  t.eq(p.tls, nil)
  t.ok(p:starttls { cafile = ca })
  t.eq(type(p.tls.version), "string")
  t.ok(p:send("over tls\n"))
  t.eq(p:receive(), "over tls")
  t.raises("already set up", p.starttls, p)
  p:close()
end

-- How streams end: close_notify is a clean end even while TCP stays open;
-- a FIN without close_notify ends the stream too (the protocol above judges
-- truncation); a reset is an error; data sent right behind the handshake
-- (with TLS 1.3 tickets) is not lost in the switch to the kernel.
do
  local port = t.server("tlsserver.py", "close_notify", dir)
  local s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca } }))
  t.ok(s:send("go\n"))
  local t0 = lurk.now()
  t.eq(s:receive("*a"), "goodbye")
  t.ok(lurk.now() - t0 < 2, "close_notify ends the stream at once")
  s:close()

  port = t.server("tlsserver.py", "noclose", dir)
  s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca } }))
  t.ok(s:send("go\n"))
  t.eq(s:receive("*a"), "truncated")
  s:close()

  port = t.server("tlsserver.py", "reset", dir)
  s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca } }))
  t.ok(s:send("go\n"))
  local data, err = s:receive(1000)
  t.eq(data, nil)
  t.ok(err.kind == "closed" or err.kind == "tls", "reset: " .. tostring(err))
  s:close()

  -- a reset in the middle of a record: an error, never the half record
  port = t.server("tlsserver.py", "midrecord", dir)
  s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca } }))
  t.ok(s:send("go\n"))
  data, err = s:receive(16000)
  t.eq(data, nil)
  t.ok(err.kind == "closed" or err.kind == "tls", "reset mid-record: " .. tostring(err))
  t.eq(err.partial, "", "no byte of the cut record is delivered")
  s:close()

  port = t.server("tlsserver.py", "eager", dir)
  for _, v in ipairs { "1.2", "1.3" } do
    s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca, min_version = v, max_version = v } }))
    t.eq(s:receive(), "early words", "TLS " .. v .. " data behind the handshake")
    t.ok(s:send("and back\n"))
    t.eq(s:receive(), "and back")
    s:close()
  end

  -- close_notify is always the last record: closing while another task's
  -- send is in flight cuts the stream (the sender gets an error, the peer
  -- no close_notify); it never sends close_notify with data still behind it.
  port = t.server("tlsserver.py", "sink", dir)
  for round = 1, 3 do
    s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca } }))
    t.ok(s:send("go\n"))
    local big = ("z"):rep(8 * 1024 * 1024)
    local sender = lurk.spawn(function() return s:send(big) end)
    lurk.sleep(0.1)                     -- the sink reads nothing yet: the send waits
    s:close()
    local _, sent, serr = sender:join()
    t.ok(sent == nil or sent == #big, "the send ends whole or with an error: " .. tostring(serr))
    local line
    for _ = 1, 100 do
      local f = io.open(dir .. "/sink.log")
      local all = f and f:read("*a") or ""
      if f then f:close() end
      local lines = {}
      for l in all:gmatch("[^\n]+") do lines[#lines + 1] = l end
      line = lines[round]
      if line then break end
      lurk.sleep(0.05)
    end
    local n, clean = t.ok(line, "the sink reported"):match("bytes=(%d+) clean=(%d)")
    t.ok(clean == "0" or tonumber(n) == #big,
      ("round %d: close_notify after %s of %d bytes (kTLS TX %s)"):format(round, n, #big, tostring(s.tls and s.tls.ktls_tx)))
  end
end

-- A TLS 1.3 KeyUpdate from openssl s_server, with update_requested: lurk's
-- record layer takes the server's next keys and answers with its own
-- KeyUpdate (s_server can read "ping" only if it did), then follows a
-- second one. The 6.1 kernel cannot rekey: with kTLS RX the connection
-- fails with a tls error naming the KeyUpdate, after the data before it.
do
  local port = t.server("tlsserver.py", "keyupdate", dir)
  local s = t.ok(tcp.connect("localhost", port, { tls = { cafile = ca } }))
  t.ok(s:send("go\n"))
  t.eq(s:receive(), "before")
  local line, err = s:receive()
  if s.tls.ktls_rx then
    t.fails("tls", line, err)
    t.ok(err.message:find("KeyUpdate", 1, true), err.message)
  else
    t.eq(s.tls.records, "lurk")
    t.eq(line, "after", "read across the server's KeyUpdate: " .. tostring(err))
    t.ok(s:send("ping\n"))
    t.eq(s:receive(), "pong", "s_server read what lurk sent under its updated keys")
    t.eq(s:receive(), "again", "a second KeyUpdate (not requested)")
  end
  s:close()
end

-- Many handshakes at once.
do
  local ports = {}
  for i = 1, 100 do ports[i] = P.good end
  local n = 0
  t.ok(lurk.map(ports, function(port)
    local body = assert(get(port, "/"))
    if body:find("hello from nginx", 1, true) then n = n + 1 end
  end, { concurrency = 100 }))
  t.eq(n, 100)
end

-- A handshake cut short by cancellation or a deadline.
do
  local port = t.server("tcpserver.py", "silent")   -- accepts, never answers the ClientHello
  local t0 = lurk.now()
  t.fails("timeout", tcp.connect("localhost", port, { timeout = 0.2, tls = { cafile = ca } }))
  t.took(t0, 0.2)
  local task = lurk.spawn(function() return tcp.connect("localhost", port, { tls = { cafile = ca } }) end)
  task:cancel()
  local ok, v, err = task:join()
  t.fails("cancelled", v, err)
end

os.execute("rm -rf " .. dir)
t.done()
