-- HTTP API strictness (issue 15): checked options raised at the script's
-- line, a complete http.client, retry policies, the pool's cap made visible,
-- timeout messages, err.url everywhere, and downloads (.part, resume,
-- progress, no size cap), against the raw byte-exact server.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
local port = t.server("rawhttp.py")
local raw = "http://127.0.0.1:" .. port
local here = "http_client_test.lua:"

-- The line of the caller (for raises that must point at it).
local function this_line() return debug.getinfo(2, "l").currentline end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function exists(path) return read_all(path) ~= nil end

-- The request head the server saw (rawhttp's /echohead).
local function head_of(res) return res.body end

-- §1 Unknown options raise with the closest known one, at the script's line.
do
  local l
  l = this_line(); local e = t.raises("unknown option", function() http.get(raw .. "/ok", { timout = 1 }) end)
  t.ok(e:find(here .. l .. ": http.get: unknown option 'timout' (did you mean 'timeout'?)", 1, true), e)
  l = this_line(); e = t.raises("unknown option", function() http.request { url = raw, header = { a = "1" } } end)
  t.ok(e:find(here .. l .. ": http.request: unknown option 'header' (did you mean 'headers'?)", 1, true), e)
  l = this_line(); e = t.raises("unknown option", function() http.client { base_uri = raw } end)
  t.ok(e:find(here .. l .. ": http.client: unknown option 'base_uri' (did you mean 'base_url'?)", 1, true), e)
  -- A tls table is checked before the request starts, at the script's line.
  l = this_line(); e = t.raises("unknown option", function() http.get(raw .. "/ok", { tls = { cafle = "x" } }) end)
  t.ok(e:find(here .. l .. ": http.get tls: unknown option 'cafle' (did you mean 'cafile'?)", 1, true), e)
  l = this_line(); e = t.raises("insecure", function() http.client { tls = { insecure = "yes" } } end)
  t.ok(e:find(here .. l .. ": http.client: tls.insecure must be true or false", 1, true), e)
  e = t.raises("unknown option", function() http.download(raw .. "/ok", dir .. "/x", { progres = false }) end)
  t.ok(e:find("http.download: unknown option 'progres' (did you mean 'progress'?)", 1, true), e)
  local c = http.client { base_url = raw }
  e = t.raises("unknown option", function() c:get("/ok", { retires = 1 }) end)
  t.ok(e:find("c:get: unknown option 'retires' (did you mean 'retries'?)", 1, true), e)
  e = t.raises("unknown option", function() c:download("/ok", dir .. "/x", { resum = true }) end)
  t.ok(e:find("c:download: unknown option 'resum' (did you mean 'resume'?)", 1, true), e)
  t.raises("http.get: unknown option 'url'", function() http.get(raw, { url = raw }) end)
  t.raises("timeout: unknown option 'totl' %(did you mean 'total'%?%)", function()
    http.get(raw, { timeout = { totl = 1 } }) end)
  t.raises("retries: unknown option 'statuses_'", function()
    http.get(raw, { retries = { statuses_ = { 500 } } }) end)
  t.raises("http.client: unknown option 'body'", function() http.client { body = "x" } end)
  t.raises("files.f: unknown option 'contnet'", function()
    http.post(raw, { files = { f = { contnet = "x" } } }) end)

  -- Wrong types: the script's file and line, not lua/http.lua's.
  l = this_line(); e = t.raises("timeout must be", function() http.get(raw .. "/ok", { timeout = "soon" }) end)
  t.ok(e:find(here .. l .. ": http.get: timeout must be", 1, true), e)
  t.ok(not e:find("lua/http.lua", 1, true), e)
  l = this_line(); e = t.raises("expects a table", function() http.request(5) end)
  t.ok(e:find(here .. l .. ": http.request: expects a table of options, got number", 1, true), e)
  l = this_line(); e = t.raises("redirects must be", function() http.get(raw, { redirects = "3" }) end)
  t.ok(e:find(here .. l .. ":", 1, true), e)
  t.raises(here .. "%d+: http.get: stream must be true or false", function() http.get(raw, { stream = 1 }) end)
  t.raises(here .. "%d+: http.get: max_body must be a positive number", function() http.get(raw, { max_body = -1 }) end)
  t.raises(here .. "%d+: http.put: body must be a string", function() http.put(raw, { body = 5 }) end)
  t.raises(here .. "%d+: http.get: headers must be a table", function() http.get(raw, { headers = "X: 1" }) end)
  t.raises(here .. "%d+: http.post: give one of body, json and form", function()
    http.post(raw, { body = "a", json = { 1 } }) end)
  l = this_line(); e = t.raises("bad url", function() http.get("ftp://x/") end)
  t.ok(e:find(here .. l .. ": http.get: bad url", 1, true), e)
  -- Through pcall, the line of the pcall.
  l = this_line(); local ok, pe = pcall(http.get, raw, { timout = 1 })
  t.eq(ok, false); t.ok(tostring(pe):find(here .. l .. ":", 1, true), pe)

  -- A client method called with "." says how to call it.
  e = t.raises("use c:get%(", function() c.get(raw .. "/ok") end)
  t.ok(e:find(here, 1, true), e)
  t.raises("use c:download%(", function() c.download("/ok", dir .. "/x") end)
  t.raises("use c:request%(", function() c.request { url = raw } end)
  t.raises("use c:close%(", function() c.close() end)
  c:close()
end

-- §1 auth in both forms; bad forms raise.
do
  local h = head_of(t.ok(http.get(raw .. "/echohead", { auth = { user = "u", pass = "p" } })))
  t.ok(h:find("Authorization: Basic dTpw\r\n", 1, true), "named form: " .. h)
  h = head_of(t.ok(http.get(raw .. "/echohead", { auth = { "u", "p" } })))
  t.ok(h:find("Authorization: Basic dTpw\r\n", 1, true), "list form: " .. h)
  h = head_of(t.ok(http.get(raw .. "/echohead", { auth = { user = "u" } })))
  t.ok(h:find("Authorization: Basic dTo=\r\n", 1, true), "no password: u: " .. h)
  t.raises("auth: the user name must be a string", function() http.get(raw, { auth = { pass = "p" } }) end)
  t.raises("auth: unknown field usr", function() http.get(raw, { auth = { usr = "u", pass = "p" } }) end)
  t.raises("auth must be", function() http.get(raw, { auth = "u:p" }) end)
  t.raises("not both", function() http.get(raw, { auth = { "u", "p", user = "v" } }) end)
  t.raises("cannot contain ':'", function() http.get(raw, { auth = { "a:b", "p" } }) end)
  t.raises("bearer contains CR, LF or NUL", function() http.get(raw, { bearer = "t\r\nX-Injected: 1" }) end)
end

-- §1 query: nested tables, functions, userdata and json.null raise;
-- booleans are true/false; lists repeat the key.
do
  local h = head_of(t.ok(http.get(raw .. "/echohead", { query = { on = true, off = false, l = { 1, "b" }, n = 2 } })))
  t.eq(h:match("^GET (%S+)"), "/echohead?l=1&l=b&n=2&off=false&on=true")
  t.raises("query: a: a nested table", function() http.get(raw, { query = { a = { b = 1 } } }) end)
  t.raises("query: f: cannot encode a function", function() http.get(raw, { query = { f = print } }) end)
  t.raises("query: n: cannot encode userdata", function() http.get(raw, { query = { n = json.null } }) end)
  t.raises("query: l%[2%]: cannot encode a table", function() http.get(raw, { query = { l = { 1, {} } } }) end)
  t.raises("query must be a table or a string", function() http.get(raw, { query = 5 }) end)
  t.raises("form: a: a nested table", function() http.post(raw, { form = { a = { b = 1 } } }) end)
  t.raises("form.x: cannot send a table", function()
    http.post(raw, { form = { x = {} }, files = { f = { content = "1" } } }) end)
  t.raises("http.encode_query: x: cannot encode userdata", http.encode_query, { x = json.null })
  t.eq(http.encode_query { a = true }, "a=true")
  -- Strings for the head: the method, content types, header values.
  t.raises("invalid method", function() http.request { url = raw, method = "GE T" } end)
  t.raises("content_type contains CR, LF or NUL", function()
    http.post(raw, { files = { f = { content = "x", content_type = "text/plain\r\nX-I: 1" } } }) end)
  t.raises("header X: value contains CR, LF or NUL", function() http.get(raw, { headers = { X = "a\nb" } }) end)
  t.raises("value must be a string or a number", function() http.get(raw, { headers = { X = true } }) end)
  -- A multipart field name cannot end its quotes or line.
  local res = t.ok(http.post(raw .. "/echohead", { files = { ['a"\r\nb'] = { content = "x" } } }))
  t.eq(res.status, 200)
end

-- §2 Every request option can be a client default; the request overrides it.
do
  local c = http.client { base_url = raw, headers = { ["X-Trace"] = "client", ["X-Keep"] = "k" },
    bearer = "tok", query = { v = 1 }, decompress = false }
  local h = head_of(t.ok(c:get("/echohead", { headers = { ["x-trace"] = "request" } })))
  local _, n = h:lower():gsub("x%-trace:", "")
  t.eq(n, 1, "one X-Trace field: " .. h)
  t.ok(h:find("x-trace: request\r\n", 1, true), "the request's value wins: " .. h)
  t.ok(h:find("X-Keep: k\r\n", 1, true), h)
  t.ok(h:find("Authorization: Bearer tok\r\n", 1, true), "the client's bearer: " .. h)
  t.ok(not h:find("Accept-Encoding", 1, true), "decompress = false from the client: " .. h)
  t.eq(h:match("^GET (%S+)"), "/echohead?v=1", "the client's query")
  h = head_of(t.ok(c:get("/echohead", { auth = { "u", "p" }, query = { v = 2, w = 3 } })))
  t.ok(h:find("Authorization: Basic dTpw\r\n", 1, true), "the request's auth overrides the client's bearer")
  t.eq(h:match("^GET (%S+)"), "/echohead?v=2&w=3", "query tables merge, the request's keys win")
  h = head_of(t.ok(c:get("/echohead", { bearer = false })))
  t.ok(not h:find("Authorization", 1, true), "bearer = false sends none: " .. h)
  local c2 = http.client { base_url = raw, redirects = 0, max_body = 3 }
  t.eq(t.ok(c2:get("/t/a/redirect-dot")).status, 302, "redirects = 0 from the client")
  t.eq(t.ok(c2:get("/t/a/redirect-dot", { redirects = 1, max_body = 100 })).status, 200, "overridden")
  t.fails("limit", c2:get("/ok"))   -- max_body from the client
  t.eq(t.ok(c2:get("/ok", { max_body = 5 })).body, "hello", "overridden")
  c2:close()
  -- c.headers is live.
  c.headers["X-Late"] = "1"
  t.ok(head_of(t.ok(c:get("/echohead"))):find("X-Late: 1\r\n", 1, true), "c.headers is read per request")
  c.headers["Bad Name"] = "x"
  t.raises("invalid header name", function() c:get("/echohead") end)
  c.headers["Bad Name"] = nil
  t.eq(tostring(c), "http.client (" .. raw .. ")")
  c:close()
  -- stream, timeout, retries, proxy, trace, tls as client defaults.
  local s = http.client { base_url = raw, stream = true }
  local res = t.ok(s:get("/ok"))
  t.eq(res.body, nil, "stream = true from the client"); t.eq(res:read(), "hello")
  t.fails("proxy", http.client { proxy = "http://127.0.0.1:1" }:get(raw .. "/ok"))
  local t0 = lurk.now()
  t.fails("timeout", http.client { timeout = 0.3 }:get(raw .. "/drip"))
  t.took(t0, 0.3)
  local tport = t.server("rawhttp.py", "tls", dir .. "/certs")
  local secure = "https://localhost:" .. tport
  t.fails("tls", http.client {}:get(secure .. "/ok"))   -- the system store does not know the test CA
  t.eq(t.ok(http.client { tls = { cafile = dir .. "/certs/ca.pem" } }:get(secure .. "/ok")).body, "hello",
    "the client's tls (a private CA)")
  local out = io.popen(("%s -e 'http.client { trace = true }:get(%q)' 2>&1"):format(t.lurk, raw .. "/ok")):read("*a")
  t.ok(out:find("> GET /ok HTTP/1.1", 1, true), "trace = true from the client: " .. out)
  -- Bad defaults raise when the client is made.
  t.raises(here .. "%d+: http.client: timeout must be", function() http.client { timeout = "x" } end)
  t.raises("http.client: auth must be", function() http.client { auth = "u:p" } end)
  t.raises("http.client: query: a: a nested table", function() http.client { query = { a = { b = 1 } } } end)
  t.raises("invalid header name", function() http.client { headers = { ["a b"] = "1" } } end)
end

-- §2 Retries: a count or a policy; 429 retried by default; attempts counted.
do
  local res = t.ok(http.get(raw .. "/busy429-1-a", { retries = 2 }))
  t.eq(res.status, 200); t.eq(res.attempts, 2, "429 retried by default, Retry-After honoured")
  res = t.ok(http.get(raw .. "/ok"))
  t.eq(res.attempts, 1)
  res = t.ok(http.post(raw .. "/flaky2-p", { body = "x", retries = { count = 3, methods = { "POST" }, backoff = 0 } }))
  t.eq(res.status, 200); t.eq(res.attempts, 3, "POST retried when the policy lists it")
  res = t.ok(http.get(raw .. "/flaky5-q", { retries = { count = 1, statuses = { 500 } } }))
  t.eq(res.status, 503, "503 not in statuses: not retried"); t.eq(res.attempts, 1)
  local err = t.fails("connect", http.get("http://127.0.0.1:1/", { retries = { count = 2, backoff = 0.01 } }))
  t.eq(err.attempts, 3)
  t.eq(err.url, "http://127.0.0.1:1/")
  local c = http.client { retries = { count = 2, backoff = 0 } }
  t.eq(t.ok(c:get(raw .. "/flaky1-r")).attempts, 2, "the client's policy")
  t.eq(t.ok(c:get(raw .. "/flaky1-s", { retries = 0 })).status, 503, "overridden by the request")
  t.raises("retries must be a whole number", function() http.get(raw, { retries = -1 }) end)
  t.raises("retries.statuses: not a status code", function() http.get(raw, { retries = { statuses = { "x" } } }) end)
end

-- §2 The per-host cap is visible: a wait that runs out of time says so;
-- an unread streamed response says it holds a connection.
do
  local c = http.client { base_url = raw, max_per_host = 1 }
  local held = t.ok(c:get("/stallbody", { stream = true }))
  t.ok(tostring(held):find("streamed, body unread, holding a connection", 1, true), tostring(held))
  local t0 = lurk.now()
  local err = t.fails("timeout", c:get("/ok", { timeout = 0.4 }))
  t.took(t0, 0.4)
  t.eq(err.phase, "pool")
  t.ok(err.message:find(("timed out waiting for a connection to 127.0.0.1:%d (1 in use, max_per_host = 1)"):format(port),
    1, true), err.message)
  t.eq(err.url, raw .. "/ok")
  t.eq(held:read(3), "hel")
  t.ok(tostring(held):find("body partly read, holding a connection", 1, true), tostring(held))
  held:close()
  t.ok(not tostring(held):find("holding", 1, true), tostring(held))
  t.eq(t.ok(c:get("/ok")).body, "hello", "the slot is free again")
  c:close()
end

-- §3 Timeouts name the deadline, never an errno text; iterators raise on a
-- broken stream and end cleanly at its end.
do
  local err = t.fails("timeout", http.get(raw .. "/drip", { timeout = 0.3 }))
  t.eq(err.message, "HTTP request to " .. raw .. "/drip timed out after 0.3 s")
  err = t.fails("timeout", http.get(raw .. "/stallbody", { timeout = { read = 0.3 } }))
  t.eq(err.message, "HTTP request to " .. raw .. "/stallbody timed out after 0.3 s without data (read timeout)")
  local inner
  t.fails("timeout", lurk.timeout(0.3, function() inner = select(2, http.get(raw .. "/drip")) end))
  t.eq(inner.kind, "timeout")
  t.ok(inner.message:find("^HTTP request to " .. raw:gsub("%p", "%%%0") .. "/drip timed out after 0%.%d+ s %(the deadline of an enclosing lurk%.timeout%)$"),
    inner.message)
  t.ok(not inner.message:find("Connection timed out", 1, true), inner.message)
  -- A streamed body that stalls: the iterator raises the timeout.
  local res = t.ok(http.get(raw .. "/stallbody", { stream = true, timeout = { read = 0.3 } }))
  local got = {}
  local e = t.raises("timed out", function() for chunk in res:chunks() do got[#got + 1] = chunk end end)
  t.eq(table.concat(got), "hello", "what arrived came first")
  t.ok(tostring(e):find("reading the body of " .. raw .. "/stallbody timed out after 0.3 s without data (read timeout)",
    1, true), tostring(e))
  local ok, ev = pcall(function() for _ in t.ok(http.get(raw .. "/stallbody", { stream = true,
    timeout = { read = 0.2 } })):lines() do end end)
  t.eq(ok, false); t.eq(ev.kind, "timeout"); t.eq(ev.url, raw .. "/stallbody")
  res = t.ok(http.get(raw .. "/truncchunk", { stream = true }))
  ok, ev = pcall(function() for _ in res:lines() do end end)
  t.eq(ok, false); t.eq(ev.kind, "protocol"); t.eq(ev.url, raw .. "/truncchunk")
  res = t.ok(http.get(raw .. "/truncchunk", { stream = true }))
  ok, ev = pcall(function() for _ in res:events() do end end)
  t.eq(ok, false); t.eq(ev.kind, "protocol")
  res = t.ok(http.get(raw .. "/ok", { stream = true }))
  local n = 0
  for _ in res:lines() do n = n + 1 end
  t.eq(n, 1, "a clean end ends the loop")
end

-- §4 and §5 Downloads: a .part renamed on success, nothing left on failure,
-- resume with Range and If-Range, progress, no default cap, err.url.
do
  local dest = dir .. "/file.bin"
  local calls = {}
  local res = t.ok(http.download(raw .. "/res/v1/full", dest, { progress = function(done, total)
    calls[#calls + 1] = { done, total } end }))
  t.eq(res.bytes, 1000)
  t.eq(read_all(dest), (("v1:"):rep(1000)):sub(1, 1000))
  t.ok(not exists(dest .. ".part"), "no part left")
  t.ok(#calls >= 1, "progress called"); t.eq(calls[#calls][1], 1000); t.eq(calls[#calls][2], 1000)

  -- A failed download leaves nothing at the destination (nor a part).
  local d2 = dir .. "/cut.bin"
  local err = t.fails("protocol", http.download(raw .. "/res/v1/cut", d2))
  t.eq(err.url, raw .. "/res/v1/cut")
  t.ok(not exists(d2) and not exists(d2 .. ".part"), "nothing left after a failure")
  -- The old file at the destination survives a failed download.
  err = t.fails("protocol", http.download(raw .. "/res/v1/cut", dest))
  t.eq(#read_all(dest), 1000, "dest untouched")

  -- resume = true keeps the part and continues it with Range and If-Range.
  t.fails("protocol", http.download(raw .. "/res/v1/cut", d2, { resume = true }))
  t.eq(#read_all(d2 .. ".part"), 400, "the part is kept")
  t.ok(not exists(d2), "not renamed")
  calls = {}
  res = t.ok(http.download(raw .. "/res/v1/full", d2, { resume = true, progress = function(done, total)
    calls[#calls + 1] = { done, total } end }))
  t.eq(res.status, 206); t.eq(res.resumed, 400); t.eq(res.bytes, 1000)
  t.eq(t.ok(http.get(raw .. "/res-last")).body, 'range=bytes=400- if-range="v1"')
  t.eq(read_all(d2), (("v1:"):rep(1000)):sub(1, 1000), "the whole file, continued")
  t.ok(not exists(d2 .. ".part") and not exists(d2 .. ".part.validator"), "no part, no validator")
  t.eq(calls[1][1], 400); t.eq(calls[1][2], 1000); t.eq(calls[#calls][1], 1000)

  -- The file changed on the server: If-Range fails, the download restarts from zero.
  os.remove(d2)
  t.fails("protocol", http.download(raw .. "/res/v1/cut", d2, { resume = true }))
  res = t.ok(http.download(raw .. "/res/v2/full", d2, { resume = true }))
  t.eq(res.status, 200); t.eq(res.resumed, nil)
  t.eq(read_all(d2), (("v2:"):rep(1000)):sub(1, 1000), "the new file, whole, no mix of old and new")

  -- A 206 for the wrong range is an error, not a corrupt file.
  os.remove(d2)
  t.fails("protocol", http.download(raw .. "/res/v1/cut", d2, { resume = true }))
  err = t.fails("protocol", http.download(raw .. "/res/v1/badrange", d2, { resume = true }))
  t.ok(err.message:find("asked for bytes 400-", 1, true), err.message)
  t.ok(not exists(d2), "nothing at the destination")
  -- A part already complete (416 with the same size) is finished.
  local f = io.open(d2 .. ".part", "wb"); f:write((("v1:"):rep(1000)):sub(1, 1000)); f:close()
  res = t.ok(http.download(raw .. "/res/v1/full", d2, { resume = true }))
  t.eq(res.bytes, 1000); t.eq(#read_all(d2), 1000)

  -- Through a client: its base_url and defaults.
  local c = http.client { base_url = raw, headers = { ["X-From"] = "client" } }
  res = t.ok(c:download("/echohead", dir .. "/head.txt"))
  local h = read_all(dir .. "/head.txt")
  t.ok(h:find("^GET /echohead HTTP/1.1\r\n") and h:find("X-From: client\r\n", 1, true), h)
  t.eq(res.url, raw .. "/echohead")
  c:close()

  -- No default cap: 65 MiB + 1 byte downloads; max_body caps it when given.
  local big = dir .. "/big.bin"
  res = t.ok(http.download(raw .. "/big", big, { timeout = 60 }))
  t.eq(res.bytes, (65 * 1024 * 1024) + 1)
  os.remove(big)
  err = t.fails("limit", http.download(raw .. "/big", big, { max_body = 1024 * 1024 }))
  t.eq(err.url, raw .. "/big")
  t.ok(not exists(big) and not exists(big .. ".part"), "nothing left after the limit")

  -- err.url on every failure: connect, status, io.
  err = t.fails("connect", http.download("http://127.0.0.1:1/x", dir .. "/y"))
  t.eq(err.url, "http://127.0.0.1:1/x")
  err = t.fails("status", http.download(raw .. "/nothing-here", dir .. "/y"))
  t.eq(err.url, raw .. "/nothing-here"); t.eq(err.status, 404)
  err = t.fails("io", http.download(raw .. "/ok", "/nonexistent-dir/y"))
  t.eq(err.url, raw .. "/ok")
  t.raises("progress must be", function() http.download(raw .. "/ok", dir .. "/y", { progress = 1 }) end)

  -- Out of descriptors when the file is opened: kind io, not limit.
  local script = dir .. "/emfile.lua"
  f = io.open(script, "w")
  f:write(([[
    local c = http.client {}
    assert(c:get(%q))                        -- a pooled connection: no descriptor needed later
    local keep = {}
    while true do
      local h = io.open("/dev/null")
      if not h then break end
      keep[#keep + 1] = h
    end
    local res, err = c:download(%q, %q)
    io.write(tostring(err and err.kind), " ", tostring(err and err.errno))
  ]]):format(raw .. "/ok", raw .. "/ok", dir .. "/emfile.out"))
  f:close()
  local out = io.popen(("ulimit -n 64; %s %s 2>&1"):format(t.lurk, script)):read("*a")
  t.eq(out, "io 24", "EMFILE opening the file is a disk-side failure")
end

t.done()
