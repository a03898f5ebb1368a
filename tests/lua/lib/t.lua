-- Assertion helpers for lurk's Lua integration tests.
--
-- Every failure names the file and line of the failing check and both compared
-- values, then exits with status 1. t.skip(reason) exits 77 after printing why.
-- A test file ends with t.done(), which fails the test if no check ran.
local t = { checks = 0 }

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. info.currentline) or "?"
end

local function show(v)
  if type(v) == "string" then
    if #v > 200 then v = v:sub(1, 200) .. ("...(%d bytes)"):format(#v) end
    return ("%q"):format(v)
  end
  return tostring(v)
end

local function fail(level, msg)
  io.stderr:write(("FAIL %s: %s\n"):format(where(level + 1), msg))
  io.stderr:write(debug.traceback("", level + 1), "\n")
  os.exit(1)
end

function t.ok(v, msg)
  t.checks = t.checks + 1
  if not v then fail(2, (msg ~= nil and tostring(msg) or "expected a true value") .. ", got " .. show(v)) end
  return v
end

function t.eq(got, want, msg)
  t.checks = t.checks + 1
  if got ~= want then
    fail(2, ("%sexpected %s, got %s"):format(msg and (msg .. ": ") or "", show(want), show(got)))
  end
  return got
end

-- t.took(t0, want): a wait that should have ended want seconds after t0:
-- never early (timers do not fire early), and not much late. The late side is
-- loose because a loaded machine delays wake-ups; the waits checked with it
-- are cut from far longer ones (5 s sleeps, servers that never answer), so a
-- second's slack still tells a deadline that fired from one that did not.
function t.took(t0, want, msg)
  local got = lurk.now() - t0
  t.checks = t.checks + 1
  if got < want - 0.002 or got > want + 1 then
    fail(2, ("%swaited %.3f s, expected %.3f s (not early, at most 1 s late)"):format(msg and (msg .. ": ") or "", got, want))
  end
  return got
end

-- t.private(): the table of internals lurk's own Lua modules share
-- (src/lua/runtime.c), which scripts do not see; tests look inside it.
function t.private()
  return debug.getregistry()["lurk.private"]
end

-- t.fails(kind, v, err): the call returned nil, err with err.kind == kind.
function t.fails(kind, v, err, msg)
  t.checks = t.checks + 1
  if v ~= nil then fail(2, ("%sexpected failure of kind %s, got %s"):format(msg and (msg .. ": ") or "", kind, show(v))) end
  if type(err) ~= "table" or err.kind ~= kind then
    fail(2, ("%sexpected err.kind %s, got %s"):format(msg and (msg .. ": ") or "", kind,
      type(err) == "table" and (show(err.kind) .. " (" .. tostring(err) .. ")") or show(err)))
  end
  return err
end

-- t.raises(pattern, fn, ...): fn raises an error whose text matches pattern.
function t.raises(pattern, fn, ...)
  t.checks = t.checks + 1
  local ok, e = pcall(fn, ...)
  if ok then fail(2, "expected an error matching " .. show(pattern) .. ", but the call succeeded") end
  if not tostring(e):find(pattern) then fail(2, ("expected an error matching %s, got %s"):format(show(pattern), show(tostring(e)))) end
  return e
end

-- t.server(script, args...) -> port: starts tests/support/<script> (which
-- prints "PORT <n> PID <pid>") and stops it at t.done(). Servers also exit
-- by themselves when this process ends.
local servers = {}
t.support = os.getenv("LURK_SUPPORT") or (arg[0]:match("^(.*)/lua/[^/]*$") or ".") .. "/support"

function t.server(script, ...)
  local runner = script:match("%.js$") and "node" or "python3"
  local cmd = ("exec %s %s/%s %s"):format(runner, t.support, script, table.concat({ ... }, " "))
  local f = assert(io.popen(cmd, "r"))
  local line = f:read("*l") or ""
  local port, pid = line:match("PORT (%d+) PID (%d+)")
  if not port then fail(2, "test server " .. script .. " did not start: " .. show(line)) end
  local entry = { f = f, pid = pid }
  -- If the test dies of an error, closing the Lua state closes f, and
  -- pclose waits for a server that only exits once this process has: the
  -- test would hang. A guard made after f is finalized before it (reverse
  -- order of creation) and stops the server first.
  entry.guard = newproxy(true)
  getmetatable(entry.guard).__gc = function()
    if not entry.stopped then os.execute("kill " .. pid .. " 2>/dev/null") end
  end
  servers[#servers + 1] = entry
  return tonumber(port)
end

-- t.tmpdir() -> path: a new directory under /tmp for this test's servers and
-- files, removed at t.done() once the servers have stopped (a failed test
-- keeps it, to look at).
local tmpdirs = {}

function t.tmpdir()
  local p = io.popen("mktemp -d /tmp/lurk-test.XXXXXX")
  local dir = p:read("*l")
  p:close()
  if not dir or dir == "" then fail(2, "mktemp -d failed") end
  tmpdirs[#tmpdirs + 1] = dir
  return dir
end

-- t.sh(cmd [, seconds]) -> output, exit code: runs a shell command in the
-- background and waits for it, yielding, so a server in this process keeps
-- serving meanwhile (io.popen would block the whole runtime). The output is
-- stdout and stderr together; the code is -1 if it did not end in time
-- (default 30 s, at most 60 s).
local sh_dir, sh_seq = nil, 0
function t.sh(cmd, seconds)
  sh_dir = sh_dir or t.tmpdir()
  sh_seq = sh_seq + 1
  local out, rc = ("%s/out%d"):format(sh_dir, sh_seq), ("%s/rc%d"):format(sh_dir, sh_seq)
  os.execute(("((%s) > %s 2>&1; echo $? > %s.tmp; mv %s.tmp %s) &"):format(cmd, out, rc, rc, rc))
  local f
  for _ = 1, (seconds or 30) * 100 do
    f = io.open(rc)
    if f then break end
    lurk.sleep(0.01)
  end
  local code = f and tonumber(f:read("*a")) or -1
  if f then f:close() end
  local o = io.open(out, "rb")
  local text = o and o:read("*a") or ""
  if o then o:close() end
  return text, code
end

-- t.tls_stat() -> { TlsTxSw = n, ... } | nil: the kernel's kTLS counters
-- (/proc/net/tls_stat), nil where the kernel has no kTLS.
function t.tls_stat()
  local f = io.open("/proc/net/tls_stat")
  if not f then return nil end
  local s = {}
  for line in f:lines() do
    local k, v = line:match("^(%S+)%s+(%d+)")
    if k then s[k] = tonumber(v) end
  end
  f:close()
  return s
end

-- The lurk program running this test (for tests that start another one).
t.lurk = arg[-1]

local function stop_servers()
  for _, s in ipairs(servers) do
    os.execute("kill " .. s.pid .. " 2>/dev/null")
    s.stopped = true
  end
  for _, s in ipairs(servers) do s.f:close() end
  servers = {}
end

function t.skip(reason)
  io.stderr:write("SKIP: ", reason, "\n")
  os.exit(77)
end

function t.done()
  if t.checks == 0 then fail(2, "the test ran no checks") end
  stop_servers()
  for _, dir in ipairs(tmpdirs) do os.execute("rm -rf '" .. dir .. "'") end
  io.stdout:write(("ok: %d checks\n"):format(t.checks))
end

return t
