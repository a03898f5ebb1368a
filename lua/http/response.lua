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

function Response:__tostring()
  return ("HTTP %d %s (%s, %d bytes)"):format(self.status, self.reason, self.url, #(self.body or ""))
end


-- The response object of a finished or started exchange. Tables made from
-- constant templates, then filled: LuaJIT compiles that to plain stores (a
-- constructor with variable values makes it insert keys, and grow the
-- table, one by one).
function M.new(status, reason, hdrs, repeated, body, u, conn, ct, ttfb)
  setmetatable(hdrs, Headers)
  if repeated then lists[hdrs] = repeated end
  local res = setmetatable({ status = 0, reason = "", headers = false, body = false, ok = false, url = false,
    tls = false, timings = false }, Response)
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

-- res:read([n]) -> up to n bytes (default: whatever came next) | nil at the
-- end | nil, err
function Response:read(n)
  local pending = self._pending
  if not pending or pending == "" then
    local conn = self._conn
    if not conn then return nil end
    local data, keep = conn.x:read(conn.sock)
    if not data then
      release(self, data == false and keep)
      if data == nil then return nil, keep end
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
  if not f then return nil, ferr end
  local n = 0
  local total = tonumber(self.headers["content-length"])
  if self._decoded then total = nil end   -- Content-Length counts encoded bytes
  while true do
    local data, err = self:read()
    if not data then
      f:close()
      if err then return nil, err end
      return n
    end
    local ok, werr = f:write(data)
    if not ok then
      f:close()
      self:close()
      return nil, werr
    end
    n = n + #data
    if progress then progress(n, total) end
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
