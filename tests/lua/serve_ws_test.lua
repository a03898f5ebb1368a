-- ws.upgrade: server-side WebSockets against Node's ws client and lurk's own, with raw frames for the rules.
package.path = arg[0]:match("^(.*)/[^/]*$") .. "/lib/?.lua;" .. package.path
local t = require "t"

local dir = t.tmpdir()
local function sh(cmd) return t.sh(cmd) end

local closed = {}
local srv = assert(http.serve({ port = 0 }, function(req)
  if req.path == "/echo" then
    local c, err = ws.upgrade(req, { protocols = { "chat" } })
    if not c then return err.status or 400, {}, err.message end
    for msg, kind in c:messages() do
      if kind == "binary" then c:send_binary(msg) else c:send(msg) end
    end
    closed[#closed + 1] = c.close_code or true
    return
  end
  if req.path == "/plain" then
    local c = assert(ws.upgrade(req, { compress = false }))
    c:send("welcome")
    lurk.sleep(0.05)
    return                                   -- returning closes the connection
  end
  return 404, {}, "no"
end))
local base = "ws://127.0.0.1:" .. srv.port

t.raises("unknown option 'protocol'", function()
  ws.upgrade(setmetatable({}, {}), { protocol = "x" })
end)

-- Node's ws: permessage-deflate negotiated by the server, subprotocol chosen, messages echoed
local out, rc = sh("node " .. t.support .. "/wsclient.js " .. base .. "/echo")
t.eq(rc, 0, out)
t.ok(out:find("^OK permessage%-deflate") and out:find(" chat\n$"), out)

-- lurk's client
local c = assert(ws.connect(base .. "/echo", { protocols = { "chat" } }))
t.eq(c.protocol, "chat")
t.ok(c.extensions and c.extensions:find("permessage%-deflate"), c.extensions)
c:send(("z"):rep(200000))
local m, kind = c:receive(5)
t.eq(#m, 200000)
t.eq(kind, "text")
c:send_binary("\0\1\2")
t.eq((c:receive(5)), "\0\1\2")
c:close()
lurk.sleep(0.1)
t.eq(closed[#closed], 1000, "the client's close code reached the server")

-- no compression when the handler says so; the handler's return closes
c = assert(ws.connect(base .. "/plain"))
t.eq(c.extensions, nil)
t.eq((c:receive(5)), "welcome")
local m2, err = c:receive(5)
t.eq(m2, nil)
t.eq(err.code, 1000, tostring(err))

-- the rules: an unmasked client frame is a protocol error (1002); a request
-- that is not an upgrade gets 426 from the handler
do
  local s = assert(tcp.connect("127.0.0.1", srv.port))
  s:send("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
  local head = {}
  repeat local line = s:receive("*l"); head[#head + 1] = line until line == ""
  t.eq(head[1], "HTTP/1.1 101 Switching Protocols")
  local accept
  for _, l in ipairs(head) do accept = accept or l:match("^sec%-websocket%-accept: (.*)$") end
  t.eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455's example key")
  s:send("\129\5hello")                      -- FIN + text, unmasked
  local frame = s:receive(4)
  t.eq(frame:byte(1), 0x88, "a close frame")
  t.eq(frame:byte(3) * 256 + frame:byte(4), 1002)
  t.ok(frame:byte(2) < 0x80, "server frames are unmasked")
  s:close()
end
out = sh("curl -q -sS --noproxy '*' -i http://127.0.0.1:" .. srv.port .. "/echo")
t.ok(out:find("^HTTP/1.1 426 "), out)

-- Python's websockets (python3-websockets, scripts/install-deps.sh), always
-- through /usr/bin/python3: a pyenv python3 first on PATH lacks the Debian
-- package. Missing, it fails the test: CI must run this client.
out, rc = sh(("/usr/bin/python3 %s/pywsclient.py %s/echo"):format(t.support, base))
t.eq(rc, 0, "python websockets client (apt-get install python3-websockets): " .. out)
t.ok(out:find("^OK chat permessage%-deflate") and out:find(" 1000\n$"), out)
t.eq(closed[#closed], 1000, "the server saw the Python client's close code")

srv:close()
t.done()
