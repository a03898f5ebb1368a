-- ws.lua - the WebSocket client (RFC 6455) over lurk's sockets: ws:// over
-- TCP, wss:// over TLS (and so over kernel TLS where the kernel takes it).
--
-- A connection runs one reader task of its own. It reads frames, answers
-- pings at once (whether or not the script is receiving) and hands whole
-- messages to the script through a small channel; when the channel is full
-- the reader stops reading, so a slow script slows the server down instead
-- of filling memory. Writes from any task go through one lock, so frames
-- never interleave. Framing, validation and the assembly of fragments are C
-- (src/ws/frame.c through ws._decoder, src/lua/ws.c).
--
-- Once finish() has ended a connection (the reader, a failed send, the
-- pinger or conn:close, whichever comes first), every call returns the
-- error that ended it and no task touches the closed socket again; an
-- optional pinger task ends with the connection.
local C, tcp, lurk, http, P = ...
local set_deadline = P.deadline      -- (abs | false) -> the previous deadline
-- The reader's read, called directly: no method lookup through the
-- socket's __index (a C function) per message.
local receive_some = P.sock_methods.receive_some

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

-- Ends the connection: remember why, wake the script, stop the pinger,
-- close the socket. The first reason wins. After it no task touches the
-- socket again (send_frame and the reader check c.done after every wait).
local function finish(c, err)
  if c.done then return end
  c.done = err
  c.state = "closed"
  c.inbox:close()
  c.stop:close()
  c.sock:close()
  if c.closed_signal then c.closed_signal:close() end
end

-- Raises, at the caller's caller, for a yielding call made outside a task
-- (before P.deadline could raise naming lurk.timeout instead).
local function need_task(name)
  if not lurk.current() then
    error(name .. " must be called from a task (the main chunk is one; see lurk.spawn)", 3)
  end
end

-- Which deadline a wait that timed out ran into: the call's own (true) or
-- the task's, from lurk.timeout (false). `mine` is the call's absolute
-- deadline or nil, `prev` the task's.
local function own_deadline(mine, prev)
  return mine ~= nil and (prev == nil or mine <= prev)
end

-- The error of a frame's send that timed out: own says which deadline it
-- ran into, the send's own (send_timeout) or the task's.
local function send_timed_out(c, err, own)
  local msg
  if own then
    msg = ("WebSocket send to %s timed out (send_timeout %g s): is the server reading?"):format(c.url, c.send_timeout)
  else
    msg = ("WebSocket send to %s timed out: the task's deadline (lurk.timeout) passed"):format(c.url)
  end
  return werror("timeout", msg, { phase = "send", retryable = false, errno = err.errno, name = err.name, cause = err })
end

local send_c = C._send

-- Writes one frame under the connection's write lock. Data messages are
-- compressed there too: with context takeover, the compressor's state must
-- follow the order of the frames on the wire.
--
-- A frame must reach the kernel within send_timeout (waiting for the lock
-- included): a peer that stops reading fills TCP's buffers and would hold a
-- sender forever. A frame cut short (by that timeout, the task's deadline or
-- a cancellation) leaves the stream out of step, so any failed write ends
-- the connection, with `why` if given (a protocol error being reported)
-- or the write's own error. Returns true or nil, err; never raises for
-- what the server did.
local function send_frame(c, op, payload, fin, why)
  if c.done then return nil, c.done end
  local wlock, limit = c.wlock, c.send_timeout or nil   -- false: no send_timeout
  if wlock.count == 0 and limit then
    -- Another task is sending: the wait for the lock counts against
    -- send_timeout too, and the send has what is left of it. (A free lock
    -- is taken without waiting.)
    local prev = set_deadline()
    local mine = now() + limit
    if not prev or mine < prev then set_deadline(mine) end
    local ok, err = wlock:acquire()
    set_deadline(prev or false)
    if ok then
      limit = mine - now()
      if limit <= 0 then
        wlock:release()
        ok, err = nil, werror("timeout", "the write lock came after send_timeout", { phase = "send" })
      end
    end
    if not ok then
      if err.kind ~= "timeout" then return nil, err end    -- cancelled: nothing was sent
      local own = own_deadline(mine, prev)
      err = send_timed_out(c, err, own)
      -- A sender stuck past send_timeout holds the lock: the stream is stuck.
      if own then finish(c, why or err) end
      return nil, err
    end
  else
    local ok, err = wlock:acquire()
    if not ok then
      if err.kind ~= "timeout" then return nil, err end
      return nil, send_timed_out(c, err, false)
    end
  end
  if c.done then                      -- ended while this task waited for the lock
    wlock:release()
    return nil, c.done
  end
  local rsv1 = false
  if c.pmd and (op == "text" or op == "binary") and #payload >= 32 then
    payload, rsv1 = c.pmd:deflate(payload), true
  end
  -- The frame built and sent in one call, within send_timeout.
  local ok, err = send_c(c.sock, op, payload, fin, rsv1, c.server, limit)
  wlock:release()
  if ok then return true end
  if c.done then return nil, c.done end    -- closed under the write: the reason it closed
  if err.kind == "timeout" then
    -- Whose deadline: the task's if it has passed (ties go to it, as in C).
    local prev = set_deadline()
    err = send_timed_out(c, err, c.send_timeout and not (prev and now() >= prev) or false)
  end
  finish(c, why or err)
  return nil, err
end

local function close_payload(code, reason)
  if not code then return "" end
  return string.char(math.floor(code / 256), code % 256) .. (reason or "")
end

-- The reader task: frames in, messages out. The decoder (C) assembles
-- fragments, so each event here is a whole message, a control frame, or a
-- request for more bytes.
local function reader(c, buf)
  local d, i = c.decoder, 1
  while not c.done do
    -- x: for "data" whether the message is compressed, for "control" the close code
    local ev, j, a, b, x = d:feed(buf, i)
    if ev == "data" and x then
      local out, zerr = c.pmd:inflate(b, true)
      if not out then
        ev, j = nil, zerr
      else
        b = out
        if a == "text" and not C._utf8(b) then
          ev, j = nil, werror("protocol", "WebSocket protocol error: invalid UTF-8 in text message", { code = 1007 })
        end
      end
    end
    if not ev then
      -- A protocol violation: tell the server why (1002/1007/1009), then go.
      local err = j
      if c.state == "open" then send_frame(c, "close", close_payload(err.code, err.message:sub(1, 100)), true, err) end
      finish(c, err)
      return
    end
    i = j
    if ev == "more" then
      local data, rerr = receive_some(c.sock, 256 * 1024)
      if c.done then return end          -- the script or the pinger ended it meanwhile
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
      -- A text message goes as its string, a binary one in a table: no
      -- table for the usual case.
      if not c.inbox:send(a == "text" and b or { b }) then return end   -- closed meanwhile
    elseif a == "ping" then
      send_frame(c, "pong", b)
    elseif a == "pong" then
      c.last_pong = now()
    else -- close
      c.close_code, c.close_reason = x, b
      local who = c.state == "closing" and c.closed_signal and "closed" or "closed by the server"
      local err = werror("closed", ("WebSocket %s: %d%s"):format(who, x, b ~= "" and (" " .. b) or ""),
        { code = x, reason = b })
      if c.state == "open" then
        -- The server started the close: echo its code, as RFC 6455 asks.
        c.state = "closing"
        send_frame(c, "close", close_payload(x ~= 1005 and x or nil, nil), true, err)
      end
      finish(c, err)
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

-- The options ws.connect knows; any other key raises (P.check_options).
local KNOWN = {
  headers = true, protocols = true, origin = true, timeout = true, send_timeout = true,
  max_message = true, compress = true, tls = true, proxy = true, redirects = true,
  ping_interval = true, ping_timeout = true,
}

-- Header field names are RFC 9110 tokens; a value may hold anything but
-- CR, LF and NUL, which would end the field (or the head) early.
local function is_token(s) return s:find("^[%w!#$%%&'*+%-.^_`|~]+$") ~= nil end
local function bad_value(s) return s:find("[\r\n%z]") ~= nil end

-- Checks ws.connect's options, raising at the script's line for anything
-- that would otherwise be dropped, misread or written into the handshake
-- as is.
-- Returns the list of subprotocols (or nil) and the proxy to use.
local function check_opts(opts, u)
  -- error levels: 1 raise, 2 check_opts, 3 connect, 4 the script
  local function raise(fmt, ...) error("ws.connect: " .. fmt:format(...), 4) end
  local function want(name, ok, what)
    local v = opts[name]
    if v ~= nil and not ok(v) then
      error(("ws.connect: %s must be %s (got %s)"):format(name, what,
        type(v) == "string" and ("%q"):format(v) or tostring(v)), 4)   -- 1 want, 2 check_opts, ...
    end
  end
  local function positive(v) return type(v) == "number" and v > 0 end
  local function seconds_or_false(v) return v == false or positive(v) end
  P.check_options(opts, "ws.connect", KNOWN, 3)
  want("timeout", seconds_or_false, "a positive number of seconds or false")
  want("send_timeout", seconds_or_false, "a positive number of seconds or false")
  want("ping_interval", positive, "a positive number of seconds")
  want("ping_timeout", positive, "a positive number of seconds")
  want("max_message", function(v) return type(v) == "number" and v >= 1 end, "a number of bytes (at least 1)")
  want("redirects", function(v) return type(v) == "number" and v >= 0 and v % 1 == 0 end,
    "a whole number of redirects to follow")
  want("compress", function(v) return type(v) == "boolean" end, "true or false")
  want("tls", function(v) return type(v) == "table" end, "a table of TLS options")
  if opts.tls then P.check_tls(opts.tls, "ws.connect", 3) end   -- what tcp.connect would refuse, said now
  want("headers", function(v) return type(v) == "table" end, "a table of header names to values")
  want("origin", function(v) return type(v) == "string" end, "a string")
  want("proxy", function(v) return v == false or type(v) == "string" end, "a proxy URL or false")
  if opts.origin and bad_value(opts.origin) then raise("origin contains CR, LF or NUL") end
  for name, value in pairs(opts.headers or {}) do
    if type(name) ~= "string" or not is_token(name) then
      raise("invalid header name %s", type(name) == "string" and ("%q"):format(name) or ("(a " .. type(name) .. ")"))
    end
    local list = type(value) == "table" and value or { value }
    for _, v in ipairs(list) do
      if type(v) ~= "string" and type(v) ~= "number" then
        raise("header %s: value must be a string or a number (or a list of them)", name)
      end
      if bad_value(tostring(v)) then raise("header %s: value contains CR, LF or NUL", name) end
    end
  end
  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end
  if protocols ~= nil then
    if type(protocols) ~= "table" then
      raise("protocols must be a subprotocol name or a list of them (got %s)", type(protocols))
    end
    for k, p in ipairs(protocols) do
      if type(p) ~= "string" then raise("protocols[%d] must be a string (got %s)", k, type(p)) end
      if bad_value(p) then raise("protocols[%d] contains CR, LF or NUL", k) end
      if not is_token(p) then raise("protocols[%d] %q is not a valid subprotocol name (RFC 6455: a token)", k, p) end
    end
    if #protocols == 0 then protocols = nil end
  end
  -- A proxy URL that cannot be used is the caller's error, like a bad option.
  local ok, pu = pcall(P.proxy_for, { scheme = u.ws_scheme == "wss" and "https" or "http", host = u.host }, opts.proxy)
  if not ok then raise("%s", tostring(pu)) end
  return protocols, pu
end

-- ws.connect(url [, opts]) -> conn | nil, err
-- opts: headers, protocols, origin, timeout, max_message, compress (default
-- true: offer permessage-deflate), tls, proxy, ping_interval, ping_timeout,
-- redirects (default 0: a redirect answer refuses the connection),
-- send_timeout (default 30 s; false: none).
function M.connect(url, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("ws.connect: options must be a table (got %s)"):format(type(opts)), 2)
  end
  opts = opts or {}
  local u, perr = parse_ws_url(url)
  if not u then error(("ws.connect: bad url %q: %s"):format(tostring(url), perr), 2) end
  local protocols, pu = check_opts(opts, u)
  need_task("ws.connect")
  local send_timeout = opts.send_timeout
  if send_timeout == nil then send_timeout = DEFAULT_TIMEOUT end
  local timeout = opts.timeout == nil and DEFAULT_TIMEOUT or opts.timeout
  local max_message = opts.max_message or DEFAULT_MAX_MESSAGE

  local function handshake()
    local tls = nil
    if u.ws_scheme == "wss" then
      tls = {}
      for k, v in pairs(opts.tls or {}) do tls[k] = v end
    end
    -- Through a proxy (opts.proxy, or HTTPS_PROXY/HTTP_PROXY for wss/ws):
    -- a tunnel (CONNECT or SOCKS5) for both, with TLS end to end for wss.
    local sock, err
    if pu then
      sock, err = P.tunnel(u, pu, tls, false)
    else
      sock, err = tcp.connect(u.host, u.port, { timeout = false, tls = tls })
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
    for k, v in pairs(opts.headers or {}) do      -- checked by check_opts
      for _, one in ipairs(type(v) == "table" and v or { v }) do
        lines[#lines + 1] = k .. ": " .. tostring(one)
      end
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

  -- The handshake runs under one deadline: `timeout` from now, or the
  -- task's own (lurk.timeout) if that comes first.
  local started, prev = now(), set_deadline()
  local mine = timeout and started + timeout or nil
  if mine and (not prev or mine < prev) then set_deadline(mine) end
  local r = { pcall(handshake) }
  set_deadline(prev or false)
  if not r[1] then error(r[2], 0) end
  local sock, rest, protocol, pmd, ext = r[2], r[3], r[4], r[5], r[6]
  local limit = (mine and prev) and math.min(mine, prev) or mine or prev
  -- Only a deadline that passed is reworded: a kernel's own ETIMEDOUT (a
  -- SYN never answered) keeps its message.
  if not sock and rest and not rest.redirect and limit and now() >= limit then
    local msg = own_deadline(mine, prev)
      and ("WebSocket handshake with %s timed out after %g s"):format(url, timeout)
      or ("WebSocket handshake with %s timed out after %.3g s: the task's deadline (lurk.timeout) passed")
        :format(url, now() - started)
    rest = werror("timeout", msg, { phase = rest.phase or "connect", retryable = true, url = url, cause = rest,
                                    errno = rest.errno, name = rest.name })
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
    return nil, rest
  end

  local c = setmetatable({
    sock = sock, decoder = C._decoder(max_message), inbox = lurk.channel(16),
    wlock = lurk.semaphore(1), state = "open", protocol = protocol, extensions = ext,
    tls = sock.tls, url = url, send_timeout = send_timeout,
    stop = lurk.channel(0),           -- closed by finish: wakes the pinger at once
  }, Conn)
  if pmd then
    c.pmd = C._pmd(pmd.sb, pmd.snc, pmd.cb, pmd.cnc, max_message)
    c.decoder:allow_compressed()
  end
  c.reader = lurk.spawn(reader, c, rest)
  if opts.ping_interval then
    local interval, limit = opts.ping_interval, opts.ping_timeout or opts.ping_interval
    -- Waits on c.stop rather than sleeping, so the task ends with the
    -- connection instead of keeping the program alive until its next ping.
    local function pause(s)
      local _, err = c.stop:recv(s)
      return err.kind == "timeout" and not c.done
    end
    c.pinger = lurk.spawn(function()
      while pause(interval) do
        local sent_at = now()
        if not send_frame(c, "ping", "keepalive") or not pause(limit) then return end
        if (c.last_pong or 0) < sent_at then
          local err = werror("timeout", ("WebSocket to %s: no pong within %g s (ping_timeout)"):format(url, limit),
            { code = 1006 })
          if c.state == "open" then send_frame(c, "close", close_payload(1011, "ping timeout"), true, err) end
          finish(c, err)
          return
        end
      end
    end)
  end
  return c
end

-- Raises for a method called with '.' (conn.send("hi")) or on something
-- that is not a connection, at the script's line.
local function check_conn(c, name)
  if getmetatable(c) ~= Conn then
    error(("conn.%s: called without a connection (use conn:%s(...), with a colon)"):format(name, name), 3)
  end
end

-- conn:receive([timeout]) -> data, "text" | "binary"  or  nil, err
-- (err.kind "closed" with err.code and err.reason once the connection ended)
function Conn:receive(timeout)
  check_conn(self, "receive")
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("conn:receive: timeout must be a non-negative number of seconds", 2)
  end
  if self.inbox:len() == 0 and not self.done then need_task("conn:receive") end
  local started = timeout and now()
  local m, err = self.inbox:recv(timeout)
  if m then
    if type(m) == "string" then return m, "text" end
    return m[1], "binary"
  end
  if err and err.kind == "timeout" then
    -- Say which wait ended: this call's timeout or the task's deadline.
    local msg
    if own_deadline(started and started + timeout, set_deadline()) then
      msg = ("no WebSocket message from %s within %g s (conn:receive timeout)"):format(self.url, timeout)
    else
      msg = ("no WebSocket message from %s before the task's deadline (lurk.timeout)"):format(self.url)
    end
    return nil, werror("timeout", msg, { retryable = true })
  end
  if err and err.kind ~= "closed" then return nil, err end   -- cancelled
  return nil, self.done or err
end

-- Whether a connection that ended with err ended normally: a close
-- handshake with 1000 (normal), 1001 (going away) or no code (1005), from
-- either side, as Python's websockets counts ConnectionClosedOK.
local function clean_close(err)
  return err.kind == "closed" and (err.code == 1000 or err.code == 1001 or err.code == 1005)
end

-- for data, kind in conn:messages() do ... end: ends (returns nil) after a
-- clean close; raises the error value for anything else (an abnormal end,
-- a protocol error, the task's deadline, a cancellation). The rule every
-- stream iterator in lurk follows.
function Conn:messages()
  check_conn(self, "messages")
  return function()
    local data, kind = self:receive()
    if data then return data, kind end
    if not clean_close(kind) then error(kind, 0) end
  end
end

local function check_open(c)
  if c.state ~= "open" then
    return nil, c.done or werror("closed", "WebSocket is closed", { phase = "send" })
  end
  return true
end

-- conn:send(text) -> true | nil, err
function Conn:send(text)
  check_conn(self, "send")
  if type(text) ~= "string" then error("conn:send expects a string (got " .. type(text) .. ")", 2) end
  if not C._utf8(text) then error("conn:send: text must be valid UTF-8 (use send_binary for bytes)", 2) end
  local ok, err = check_open(self)
  if not ok then return nil, err end
  need_task("conn:send")
  return send_frame(self, "text", text)
end

-- conn:send_binary(bytes) -> true | nil, err
function Conn:send_binary(bytes)
  check_conn(self, "send_binary")
  if type(bytes) ~= "string" then error("conn:send_binary expects a string (got " .. type(bytes) .. ")", 2) end
  local ok, err = check_open(self)
  if not ok then return nil, err end
  need_task("conn:send_binary")
  return send_frame(self, "binary", bytes)
end

-- conn:ping([data]) -> true | nil, err (the pong is handled by the reader)
function Conn:ping(data)
  check_conn(self, "ping")
  data = data or ""
  if type(data) ~= "string" then error("conn:ping expects a string (got " .. type(data) .. ")", 2) end
  if #data > 125 then error("conn:ping: at most 125 bytes", 2) end
  local ok, err = check_open(self)
  if not ok then return nil, err end
  need_task("conn:ping")
  return send_frame(self, "ping", data)
end

-- conn:close([code [, reason]]) -> true: the close handshake (the server's
-- close awaited up to 5 s), then the TCP/TLS close.
function Conn:close(code, reason)
  check_conn(self, "close")
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
  if type(reason) ~= "string" then error("conn:close: reason must be a string (got " .. type(reason) .. ")", 2) end
  if #reason > 123 then error("conn:close: reason longer than 123 bytes", 2) end
  need_task("conn:close")
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

-- ws.upgrade(req [, opts]) -> conn | nil, err: the server side, in
-- lua/http/server.lua, which builds the same connection object from these.
P.ws = { C = C, Conn = Conn, reader = reader, send_frame = send_frame, finish = finish,
  close_payload = close_payload, werror = werror }
function M.upgrade(req, opts)
  return P.ws_upgrade(req, opts)
end

return M
