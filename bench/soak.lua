-- Soak: many HTTPS requests and WebSocket connect/echo/close cycles against
-- local servers, sampling this process's RSS, Lua heap and open descriptors
-- as it goes. Memory and descriptors must stay flat: RSS at the end within
-- max(2 MiB, 5%) of RSS at the 10% mark, and the descriptor count back to
-- where it started once the connections are closed. Exits 1 otherwise.
--
-- usage: lurk bench/soak.lua HTTPS_URL CAFILE WS_URL WSS_URL [N_HTTP [N_WS [CONC]]]
--   N_HTTP GETs of HTTPS_URL (default 100000) from CONC tasks (default 32)
--   sharing one client; each task's every 100th request asks for
--   "Connection: close", so handshakes keep happening along the way (nginx
--   also ends a connection after its keepalive_requests).
--   N_WS cycles (default 10000) of connect, echo one message, close, from
--   CONC / 2 tasks, alternating ws:// and wss:// (WS_URL and WSS_URL point at
--   an echo endpoint).
local https_url, cafile, ws_url, wss_url = arg[1], arg[2], arg[3], arg[4]
local n_http, n_ws, conc = tonumber(arg[5]) or 100000, tonumber(arg[6]) or 10000, tonumber(arg[7]) or 32
assert(wss_url, "usage: lurk bench/soak.lua HTTPS_URL CAFILE WS_URL WSS_URL [N_HTTP [N_WS [CONC]]]")
io.stdout:setvbuf("line")
local tls = { cafile = cafile }
local SAMPLES = 20

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end
local pid = slurp("/proc/self/stat"):match("^%d+")
local function rss_kib()
  return tonumber(slurp("/proc/self/status"):match("VmRSS:%s*(%d+)"))
end
-- Open descriptors, listed by a child into a file (a pipe would be counted).
local fd_list = os.tmpname()
local function fds()
  os.execute("ls /proc/" .. pid .. "/fd > " .. fd_list)
  local n = 0
  for _ in io.lines(fd_list) do n = n + 1 end
  return n
end

-- glibc's view of the C heap, through LuaJIT's ffi: bytes in use (what a
-- leak would grow) and malloc_trim(), which hands free heap pages back to
-- the kernel. Absent on other C libraries: then RSS alone is judged.
local glibc
do
  local ok, ffi = pcall(require, "ffi")
  if ok then
    ok = pcall(ffi.cdef, [[
      struct lurk_soak_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks,
                                   uordblks, fordblks, keepcost; };
      struct lurk_soak_mallinfo2 mallinfo2(void);
      int malloc_trim(size_t pad);
    ]])
    if ok and pcall(function() return ffi.C.mallinfo2 end) then glibc = ffi.C end
  end
end
local function heap_kib()             -- malloc'd and not freed, KiB (nil without glibc)
  if not glibc then return nil end
  local m = glibc.mallinfo2()
  return math.floor(tonumber(m.uordblks + m.hblkhd) / 1024)
end

local failed = false

-- Runs n operations from `tasks` tasks (op(i) for i = 1..n), sampling every
-- n / SAMPLES operations: RSS, C heap in use, Lua heap (no collection forced:
-- what the process holds as it runs) and open descriptors. Then prints the
-- samples and judges them:
--   fds      back to the count before the phase once everything is closed;
--   heap     C heap in use plus Lua heap, after closing and a full collection,
--            within 1 MiB of before the phase (what a leak would grow);
--   RSS      the last sample within max(2 MiB, 5%) of the 10% mark. If it is
--            not, malloc_trim(0) gives glibc's free pages back and RSS is
--            measured again: growth that goes away then is memory glibc kept
--            for reuse, not memory in use, and is reported as such.
local function phase(name, n, tasks, op, finish)
  local samples = {}
  local t0, done = lurk.now(), 0
  local function sample()
    samples[#samples + 1] = { ops = done, t = lurk.now() - t0, rss = rss_kib(), heap = heap_kib(),
                              lua = collectgarbage("count"), fds = fds() }
  end
  collectgarbage()
  collectgarbage()
  local fds0, heap0, lua0 = fds(), heap_kib(), collectgarbage("count")
  sample()
  local step = math.max(1, math.floor(n / SAMPLES))
  local list = {}
  for k = 1, tasks do list[k] = k end
  local next_i = 0
  assert(lurk.map(list, function()
    while next_i < n do
      next_i = next_i + 1
      op(next_i)
      done = done + 1
      if done % step == 0 then sample() end
    end
  end, { concurrency = tasks }))
  if finish then finish() end
  lurk.sleep(0.2)                     -- the last close completions
  local elapsed = lurk.now() - t0
  collectgarbage()
  collectgarbage()
  local fds1, heap1, lua1 = fds(), heap_kib(), collectgarbage("count")

  print(("== %s: %d operations from %d tasks in %.1f s (%.0f/s)"):format(name, n, tasks, elapsed, n / elapsed))
  print(("  %8s %8s %10s %10s %10s %5s"):format("ops", "time s", "RSS KiB", "heap KiB", "Lua KiB", "fds"))
  for _, s in ipairs(samples) do
    print(("  %8d %8.1f %10d %10s %10d %5d"):format(s.ops, s.t, s.rss, s.heap or "-", s.lua, s.fds))
  end
  -- The 10% mark: the first sample at or past it (warm-up is over).
  local mark = samples[#samples]
  for _, s in ipairs(samples) do
    if s.ops >= n / 10 then mark = s; break end
  end
  local last = samples[#samples]
  local grew = last.rss - mark.rss
  local allowed = math.max(2048, mark.rss * 0.05)
  local verdict = "flat"
  if grew > allowed then
    verdict = "GROWING"
    if glibc then
      glibc.malloc_trim(0)
      local trimmed = rss_kib()
      local tgrew = trimmed - mark.rss
      print(("  RSS after malloc_trim(0): %d KiB, %+d KiB from the 10%% mark"):format(trimmed, tgrew))
      if tgrew <= allowed then verdict = "flat in use; the growth was free heap glibc kept (fragmentation)" end
    end
  end
  print(("  RSS: %d KiB at the start, %d KiB at the 10%% mark, %d KiB at the end: %+d KiB (allowed %d): %s")
    :format(samples[1].rss, mark.rss, last.rss, grew, allowed, verdict))
  local leaked = 0
  if heap0 then
    leaked = (heap1 + lua1) - (heap0 + lua0)
    print(("  heap in use (C + Lua, collected): %d + %d KiB before, %d + %d KiB after closing: %+d KiB: %s")
      :format(heap0, lua0, heap1, lua1, leaked, leaked <= 1024 and "no leak" or "LEAKED"))
  end
  print(("  fds: %d before, %d at the last sample, %d after closing: %s")
    :format(fds0, last.fds, fds1, fds1 <= fds0 and "back to baseline" or "LEAKED"))
  if verdict == "GROWING" or leaked > 1024 or fds1 > fds0 then failed = true end
end

-- ---- HTTPS ----

local client = http.client { max_per_host = conc }
local errors = {}
local function count_error(err)
  local k = err.kind .. ": " .. err.message
  errors[k] = (errors[k] or 0) + 1
end
phase("HTTPS GETs", n_http, conc, function(i)
  local opts = { tls = tls }
  if i % 100 == 0 then opts.headers = { Connection = "close" } end
  local res, err = client:get(https_url, opts)
  if not res then return count_error(err) end
  if res.status ~= 200 then count_error({ kind = "status", message = tostring(res.status) }) end
end, function() client:close() end)

-- ---- WebSocket ----

local msg = ("soak "):rep(20)
phase("WebSocket connect/echo/close", n_ws, math.max(1, math.floor(conc / 2)), function(i)
  local c, err = ws.connect(i % 2 == 0 and wss_url or ws_url, { tls = tls })
  if not c then return count_error(err) end
  local ok, serr = c:send(msg .. i)
  if not ok then count_error(serr) end
  local data, rerr = c:receive(10)
  if data ~= msg .. i then count_error(rerr or { kind = "echo", message = "wrong echo" }) end
  c:close()
end)

os.remove(fd_list)
local nerr = 0
for k, v in pairs(errors) do
  print(("  error x%d: %s"):format(v, k))
  nerr = nerr + v
end
if nerr > 0 then failed = true end
print(failed and "soak: FAILED" or "soak: flat")
os.exit(failed and 1 or 0)
