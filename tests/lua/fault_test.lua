-- Fault injection (LURK_FAULT): failed connects, receives and sends, at every position, over TCP, TLS, HTTP(S) and WebSocket(S), end as nil, err of the right kind with nothing leaked and another task's traffic undisturbed; short receives and sends keep results byte-exact.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
os.execute("mkdir -p " .. dir .. " && " .. t.support .. "/certs.sh " .. dir)
local ca = dir .. "/ca.pem"
local echo = t.server("tcpserver.py", "echo")
local side = t.server("tcpserver.py", "echo")        -- the other task's peer
local tls_echo = t.server("tlsserver.py", "echo", dir)
t.server("api.py", dir)
local A = dofile(dir .. "/ports.lua")
t.server("wsserver.js", dir)
local W = dofile(dir .. "/ws-ports.lua")

-- The child: runs one operation (the victim) under the LURK_FAULT it was
-- given, while a second task exchanges lines with another server, then the
-- same operation again (the fault has been spent, so it must work), and
-- reports what it saw, ops in flight and open sockets before and after.
local child = [=[
local proto, target, side_port, ca, size = ...
io.stdout:setvbuf("no")            -- in order with LURK_FAULT's lines on stderr
local tls = ca ~= "-" and { cafile = ca } or nil
size = tonumber(size)

local function sockets()      -- popen's own pipe comes and goes: count sockets
  local p = io.popen("ls -l /proc/$PPID/fd | grep -c socket:")
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end

local function pattern(n)
  local b = {}
  for i = 0, 255 do b[#b + 1] = string.char(i) end
  return table.concat(b):rep(math.ceil(n / 256)):sub(1, n)
end

local sockets0, flight0 = sockets(), lurk.stats().in_flight
local victim_done = false

local other = lurk.spawn(function()
  local s = assert(tcp.connect("127.0.0.1", tonumber(side_port)))
  local i = 0
  repeat                           -- at least a few lines, and until the victim is done
    i = i + 1
    assert(s:send("line " .. i .. "\n"))
    assert(assert(s:receive("*l")) == "line " .. i)
    assert(lurk.sleep(0.001))
  until victim_done and i >= 3
  s:close()
  return i
end)

local victims = {}
function victims.tcp()
  local host, port = target:match("^(.*):(%d+)$")
  local s, err = tcp.connect(host, tonumber(port), { tls = tls })
  if not s then return nil, err end
  local msg = pattern(size)
  local r = lurk.spawn(function() return s:receive(#msg) end)
  local ok, serr = s:send(msg)
  if not ok then s:close() end     -- wakes the reader
  local _, back, rerr = r:join()
  s:close()
  if not ok then return nil, serr end
  if not back then return nil, rerr end
  return back == msg
end
local client = http.client {}
function victims.http()
  local res, err = client:get(target, { tls = tls })
  if not res then return nil, err end
  return res.status == 200 and res.body == pattern(size)
end
function victims.ws()
  local c, err = ws.connect(target, { tls = tls })
  if not c then return nil, err end
  local msg = pattern(size)
  local ok, serr = c:send_binary(msg)
  if not ok then c:close() return nil, serr end
  local back, rerr = c:receive()
  if not back then c:close() return nil, rerr end
  local cok, cerr = c:close()
  if not cok then return nil, cerr end
  return back == msg
end

local function report(tag, v, err)
  if v ~= nil then
    print(tag .. " ok " .. tostring(v))
  else
    print(("%s fail %s %s %s %s"):format(tag, tostring(err.kind), tostring(err.phase),
      tostring(err.name), tostring(err)))
  end
end
report("FIRST", victims[proto]())
victim_done = true
report("AGAIN", victims[proto]())
client:close()
local ok, lines = other:join()
print("OTHER " .. tostring(ok) .. " " .. tostring(lines))
lurk.sleep(0.01)                   -- cancelled ops of closed sockets complete
print(("FLIGHT %d %d"):format(flight0, lurk.stats().in_flight))
print(("SOCKETS %d %d"):format(sockets0, sockets()))
]=]
local script = dir .. "/fault_child.lua"
local f = assert(io.open(script, "w"))
f:write(child)
f:close()

local cases = {
  { name = "tcp", proto = "tcp", target = "127.0.0.1:" .. echo, port = echo, size = 4096, big = 512 * 1024 },
  { name = "tls", proto = "tcp", target = "127.0.0.1:" .. tls_echo, port = tls_echo, tls = true,
    size = 4096, big = 512 * 1024 },
  { name = "http", proto = "http", target = "http://127.0.0.1:" .. A.http .. "/static/1k",
    port = A.http, size = 1024, big_target = "http://127.0.0.1:" .. A.http .. "/static/1m", big = 1048576 },
  { name = "https", proto = "http", target = "https://127.0.0.1:" .. A.https .. "/static/1k",
    port = A.https, tls = true, size = 1024,
    big_target = "https://127.0.0.1:" .. A.https .. "/static/1m", big = 1048576 },
  { name = "ws", proto = "ws", target = "ws://127.0.0.1:" .. W.ws .. "/echo", port = W.ws,
    size = 1000, big = 300 * 1024 },
  { name = "wss", proto = "ws", target = "wss://127.0.0.1:" .. W.wss .. "/echo", port = W.wss,
    tls = true, size = 1000, big = 300 * 1024 },
}

-- Starts a child with LURK_FAULT=spec; returns a function that waits for it
-- and returns its parsed report. Children run in parallel batches.
local function start(c, spec, big)
  local cmd = ("LURK_FAULT=%s %s %s %s %s %d %s %d 2>&1; echo EXIT $?"):format(spec, t.lurk, script,
    c.proto, big and c.big_target or c.target, side, c.tls and ca or "-", big and c.big or c.size)
  local p = assert(io.popen(cmd))
  return function()
    local out = p:read("*a")
    p:close()
    local fault_at, first_at = out:find("LURK_FAULT: ", 1, true), out:find("FIRST ", 1, true)
    -- armed: the fault hit the first run of the operation (not its repeat)
    local r = { out = out, armed = fault_at ~= nil and (not first_at or fault_at < first_at) }
    r.exit = tonumber(out:match("EXIT (%d+)"))
    r.first = out:match("FIRST ([^\n]*)")
    r.again = out:match("AGAIN ([^\n]*)")
    r.other = out:match("OTHER ([^\n]*)")
    r.flight0, r.flight = out:match("FLIGHT (%d+) (%d+)")
    r.sockets0, r.sockets = out:match("SOCKETS (%d+) (%d+)")
    r.cut = tonumber(out:match("(%d+) request%(s%) cut short"))
    return r
  end
end

-- What every run must show, whatever was injected. Unless the fault was
-- still to come, the operation repeated once it was spent must work.
local function check_clean(r, what, fault_to_come)
  t.eq(r.exit, 0, what .. ": exit status (non-zero after a leak under LeakSanitizer)\n" .. r.out)
  t.ok(not r.out:find("Sanitizer") and not r.out:find("runtime error"), what .. ": sanitizers quiet\n" .. r.out)
  if not fault_to_come then
    t.eq(r.again, "ok true", what .. ": the same operation again, once the fault is spent\n" .. r.out)
  end
  t.ok(r.other and r.other:find("^true %d+$"), what .. ": the other task finished\n" .. r.out)
  t.eq(r.flight, r.flight0, what .. ": ops in flight back to where they were\n" .. r.out)
  t.eq(r.sockets, r.sockets0, what .. ": no socket left open\n" .. r.out)
end

-- The kind a failure must have: by errno, and by phase for resets and pipes.
local function kind_for(errname, phase)
  if errname == "ETIMEDOUT" then return "timeout" end
  if errname == "ENOMEM" then return "limit" end
  return phase == "connect" and "connect" or "closed"
end

local phases_for = {
  connect = { connect = true },
  recv = { tls = true, read = true },
  send = { tls = true, send = true },
}
local seen = {}      -- "case op errno" -> { "kind/phase", ... }

local function check_failure(r, c, op, errname, n)
  local what = ("%s %s:%s:%s"):format(c.name, op, errname, n)
  local kind, phase, name = (r.first or ""):match("^fail (%S+) (%S+) (%S+)")
  t.ok(r.armed, what .. ": the fault was armed\n" .. r.out)
  t.ok(kind, what .. ": nil, err\n" .. r.out)
  t.eq(name, errname, what .. ": err.name\n" .. r.out)
  t.ok(phases_for[op][phase], what .. ": phase " .. tostring(phase) .. "\n" .. r.out)
  t.eq(kind, kind_for(errname, phase), what .. ": err.kind in phase " .. phase .. "\n" .. r.out)
  check_clean(r, what)
  local key = ("%-5s %-7s %-10s"):format(c.name, op, errname)
  seen[key] = seen[key] or {}
  seen[key][kind .. "/" .. phase] = true
end

-- Checks a run that failed the nth op of kind `op`: if that op belonged to
-- the first operation, it failed cleanly; if the first operation had no
-- such op left, it succeeded (and its repeat met the fault instead, or none).
-- The ops of a polite close are best effort, so their failure changes
-- nothing the script sees: TLS's close_notify, WebSocket's close handshake.
-- Returns "failed", "harmless" or "past".
local function check_run(r, c, op, errname, n)
  local what = ("%s %s:%s:%d"):format(c.name, op, errname, n)
  if r.armed and r.first == "ok true" and ((c.tls and op == "send") or c.proto == "ws") then
    check_clean(r, what .. " (closing)")
    return "harmless"
  elseif r.armed then
    check_failure(r, c, op, errname, n)
    return "failed"
  end
  t.eq(r.first, "ok true", what .. ": no fault left to inject\n" .. r.out)
  t.ok(r.again == "ok true" or (r.again or ""):find("^fail " .. kind_for(errname, "") .. " %S+ " .. errname),
    what .. ": the repeat\n" .. r.out)
  check_clean(r, what, true)
  return "past"
end

-- Fails the nth op of kind `op` on c's port, for n = 1, 2, ... until the
-- first operation has no such op left. Returns how many positions failed it.
local function sweep(c, op, errname)
  local n, batch, harmless, last = 1, 4, 0, nil
  while not last do
    local waits = {}
    for i = 0, batch - 1 do
      waits[#waits + 1] = start(c, ("%s:%s:%d:%d"):format(op, errname, n + i, c.port))
    end
    for i, wait in ipairs(waits) do
      local how = check_run(wait(), c, op, errname, n + i - 1)
      if how == "harmless" then harmless = harmless + 1 end
      if how == "failed" then
        t.eq(harmless, 0, ("%s %s #%d: the harmless ops are the last ones"):format(c.name, op, n + i - 1))
      end
      if how == "past" then last = last or n + i - 2 end
    end
    t.ok(harmless <= 3, c.name .. " " .. op .. ": a few closing ops at most")
    n = n + batch
    t.ok(n < 80, c.name .. " " .. op .. ": the sweep ends")
  end
  return last - harmless
end

-- 1. ECONNRESET at every connect, receive and send position; the other
-- errnos at the first, a middle and the last position of each (the count of
-- receives can vary by one or two with how the peer's bytes arrive).
for _, c in ipairs(cases) do
  local last = {}
  check_failure(start(c, ("connect:ECONNRESET:1:%d"):format(c.port))(), c, "connect", "ECONNRESET", 1)
  for _, op in ipairs { "recv", "send" } do
    last[op] = sweep(c, op, "ECONNRESET")
    t.ok(last[op] >= 1, c.name .. " " .. op .. " positions: " .. last[op])
    io.write(("%s: %d %s positions\n"):format(c.name, last[op], op))
  end
  for _, errname in ipairs { "EPIPE", "ETIMEDOUT", "ENOMEM" } do
    local runs = { { "connect", 1 } }
    for _, op in ipairs { "recv", "send" } do
      local at = { [1] = true, [math.ceil(last[op] / 2)] = true, [last[op]] = true }
      for n in pairs(at) do runs[#runs + 1] = { op, n } end
    end
    local waits = {}
    for i, run in ipairs(runs) do
      waits[i] = start(c, ("%s:%s:%d:%d"):format(run[1], errname, run[2], c.port))
    end
    for i, wait in ipairs(waits) do
      local r = wait()
      if runs[i][1] == "connect" or runs[i][2] == 1 then
        check_failure(r, c, runs[i][1], errname, runs[i][2])
      else
        check_run(r, c, runs[i][1], errname, runs[i][2])
      end
    end
  end
end

local keys = {}
for k in pairs(seen) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do
  local ks = {}
  for v in pairs(seen[k]) do ks[#ks + 1] = v end
  table.sort(ks)
  io.write(k, " -> ", table.concat(ks, " "), "\n")
end

-- 2. Short receives and sends everywhere (each request cut to a random
-- length): big transfers still arrive byte-exact, with several seeds.
for _, c in ipairs(cases) do
  local waits = {}
  for i, spec in ipairs { "recv:short:every", "send:short:every", "recv:short:every,send:short:every" } do
    waits[i] = { spec, start(c, ("%s LURK_FAULT_SEED=%d"):format(spec, i), true) }
  end
  for _, w in ipairs(waits) do
    local r = w[2]()
    local what = c.name .. " " .. w[1]
    t.eq(r.first, "ok true", what .. ": byte-exact\n" .. r.out)
    check_clean(r, what)
    t.ok(r.cut and r.cut > 0, what .. ": requests were cut short\n" .. r.out)
    io.write(("%s: %d requests cut short\n"):format(what, r.cut))
  end
end

-- 3. A probability (seeded) and a malformed entry: the malformed one is
-- reported and ignored, the rest still applies.
do
  local r = start(cases[1], "recv:ECONNRESET:p1:" .. echo .. ",bogus:EPIPE:1,recv:EWHAT:1,send:short:0")()
  t.ok(r.out:find('ignoring "bogus:EPIPE:1"', 1, true), "bad kind reported\n" .. r.out)
  t.ok(r.out:find('ignoring "recv:EWHAT:1"', 1, true), "bad errno reported\n" .. r.out)
  t.ok(r.out:find('ignoring "send:short:0"', 1, true), "bad position reported\n" .. r.out)
  t.ok(r.first and r.first:find("^fail closed read ECONNRESET"), "p1 fails every recv\n" .. r.out)
  t.eq(r.exit, 0, r.out)
end

-- 4. The ring's file ops: a download written with short writes, or whose
-- first write fails; standard input read in short pieces, or failing.
do
  local files = dir .. "/fault_files.lua"
  f = assert(io.open(files, "w"))
  f:write([=[
local url, path = ...
io.stdout:setvbuf("no")
local n, err = http.download(url, path)
print("DOWNLOAD " .. (n and "ok" or ("fail %s %s"):format(err.kind, tostring(err.name))))
local ok, lines = pcall(function()
  local got = {}
  for line in lurk.lines() do got[#got + 1] = line end
  return table.concat(got, "\n")
end)
print("STDIN " .. (ok and #lines or ("fail %s %s"):format(lines.kind, tostring(lines.name))))
]=])
  f:close()
  local input = dir .. "/input.txt"
  f = assert(io.open(input, "w"))
  for i = 1, 20000 do f:write(("line %d\n"):format(i)) end
  f:close()
  local want = #io.open(input):read("*a") - 1     -- the lines joined without the last \n
  local function run(spec)
    local path = dir .. "/download.bin"
    os.remove(path)
    local out = io.popen(("LURK_FAULT=%s %s %s http://127.0.0.1:%d/static/1m %s < %s 2>&1; echo EXIT $?")
      :format(spec, t.lurk, files, A.http, path, input)):read("*a")
    local got = io.open(path, "rb")
    local body = got and got:read("*a")
    if got then got:close() end
    t.eq(tonumber(out:match("EXIT (%d+)")), 0, spec .. ": exit status\n" .. out)
    t.ok(not out:find("Sanitizer") and not out:find("runtime error"), spec .. ": sanitizers quiet\n" .. out)
    return out, body
  end
  local big = io.open(dir .. "/static/1m", "rb"):read("*a")
  local out, body = run("write:short:every,read:short:every")
  t.ok(out:find("DOWNLOAD ok", 1, true), out)
  t.ok(body == big, "download written in short pieces is byte-exact")
  t.ok(out:find("STDIN " .. want, 1, true), "stdin read in short pieces is intact\n" .. out)
  t.ok(tonumber(out:match("(%d+) request%(s%) cut short")) > 0, out)
  out = run("write:ENOSPC:1,read:EIO:1")
  t.ok(out:find("DOWNLOAD fail io ENOSPC", 1, true), "a failed file write\n" .. out)
  t.ok(out:find("STDIN fail %S+ EIO"), "a failed stdin read\n" .. out)
  io.write("files: ", (out:gsub("lurk: [^\n]*\n", ""):gsub("\n", "; ")), "\n")
end

-- 5. The resolver's poll ops: c-ares takes a failed poll as "look at the
-- socket", finds nothing wrong and carries on, so names still resolve.
do
  local dns = t.server("dns.py")
  for _, spec in ipairs { "poll:ECONNRESET:1", "poll:ENOMEM:every" } do
    local out = io.popen(("LURK_FAULT=%s LURK_DNS_SERVERS=127.0.0.1:%d %s -e 'local s, e = tcp.connect(\"ok.lurk.test\", %d) print(s and \"RESOLVED\" or tostring(e)) if s then s:close() end' 2>&1; echo EXIT $?")
      :format(spec, dns, t.lurk, echo)):read("*a")
    t.ok(out:find("LURK_FAULT: poll #1 will fail", 1, true), spec .. ": armed\n" .. out)
    t.ok(out:find("RESOLVED", 1, true), spec .. ": the name still resolves\n" .. out)
    t.eq(tonumber(out:match("EXIT (%d+)")), 0, spec .. ": exit status\n" .. out)
    t.ok(not out:find("Sanitizer") and not out:find("runtime error"), spec .. ": sanitizers quiet\n" .. out)
  end
end

os.execute("rm -rf " .. dir)
t.done()
