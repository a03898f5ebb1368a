-- Strict core API: unknown options raise with a suggestion, wrong types name the function and the script's line, '.' for ':' says how to call.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local here = arg[0]:match("[^/]*$")
local P = t.private()

-- An error raised at this file's line (not inside lurk's modules). The
-- calls below are not tail calls: a tail call leaves no line to point at.
local function at_script(pattern, fn, ...)
  local e = t.raises(pattern, fn, ...)
  t.ok(tostring(e):find(here .. ":%d+:"), "error points at the script: " .. tostring(e))
  t.ok(not tostring(e):find("'?'", 1, true), "the function is named: " .. tostring(e))
end

local port = t.server("tcpserver.py", "echo")

-- tcp.connect: options, types, names.
at_script("tcp.connect: unknown option 'timout' %(did you mean 'timeout'%?%)", function()
  local s = tcp.connect("127.0.0.1", port, { timout = 1 })
  return s
end)
at_script("tcp.connect: unknown option 'max_bufer' %(did you mean 'max_buffer'%?%)", function()
  local s = tcp.connect("127.0.0.1", port, { max_bufer = 10 })
  return s
end)
at_script("tcp.connect: timeout must be a positive number or false", function()
  local s = tcp.connect("127.0.0.1", port, { timeout = "1" })
  return s
end)
-- Called through a local (LuaJIT has no name for it): still named.
local connect = tcp.connect
at_script("tcp.connect: bad argument #2 %(port must be 1%-65535%)", function()
  local s = connect("127.0.0.1", 70000)
  return s
end)
at_script("tcp.connect: bad argument #1 %(string expected, got nil%)", function()
  local s = connect(nil, port)
  return s
end)
at_script("tcp.connect: bad argument #2 %(whole number expected", function()
  local s = connect("127.0.0.1", 80.5)
  return s
end)

-- Every tls table: unknown keys and wrong types.
at_script("tcp.connect tls: unknown option 'cafle' %(did you mean 'cafile'%?%)", function()
  local s = tcp.connect("127.0.0.1", port, { tls = { cafle = "/x.pem" } })
  return s
end)
at_script("tcp.connect tls: unknown option 'verify'", function()
  local s = tcp.connect("127.0.0.1", port, { tls = { verify = false } })
  return s
end)
at_script("tcp.connect: tls.insecure must be true or false", function()
  local s = tcp.connect("127.0.0.1", port, { tls = { insecure = "yes" } })
  return s
end)
at_script("tcp.connect: tls.cafile must be a string", function()
  local s = tcp.connect("127.0.0.1", port, { tls = { cafile = 1 } })
  return s
end)
at_script("tcp.connect: tls must be true or a table", function()
  local s = tcp.connect("127.0.0.1", port, { tls = "yes" })
  return s
end)
-- The same check, made by a Lua module on its caller's behalf (level 2).
local function wrapper(tls) P.check_tls(tls, "http.get", 2) end
at_script("http.get tls: unknown option 'min_verison' %(did you mean 'min_version'%?%)", function()
  wrapper({ min_verison = "1.3" })
end)
t.eq(P.check_tls(nil, "x"), nil, "check_tls passes nil")

-- Socket methods: named, and '.' instead of ':' says how to call.
local s = assert(tcp.connect("127.0.0.1", port))
at_script("use sock:send%(%.%.%.%), with ':'", function() local r = s.send("hello"); return r end)
at_script("use sock:receive%(%.%.%.%), with ':'", function() local r = s.receive(); return r end)
at_script("sock:send: bad argument #1 %(string expected, got no value%)", function() local r = s:send(); return r end)
at_script("sock:receive: bad argument #1 %(pattern must be", function() local r = s:receive("*x"); return r end)
at_script("sock:settimeout: bad argument #1", function() local r = s:settimeout(-1); return r end)
at_script("sock:starttls tls: unknown option 'cafiel' %(did you mean 'cafile'%?%)", function()
  local r = s:starttls { cafiel = "x" }
end)
t.eq(s:send("ping\n"), 5)
t.eq(s:receive(), "ping", "the socket still works after the refused calls")
s:close()
at_script("sock:send: attempt to use a closed socket", function() local r = s:send("x"); return r end)

-- lurk.*: tasks, channels, semaphores, map.
local task = lurk.spawn(function() end)
at_script("use task:join%(%.%.%.%), with ':'", function() local r = task.join(); return r end)
at_script("lurk.spawn: bad argument #1 %(function expected, got no value%)", function() local r = lurk.spawn(); return r end)
at_script("lurk.sleep: bad argument #1 %(number expected", function() local r = lurk.sleep("x"); return r end)
local ch, sem = lurk.channel(1), lurk.semaphore(1)
at_script("use ch:send%(%.%.%.%), with ':'", function() local r = ch.send(1); return r end)
at_script("use s:acquire%(%.%.%.%), with ':'", function() local r = sem.acquire(); return r end)
at_script("lurk.map: unknown option 'concurency' %(did you mean 'concurrency'%?%)", function()
  local r = lurk.map({ 1 }, function(x) return x end, { concurency = 2 })
end)
at_script("lurk.map: unknown option 'partal' %(did you mean 'partial'%?%)", function()
  local r = lurk.map({ 1 }, function(x) return x end, { partal = true })
end)

-- json: encode's options; decode takes none.
at_script("json.encode: unknown option 'indnt' %(did you mean 'indent'%?%)", function()
  local r = json.encode({ 1 }, { indnt = 2 })
end)
at_script("json.encode: bad argument #1 %(value expected%)", function() local r = json.encode(); return r end)
at_script("json.decode: bad argument #1 %(string expected, got no value%)", function() local r = json.decode(); return r end)
at_script("json.decode: takes no options", function() local r = json.decode("[1]", { null = false }); return r end)
t.eq(json.encode({ a = 1 }, { indent = 0 }), '{"a":1}')
t.eq(json.decode(("[1]"):gsub("1", "2"))[1], 2, "extra non-table values still pass")

t.done()
