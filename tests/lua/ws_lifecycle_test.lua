-- WebSocket lifecycle under hostile servers: the pinger ends with the connection (programs and examples exit at once), calls after the reader ended a connection return nil, err instead of raising, and a message in 1-byte fragments costs O(message) memory and time.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
os.execute("mkdir -p " .. dir .. " && " .. t.support .. "/certs.sh " .. dir)
t.server("wsserver.js", dir)
local P = dofile(dir .. "/ws-ports.lua")
local base = "ws://127.0.0.1:" .. P.ws
local raw = "ws://127.0.0.1:" .. t.server("rawws.py")
local examples = t.support .. "/../../examples"

-- Runs `lurk script args...` with stdin from `input` (a string or nil),
-- killed after `limit` s; returns its output, exit status and wall time.
-- os.execute blocks this whole process, which is fine: the servers are
-- other processes.
local function run(script, args, input, limit)
  local out, inp = dir .. "/out.txt", dir .. "/in.txt"
  local f = assert(io.open(inp, "w"))
  f:write(input or "")
  f:close()
  local t0 = lurk.now()
  local ok, how, code = os.execute(("timeout %d %s %s %s < %s > %s 2>&1"):format(
    limit, t.lurk, script, table.concat(args, " "), inp, out))
  local took = lurk.now() - t0
  f = assert(io.open(out))
  local text = f:read("*a")
  f:close()
  -- LuaJIT's os.execute returns the raw status (5.1) or ok, "exit", code (5.2 compat).
  local status = type(ok) == "number" and math.floor(ok / 256) or code
  return text, status, took, how
end

local function script(name, body)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(body)
  f:close()
  return path
end

-- The ping_interval task ends with the connection: the program exits at
-- once after c:close(), and after the server closes.
do
  local s = script("pinger.lua", [[
    local c = assert(ws.connect(arg[1] .. "/echo", { ping_interval = 10 }))
    assert(c:send("hi")); assert(c:receive(5) == "hi")
    c:close()
    local c2 = assert(ws.connect(arg[1] .. "/close/1000", { ping_interval = 10 }))
    local _, err = c2:receive(5)
    assert(err.kind == "closed", tostring(err))
    print("done")
  ]])
  local out, status, took = run(s, { base }, nil, 20)
  t.eq(status, 0, out)
  t.ok(out:find("done", 1, true), out)
  t.ok(took < 3, ("the program exited %.2f s after start (ping_interval 10 must not hold it)"):format(took))
end

-- The examples that hold WebSocket connections exit as soon as they are done.
do
  local out, status, took = run(examples .. "/chat.lua", { base .. "/echo" }, "hello\n/quit\n", 20)
  t.eq(status, 0, out)
  t.ok(out:find("connected to " .. base .. "/echo", 1, true), out)
  t.ok(took < 3, ("examples/chat.lua exited after %.2f s (ping_interval 20)"):format(took))
  out, status, took = run(examples .. "/ws_stream.lua", { base .. "/push/25", "'{}'" }, nil, 20)
  t.eq(status, 0, out)
  t.ok(out:find("msg 20\n", 1, true) and not out:find("msg 21", 1, true), out)
  t.ok(took < 3, ("examples/ws_stream.lua exited after %.2f s (ping_interval 30)"):format(took))
end

-- A server that breaks the protocol while the script is sending: the
-- reader answers with a close and ends the connection under the sending
-- task, whose next sends return nil, err (never "attempt to use a closed
-- socket"). A fragmented ping is such a violation.
do
  for round = 1, 5 do
    local c = t.ok(ws.connect(raw .. "/fragping"))
    t.ok(c:send("first"))                        -- the server answers with the fragmented ping
    local raised, err
    for _ = 1, 100000 do
      local ok, v, e = pcall(c.send, c, "x")
      if not ok then raised = v break end
      if not v then err = e break end
    end
    t.eq(raised, nil, "round " .. round .. ": send raised")
    t.fails("protocol", nil, err, "round " .. round)
    t.eq(err.code, 1002)
    for _, call in ipairs {
      function() return c:send("again") end, function() return c:send_binary("b") end,
      function() return c:ping() end, function() return c:receive(1) end,
    } do
      local ok, v, e = pcall(call)
      t.ok(ok, "a call after the end raised: " .. tostring(v))
      t.fails("protocol", v, e)
    end
    t.eq(c:close(), true)
    local ok, why = c.reader:join(5)
    t.ok(ok, "the reader task ended without an error: " .. tostring(why))
  end
end

-- A pong that cannot go out (the server stopped reading while a big message
-- holds the write lock) hits send_timeout: the connection ends, the reader
-- task ends quietly, and every call returns nil, err.
do
  local c = t.ok(ws.connect(raw .. "/stallping", { send_timeout = 0.5, compress = false }))
  local ok, err = c:send_binary(("x"):rep(32 * 1024 * 1024))
  t.fails("timeout", ok, err)
  local rok, why = c.reader:join(5)
  t.ok(rok, "the reader task ended without an error: " .. tostring(why))
  for _, call in ipairs {
    function() return c:send("again") end, function() return c:ping("p") end, function() return c:receive(1) end,
  } do
    local pok, v, e = pcall(call)
    t.ok(pok, "a call after the end raised: " .. tostring(v))
    t.fails("timeout", v, e)
  end
  t.eq(c:close(), true)
end

-- 64 MiB in 1-byte fragments (192 MiB on the wire): received whole, in
-- O(message) memory and time, measured in a child process of its own. The
-- message is max_message (the default, 64 MiB). Its bytes necessarily exist
-- twice for a moment at the end (the assembled buffer while it is copied
-- into the Lua string), so the RSS added while receiving is 2x max_message
-- plus the read buffers: bounded here at 2x max_message + 16 MiB (it was
-- about 10x before fragments were assembled in C). CPU time is a few
-- seconds at most (the bound is generous: the loop is C, tens of ns a
-- fragment; it was 17 s).
do
  local n = 64 * 1024 * 1024
  local s = script("tiny.lua", [[
    local function status(field)
      for line in io.lines("/proc/self/status") do
        local v = line:match("^" .. field .. ":%s*(%d+) kB")
        if v then return tonumber(v) * 1024 end
      end
    end
    local c = assert(ws.connect(arg[1], { compress = false }))
    collectgarbage()
    local before, cpu0 = status("VmRSS"), os.clock()
    local data, kind = c:receive(60)
    local cpu, peak = os.clock() - cpu0, status("VmHWM")
    assert(data, kind)
    print(("RESULT %d %s %d %d %.3f %s"):format(#data, kind, before, peak, cpu,
      tostring(data:find("[^a]") == nil)))
    local _, err = c:receive(10)
    print("END", err.kind, err.code)
  ]])
  local out, status = run(s, { raw .. "/tiny/" .. n }, nil, 60)
  t.eq(status, 0, out)
  local len, kind, before, peak, cpu, all_a = out:match("RESULT (%d+) (%a+) (%d+) (%d+) ([%d.]+) (%a+)")
  t.ok(len, out)
  t.eq(tonumber(len), n, "the whole message")
  t.eq(kind, "binary"); t.eq(all_a, "true", "every byte intact")
  t.ok(out:find("END\tclosed\t1000", 1, true), out)
  local grew = tonumber(peak) - tonumber(before)
  local what = ("receiving took %.1f MiB more RSS (%.1f MiB peak) and %.2f s of CPU")
    :format(grew / 2 ^ 20, peak / 2 ^ 20, tonumber(cpu))
  io.stdout:write(what, "\n")
  local sanitized = os.getenv("LURK_SANITIZED") or ""
  if sanitized ~= "" then
    io.stdout:write("memory and CPU bounds not checked: built with -fsanitize=", sanitized,
      " (its allocator and instrumentation change both)\n")
  else
    t.ok(grew < 2 * n + 16 * 2 ^ 20, what .. ": at most 2x max_message + 16 MiB")
    t.ok(tonumber(cpu) < 8, what .. ": at most 8 s of CPU")
  end
end

t.done()
