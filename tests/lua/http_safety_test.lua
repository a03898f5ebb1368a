-- HTTP client safety: credentials and cookies in any spelling stay with their
-- origin, request lines cannot be split, bodies are never sent twice when
-- they cannot be replayed, traces mask secrets, options are checked.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
t.server("api.py", dir)
local P = dofile(dir .. "/ports.lua")
local base = "http://127.0.0.1:" .. P.http
local other = "http://localhost:" .. P.http      -- another origin: another host name
local ca = dir .. "/ca.pem"

local function sent_headers(res)
  return res:json().headers
end

-- Authorization and Cookie given in any spelling reach the origin asked for,
-- and are dropped when a redirect leaves it.
for _, spelling in ipairs { "Authorization", "authorization", "AUTHORIZATION" } do
  local res = t.ok(http.get(base .. "/headers", { headers = { [spelling] = "Bearer tok-" .. spelling } }))
  t.eq(sent_headers(res).Authorization, "Bearer tok-" .. spelling, spelling .. " reaches the origin")
  local hop = base .. "/redirect-to?url=" .. http.urlencode(other .. "/headers")
  res = t.ok(http.get(hop, { headers = { [spelling] = "Bearer tok", cookie = "session=abc" } }))
  t.eq(res.status, 200)
  t.eq(res.url, other .. "/headers", "the redirect was followed")
  t.eq(sent_headers(res).Authorization, nil, spelling .. " dropped on a cross-origin redirect")
  t.eq(sent_headers(res).Cookie, nil, "cookie dropped on a cross-origin redirect")
end
do
  local res = t.ok(http.get(base .. "/headers", { headers = { COOKIE = "a=1" } }))
  t.eq(sent_headers(res).Cookie, "a=1", "a Cookie header in capitals reaches the origin")
end

-- One Content-Type, whatever its spelling, even with json = or form =.
do
  local res = t.ok(http.post(base .. "/post", { headers = { ["content-type"] = "application/vnd.lurk+json" },
    json = { a = 1 } }))
  t.eq(sent_headers(res)["Content-Type"], "application/vnd.lurk+json", "the caller's content type, once")
  res = t.ok(http.post(base .. "/post", { form = { a = "1" } }))
  t.eq(sent_headers(res)["Content-Type"], "application/x-www-form-urlencoded")
end

-- A string query with CR LF cannot add a header: it is percent-encoded.
do
  local res = t.ok(http.get(base .. "/get", { query = "a=b\r\nX-Injected: 1" }))
  local j = res:json()
  t.eq(j.args.a, "b\r\nX-Injected: 1", "the query arrives as data")
  t.eq(j.headers["X-Injected"], nil, "no header was injected")
  t.raises("control characters", http.get, base .. "/get\r\nX-Injected: 1")
end

-- Multipart boundaries are unpredictable: two requests, two boundaries.
do
  local b = {}
  for i = 1, 2 do
    local res = t.ok(http.post(base .. "/post", { files = { f = { content = "x", filename = "x.txt" } } }))
    b[i] = sent_headers(res)["Content-Type"]:match("boundary=(%S+)")
    t.ok(b[i] and #b[i] >= 32, "a long boundary: " .. tostring(b[i]))
  end
  t.ok(b[1] ~= b[2], "boundaries differ between requests")
end

-- Multipart names cannot break out of their quotes or their header line.
do
  local res = t.ok(http.post(base .. "/post", {
    form = { ['a"b\r\nX-Evil: 1'] = "v" },
    files = { ['f\r\nX-Evil: 2'] = { content = "data", filename = 'x"\r\n.txt' } } }))
  local j = res:json()
  t.eq(j.form['a%22b%0D%0AX-Evil: 1'], "v", "the field name arrives encoded")
  local fname = next(j.files)
  t.eq(fname, "f%0D%0AX-Evil: 2", "the file's field name arrives encoded")
  t.raises("content_type contains CR", http.post, base .. "/post",
    { files = { f = { content = "x", content_type = "text/plain\r\nX-Evil: 3" } } })
end

-- Retries never send a body that cannot be replayed: a function's chunks go
-- once, and the 503 comes back as the answer.
do
  local calls = 0
  local t0 = lurk.now()
  local res = t.ok(http.put(base .. "/status/503", { retries = 3, body = function()
    calls = calls + 1
    if calls == 1 then return "chunk" end
  end }))
  t.eq(res.status, 503, "the answer, not a retry with an empty body")
  t.eq(calls, 2, "the body function ran to its end once")
  t.ok(lurk.now() - t0 < 1, "no backoff waited")
  -- A file body is rewound for each retry: every attempt sends it whole.
  local path = dir .. "/upload.txt"
  local f = assert(io.open(path, "w")); f:write(("y"):rep(1000)); f:close()
  f = assert(io.open(path, "rb"))
  res = t.ok(http.put(base .. "/anything", { retries = 1, body = f }))
  f:close()
  t.eq(#res:json().data, 1000, "a file body arrives whole")
end

-- Connections are pooled by the value of the TLS options, lists included.
do
  local https = "https://localhost:" .. P.https .. "/get"
  local seen = {}
  for i = 1, 3 do
    local res = t.ok(http.get(https, { tls = { cafile = ca, alpn = { "http/1.1" } } }))
    seen[i] = res.headers["x-connection"]
  end
  t.eq(seen[2], seen[1], "the second request reused the connection")
  t.eq(seen[3], seen[1], "the third too")
end

-- A pooled connection takes each request's own read timeout: one asking
-- for none is not cut off by the timeout of the request before it.
do
  local c = http.client()
  local first = t.ok(c:get(base .. "/get", { timeout = 0.5 }))
  local t0 = lurk.now()
  local res = t.ok(c:get(base .. "/delay/1", { timeout = false }))
  t.eq(res.status, 200, "no timeout: the slow answer arrives")
  t.ok(lurk.now() - t0 >= 0.9, "it took its second")
  t.eq(res.headers["x-connection"], first.headers["x-connection"], "on the pooled connection")
  t.fails("timeout", c:get(base .. "/delay/1", { timeout = 0.3 }))
  c:close()
end

-- A request's total deadline ends with it: after a plain request, after
-- one that failed, and after one whose options raised mid-way.
do
  t.ok(http.get(base .. "/get"))
  t.eq(t.private().deadline(), nil, "no deadline left after a plain request")
  t.fails("timeout", http.get(base .. "/delay/1", { timeout = 0.2 }))
  t.eq(t.private().deadline(), nil, "none after a timed-out one")
  t.raises("value contains CR, LF or NUL", http.get, base .. "/get", { headers = { ["X-A"] = "a\r\nb" } })
  t.eq(t.private().deadline(), nil, "none after one that raised")
  local ok = lurk.timeout(5, function()
    local outer = t.private().deadline()
    t.ok(http.get(base .. "/get"))
    t.eq(t.private().deadline(), outer, "an enclosing lurk.timeout's deadline is back")
    return true
  end)
  t.ok(ok, "lurk.timeout ran")
end

-- TLS options are checked: a string is not a boolean.
t.raises("insecure must be true or false", http.get, "https://localhost:" .. P.https .. "/get",
  { tls = { insecure = "false" } })

-- Traces mask credentials and cookie values, in requests and responses.
do
  local cmd = ("LURK_TRACE=http %s -e 'http.get(%q, { bearer = \"s3cr3t\", headers = { cookie = \"sid=hunter2\" } })' 2>&1")
    :format(t.lurk, base .. "/cookies/set?token=t0ps3cret")
  local out = io.popen(cmd):read("*a")
  t.ok(out:find("Authorization: Bearer ***", 1, true), out)
  t.ok(out:find("sid=***", 1, true), "request cookie masked: " .. out)
  t.ok(out:find("token=***", 1, true), "set-cookie masked: " .. out)
  t.ok(not out:find("s3cr3t", 1, true) and not out:find("hunter2", 1, true), "no secret in the trace: " .. out)
  t.ok(not out:lower():find("set%-cookie:[^\n]*t0ps3cret"), "no cookie value in the trace: " .. out)
end

-- An unknown LURK_KTLS value is named, not silently ignored.
do
  local out = io.popen(("LURK_KTLS=yes %s -e 'local s = tcp.connect(\"127.0.0.1\", %d, { tls = { cafile = %q } })' 2>&1")
    :format(t.lurk, P.https, ca)):read("*a")
  t.ok(out:find("LURK_KTLS=yes is not auto, off or require", 1, true), out)
end
t.done()
