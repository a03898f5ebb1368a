-- Hostile peers (stalling, dripping, flooding, lying about lengths, breaking off): each request ends with the right err.kind within its deadline and in bounded memory, while another task runs on undisturbed.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
t.server("hostile.py", dir)
local P = dofile(dir .. "/hostile.lua")
local tls = { cafile = dir .. "/ca.pem" }
local plain, secure = "http://127.0.0.1:" .. P.http, "https://localhost:" .. P.https
local wsplain, wssecure = "ws://127.0.0.1:" .. P.http, "wss://localhost:" .. P.https
local SLACK = 1                     -- how late a deadline may fire on a loaded machine
local MiB = 1024 * 1024

-- ---- measuring ----

local function status_kib(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

-- The peak RSS of one case: writing 5 to clear_refs resets VmHWM to the
-- current RSS (Linux 4.0), so VmHWM afterwards is the case's own peak.
local function reset_peak()
  local f = io.open("/proc/self/clear_refs", "w")
  if not f then return false end
  f:write("5")
  f:close()
  return true
end

-- Counted by a child writing to a file (os.execute): a pipe to it (io.popen)
-- would itself be counted, and racily.
local fd_list = os.tmpname()
local function open_fds()
  os.execute("ls /proc/" .. status_kib("Pid") .. "/fd > " .. fd_list)
  local n = 0
  for _ in io.lines(fd_list) do n = n + 1 end
  return n
end

local function full_gc()
  collectgarbage()
  collectgarbage()
end

-- ---- the bystander ----

-- A task that ticks every 10 ms for the whole test: the largest gap between
-- two ticks shows whether any hostile peer ever held up the loop.
local ticks, max_gap, ticking = 0, 0, true
local ticker = lurk.spawn(function()
  local last = lurk.now()
  while ticking do
    lurk.sleep(0.01)
    local now = lurk.now()
    ticks = ticks + 1
    if now - last > max_gap then max_gap = now - last end
    last = now
  end
end)

-- Warm up (first TLS context, first parser) before taking the baselines,
-- without leaving a pooled connection behind.
t.ok(http.get(secure .. "/nothing", { tls = tls, headers = { Connection = "close" } }))
t.ok(http.get(plain .. "/nothing", { headers = { Connection = "close" } }))
lurk.sleep(0.1)
full_gc()
local base_rss, base_lua, base_fds = status_kib("VmRSS"), collectgarbage("count"), open_fds()
local t_start = lurk.now()

-- case{ name, kind, fn, within = s, at_least = s, budget = MiB }: fn() returns
-- nil, err with err.kind == kind, no earlier than at_least (a deadline that
-- must not fire early) and no later than within (+ SLACK), and the case's
-- peak RSS grows by less than budget.
local function case(c)
  local peak_known = reset_peak()
  local rss0 = status_kib("VmRSS")
  local t0 = lurk.now()
  local v, err = c.fn()
  local took = lurk.now() - t0
  local grew = (peak_known and status_kib("VmHWM") or status_kib("VmRSS")) - rss0
  t.fails(c.kind, v, err, c.name)
  t.ok(took <= c.within + SLACK, ("%s: ended after %.2f s, expected within %g s"):format(c.name, took, c.within))
  if c.at_least then
    t.ok(took >= c.at_least - 0.01, ("%s: ended after %.2f s, before its deadline %g s"):format(c.name, took, c.at_least))
  end
  t.ok(grew < (c.budget or 8) * 1024, ("%s: peak RSS grew by %d KiB"):format(c.name, grew))
  print(("  %-44s %-9s %5.2f s  peak +%5d KiB  %s"):format(c.name, err.kind, took, grew, err.message))
  return err
end

-- ---- peers that accept and never answer ----

-- A TCP peer that accepts, reads the request and is silent.
case { name = "HTTP to a silent peer", kind = "timeout", within = 1, at_least = 1,
  fn = function() return http.get("http://127.0.0.1:" .. P.silent .. "/", { timeout = 1 }) end }
-- The same peer never answers a ClientHello.
case { name = "HTTPS handshake to a silent peer", kind = "timeout", within = 1, at_least = 1,
  fn = function() return http.get("https://localhost:" .. P.silent .. "/", { timeout = 1, tls = tls }) end }
local err = case { name = "TLS connect to a silent peer", kind = "timeout", within = 0.5, at_least = 0.5,
  fn = function() return tcp.connect("localhost", P.silent, { timeout = 0.5, tls = tls }) end }
t.eq(err.phase, "tls")
case { name = "wss handshake to a silent peer", kind = "timeout", within = 1, at_least = 1,
  fn = function() return ws.connect("wss://localhost:" .. P.silent .. "/", { timeout = 1, tls = tls }) end }
-- A completed TLS handshake, then silence.
case { name = "HTTPS request never answered", kind = "timeout", within = 1, at_least = 1,
  fn = function() return http.get(secure .. "/silent", { timeout = 1, tls = tls }) end }
-- A WebSocket that opens and then says nothing: receive's own timeout, and
-- the connection stays usable.
local silent_ws = t.ok(ws.connect(wsplain .. "/ws/silent"))
case { name = "WebSocket receive from a silent server", kind = "timeout", within = 0.3, at_least = 0.3,
  fn = function() return silent_ws:receive(0.3) end }
t.ok(silent_ws:send("still open"))
-- Its close handshake waits for an answer that never comes (5 s at most):
-- let that run alongside everything else.
local closer = lurk.spawn(function() return silent_ws:close() end)

-- A server that stops reading: sends fill TCP's buffers, and send_timeout
-- ends the send (and the connection, whose stream a cut frame put out of step).
do
  local c = t.ok(ws.connect(wsplain .. "/ws/noread", { send_timeout = 0.5, compress = false }))
  local big = ("n"):rep(1024 * 1024)
  local t0, ok, err = lurk.now(), true, nil
  for _ = 1, 64 do
    ok, err = c:send(big)
    if not ok then break end
  end
  t.fails("timeout", ok, err, "a send to a server that does not read")
  t.eq(err.phase, "send")
  t.ok(lurk.now() - t0 < 5, "the send gave up within its timeout: " .. (lurk.now() - t0))
  local ok2, err2 = c:send("after")
  t.fails("timeout", ok2, err2, "the connection is over: later sends get the same error")
  t.raises("send_timeout must be", ws.connect, wsplain .. "/ws/noread", { send_timeout = -1 })
end

-- ---- peers that drip ----

-- One byte per second: every read succeeds within any per-read timeout, so
-- only the total deadline can end the request.
case { name = "HTTP response at one byte per second", kind = "timeout", within = 2.5, at_least = 2.5,
  fn = function() return http.get(plain .. "/drip", { timeout = 2.5 }) end }
case { name = "HTTP drip, stream = true", kind = "timeout", within = 2.5, at_least = 2.5,
  fn = function() return http.get(plain .. "/drip", { timeout = 2.5, stream = true }) end }
-- A TLS handshake whose server flight comes one byte per 0.25 s.
case { name = "TLS handshake at 4 bytes per second", kind = "timeout", within = 1.5, at_least = 1.5,
  fn = function() return http.get("https://localhost:" .. P.tls_drip .. "/", { timeout = 1.5, tls = tls }) end }
case { name = "WebSocket 101 answer at 4 bytes per second", kind = "timeout", within = 1.5, at_least = 1.5,
  fn = function() return ws.connect(wsplain .. "/ws/drip", { timeout = 1.5 }) end }

-- ---- peers that never stop sending a head ----

for _, base in ipairs { plain, secure } do
  local scheme = base:match("^%a+")
  for _, p in ipairs { { "/headers", "too many response headers" }, { "/longheader", "response head too large" },
                       { "/status", "response head too large" }, { "/trailers", "trailers too large" } } do
    local e = case { name = scheme .. " endless " .. p[1]:sub(2), kind = "limit", within = 2, budget = 4,
      fn = function() return http.get(base .. p[1], { timeout = 10, tls = tls }) end }
    t.ok(e.message:find(p[2], 1, true), e.message)
  end
end
case { name = "WebSocket 101 with endless headers", kind = "limit", within = 2, budget = 4,
  fn = function() return ws.connect(wsplain .. "/ws/headers", { timeout = 10 }) end }
case { name = "wss 101 with endless headers", kind = "limit", within = 2, budget = 4,
  fn = function() return ws.connect(wssecure .. "/ws/headers", { timeout = 10, tls = tls }) end }
-- Endless "100 Continue": each interim head is small and discarded, but
-- more than 16 of them end the request, even with no deadline at all.
case { name = "endless 100 Continue", kind = "limit", within = 0.5, budget = 4,
  fn = function() return http.get(plain .. "/interim", { timeout = false }) end }

-- ---- peers that never stop sending a body ----

for _, base in ipairs { plain, secure } do
  local scheme = base:match("^%a+")
  case { name = scheme .. " endless chunked body, max_body 1 MiB", kind = "limit", within = 3, budget = 8,
    fn = function() return http.get(base .. "/chunked", { timeout = 10, max_body = MiB, tls = tls }) end }
  case { name = scheme .. " Content-Length 10^15, max_body 1 MiB", kind = "limit", within = 3, budget = 8,
    fn = function() return http.get(base .. "/biglength", { timeout = 10, max_body = MiB, tls = tls }) end }
  -- A chunk header whose extension never ends: no body byte ever comes, so
  -- without a bound a streaming read would never return.
  local e = case { name = scheme .. " endless chunk extension", kind = "limit", within = 2, budget = 4,
    fn = function() return http.get(base .. "/chunkext", { timeout = 10, tls = tls }) end }
  t.ok(e.message:find("chunk extensions too large", 1, true), e.message)
end
case { name = "endless chunk extension, stream = true", kind = "limit", within = 2, budget = 4,
  fn = function()
    local res, e = http.get(plain .. "/chunkext", { stream = true, timeout = 10 })
    if not res then return nil, e end
    return res:read()
  end }

-- Streaming the endless body: all of the default max_body (64 MiB) passes
-- through, none of it is kept.
local streamed = 0
case { name = "endless chunked body streamed to max_body", kind = "limit", within = 20, budget = 16,
  fn = function()
    local res, e = http.get(plain .. "/chunked", { stream = true, timeout = 10 })
    if not res then return nil, e end
    while true do
      local data, rerr = res:read()
      if not data then return nil, rerr end
      streamed = streamed + #data
    end
  end }
t.ok(streamed >= 64 * MiB - 65536, ("streamed %d bytes before the limit"):format(streamed))

-- A reader that stops reading: TCP flow control stops the server, and
-- nothing piles up in lurk while the script dawdles.
do
  local res = t.ok(http.get(plain .. "/chunked", { stream = true, max_body = 1e12 }))
  for _ = 1, 64 do t.ok(res:read()) end                  -- about 4 MiB
  local peak_known = reset_peak()
  local rss0 = status_kib("VmRSS")
  t.ok(lurk.sleep(0.5))
  t.ok(res:read(100))
  local grew = status_kib(peak_known and "VmHWM" or "VmRSS") - rss0
  t.ok(grew < 4 * 1024, ("a paused stream grew by %d KiB"):format(grew))
  print(("  %-44s %-9s %5.2f s  peak +%5d KiB"):format("a paused stream of an endless body", "-", 0.5, grew))
  res:close()
end

-- ---- WebSocket frames that lie about their length ----

local function first_message(url, opts)
  local c, e = ws.connect(url, opts)
  if not c then return nil, e end
  local data, rerr = c:receive(5)
  c:close()
  return data, rerr
end
for _, l in ipairs {
  { "2^63", "9223372036854775808", 1002 }, { "2^64-1", "18446744073709551615", 1002 },
  { "2^63-1", "9223372036854775807", 1009 }, { "max_message+1", "65537", 1009 },
} do
  local e = case { name = "WebSocket frame claiming " .. l[1] .. " bytes", kind = "protocol", within = 1, budget = 4,
    fn = function() return first_message(wsplain .. "/ws/len/" .. l[2], { max_message = 65536 }) end }
  t.eq(e.code, l[3], l[1])
end
local e = case { name = "wss frame claiming 2^63 bytes", kind = "protocol", within = 1, budget = 4,
  fn = function() return first_message(wssecure .. "/ws/len/9223372036854775808", { tls = tls }) end }
t.eq(e.code, 1002)
-- Fragments that never end: the message limit counts every fragment.
e = case { name = "WebSocket message in endless fragments", kind = "protocol", within = 2, budget = 8,
  fn = function() return first_message(wsplain .. "/ws/frags", { max_message = MiB }) end }
t.eq(e.code, 1009)
t.ok(e.message:find("message too large", 1, true), e.message)

-- ---- peers that break off ----

e = case { name = "TLS handshake reset after half a record", kind = "closed", within = 1,
  fn = function() return tcp.connect("localhost", P.tls_reset, { timeout = 5, tls = tls }) end }
t.eq(e.phase, "tls"); t.eq(e.name, "ECONNRESET")
case { name = "HTTPS: handshake reset", kind = "closed", within = 1,
  fn = function() return http.get("https://localhost:" .. P.tls_reset .. "/", { timeout = 5, tls = tls }) end }
case { name = "HTTP response head cut by a reset", kind = "closed", within = 1,
  fn = function() return http.get(plain .. "/reset", { timeout = 5 }) end }
case { name = "HTTPS response head cut by a reset", kind = "closed", within = 1,
  fn = function() return http.get(secure .. "/reset", { timeout = 5, tls = tls }) end }
for _, base in ipairs { wsplain, wssecure } do
  e = case { name = base:match("^%a+") .. " upgrade answer cut by a reset", kind = "closed", within = 1,
    fn = function() return ws.connect(base .. "/ws/reset", { timeout = 5, tls = tls }) end }
  t.eq(e.name, "ECONNRESET")
end

-- ---- TLS alerts ----

-- A fatal handshake_failure alert in answer to the ClientHello.
e = case { name = "TLS alert during the handshake", kind = "tls", within = 1,
  fn = function() return tcp.connect("localhost", P.tls_alert, { timeout = 5, tls = tls }) end }
t.ok(e.message:find("alert", 1, true), e.message); t.eq(e.phase, "tls")
-- A fatal alert (bad_record_mac, encrypted like any record) after part of a
-- response: the data before it arrives, then the read fails; never a clean end.
case { name = "TLS alert mid-body", kind = "tls", within = 1,
  fn = function() return http.get("https://localhost:" .. P.tls_midalert .. "/", { timeout = 5, tls = tls }) end }
do
  local res = t.ok(http.get("https://localhost:" .. P.tls_midalert .. "/", { stream = true, timeout = 5, tls = tls }))
  t.eq(res.status, 200)
  t.eq(#t.ok(res:read()), 1000, "the bytes before the alert")
  local data, rerr = res:read()
  t.fails("tls", data, rerr)
  t.ok(rerr.message:find("alert", 1, true), rerr.message)
end

-- ---- all at once ----

-- Every slow peer at the same time: each has its own deadline, so together
-- they take as long as one.
do
  local slow = {
    function() return http.get("http://127.0.0.1:" .. P.silent .. "/", { timeout = 1 }) end,
    function() return http.get("https://localhost:" .. P.silent .. "/", { timeout = 1, tls = tls }) end,
    function() return http.get(plain .. "/drip", { timeout = 1 }) end,
    function() return http.get(secure .. "/drip", { timeout = 1, tls = tls }) end,
    function() return http.get("https://localhost:" .. P.tls_drip .. "/", { timeout = 1, tls = tls }) end,
    function() return ws.connect(wsplain .. "/ws/drip", { timeout = 1 }) end,
    function() return ws.connect(wssecure .. "/ws/drip", { timeout = 1, tls = tls }) end,
  }
  local kinds = {}
  local t0 = lurk.now()
  t.ok(lurk.map(slow, function(fn)
    local v, e2 = fn()
    kinds[#kinds + 1] = v == nil and e2.kind or "success"
  end, { concurrency = #slow }))
  local took = lurk.now() - t0
  t.eq(table.concat(kinds, " "), ("timeout "):rep(#slow):sub(1, -2))
  t.ok(took >= 1 - 0.01 and took <= 1 + SLACK, ("%d slow peers at once took %.2f s"):format(#slow, took))
  print(("  %-44s %-9s %5.2f s"):format(#slow .. " slow peers at once", "timeout", took))
end

-- ---- afterwards ----

t.ok(closer:join())                  -- the silent WebSocket's close gave up after 5 s
ticking = false
t.ok(ticker:join())
local elapsed = lurk.now() - t_start
lurk.sleep(0.1)                      -- the last sockets' close completions
full_gc()
local lua_grew = collectgarbage("count") - base_lua
local rss_grew = status_kib("VmRSS") - base_rss
local fds = open_fds()
print(("  bystander: %d ticks in %.1f s, longest gap %.3f s; Lua heap %+d KiB, RSS %+d KiB, fds %d -> %d")
  :format(ticks, elapsed, max_gap, lua_grew, rss_grew, base_fds, fds))
t.ok(max_gap < SLACK / 2, ("the bystander task stalled for %.3f s"):format(max_gap))
t.ok(ticks > elapsed / 0.01 * 0.5, ("the bystander ticked %d times in %.1f s"):format(ticks, elapsed))
t.ok(lua_grew < 1024, ("the Lua heap grew by %d KiB"):format(lua_grew))
t.ok(rss_grew < 64 * 1024, ("RSS grew by %d KiB"):format(rss_grew))
if fds ~= base_fds then os.execute("ls -l /proc/" .. status_kib("Pid") .. "/fd >&2") end
t.eq(fds, base_fds, "every connection's descriptor is closed")

os.remove(fd_list)
t.done()
