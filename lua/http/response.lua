-- http/response.lua - response objects: headers with repeated fields,
-- res:json/expect, and the streamed body (read, chunks, lines, server-sent
-- events, save with progress). A streamed response holds its connection
-- (res._conn) until the body has been read or res:close(); the body comes
-- from the connection's exchange (src/http/exchange.c via conn.x:read).
local P, lurk, tcp, json = ...

local M = {}
local concat, setmetatable, select, tonumber = table.concat, setmetatable, select, tonumber
local mkerror, now = lurk.error, lurk.now
local url_string = P.url.string

-- ---- headers ----

-- Repeated fields keep every value in a side table (most responses have
-- none, so most header tables need nothing else).
local lists = setmetatable({}, { __mode = "k" })
local Headers = {}
Headers.__index = function(h, k)
  if k == "all" then return Headers.all end
  if type(k) == "string" then return rawget(h, k:lower()) end
end
-- headers:all(name) -> every value of a repeated field, in order
function Headers.all(h, name)
  name = name:lower()
  local l = lists[h]
  if l and l[name] then return l[name] end
  local v = rawget(h, name)
  return v and { v } or {}
end

local lower = string.lower

-- ---- responses ----

local Response = {}
Response.__index = Response

function Response:json()
  return json.decode(self.body)
end

-- res:expect(200, 201, ...) -> res | nil, err (kind "status")
function Response:expect(...)
  for i = 1, select("#", ...) do
    if self.status == select(i, ...) then return self end
  end
  return nil, mkerror { kind = "status", phase = "read", url = self.url, status = self.status,
    message = ("unexpected HTTP status %d %s from %s"):format(self.status, self.reason, self.url) }
end

-- A streamed response that still holds its connection says so: it keeps a
-- pool slot until its body is read or it is closed.
-- The reason phrase is the server's: its control characters are shown as
-- \xNN, never sent raw to a terminal.
local function esc_byte(c) return ("\\x%02x"):format(c:byte()) end

function Response:__tostring()
  local reason = self.reason:gsub("%c", esc_byte)
  if self.body then
    return ("HTTP %d %s (%s, %d bytes)"):format(self.status, reason, self.url, #self.body)
  end
  if self._conn then
    return ("HTTP %d %s (%s, streamed, body %s, holding a connection)"):format(self.status, reason, self.url,
      self._started and "partly read" or "unread")
  end
  return ("HTTP %d %s (%s, streamed, body %s)"):format(self.status, reason, self.url,
    self._closed and "closed unread" or "read")
end


-- The response object of a finished or started exchange. Tables made from
-- constant templates, then filled: LuaJIT compiles that to plain stores (a
-- constructor with variable values makes it insert keys, and grow the
-- table, one by one).
function M.new(status, reason, hdrs, repeated, body, u, conn, ct, ttfb)
  setmetatable(hdrs, Headers)
  if repeated then lists[hdrs] = repeated end
  -- Every field a response gets on the usual path is in the template:
  -- one more (attempts) would make every request grow the table.
  local res = setmetatable({ status = 0, reason = "", headers = false, body = false, ok = false, url = false,
    tls = false, timings = false, attempts = 1 }, Response)
  local tm = { dns = 0, connect = 0, tls = 0, ttfb = 0, total = 0 }
  tm.dns, tm.connect, tm.tls, tm.ttfb = ct.dns, ct.connect, ct.tls or 0, ttfb
  res.status, res.reason, res.headers, res.body, res.ok = status, reason, hdrs, body, status < 400
  res.url, res.tls, res.timings = url_string(u), conn.tls or nil, tm
  return res
end


-- Gives the connection back: to the pool if the response ended cleanly.
local function release(res, keep)
  local conn = res._conn
  if not conn then return end
  res._conn = nil
  res._pool:checkin(res._key, conn, keep and not res._no_reuse)
  res.timings.total = now() - res._t0
end


-- ---- streaming ----

-- A failed body read's err, with the URL; a timeout names what timed out
-- (never the errno text of the cancelled read).
local function body_error(res, err, timeout)
  err.url = err.url or res.url
  if err.kind == "timeout" then
    local dl = P.deadline()
    if dl and now() >= dl - 0.001 then
      err.message = ("reading the body of %s timed out: the task's deadline (lurk.timeout) passed"):format(res.url)
    elseif timeout then
      err.message = ("reading the body of %s timed out after %g s without data (read timeout)"):format(res.url, timeout)
    else
      err.message = ("reading the body of %s timed out"):format(res.url)
    end
  end
  return err
end

-- res:read([n]) -> up to n bytes (default: whatever came next) | nil at the
-- end | nil, err
function Response:read(n)
  local pending = self._pending
  if not pending or pending == "" then
    local conn = self._conn
    if not conn then return nil end
    self._started = true
    local timeout = conn.timeout
    local data, keep = conn.x:read(conn.sock)
    if not data then
      release(self, data == false and keep)
      if data == nil then return nil, body_error(self, keep, timeout) end
      return nil
    end
    pending = data
  end
  if n and #pending > n then
    self._pending = pending:sub(n + 1)
    return pending:sub(1, n)
  end
  self._pending = nil
  return pending
end

local function raising(res, data, err)
  if data == nil and err ~= nil then error(err, 0) end
  return data
end

-- for chunk in res:chunks() do ... end (a failure raises its err)
function Response:chunks()
  return function() return raising(self, self:read()) end
end

-- for line in res:lines() do ... end: lines without "\n" or "\r\n"
function Response:lines()
  return P.line_iter(function() return self:read() end)
end

-- for ev in res:events() do print(ev.event, ev.data, ev.id) end
-- Server-sent events (the WHATWG EventSource format): "data" lines of one
-- event are joined with "\n"; "event" defaults to "message"; comments and
-- events without data are skipped; "retry" is a number.
function Response:events()
  local lines = self:lines()
  return function()
    local ev, data = {}, nil
    for line in lines do
      if line == "" then
        if data then
          ev.data = data
          ev.event = ev.event or "message"
          return ev
        end
        ev = {}
      elseif line:sub(1, 1) ~= ":" then
        local field, value = line:match("^([^:]*):? ?(.*)$")
        if field == "data" then
          data = data and (data .. "\n" .. value) or value
        elseif field == "event" then
          ev.event = value
        elseif field == "id" then
          ev.id = value
        elseif field == "retry" and value:match("^%d+$") then
          ev.retry = tonumber(value)
        end
      end
    end
    if data then
      ev.data, ev.event = data, ev.event or "message"
      return ev
    end
  end
end

-- res:save(path [, progress]) -> bytes written | nil, err. Writes go
-- through the ring (P.open_write), so other tasks run meanwhile.
-- progress(done, total_or_nil) is called after each write.
function Response:save(path, progress)
  local f, ferr = P.open_write(path)
  if not f then
    ferr.url = self.url
    self:close()
    return nil, ferr
  end
  local total = tonumber(self.headers["content-length"])
  if self._decoded then total = nil end   -- Content-Length counts encoded bytes
  return M.write_body(self, f, 0, total, progress)
end

-- Writes the rest of res's body to the open file f, counting from done
-- bytes (a resumed download's part) of total: bytes written in all, or
-- nil, err (err.url set; a disk error is kind io). f is closed either way.
function M.write_body(res, f, done, total, progress)
  while true do
    local data, err = res:read()
    if not data then
      f:close()
      if err then return nil, err end
      return done
    end
    local ok, werr = f:write(data)
    if not ok then
      f:close()
      res:close()
      werr.url = res.url
      return nil, werr
    end
    done = done + #data
    if progress then progress(done, total) end
  end
end

-- A progress line on a terminal: bytes, rate, ETA; at most 10 updates/s.
function M.progress_bar(out)
  local t0, last = now(), 0
  local function size(b)
    if b >= 2^30 then return ("%.1f GiB"):format(b / 2^30) end
    if b >= 2^20 then return ("%.1f MiB"):format(b / 2^20) end
    return ("%.0f KiB"):format(b / 1024)
  end
  return function(done, total, final)
    local t = now()
    if not final and t - last < 0.1 then return end
    last = t
    local rate = done / math.max(t - t0, 1e-3)
    local line = size(done)
    if total then
      local eta = rate > 0 and (total - done) / rate or 0
      line = ("%s / %s (%3d%%)  %s/s  ETA %ds"):format(size(done), size(total), math.floor(done * 100 / total),
        size(rate), math.ceil(eta))
    else
      line = ("%s  %s/s"):format(line, size(rate))
    end
    out:write("\r\27[K", line, final and "\n" or "")
    out:flush()
  end
end

-- res:close(): stop reading; the connection is closed, not reused.
function Response:close()
  if self._conn then self._closed = true end
  release(self, false)
  return true
end

-- Reads the whole body into res.body.
function M.buffer(res)
  if res.body then return res end   -- read whole already
  local parts = {}
  while true do
    local data, err = res:read()
    if not data then
      if err then return nil, err end
      break
    end
    parts[#parts + 1] = data
  end
  res.body = concat(parts)
  return res
end
M.Headers, M.Response, M.lists = Headers, Response, lists

return M
