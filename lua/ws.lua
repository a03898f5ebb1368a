-- ws.lua - the WebSocket client (RFC 6455) over lurk's sockets: ws:// over
-- TCP, wss:// over TLS (and so over kernel TLS where the kernel takes it).
--
-- A connection runs one reader task of its own. It reads frames, answers
-- pings at once (whether or not the script is receiving), assembles
-- messages and hands them to the script through a small channel; when the
-- channel is full the reader stops reading, so a slow script slows the
-- server down instead of filling memory. Writes from any task go through one
-- lock, so frames never interleave. Framing and validation are C
-- (src/ws/frame.c through ws._decoder).
local C, tcp, lurk, http, P = ...
local set_deadline = P.deadline      -- (abs | false) -> the previous deadline

local M = {}
local concat = table.concat
local mkerror, now = lurk.error, lurk.now

local DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
local DEFAULT_TIMEOUT = P.options.timeout   -- src/lua/task.h: LURK_DEFAULT_TIMEOUT
local CLOSE_TIMEOUT = 5

local Conn = {}
Conn.__index = Conn

local function werror(kind, message, fields)
  local e = { kind = kind, phase = "read", message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return mkerror(e)
end

-- Writes one frame under the connection's write lock. Data messages are
-- compressed there too: with context takeover, the compressor's state must
-- follow the order of the frames on the wire.
--
-- A frame must reach the kernel within send_timeout (waiting for the lock
-- included): a peer that stops reading fills TCP's buffers and would hold a
-- sender forever. A frame cut short leaves the stream out of step, so a
-- timeout ends the connection.
local finish                      -- below: ends a connection

local function send_frame(c, op, payload, fin)
  local prev
  if c.send_timeout then
    local mine = lurk.now() + c.send_timeout
    prev = set_deadline(mine)
    if prev and prev < mine then set_deadline(prev) end
  end
  local ok, err = c.wlock:acquire()
  if ok then
    local rsv1 = false
    if c.pmd and (op == "text" or op == "binary") and #payload >= 32 then
      payload, rsv1 = c.pmd:deflate(payload), true
    end
    ok, err = c.sock:send(C._frame(op, payload, fin, rsv1))
    c.wlock:release()
  end
  if c.send_timeout then set_deadline(prev or false) end
  if ok then return true end
  if err.kind == "timeout" and c.send_timeout then
    err = werror("timeout", ("WebSocket send to %s timed out (send_timeout %g s): is the server reading?")
      :format(c.url, c.send_timeout), { phase = "send", errno = err.errno, name = err.name, cause = err })
    if not c.done then finish(c, err) end
  end
  return nil, err
end

local function close_payload(code, reason)
  if not code then return "" end
  return string.char(math.floor(code / 256), code % 256) .. (reason or "")
end

-- Ends the connection: remember why, wake the script, close the socket.
function finish(c, err)
  if c.done then return end
  c.done = err
  c.state = "closed"
  c.inbox:close()
  c.sock:close()
  if c.closed_signal then c.closed_signal:close() end
end

-- The reader task: frames in, messages out.
local function reader(c, buf)
  local d, i, parts, size, kind = c.decoder, 1, {}, 0, nil
  while true do
    local ev, j, a, b, e, compressed = d:feed(buf, i)
    if ev == "data" and compressed then
      local out, zerr = c.pmd:inflate(b, e)
      if not out then
        ev, j = nil, zerr
      else
        b = out
      end
    end
    if not ev then
      -- A protocol violation: tell the server why (1002/1007/1009), then go.
      local err = j
      if c.state == "open" then send_frame(c, "close", close_payload(err.code, err.message:sub(1, 100))) end
      finish(c, err)
      return
    end
    i = j
    if ev == "more" then
      local data, rerr = c.sock:receive_some(256 * 1024)
      if not data or data == "" then
        -- A failed read keeps its kind (timeout, limit, ...) and errno.
        local why = rerr and (": " .. tostring(rerr)) or ""
        finish(c, werror(rerr and rerr.kind or "closed",
          "the connection ended without a WebSocket close (1006)" .. why,
          { code = 1006, cause = rerr, errno = rerr and rerr.errno, name = rerr and rerr.name,
            -- a frame sent without waiting may fail after its send returned
            phase = rerr and rerr.phase == "send" and "send" or "read" }))
        return
      end
      buf, i = data, 1
    elseif ev == "data" then
      parts[#parts + 1] = b
      size = size + #b
      kind = a
      if e then
        local msg = #parts == 1 and parts[1] or concat(parts)
        parts, size = {}, 0
        if compressed and kind == "text" and not C._utf8(msg) then
          local err = werror("protocol", "WebSocket protocol error: invalid UTF-8 in text message", { code = 1007 })
          send_frame(c, "close", close_payload(1007, "invalid UTF-8"))
          finish(c, err)
          return
        end
        if not c.inbox:send({ msg, kind }) then return end   -- closed meanwhile
      end
    elseif a == "ping" then
      send_frame(c, "pong", b)
    elseif a == "pong" then
      c.last_pong = now()
    else -- close
      c.close_code, c.close_reason = e, b
      if c.state == "open" then
        -- The server started the close: echo its code, as RFC 6455 asks.
        c.state = "closing"
        send_frame(c, "close", close_payload(e ~= 1005 and e or nil, nil))
      end
      local who = c.state == "closing" and c.closed_signal and "closed" or "closed by the server"
      finish(c, werror("closed", ("WebSocket %s: %d%s"):format(who, e, b ~= "" and (" " .. b) or ""),
        { code = e, reason = b }))
      return
    end
  end
end

local function parse_ws_url(url)
  if type(url) ~= "string" then return nil, "URL must be a string" end
  local scheme, rest = url:match("^(%a+)://(.*)$")
  scheme = scheme and scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then return nil, "not a ws:// or wss:// URL" end
  local u, err = http.parse_url((scheme == "wss" and "https://" or "http://") .. rest)
  if not u then return nil, err end
  u.ws_scheme = scheme
  return u
end

local function has_token(value, token)
  for t in (value or ""):gmatch("[^,%s]+") do
    if t:lower() == token then return true end
  end
  return false
end

-- ws.connect(url [, opts]) -> conn | nil, err
-- opts: headers, protocols, origin, timeout, max_message, compress (default
-- true: offer permessage-deflate), tls, proxy, ping_interval, ping_timeout,
-- redirects (default 0: a redirect answer refuses the connection),
-- send_timeout (default 30 s; false: none).
function M.connect(url, opts)
  opts = opts or {}
  local send_timeout = opts.send_timeout
  if send_timeout == nil then send_timeout = DEFAULT_TIMEOUT end
  if send_timeout ~= false and (type(send_timeout) ~= "number" or send_timeout <= 0) then
    error("ws.connect: send_timeout must be a positive number of seconds or false", 2)
  end
  local u, perr = parse_ws_url(url)
  if not u then error(("ws.connect: bad url %q: %s"):format(tostring(url), perr), 2) end
  local timeout = opts.timeout == nil and DEFAULT_TIMEOUT or opts.timeout
  local max_message = opts.max_message or DEFAULT_MAX_MESSAGE
  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end

  local function handshake()
    local tls = nil
    if u.ws_scheme == "wss" then
      tls = {}
      for k, v in pairs(opts.tls or {}) do tls[k] = v end
    end
    -- Through a proxy (opts.proxy, or HTTPS_PROXY/HTTP_PROXY for wss/ws):
    -- a tunnel (CONNECT or SOCKS5) for both, with TLS end to end for wss.
    local pu = P.proxy_for({ scheme = u.ws_scheme == "wss" and "https" or "http", host = u.host },
                               opts.proxy)
    local sock, err
    if pu then
      sock, err = P.tunnel(u, pu, tls, timeout or false)
    else
      sock, err = tcp.connect(u.host, u.port, { timeout = timeout or false, tls = tls })
    end
    if not sock then return nil, err end
    sock:settimeout(false)                       -- messages may be far apart
    local key = C._key()
    local host = u.host:find(":", 1, true) and ("[" .. u.host .. "]") or u.host
    local default = (u.ws_scheme == "wss" and u.port == 443) or (u.ws_scheme == "ws" and u.port == 80)
    local lines = {
      "GET " .. u.target .. " HTTP/1.1",
      "Host: " .. host .. (default and "" or (":" .. u.port)),
      "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: " .. key, "Sec-WebSocket-Version: 13",
      "User-Agent: lurk/" .. lurk.version,
    }
    if opts.origin then lines[#lines + 1] = "Origin: " .. opts.origin end
    if protocols then lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. concat(protocols, ", ") end
    if opts.compress ~= false then
      lines[#lines + 1] = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    end
    for k, v in pairs(opts.headers or {}) do
      if tostring(k):find("[\r\n:]") or tostring(v):find("[\r\n]") then
        sock:close()
        error("ws.connect: invalid header " .. tostring(k), 3)
      end
      lines[#lines + 1] = k .. ": " .. tostring(v)
    end
    local ok
    ok, err = sock:send(concat(lines, "\r\n") .. "\r\n\r\n")
    if not ok then sock:close(); return nil, err end

    -- The answer: an HTTP head, then (possibly in the same read) frames.
    local parser, buf, i = P.parser(false), "", 1
    local status, reason, h
    while not status do
      local ev, j, a, b, c = parser:feed(buf, i)
      if not ev then sock:close(); return nil, j end
      i = j
      if ev == "head" then
        status, reason, h = a, b, c
      elseif ev == "more" then
        local data, rerr = sock:receive_some(65536)
        if not data or data == "" then
          sock:close()
          return nil, rerr or werror("closed", "the server closed the connection during the WebSocket handshake")
        end
        buf, i = data, 1
      else
        sock:close()
        return nil, werror("protocol", "unexpected HTTP response to the WebSocket handshake")
      end
    end
    local function refuse(why)
      sock:close()
      return nil, werror("protocol", ("WebSocket handshake with %s refused: %s"):format(url, why),
        { status = status, url = url })
    end
    if status ~= 101 then
      if h.location and status >= 300 and status < 400 and opts.redirects and opts.redirects > 0 then
        sock:close()
        return nil, { redirect = h.location }
      end
      return refuse(("HTTP %d %s instead of 101%s"):format(status, reason,
        h.location and (" (redirect to " .. h.location .. ", not followed)") or ""))
    end
    if not has_token(h.upgrade, "websocket") then return refuse("no Upgrade: websocket") end
    if not has_token(h.connection, "upgrade") then return refuse("no Connection: Upgrade") end
    if h["sec-websocket-accept"] ~= C._accept(key) then return refuse("wrong Sec-WebSocket-Accept") end
    local ext, pmd = h["sec-websocket-extensions"], nil
    if ext then
      if opts.compress == false then return refuse("extension not requested: " .. ext) end
      -- One permessage-deflate with known parameters, each at most once.
      local name, params = ext:match("^%s*([%w%-]+)%s*(.*)$")
      if name ~= "permessage-deflate" or params:find(",", 1, true) then
        return refuse("extension not requested: " .. ext)
      end
      pmd = { sb = 15, cb = 15 }
      local seen = {}
      for param in params:gmatch(";%s*([^;]+)") do
        local k, v = param:match("^([%w_]+)%s*=?%s*\"?([^\"]*)\"?%s*$")
        if not k or seen[k] then return refuse("bad permessage-deflate parameters: " .. ext) end
        seen[k] = true
        local bits = tonumber(v)
        if k == "server_no_context_takeover" and v == "" then pmd.snc = true
        elseif k == "client_no_context_takeover" and v == "" then pmd.cnc = true
        elseif k == "server_max_window_bits" and bits and bits >= 8 and bits <= 15 then pmd.sb = bits
        elseif k == "client_max_window_bits" and bits and bits >= 8 and bits <= 15 then pmd.cb = bits
        else return refuse("bad permessage-deflate parameters: " .. ext) end
      end
    end
    local protocol = h["sec-websocket-protocol"]
    if protocol then
      local offered = false
      for _, p in ipairs(protocols or {}) do if p == protocol then offered = true end end
      if not offered then return refuse("subprotocol not requested: " .. protocol) end
    end
    return sock, buf:sub(i), protocol, pmd, ext
  end

  local sock, rest, protocol, pmd, ext
  if timeout then
    sock, rest, protocol, pmd, ext = lurk.timeout(timeout, handshake)
  else
    sock, rest, protocol, pmd, ext = handshake()
  end
  if not sock then
    if rest and rest.redirect then
      -- Asked to follow (opts.redirects = n): the Location, made absolute,
      -- with http(s) mapped to ws(s).
      local loc = rest.redirect
      local here = url:match("^%a+://([^/?#]+)")
      if loc:sub(1, 1) == "/" and loc:sub(2, 2) ~= "/" then loc = u.ws_scheme .. "://" .. here .. loc end
      loc = loc:gsub("^http(s?)://", "ws%1://")
      local scheme, there = loc:match("^(wss?)://([^/?#]+)")
      if not scheme or loc:find("[%s%c]") or not parse_ws_url(loc) then
        return nil, werror("protocol", "WebSocket redirect to an unusable location: " .. rest.redirect, { phase = "connect" })
      end
      if u.ws_scheme == "wss" and scheme == "ws" then
        return nil, werror("protocol", "refusing a WebSocket redirect from wss:// to ws:// (" .. loc .. ")", { phase = "connect" })
      end
      local o2 = {}
      for k, v in pairs(opts) do o2[k] = v end
      o2.redirects = opts.redirects - 1
      if there:lower() ~= here:lower() and opts.headers then
        -- Credentials and cookies stay with the host they were meant for.
        o2.headers = {}
        for k, v in pairs(opts.headers) do
          local lk = k:lower()
          if lk ~= "authorization" and lk ~= "cookie" then o2.headers[k] = v end
        end
      end
      return M.connect(loc, o2)
    end
    if rest and rest.kind == "timeout" then rest.message = ("WebSocket handshake with %s timed out"):format(url) end
    return nil, rest
  end

  local c = setmetatable({
    sock = sock, decoder = C._decoder(max_message), inbox = lurk.channel(16),
    wlock = lurk.semaphore(1), state = "open", protocol = protocol, extensions = ext,
    tls = sock.tls, url = url, send_timeout = send_timeout,
  }, Conn)
  if pmd then
    c.pmd = C._pmd(pmd.sb, pmd.snc, pmd.cb, pmd.cnc, max_message)
    c.decoder:allow_compressed()
  end
  c.reader = lurk.spawn(reader, c, rest)
  if opts.ping_interval then
    local interval, limit = opts.ping_interval, opts.ping_timeout or opts.ping_interval
    c.pinger = lurk.spawn(function()
      while c.state == "open" do
        if not lurk.sleep(interval) or c.state ~= "open" then return end
        local sent_at = now()
        if not send_frame(c, "ping", "keepalive") then return end
        lurk.sleep(limit)
        if c.state == "open" and (c.last_pong or 0) < sent_at then
          send_frame(c, "close", close_payload(1011, "ping timeout"))
          finish(c, werror("timeout", ("no pong within %g s"):format(limit), { code = 1006 }))
          return
        end
      end
    end)
  end
  return c
end

-- conn:receive([timeout]) -> data, "text" | "binary"  or  nil, err
-- (err.kind "closed" with err.code and err.reason once the connection ended)
function Conn:receive(timeout)
  local m, err = self.inbox:recv(timeout)
  if m then return m[1], m[2] end
  if err and err.kind ~= "closed" then return nil, err end   -- timeout, cancelled
  return nil, self.done or err
end

-- for data, kind in conn:messages() do ... end (ends when the connection does)
function Conn:messages()
  return function()
    local data, kind = self:receive()
    if data then return data, kind end
  end
end

local function check_open(c, what)
  if c.state ~= "open" then
    return nil, c.done or werror("closed", "WebSocket is closed", { phase = "send" })
  end
  return true
end

-- conn:send(text) -> true | nil, err
function Conn:send(text)
  if type(text) ~= "string" then error("conn:send expects a string", 2) end
  if not C._utf8(text) then error("conn:send: text must be valid UTF-8 (use send_binary for bytes)", 2) end
  local ok, err = check_open(self)
  if not ok then return nil, err end
  return send_frame(self, "text", text)
end

-- conn:send_binary(bytes) -> true | nil, err
function Conn:send_binary(bytes)
  if type(bytes) ~= "string" then error("conn:send_binary expects a string", 2) end
  local ok, err = check_open(self)
  if not ok then return nil, err end
  return send_frame(self, "binary", bytes)
end

-- conn:ping([data]) -> true | nil, err (the pong is handled by the reader)
function Conn:ping(data)
  data = data or ""
  if #data > 125 then error("conn:ping: at most 125 bytes", 2) end
  local ok, err = check_open(self)
  if not ok then return nil, err end
  return send_frame(self, "ping", data)
end

-- conn:close([code [, reason]]) -> true: the close handshake (the server's
-- close awaited up to 5 s), then the TCP/TLS close.
function Conn:close(code, reason)
  if self.state ~= "open" then
    if self.state == "closing" and self.closed_signal then self.closed_signal:recv(CLOSE_TIMEOUT) end
    return true
  end
  code = code or 1000
  if type(code) ~= "number" or not (code == 1000 or (code >= 3000 and code <= 4999) or (code >= 1001 and code <= 1003)
      or (code >= 1007 and code <= 1014)) then
    error("conn:close: invalid close code " .. tostring(code), 2)
  end
  reason = reason or ""
  if #reason > 123 then error("conn:close: reason longer than 123 bytes", 2) end
  self.state = "closing"
  self.closed_signal = lurk.channel(0)
  if send_frame(self, "close", close_payload(code, reason)) then
    self.closed_signal:recv(CLOSE_TIMEOUT)      -- ends when the reader sees the server's close
  end
  finish(self, werror("closed", ("WebSocket closed by us: %d"):format(code), { code = code, reason = reason }))
  return true
end

function Conn:__tostring()
  return ("lurk.ws (%s, %s)"):format(self.url, self.state)
end

return M
