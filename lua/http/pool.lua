-- http/pool.lua - the connection pool of the http module: connections kept
-- per (scheme, host, port, TLS options, proxy), opened when none is idle,
-- at most max_per_host at once per key.
--
-- A connection is one record: its socket, its response parser (the
-- exchange, reset for each response, so a request allocates none), its read
-- timeout as last set, its TLS facts (asked of the socket once) and when it
-- went idle.
local P, lurk, tcp = ...

local M = {}
local concat, sort, pairs, type, tostring = table.concat, table.sort, pairs, type, tostring
local now, mkerror = lurk.now, lurk.error
local origin = P.url.origin
local proxy_error, tunnel = P.proxy.error, P.proxy.tunnel
local idle_ok = P.idle_ok

local IDLE_TIMEOUT = 30

local Pool = {}
Pool.__index = Pool

function M.new(max_per_host)
  -- idle[key]: connections ready for reuse.
  -- busy[key]: connections checked out (what a waiter is told it waits behind).
  return setmetatable({ idle = {}, sems = {}, busy = {}, max = max_per_host or 16 }, Pool)
end

local function tls_key(tls)
  if tls == nil then return "" end
  if type(tls) ~= "table" then return tostring(tls) end
  local keys = {}
  for k, v in pairs(tls) do
    if type(v) == "table" then v = "{" .. concat(v, ",") .. "}" end
    keys[#keys + 1] = tostring(k) .. "=" .. tostring(v)
  end
  sort(keys)
  return concat(keys, ",")
end

-- Opens a connection to u (through the proxy opts.proxy_url, if any).
local function open(u, opts)
  local pu = opts.proxy_url
  local tls = nil
  if u.scheme == "https" then
    tls = {}
    if type(opts.tls) == "table" then for k, v in pairs(opts.tls) do tls[k] = v end end
    if tls.alpn == nil then tls.alpn = "http/1.1" end
  end
  if not pu then return tcp.connect(u.host, u.port, { timeout = opts.connect_timeout, tls = tls }) end
  local sock, err = tcp.connect(pu.host, pu.port, { timeout = opts.connect_timeout })
  if not sock then
    return nil, proxy_error(("cannot reach the proxy %s:%d: %s"):format(pu.host, pu.port, err.message), err)
  end
  if tls or pu.socks then
    -- A tunnel, except for plain HTTP through an HTTP proxy (absolute form).
    local ok, terr = tunnel(sock, u, pu, tls, opts.connect_timeout)
    if not ok then
      sock:close()
      return nil, terr
    end
  end
  return sock
end

-- pool:checkout(u, opts, t) -> conn, key, reused | nil, err. t: the time now.
-- An idle connection is taken only if nothing came on it while it was idle
-- (P.idle_ok): a stray response, or the server's close.
function Pool:checkout(u, opts, t)
  local pu = opts.proxy_url
  local key = origin(u)
  if opts.tls ~= nil then key = key .. "|" .. tls_key(opts.tls) end
  if pu then key = key .. "|via " .. origin(pu) end
  local sem = self.sems[key]
  if not sem then
    sem = lurk.semaphore(self.max)
    self.sems[key] = sem
  end
  local ok, err = sem:acquire()
  if not ok then
    if err.kind == "timeout" then
      -- Out of time behind max_per_host busy connections: say so, not just "timed out".
      local host = u.host:find(":", 1, true) and ("[" .. u.host .. "]") or u.host
      err = mkerror { kind = "timeout", phase = "pool", retryable = true,
        message = ("timed out waiting for a connection to %s:%d (%d in use, max_per_host = %d)"):format(host, u.port,
          self.busy[key] or 0, self.max) }
    end
    return nil, err
  end
  self.busy[key] = (self.busy[key] or 0) + 1
  local idle = self.idle[key]
  local n = idle and #idle or 0
  while n > 0 do
    local conn = idle[n]
    idle[n] = nil
    n = n - 1
    if t - conn.since < IDLE_TIMEOUT and idle_ok(conn.sock) then return conn, key, true end
    conn.sock:close()
  end
  local sock, cerr = open(u, opts)
  if not sock then
    self.busy[key] = self.busy[key] - 1
    sem:release()
    return nil, cerr
  end
  local conn = { sock = sock, x = P.parser(false), timeout = false, tls = false, since = 0,
                 timings = sock.timings }
  local info = sock.tls
  if info then conn.tls = info end
  return conn, key, false
end

-- Gives conn back: kept for reuse, or closed. t: the time now, if known.
function Pool:checkin(key, conn, reusable, t)
  if reusable then
    local idle = self.idle[key]
    if not idle then idle = {}; self.idle[key] = idle end
    idle[#idle + 1] = conn
    conn.since = t or now()
  else
    conn.sock:close()
  end
  self.busy[key] = self.busy[key] - 1
  self.sems[key]:release()
end

function Pool:close()
  for _, idle in pairs(self.idle) do
    for _, conn in pairs(idle) do conn.sock:close() end
  end
  self.idle = {}
end

return M
