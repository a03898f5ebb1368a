-- WebSocket API strictness: ws.connect's options checked (unknown keys, types, CR/LF/NUL in anything written into the handshake), methods called with '.', conn:messages() ending only on a clean close, and timeouts that say what timed out.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
os.execute("mkdir -p " .. dir .. " && " .. t.support .. "/certs.sh " .. dir)
t.server("wsserver.js", dir)
local P = dofile(dir .. "/ws-ports.lua")
local echo = "ws://127.0.0.1:" .. P.ws .. "/echo"
local raw = "ws://127.0.0.1:" .. t.server("rawws.py")
local here = arg[0]:match("[^/]*$")

-- An error raised at this file's line `line`.
local function raised_here(e, line, pattern)
  e = tostring(e)
  t.ok(e:find(here .. ":" .. line .. ": ", 1, true), "raised at " .. here .. ":" .. line .. ": " .. e)
  t.ok(e:find(pattern), "message matches " .. pattern .. ": " .. e)
end

-- Unknown options raise, naming the closest known one, at the caller's line.
do
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, e = pcall(function() local _ = ws.connect(echo, { protocol = "chat" }) end)
  t.eq(ok, false, "{ protocol = ... } raises")
  raised_here(e, line, "ws%.connect: unknown option 'protocol' %(did you mean 'protocols'%?%)")
  t.raises("unknown option 'timout' %(did you mean 'timeout'%?%)", ws.connect, echo, { timout = 1 })
  t.raises("unknown option 'header' %(did you mean 'headers'%?%)", ws.connect, echo, { header = {} })
  t.raises("unknown option 'ping_intervall' %(did you mean 'ping_interval'%?%)", ws.connect, echo, { ping_intervall = 1 })
  t.raises("ws%.connect: options must be a table", ws.connect, echo, "compress")
  -- A tls table is checked as tcp.connect would, at the script's line.
  line = debug.getinfo(1, "l").currentline + 1
  ok, e = pcall(function() local _ = ws.connect(echo, { tls = { cafle = "x" } }) end)
  raised_here(e, line, "ws%.connect tls: unknown option 'cafle' %(did you mean 'cafile'%?%)")
end

-- Wrong types raise with the script's file and line.
for _, case in ipairs {
  { { timeout = "5" }, "timeout must be a positive number of seconds or false" },
  { { timeout = -1 }, "timeout must be" },
  { { send_timeout = true }, "send_timeout must be" },
  { { ping_interval = "10" }, "ping_interval must be a positive number" },
  { { ping_timeout = 0 }, "ping_timeout must be a positive number" },
  { { max_message = "64M" }, "max_message must be a number of bytes" },
  { { redirects = true }, "redirects must be a whole number" },
  { { redirects = 1.5 }, "redirects must be a whole number" },
  { { compress = "no" }, "compress must be true or false" },
  { { tls = "yes" }, "tls must be a table" },
  { { headers = "X-A: b" }, "headers must be a table" },
  { { origin = 5 }, "origin must be a string" },
  { { proxy = 8080 }, "proxy must be a proxy URL or false" },
  { { protocols = 5 }, "protocols must be a subprotocol name or a list" },
  { { protocols = { "a", 5 } }, "protocols%[2%] must be a string" },
  { { headers = { ["X Bad"] = "v" } }, "invalid header name \"X Bad\"" },
  { { headers = { ["X-A"] = true } }, "header X%-A: value must be a string or a number" },
  { { proxy = "ftp://127.0.0.1:1" }, "unsupported proxy scheme ftp://" },
} do
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, e = pcall(function() local _ = ws.connect(echo, case[1]) end)
  t.eq(ok, false, case[2] .. " raises")
  raised_here(e, line, "ws%.connect: " .. case[2])
end

-- CR, LF and NUL in anything that goes into the handshake raise before
-- anything is sent. The raw server's /head answers with the request head it
-- received, so a header injected by the old code would show there.
do
  for _, opts in ipairs {
    { origin = "a\r\nX-Injected: yes" },
    { origin = "a\nX-Injected: yes" },
    { origin = "a\0b" },
    { protocols = "chat\r\nX-Injected: yes" },
    { protocols = { "ok", "chat\r\nX-Injected: yes" } },
    { headers = { ["X-A"] = "b\r\nX-Injected: yes" } },
    { headers = { ["X-A"] = { "fine", "b\r\nX-Injected: yes" } } },
    { headers = { ["X-A"] = "b\0c" } },
    { headers = { ["X-Injected: yes\r\nX-A"] = "b" } },
  } do
    local ok, e = pcall(ws.connect, raw .. "/head", opts)
    if ok then
      local head = e:receive(5)
      e:close()
      t.ok(false, "connected, and the server saw: " .. tostring(head))
    end
    t.ok(tostring(e):find("contains CR, LF or NUL") or tostring(e):find("invalid header name"), tostring(e))
  end
  t.raises("protocols%[1%] \"a b\" is not a valid subprotocol name", ws.connect, echo, { protocols = "a b" })
  t.raises("protocols%[1%] \"a,b\" is not a valid subprotocol name", ws.connect, echo, { protocols = { "a,b" } })
  -- What is allowed arrives as one field each.
  local c = t.ok(ws.connect(raw .. "/head", { origin = "http://localhost:8080", protocols = { "chat.v1", "x-y" },
    headers = { ["X-List"] = { "one", 2 }, ["X-Token"] = "abc" }, compress = false }))
  local head = t.ok(c:receive(5)) .. "\r\n"   -- the server sends the head without its blank line
  t.ok(head:find("\r\nOrigin: http://localhost:8080\r\n", 1, true), head)
  t.ok(head:find("\r\nSec%-WebSocket%-Protocol: chat%.v1, x%-y\r\n"), head)
  t.ok(head:find("\r\nX-List: one\r\n", 1, true) and head:find("\r\nX-List: 2\r\n", 1, true), head)
  t.ok(not head:find("X-Injected", 1, true), head)
  c:close()
end

-- A method called with '.' says how to call it.
do
  local c = t.ok(ws.connect(echo))
  for _, m in ipairs { "send", "send_binary", "receive", "ping", "close", "messages" } do
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, e = pcall(function() local _ = c[m]("hello") end)
    t.eq(ok, false, "c." .. m .. "(...) raises")
    raised_here(e, line, "use conn:" .. m .. "%(%.%.%.%)")
  end
  t.raises("conn:send expects a string %(got number%)", c.send, c, 5)
  t.raises("conn:receive: timeout must be", c.receive, c, "1")
  t.ok(c:close())
end

-- conn:messages() ends after a clean close (1000, 1001, or none: 1005) from
-- either side, and raises the error value otherwise.
do
  local function drain(path)
    local c = t.ok(ws.connect(raw .. path))
    local got = {}
    local ok, e = pcall(function()
      for m in c:messages() do got[#got + 1] = m end
    end)
    c:close()
    return ok, e, table.concat(got, ",")
  end
  for _, clean in ipairs { "close1000", "close1001", "nocode" } do
    local ok, e, got = drain("/then/" .. clean)
    t.ok(ok, clean .. " ends the loop: " .. tostring(e))
    t.eq(got, "one,two", clean)
  end
  for _, case in ipairs { { "close4000", "closed", 4000 }, { "drop", "closed", 1006 }, { "protoerr", "protocol", 1002 } } do
    local ok, e, got = drain("/then/" .. case[1])
    t.eq(ok, false, case[1] .. " raises from the loop")
    t.eq(got, "one,two", case[1] .. ": the messages before it")
    t.eq(type(e), "table", case[1] .. ": the error value itself is raised")
    t.eq(e.kind, case[2], case[1])
    t.eq(e.code, case[3], case[1])
  end
  -- Our own close with 1000 ends a loop running in another task.
  local c = t.ok(ws.connect(echo))
  local loop = lurk.spawn(function() for _ in c:messages() do end return "ended" end)
  lurk.sleep(0.05)
  c:close()
  local ok, v = loop:join(5)
  t.ok(ok, v); t.eq(v, "ended")
  -- A deadline inside the loop raises kind timeout.
  c = t.ok(ws.connect(echo))
  local ok2, e = pcall(lurk.timeout, 0.2, function() for _ in c:messages() do end end)
  t.eq(ok2, false, "a deadline raises out of the loop")
  t.eq(type(e) == "table" and e.kind, "timeout", tostring(e))
  c:close()
end

-- Timeouts say what timed out, never an errno text.
do
  local c = t.ok(ws.connect(echo))
  local d, err = c:receive(0.3)
  t.fails("timeout", d, err)
  t.ok(err.message:find("no WebSocket message from " .. echo .. " within 0.3 s", 1, true), err.message)
  local inner
  lurk.timeout(0.3, function() inner = select(2, c:receive()) end)
  t.fails("timeout", nil, inner)
  t.ok(inner.message:find(echo, 1, true) and inner.message:find("lurk.timeout", 1, true), inner.message)
  inner = select(2, lurk.timeout(0.2, function() return c:receive(5) end))
  t.fails("timeout", nil, inner)
  t.ok(c:send("still open")); t.eq(c:receive(5), "still open", "a receive timeout leaves the connection open")
  c:close()

  -- A handshake that never gets an answer: the option's timeout, then the task's deadline.
  local e1 = t.fails("timeout", ws.connect(raw .. "/hs/silent", { timeout = 0.3 }))
  t.ok(e1.message:find("WebSocket handshake with " .. raw .. "/hs/silent timed out after 0.3 s", 1, true), e1.message)
  local e2
  lurk.timeout(0.3, function() e2 = select(2, ws.connect(raw .. "/hs/silent")) end)
  t.fails("timeout", nil, e2)
  t.ok(e2.message:find("timed out", 1, true) and e2.message:find("lurk.timeout", 1, true), e2.message)
  for _, e in ipairs { e1, e2 } do
    t.ok(not e.message:find("Connection timed out", 1, true), e.message)
  end

  -- A send the server does not read: send_timeout, or the task's deadline.
  local s = t.ok(ws.connect(raw .. "/stallping", { send_timeout = 0.3, compress = false }))
  local ok, e3 = s:send_binary(("x"):rep(32 * 1024 * 1024))
  t.fails("timeout", ok, e3)
  t.ok(e3.message:find("send_timeout 0.3 s", 1, true), e3.message)
  s = t.ok(ws.connect(raw .. "/stallping", { send_timeout = false, compress = false }))
  local e4
  lurk.timeout(0.3, function() e4 = select(2, s:send_binary(("x"):rep(32 * 1024 * 1024))) end)
  t.fails("timeout", nil, e4)
  t.ok(e4.message:find("lurk.timeout", 1, true) and not e4.message:find("Connection timed out", 1, true), e4.message)
  local v, e5 = s:send("after")
  t.fails("timeout", v, e5, "the connection ended with the cut frame")
  s:close()
end

t.done()
