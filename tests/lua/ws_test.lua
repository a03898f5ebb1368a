-- WebSocket client against the npm ws server over ws:// and wss://: echo at every size class, close codes both ways, pings, subprotocols, handshake refusals, concurrency, and a raw server's protocol violations.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
os.execute("mkdir -p " .. dir .. " && " .. t.support .. "/certs.sh " .. dir)
t.server("wsserver.js", dir)
local P = dofile(dir .. "/ws-ports.lua")
local ws_url, wss_url = "ws://127.0.0.1:" .. P.ws, "wss://localhost:" .. P.wss
local tls = { cafile = dir .. "/ca.pem" }

-- Echo of text and binary at the sizes where the length encoding changes.
for _, base in ipairs { ws_url, wss_url } do
  local c = t.ok(ws.connect(base .. "/echo", { tls = tls }))
  if base == wss_url then
    t.eq(type(c.tls.version), "string")
    if os.getenv("LURK_KTLS") == "require" then t.eq(c.tls.ktls, true, "kTLS carries wss") end
  end
  for _, n in ipairs { 0, 1, 125, 126, 65535, 65536, 1024 * 1024, 16 * 1024 * 1024 } do
    local text = ("x"):rep(n)
    t.ok(c:send(text))
    local data, kind = c:receive(20)
    t.eq(kind, "text", base .. " text " .. n)
    t.ok(data == text, base .. " text of " .. n .. " bytes intact")
    local bin = string.char(0, 255, 1, 254):rep(math.floor(n / 4))
    t.ok(c:send_binary(bin))
    data, kind = c:receive(20)
    t.eq(kind, "binary")
    t.ok(data == bin, base .. " binary of " .. #bin .. " bytes intact")
  end
  t.ok(c:close())
  local d, err = c:receive()
  t.fails("closed", d, err)
  t.eq(err.code, 1000)
  t.fails("closed", c:send("after close"))
end

-- Tasks that send on c (send(s) sends task s's messages) while another
-- receives n messages: what came back, after every task ended cleanly.
local function senders_and_receiver(c, nsenders, n, send)
  local got = {}
  local rx = lurk.spawn(function()
    for data in c:messages() do
      got[#got + 1] = data
      if #got == n then break end
    end
  end)
  local senders = {}
  for s = 1, nsenders do senders[s] = lurk.spawn(send, s) end
  for i, r in ipairs(lurk.wait(senders)) do t.ok(r[1], "sender " .. i .. ": " .. tostring(r[2])) end
  t.ok(rx:join())
  return got
end

-- One task sends while another receives on the same connection.
do
  local c = t.ok(ws.connect(ws_url .. "/echo"))
  local got = senders_and_receiver(c, 4, 200, function(s)
    for i = 1, 50 do assert(c:send(("s%d-%d"):format(s, i))) end
  end)
  t.eq(#got, 200, "every message came back, none interleaved")
  c:close()
end

-- Big messages from three tasks at once: each send waits for the kernel,
-- so the others wait for the write lock (within send_timeout, the rest of
-- which their send then has); every message comes back whole.
do
  local c = t.ok(ws.connect(ws_url .. "/echo", { compress = false, send_timeout = 20 }))
  local got = senders_and_receiver(c, 3, 12, function(s)
    for i = 1, 4 do assert(c:send_binary(string.char(64 + s * 4 + i):rep(1024 * 1024))) end
  end)
  t.eq(#got, 12, "every big message came back")
  local seen = {}
  for _, m in ipairs(got) do
    t.eq(#m, 1024 * 1024)
    t.ok(m == m:sub(1, 1):rep(#m), "one byte repeated: frames did not interleave")
    seen[m:sub(1, 1)] = true
  end
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  t.eq(n, 12, "twelve different messages")
  c:close()
end

-- The server closes: the code and reason reach the script.
do
  local c = t.ok(ws.connect(ws_url .. "/close/4001"))
  local d, err = c:receive(5)
  t.fails("closed", d, err)
  t.eq(err.code, 4001); t.eq(err.reason, "bye")
  c = t.ok(ws.connect(ws_url .. "/push/3"))
  local msgs = {}
  for data in c:messages() do msgs[#msgs + 1] = data end
  t.eq(table.concat(msgs, ","), "msg 1,msg 2,msg 3")
end

-- Pings from the server are answered even while the script does not read;
-- our pings get pongs.
do
  local c = t.ok(ws.connect(ws_url .. "/ping"))
  lurk.sleep(0.2)                               -- not reading meanwhile
  t.eq(c:receive(5), "pong:are you there")
  t.ok(c:ping("hi"))
  t.ok(c:send("still here"))
  t.eq(c:receive(5), "still here")
  c:close(4000, "done")
  local kc = t.ok(ws.connect(ws_url .. "/echo", { ping_interval = 0.05, ping_timeout = 1 }))
  lurk.sleep(0.3)
  t.ok(kc:send("alive"))
  t.eq(kc:receive(5), "alive", "keepalive pings do not disturb")
  kc:close()
end

-- Subprotocols, options and refusals.
do
  local c = t.ok(ws.connect(ws_url .. "/echo", { protocols = { "chat.v2", "chat.v1" }, origin = "http://localhost" }))
  t.eq(c.protocol, "chat.v2")
  c:close()
  local err = t.fails("protocol", ws.connect("ws://127.0.0.1:" .. P.ws .. "/"  , { headers = { Upgrade = "nothing" } }))
  t.fails("connect", ws.connect("ws://127.0.0.1:1/"))
  t.fails("tls", ws.connect(wss_url .. "/echo"))              -- the test CA is not trusted by default
  t.fails("timeout", ws.connect(ws_url .. "/echo", { timeout = 0.0001 }))
  t.raises("bad url", ws.connect, "http://x/")
  t.raises("valid UTF%-8", function() local cc = assert(ws.connect(ws_url .. "/echo")); cc:send("\255") end)
  t.raises("invalid close code", function() local cc = assert(ws.connect(ws_url .. "/echo")); cc:close(1005) end)
  local _ = err
end

-- 500 connections at once from one process.
do
  local list = {}
  for i = 1, 500 do list[i] = i end
  local n = 0
  t.ok(lurk.map(list, function(i)
    local c = assert(ws.connect(ws_url .. "/echo"))
    assert(c:send("conn " .. i))
    local d = assert(c:receive(10))
    if d == "conn " .. i then n = n + 1 end
    c:close()
  end, { concurrency = 500 }))
  t.eq(n, 500)
end

-- permessage-deflate with the ws server: negotiated by default, data intact
-- both ways, the inflated size limited by max_message.
do
  t.server("wsserver.js", dir, "deflate")
  local PD = dofile(dir .. "/ws-ports-deflate.lua")
  for _, base in ipairs { "ws://127.0.0.1:" .. PD.ws, "wss://localhost:" .. PD.wss } do
    local c = t.ok(ws.connect(base .. "/echo", { tls = tls }))
    t.ok(c.extensions and c.extensions:find("permessage-deflate", 1, true), "negotiated: " .. tostring(c.extensions))
    local rnd = {}
    for i = 1, 4096 do rnd[i] = string.char((i * 7919 + i * i) % 256) end
    local noise = table.concat(rnd):rep(64)           -- 256 KiB, not very compressible
    for _, msg in ipairs { "", "short", ("compressible "):rep(100000), ("ünïcødé "):rep(5000) } do
      t.ok(c:send(msg))
      local back = c:receive(20)
      t.ok(back == msg, base .. ": " .. #msg .. " bytes through permessage-deflate")
    end
    t.ok(c:send_binary(noise))
    t.ok(c:receive(20) == noise)
    c:close()
  end
  local c = t.ok(ws.connect("ws://127.0.0.1:" .. PD.ws .. "/echo", { max_message = 1024 * 1024 }))
  t.ok(c:send(("\0"):rep(2 * 1024 * 1024)))          -- compresses to a few KB; inflates past the limit
  local d, err = c:receive(10)
  t.fails("protocol", d, err)
  t.eq(err.code, 1009)
  -- no context takeover and 10-bit windows, as the server asks
  t.server("wsserver.js", dir, "deflate-nct")
  local PN = dofile(dir .. "/ws-ports-deflate-nct.lua")
  local nc = t.ok(ws.connect("ws://127.0.0.1:" .. PN.ws .. "/echo"))
  t.ok(nc.extensions:find("server_no_context_takeover", 1, true), nc.extensions)
  t.ok(nc.extensions:find("client_max_window_bits=10", 1, true), nc.extensions)
  for i = 1, 5 do
    local m = ("repeated text %d "):format(i):rep(2000)
    t.ok(nc:send(m))
    t.ok(nc:receive(10) == m, "message " .. i .. " without context takeover")
  end
  nc:close()
  local plain = t.ok(ws.connect("ws://127.0.0.1:" .. PD.ws .. "/echo", { compress = false }))
  t.eq(plain.extensions, nil)
  t.ok(plain:send("uncompressed")); t.eq(plain:receive(5), "uncompressed")
  plain:close()
end

-- Through a proxy: CONNECT for ws:// and wss:// (TLS end to end).
do
  local pport = t.server("proxy.py", dir)
  local proxy = "http://127.0.0.1:" .. pport
  for _, base in ipairs { ws_url, wss_url } do
    local c = t.ok(ws.connect(base .. "/echo", { proxy = proxy, tls = tls }))
    t.ok(c:send("via proxy"))
    t.eq(c:receive(5), "via proxy", base .. " through tinyproxy")
    c:close()
  end
  t.fails("proxy", ws.connect(ws_url .. "/echo", { proxy = "http://127.0.0.1:1" }))
end

-- A raw server sending exact frames: each violation is answered with the
-- right close code (the server checks our close frame and that our frames
-- were masked with fresh keys) and surfaces as kind protocol.
do
  local raw = "ws://127.0.0.1:" .. t.server("rawws.py")
  for _, case in ipairs {
    { "rsv", 1002 }, { "opcode", 1002 }, { "masked", 1002 }, { "bigping", 1002 }, { "fragping", 1002 },
    { "badcont", 1002 }, { "badutf8", 1007 }, { "splitutf8", 1007 }, { "toolarge", 1009 }, { "huge", 1009 },
    { "rsv1", 1002 },
  } do
    local c = t.ok(ws.connect(raw .. "/" .. case[1], { max_message = 1024 * 1024 }))
    t.ok(c:send("first"))                        -- the server answers with the violation
    local d, err = c:receive(5)
    t.fails("protocol", d, err, case[1])
    t.eq(err.code, case[2], case[1])
    c:close()
    local verdict
    for _ = 1, 40 do                             -- the server records it as our close arrives
      verdict = t.ok(http.get("http://127.0.0.1:" .. raw:match(":(%d+)$") .. "/verdict/" .. case[1])).body
      if verdict ~= "no verdict" then break end
      lurk.sleep(0.05)
    end
    t.eq(verdict, "close " .. case[2] .. ", masked, fresh keys", case[1] .. " as the server saw it")
  end
  -- our own close code and reason reach the server
  do
    local c = t.ok(ws.connect(raw .. "/closecode"))
    t.ok(c:send("first"))
    t.ok(c:close(4321, "see you"))
    local verdict
    for _ = 1, 40 do
      verdict = t.ok(http.get("http://127.0.0.1:" .. raw:match(":(%d+)$") .. "/verdict/closecode")).body
      if verdict ~= "no verdict" then break end
      lurk.sleep(0.05)
    end
    t.eq(verdict, "close 4321, masked, fresh keys")
  end
  -- handshake answers that must be refused
  for _, case in ipairs { "noaccept", "badaccept", "noupgrade", "status200", "redirect", "badext", "badparam", "badproto" } do
    local err = t.fails("protocol", ws.connect(raw .. "/hs/" .. case, { protocols = { "p1" } }))
    t.ok(err.message:find("refused", 1, true), case .. ": " .. err.message)
  end
  -- a redirect is followed only when asked
  local rc = t.ok(ws.connect(raw .. "/hs/redirect", { redirects = 2 }))
  t.eq(rc:receive(5), "Hello, fragmented world", "followed the redirect to /fragments")
  rc:close()
  -- an extension we did not offer (compress = false) is refused
  local xerr = t.fails("protocol", ws.connect(raw .. "/hs/extension", { compress = false }))
  t.ok(xerr.message:find("extension not requested", 1, true), xerr.message)
  -- fragments with a ping inside, and frames split across reads
  local c = t.ok(ws.connect(raw .. "/fragments"))
  local d, kind = c:receive(5)
  t.eq(d, "Hello, fragmented world"); t.eq(kind, "text")
  c:close()
end

os.execute("rm -rf " .. dir)
t.done()
