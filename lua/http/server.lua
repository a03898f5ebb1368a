-- http/server.lua - http.serve: an HTTP/1.1 server on tcp.listen, and
-- http.file, a body sent from a file.
--
-- One task accepts; each connection gets a task that reads its requests in
-- order (src/http/server.c parses them, strictly), runs the handler of each
-- as a task of its own, and writes the response. Keep-alive follows the
-- request (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
-- "keep-alive"). Every limit ends the connection after the right status:
-- a malformed request 400, a head over max_head 431, a body over max_body
-- 413; a head not complete within header_timeout, a body stalled for
-- body_timeout, a response the client does not read within send_timeout
-- and a keep-alive connection idle for idle_timeout are closed.
--
-- srv:close() is graceful: the listener closes at once, idle connections
-- too, and connections in the middle of a request finish it (answered with
-- "Connection: close") and then close.
local P, lurk, tcp, json = ...

local M = {}
local http = P.http_module
local accept_raw, handshake, request_parser, sock_peer = P.accept_raw, P.handshake, P.request_parser, P.sock_peer
local S = P.sock_methods
local receive_some, send, settimeout, sock_close = S.receive_some, S.send, S.settimeout, S.close
local spawn, now, mkerror = lurk.spawn, lurk.now, lurk.error
local concat, type, pairs, tostring, tonumber, error, select = table.concat, type, pairs, tostring, tonumber,
  error, select
local find, sub, lower, format, gsub = string.find, string.sub, string.lower, string.format, string.gsub
local ipairs, setmetatable, getmetatable = ipairs, setmetatable, getmetatable
local urldecode = P.url.urldecode
local traceback = debug.traceback

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [206] = "Partial Content", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [413] = "Content Too Large", [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [422] = "Unprocessable Content", [426] = "Upgrade Required", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local SERVE_OPTIONS = {
  host = true, port = true, tls = true, header_timeout = true, idle_timeout = true, body_timeout = true,
  send_timeout = true, max_head = true, max_headers = true, max_body = true, max_connections = true,
  backlog = true, stream = true, on_error = true,
}

local function raise(msg)
  error("http.serve: " .. msg, 3)
end

-- ---- http.file ----

local File = {}
File.__index = File
File.__tostring = function(f) return ("http.file (%s)"):format(f.path) end
P.server_file_mt = File

-- http.file(path [, offset [, length]]) -> a body sent from the file
-- (without passing through userspace where the kernel allows).
function M.file(path, offset, length)
  if type(path) ~= "string" or path == "" then error("http.file: path must be a non-empty string", 2) end
  if offset ~= nil and (type(offset) ~= "number" or offset < 0 or offset % 1 ~= 0) then
    error("http.file: offset must be a whole number of bytes, 0 or more", 2)
  end
  if length ~= nil and (type(length) ~= "number" or length < 0 or length % 1 ~= 0) then
    error("http.file: length must be a whole number of bytes, 0 or more", 2)
  end
  return setmetatable({ path = path, offset = offset or 0, length = length }, File)
end

-- ---- the request object ----

local Request = {}
Request.__index = Request
local conn_of = setmetatable({}, { __mode = "k" })   -- req -> its connection (ws.upgrade)
P.server_conn_of = conn_of

function Request:json()
  if self.body == nil then return nil, mkerror { kind = "protocol", phase = "read", message = "the request has no body" } end
  return json.decode(self.body)
end

local function parse_query(q)
  local t = {}
  if not q then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = urldecode(k), urldecode(v)
    local old = t[k]
    if old == nil then t[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else t[k] = { old, v } end
  end
  return t
end

-- ---- the date header, once a second ----

local date_at, date_line = -1, nil
local function date_header()
  local t = os.time()
  if t ~= date_at then
    date_at = t
    date_line = "date: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT", t) .. "\r\n"
  end
  return date_line
end


-- ---- connections ----

-- Reads more input for conn within timeout (seconds); sets conn.buf and
-- conn.pos. Returns true, or nil, err.
local function fill(c, timeout)
  if timeout then settimeout(c.sock, timeout > 0.001 and timeout or 0.001) end
  local data, err = receive_some(c.sock, 256 * 1024)
  if not data then return nil, err end
  if data == "" then return nil, mkerror { kind = "closed", phase = "read", message = "the client closed the connection" } end
  if c.pos <= #c.buf then data = sub(c.buf, c.pos) .. data end
  c.buf, c.pos = data, 1
  return true
end

-- A status sent when the request cannot be served; the connection closes.
local function refuse(c, status, why)
  local body = (REASONS[status] or "Error") .. (why and (": " .. why) or "") .. "\n"
  settimeout(c.sock, 2)
  send(c.sock, format("HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n%s\r\n%s",
    status, REASONS[status] or "Error", #body, date_header(), body))
  sock_close(c.sock)
end

-- The next event of the request's body: "body", slice | "done" | nil, err.
-- Reads as needed, each read within body_timeout.
local function body_event(c)
  local srv = c.srv
  while true do
    local ev, j, a, b = c.parser:feed(c.buf, c.pos)
    if not ev then
      return nil, mkerror { kind = "protocol", phase = "read", message = j, status = a }
    end
    c.pos = j
    if ev == "body" then return "body", a end
    if ev == "done" then
      c.keep_alive, c.upgrade = a, b
      c.body_done = true
      return "done"
    end
    if c.expect_continue then
      c.expect_continue = false
      settimeout(c.sock, srv.send_timeout)
      send(c.sock, "HTTP/1.1 100 Continue\r\n\r\n")
    end
    local ok, err = fill(c, srv.body_timeout)
    if not ok then return nil, err end
  end
end

-- Reads the whole body (up to max_body): the string, or nil, err (err.status
-- 413 when too large, 400 when malformed).
local function read_body(c)
  local parts, n, total = {}, 0, 0
  local max = c.srv.max_body
  while true do
    local ev, slice = body_event(c)
    if not ev then return nil, slice end
    if ev == "done" then break end
    total = total + #slice
    if total > max then
      return nil, mkerror { kind = "limit", phase = "read", status = 413,
        message = ("request body over max_body (%d bytes)"):format(max) }
    end
    n = n + 1
    parts[n] = slice
  end
  return n == 1 and parts[1] or concat(parts)
end

-- req:read() -> the next piece of a streamed body | nil at its end | nil, err
function Request:read()
  local c = conn_of[self]
  if not c or c.body_done then return nil end
  local ev, slice = body_event(c)
  if not ev then return nil, slice end
  if ev == "done" then return nil end
  c.body_read = (c.body_read or 0) + #slice
  if c.body_read > c.srv.max_body then
    return nil, mkerror { kind = "limit", phase = "read", status = 413,
      message = ("request body over max_body (%d bytes)"):format(c.srv.max_body) }
  end
  return slice
end

-- for piece in req:chunks() do ... end (raises on a read error)
function Request:chunks()
  return function()
    local piece, err = self:read()
    if err then error(err, 2) end
    return piece
  end
end

-- ---- responses ----

local function bad_header(name, v)
  return type(name) ~= "string" or not find(name, "^[!#$%%&'*+%-.^_`|~%w]+$") or find(v, "[\r\n%z]")
end

-- The head: status line, the handler's fields, then framing and date.
-- framing is "content-length: n\r\n", "transfer-encoding: chunked\r\n" or "".
local function build_head(status, hdrs, framing, close, ctype)
  local n = 1
  local out = { format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Unknown") }
  local have_ctype, have_date = false, false
  if hdrs then
    for name, v in pairs(hdrs) do
      local lname = lower(name)
      if lname == "content-length" or lname == "transfer-encoding" or lname == "connection" and v ~= "upgrade" then
        -- framing is the server's: the body decides it.
        if lname == "connection" and v == "close" then close = true end
      else
        if lname == "content-type" then have_ctype = true elseif lname == "date" then have_date = true end
        if type(v) == "table" then
          for i = 1, #v do
            local s = tostring(v[i])
            if bad_header(name, s) then error(("bad response header %q"):format(tostring(name)), 0) end
            n = n + 1
            out[n] = name .. ": " .. s .. "\r\n"
          end
        else
          local s = tostring(v)
          if bad_header(name, s) then error(("bad response header %q"):format(tostring(name)), 0) end
          n = n + 1
          out[n] = name .. ": " .. s .. "\r\n"
        end
      end
    end
  end
  if ctype and not have_ctype then n = n + 1; out[n] = "content-type: " .. ctype .. "\r\n" end
  if not have_date then n = n + 1; out[n] = date_header() end
  n = n + 1
  out[n] = framing
  if close then n = n + 1; out[n] = "connection: close\r\n" end
  n = n + 1
  out[n] = "\r\n"
  return concat(out), close
end

local function log(srv, msg)
  io.stderr:write(("http.serve %s: %s\n"):format(srv.url, msg))
end

local function send_all(c, data)
  local ok, err = send(c.sock, data)
  if not ok then return nil, err end
  return true
end

-- Sends size bytes of the open file fh from offset off: spliced by the
-- kernel (P.send_file) on plain TCP and kTLS TX, else (userspace TLS, or a
-- file the kernel will not splice) read and sent in pieces from where the
-- splice stopped. true, or nil, err (the connection must close).
local send_file, PIECE = P.send_file, 64 * 1024
local function send_file_body(c, fh, off, size)
  -- The head went out with a send that does not wait (plain TCP): an empty
  -- send waits behind it, so the splice, which needs the write slot, goes
  -- after the head and never finds it busy.
  local fok, ferr = c.sock:send("")
  if not fok then return nil, ferr end
  local ok, err, sent = send_file(c.sock, fh, off, size)
  if ok then return true end
  if ok == nil then return nil, err end
  off, size = off + err, size - err            -- false, bytes already spliced
  while size > 0 do
    local piece, e = fh:pread(off, size < PIECE and size or PIECE)
    if not piece then return nil, mkerror { kind = "io", phase = "send", message = e } end
    if piece == "" then
      return nil, mkerror { kind = "protocol", phase = "send",
        message = ("the file ended %d bytes before the length announced"):format(size) }
    end
    off, size = off + #piece, size - #piece
    local sok, serr = send_all(c, piece)
    if not sok then return nil, serr end
  end
  return true
end

-- Opens an http.file body: the open file and the length to send, or nil,
-- the status to answer instead (404 for a missing file, 403 when not
-- readable, 500 otherwise) and why.
local ENOENT, EACCES, ENOTDIR, EISDIR = 2, 13, 20, 21
local function open_file(f)
  local fh, size, errno = P.file_open(f.path)
  if not fh then
    local status = (errno == ENOENT or errno == ENOTDIR) and 404 or (errno == EACCES or errno == EISDIR) and 403 or 500
    return nil, status, size
  end
  if f.offset > size then
    fh:close()
    return nil, 416, ("offset %d is past the end of %s (%d bytes)"):format(f.offset, f.path, size)
  end
  local len = size - f.offset
  if f.length and f.length < len then len = f.length end
  return fh, len
end

-- Writes the handler's response. Returns true (the connection may go on
-- if keep), or nil, err when the connection must close.
local function respond(c, req, status, hdrs, body, keep)
  local srv = c.srv
  if type(status) ~= "number" or status < 100 or status > 999 or status % 1 ~= 0 then
    error(("the handler returned %s as the status: a number from 100 to 999 expected"):format(tostring(status)), 0)
  end
  if hdrs ~= nil and type(hdrs) ~= "table" then
    error("the handler's headers must be a table (got " .. type(hdrs) .. ")", 0)
  end
  local head_only = req.method == "HEAD"
  local no_body = status == 204 or status == 304 or status < 200
  local close = not keep
  local tb, ctype = type(body), nil
  settimeout(c.sock, srv.send_timeout)
  if tb == "table" and getmetatable(body) ~= File then
    local text, err = json.encode(body)
    if not text then error("the handler's table body cannot be sent as JSON: " .. tostring(err and err.message or err), 0) end
    body, tb, ctype = text, "string", "application/json"
  end
  if body == nil or no_body then
    local head
    head, close = build_head(status, hdrs, no_body and "" or "content-length: 0\r\n", close)
    local ok, err = send_all(c, head)
    return ok and not close, err
  elseif tb == "string" then
    local head
    head, close = build_head(status, hdrs, "content-length: " .. #body .. "\r\n", close, ctype)
    local ok, err = send_all(c, head_only and head or head .. body)
    return ok and not close, err
  elseif tb == "function" then
    -- Chunked for HTTP/1.1; an HTTP/1.0 client reads until the close.
    local chunked = req.version == "1.1"
    local head
    head, close = build_head(status, hdrs, chunked and "transfer-encoding: chunked\r\n" or "", close or not chunked)
    local ok, err = send_all(c, head)
    if not ok or head_only then return ok and not close, err end
    while true do
      local piece = body()
      if piece == nil then break end
      if type(piece) ~= "string" then error("the body function returned a " .. type(piece) .. ", not a string", 0) end
      if #piece > 0 then
        ok, err = send_all(c, chunked and format("%x\r\n%s\r\n", #piece, piece) or piece)
        if not ok then return nil, err end
      end
    end
    if chunked then
      ok, err = send_all(c, "0\r\n\r\n")
      if not ok then return nil, err end
    end
    return not close
  elseif tb == "table" then       -- http.file
    local fh, size, why = open_file(body)
    if not fh then
      -- The file cannot be served: its status instead of the handler's.
      local text = (REASONS[size] or "Error") .. "\n"
      local head
      head, close = build_head(size, nil, "content-length: " .. #text .. "\r\n", close, "text/plain")
      if size == 500 then log(srv, ("%s %s: http.file: %s"):format(req.method, req.target, tostring(why))) end
      local ok, err = send_all(c, head_only and head or head .. text)
      return ok and not close, err
    end
    local head
    head, close = build_head(status, hdrs, "content-length: " .. size .. "\r\n", close, "application/octet-stream")
    local ok, err = send_all(c, head)
    if ok and not head_only and size > 0 then ok, err = send_file_body(c, fh, body.offset, size) end
    fh:close()
    if not ok then return nil, err end
    return not close
  end
  error("the handler's body must be a string, nil, a table, a function or http.file(...) (got " .. tb .. ")", 0)
end

-- ---- ws.upgrade: the server side of a WebSocket ----

local WS_OPTIONS = { protocols = true, compress = true, max_message = true, ping_interval = true,
  send_timeout = true, headers = true }

local function has_token(value, token)
  if type(value) ~= "string" then return false end
  for part in value:gmatch("[^,]+") do
    if lower(part:match("^%s*(.-)%s*$")) == token then return true end
  end
  return false
end

-- The client's permessage-deflate offer: the response's parameters and the
-- window/takeover settings, or nil when there is no usable offer.
local function negotiate_pmd(offers)
  if type(offers) ~= "string" then return nil end
  for offer in offers:gmatch("[^,]+") do
    local name, params = offer:match("^%s*([%w%-]+)%s*(.*)$")
    if name == "permessage-deflate" then
      local p, ok, resp = { sb = 15, cb = 15 }, true, { "permessage-deflate" }
      for param in params:gmatch(";%s*([^;]+)") do
        local k, v = param:match("^([%w_]+)%s*=?%s*\"?([^\"]*)\"?%s*$")
        local bits = tonumber(v)
        if k == "server_no_context_takeover" and v == "" then p.snc = true; resp[#resp + 1] = k
        elseif k == "client_no_context_takeover" and v == "" then p.cnc = true; resp[#resp + 1] = k
        elseif k == "server_max_window_bits" and bits and bits >= 8 and bits <= 15 then
          p.sb = bits; resp[#resp + 1] = k .. "=" .. bits
        elseif k == "client_max_window_bits" and (v == "" or (bits and bits >= 8 and bits <= 15)) then
          -- the client may use a smaller window; the server keeps 15 for inflating
        else ok = false end
      end
      if ok then return p, concat(resp, "; ") end
    end
  end
  return nil
end

function P.ws_upgrade(req, opts)
  local W = P.ws
  opts = opts or {}
  if type(opts) ~= "table" then error("ws.upgrade: opts must be a table", 3) end
  P.check_options(opts, "ws.upgrade", WS_OPTIONS, 4)
  local c = conn_of[req]
  if not c then error("ws.upgrade: not a request of http.serve", 3) end
  if c.taken then error("ws.upgrade: this request was already upgraded", 3) end
  local h = req.headers
  local function refuse(status, why)
    return nil, mkerror { kind = "protocol", phase = "read", status = status,
      message = "ws.upgrade: " .. why }
  end
  if req.method ~= "GET" then return refuse(405, "a WebSocket upgrade must be a GET") end
  if not has_token(h.upgrade, "websocket") then return refuse(426, "no Upgrade: websocket in the request") end
  if not has_token(h.connection, "upgrade") then return refuse(400, "no Connection: Upgrade in the request") end
  if h["sec-websocket-version"] ~= "13" then return refuse(426, "Sec-WebSocket-Version must be 13") end
  local key = h["sec-websocket-key"]
  if not key or #key ~= 24 then return refuse(400, "missing or malformed Sec-WebSocket-Key") end
  local lines = { "HTTP/1.1 101 Switching Protocols", "upgrade: websocket", "connection: Upgrade",
    "sec-websocket-accept: " .. W.C._accept(key) }
  local protocol
  if opts.protocols then
    local wanted = type(opts.protocols) == "string" and { opts.protocols } or opts.protocols
    for offered in (h["sec-websocket-protocol"] or ""):gmatch("[^,%s]+") do
      for _, p in ipairs(wanted) do if p == offered and not protocol then protocol = p end end
    end
    if protocol then lines[#lines + 1] = "sec-websocket-protocol: " .. protocol end
  end
  local pmd, ext
  if opts.compress ~= false then
    pmd, ext = negotiate_pmd(h["sec-websocket-extensions"])
    if ext then lines[#lines + 1] = "sec-websocket-extensions: " .. ext end
  end
  for k, v in pairs(opts.headers or {}) do
    if bad_header(k, tostring(v)) then error("ws.upgrade: bad header " .. tostring(k), 3) end
    lines[#lines + 1] = k .. ": " .. tostring(v)
  end
  c.taken = true
  settimeout(c.sock, c.srv.send_timeout)
  local ok, err = send(c.sock, concat(lines, "\r\n") .. "\r\n\r\n")
  if not ok then return nil, err end
  settimeout(c.sock, false)                    -- messages may be far apart
  local max_message = opts.max_message or 64 * 1024 * 1024
  local send_timeout = opts.send_timeout
  if send_timeout == nil then send_timeout = c.srv.send_timeout end
  local conn = setmetatable({
    sock = c.sock, decoder = W.C._decoder(max_message, true), inbox = lurk.channel(16),
    wlock = lurk.semaphore(1), state = "open", protocol = protocol, extensions = ext,
    tls = req.tls, url = "ws://" .. req.remote .. req.target, send_timeout = send_timeout or nil,
    server = true, remote = req.remote,
    stop = lurk.channel(0),                    -- closed when the connection ends (wakes the pinger)
  }, W.Conn)
  if pmd then
    -- Roles swapped: inflate what the client compressed, deflate with the server's window.
    conn.pmd = W.C._pmd(pmd.cb, pmd.cnc, pmd.sb, pmd.snc, max_message)
    conn.decoder:allow_compressed()
  end
  c.ws = conn
  conn.reader = spawn(W.reader, conn, c.pos <= #c.buf and sub(c.buf, c.pos) or "")
  if opts.ping_interval then
    local interval = opts.ping_interval
    conn.pinger = spawn(function()
      while conn.state == "open" do
        -- Waits on conn.stop, not a sleep: the task ends with the connection.
        local _, err = conn.stop:recv(interval)
        if err.kind ~= "timeout" or conn.state ~= "open" then return end
        if not W.send_frame(conn, "ping", "keepalive") then return end
      end
    end)
  end
  return conn
end


-- The handler's task: runs it, and turns a raise into a 500 with the
-- traceback on stderr.
local function run_handler(srv, req)
  return xpcall(srv.handler, traceback, req)
end


-- Reads one request head: the parser's head results, or nil, status, why
-- (status nil: the connection just ends, quietly).
local function read_head(c, first)
  local srv = c.srv
  local deadline
  c.parser:reset()
  while true do
    if c.pos > #c.buf then
      local timeout
      if deadline then
        timeout = deadline - now()
        if timeout <= 0 then return nil, nil, "header timeout" end
      else
        -- Waiting for a request: idle (keep-alive), or the head's whole time
        -- on a new connection.
        timeout = first and srv.header_timeout or srv.idle_timeout
        c.idle = true
        if srv.closing then return nil end
      end
      local ok, err = fill(c, timeout)
      c.idle = false
      if not ok then
        return nil, nil, err
      end
      deadline = deadline or (now() + srv.header_timeout)
    else
      deadline = deadline or (now() + srv.header_timeout)
    end
    local ev, j, method, target, headers, version, length, chunked = c.parser:feed(c.buf, c.pos)
    if not ev then return nil, method, j end
    c.pos = j
    if ev == "head" then return method, target, headers, version, length, chunked end
  end
end

local function serve_conn(srv, sock)
  local c = { srv = srv, sock = sock, buf = "", pos = 1, idle = false }
  srv.conns[c] = true
  srv.nconns = srv.nconns + 1
  if srv.tls then
    local ok = handshake(sock, srv.header_timeout)
    if not ok then
      srv.conns[c] = nil
      srv.nconns = srv.nconns - 1
      sock_close(sock)
      return
    end
  end
  local tls_info = srv.tls and sock.tls or nil
  local remote = sock_peer(sock)
  c.parser = request_parser(srv.max_head, srv.max_headers)
  local first = true
  while true do
    local method, target, headers, version, length, chunked = read_head(c, first)
    first = false
    if not method then
      if target then refuse(c, target, headers) end
      break
    end
    c.keep_alive, c.upgrade, c.body_done, c.body_read = false, false, false, 0
    if length and length > srv.max_body then
      refuse(c, 413, ("body of %d bytes over max_body (%d)"):format(length, srv.max_body))
      break
    end
    local path, q = target:match("^([^?]*)%??(.*)$")
    local req = setmetatable({
      method = method, target = target, path = path, query = parse_query(q ~= "" and q or nil),
      headers = headers, version = version, remote = remote, tls = tls_info, body = nil,
    }, Request)
    conn_of[req] = c
    c.expect_continue = version == "1.1" and headers.expect and lower(headers.expect) == "100-continue"
      and (chunked or (length and length > 0)) and c.pos > #c.buf
    if not srv.stream then
      local body, err = read_body(c)
      if not body then
        if err.status then refuse(c, err.status, err.message) else sock_close(sock) end
        break
      end
      if length or chunked then req.body = body end
    end
    local t = spawn(run_handler, srv, req)
    local ok, hok, status, hdrs, body = t:join()
    if c.taken then                        -- ws.upgrade took the connection: the handler's return closes it
      if c.ws and c.ws.state == "open" then pcall(c.ws.close, c.ws, 1000) end
      if c.ws then sock_close(sock) end
      break
    end
    if not ok or not hok then
      local why = tostring(ok and status or hok)
      if srv.on_error then pcall(srv.on_error, why, req)
      else log(srv, ("%s %s: the handler failed: %s"):format(method, target, why)) end
      refuse(c, 500)
      break
    end
    -- A streamed body the handler did not finish: read the rest (within
    -- max_body) so the next request starts where it should.
    if not c.body_done then
      local drained = true
      while not c.body_done do
        local piece, err = req:read()
        if err then drained = false; break end
        if not piece then break end
      end
      if not drained then refuse(c, 413); break end
    end
    local keep = c.keep_alive and not srv.closing and not c.upgrade
    local rok, more = pcall(respond, c, req, status, hdrs, body, keep)
    if not rok then
      log(srv, ("%s %s: %s"):format(method, target, tostring(more)))
      refuse(c, 500)
      break
    end
    if not more then break end
  end
  srv.conns[c] = nil
  srv.nconns = srv.nconns - 1
  if not c.taken then sock_close(sock) end
end

-- Connections over max_connections get a 503 and are closed.
local function turn_away(srv, sock)
  local c = { srv = srv, sock = sock }
  refuse(c, 503, "too many connections")
end

local function accept_loop(srv)
  local ln = srv.listener
  while true do
    local sock, err = accept_raw(ln)
    if not sock then
      if srv.closing then break end
      if err.kind == "closed" then break end
      log(srv, "accept failed: " .. tostring(err))
      lurk.sleep(0.05)                     -- EMFILE and friends: let connections finish
    elseif srv.nconns >= srv.max_connections then
      spawn(turn_away, srv, sock)
    else
      spawn(serve_conn, srv, sock)
    end
  end
end

local Server = {}
Server.__index = Server
Server.__tostring = function(s) return ("http.server (%s%s)"):format(s.url, s.closing and ", closed" or "") end

-- srv:close() -> true: stops accepting, closes idle connections, lets the
-- requests in progress finish (their connections close after them).
function Server:close()
  if getmetatable(self) ~= Server then error("use srv:close(), with ':'", 2) end
  if self.closing then return true end
  self.closing = true
  self.listener:close()
  for c in pairs(self.conns) do
    if c.idle then sock_close(c.sock) end
  end
  return true
end

-- srv.connections: how many connections are open.
function Server:connections()
  return self.nconns
end

local function num_opt(opts, name, dflt, min)
  local v = opts[name]
  if v == nil then return dflt end
  if type(v) ~= "number" or not (v >= (min or 0)) or v ~= v then
    raise(("%s must be a number%s (got %s)"):format(name, min and min > 0 and (" of at least " .. min) or " >= 0",
      tostring(v)))
  end
  return v
end

-- http.serve(opts, handler) -> server | nil, err
function M.serve(opts, handler)
  if type(opts) ~= "table" then raise("opts must be a table ({ port = 8080, ... })") end
  if type(handler) ~= "function" then raise("handler must be a function(req) -> status, headers, body") end
  P.check_options(opts, "http.serve", SERVE_OPTIONS, 3)
  local host = opts.host or "127.0.0.1"
  if type(host) ~= "string" then raise("host must be a string") end
  local port = num_opt(opts, "port", 0)
  if port % 1 ~= 0 or port > 65535 then raise("port must be 0-65535 (0: any free port)") end
  local srv = setmetatable({
    handler = handler, host = host, conns = {}, nconns = 0, closing = false,
    header_timeout = num_opt(opts, "header_timeout", 10, 0.001),
    idle_timeout = num_opt(opts, "idle_timeout", 60, 0.001),
    body_timeout = num_opt(opts, "body_timeout", 30, 0.001),
    send_timeout = num_opt(opts, "send_timeout", 30, 0.001),
    max_head = num_opt(opts, "max_head", 64 * 1024, 256),
    max_headers = num_opt(opts, "max_headers", 100, 1),
    max_body = num_opt(opts, "max_body", 8 * 1024 * 1024, 0),
    max_connections = num_opt(opts, "max_connections", 1 / 0, 1),
    stream = opts.stream and true or false,
    on_error = opts.on_error,
    tls = opts.tls and true or false,
  }, Server)
  if opts.stream ~= nil and type(opts.stream) ~= "boolean" then raise("stream must be true or false") end
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then raise("on_error must be a function(msg, req)") end
  local ln, err = tcp.listen(host, port, { backlog = opts.backlog, tls = opts.tls })
  if not ln then return nil, err end
  srv.listener = ln
  srv.port = ln.port
  local h = find(host, ":", 1, true) and ("[" .. host .. "]") or host
  srv.url = (opts.tls and "https://" or "http://") .. h .. ":" .. srv.port
  spawn(accept_loop, srv)
  return srv
end

http.serve = M.serve
http.file = M.file

return M
