-- RFC 9112 conformance of the HTTP client (issue 14): responses curl takes, lurk takes the same way, buffered and with stream = true, against a server that sends exact bytes.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
local port = t.server("rawhttp.py")
local raw = "http://127.0.0.1:" .. port
local secure = "https://localhost:" .. t.server("rawhttp.py", "tls", dir)
local tls = { cafile = dir .. "/ca.pem" }
local ORIGINAL = ("the original bytes, before any coding "):rep(20)

-- ---- running cases ----

-- Every case runs, and the summary names the ones that failed, with the
-- part of lurk that owns the behaviour: the parser (src/http/h1.c), the
-- redirect resolution (lua/http/url.lua) or the response exchange
-- (src/http/exchange.c); "guard" cases passed before issue 14 too.
local failed = {}

local function case(name, owner, fn)
  local ok, e = pcall(fn)
  t.checks = t.checks + 1
  if ok then
    print(("  pass  %s"):format(name))
  else
    failed[#failed + 1] = { name = name, owner = owner, why = tostring(e) }
    print(("  FAIL  %s [%s]: %s"):format(name, owner, tostring(e)))
  end
end

local function show(v)
  if type(v) == "string" then
    if #v > 80 then v = v:sub(1, 80) .. ("...(%d bytes)"):format(#v) end
    return '"' .. v:gsub("[^\32-\126]", function(c) return ("\\x%02x"):format(c:byte()) end) .. '"'
  end
  return tostring(v)
end

local function eq(got, want, what)
  if got ~= want then error(("%s: expected %s, got %s"):format(what, show(want), show(got)), 2) end
end

local function ok(v, err, what)
  if not v then error(("%s: failed: %s"):format(what, tostring(err)), 2) end
  return v
end

-- fetch(url, opts, stream) -> res, body | nil, err, partial: the whole body
-- read, by res.body or by a res:read() loop; partial is what a loop read
-- before the error.
local function fetch(url, opts, stream, client)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if stream then o.stream = true end
  local res, err
  if client then res, err = client:get(url, o) else res, err = http.get(url, o) end
  if not res then return nil, err end
  if not stream then return res, res.body end
  local parts = {}
  while true do
    local data, rerr = res:read()
    if not data then
      if rerr then return nil, rerr, table.concat(parts) end
      break
    end
    parts[#parts + 1] = data
  end
  return res, table.concat(parts)
end

-- Each case both ways.
local function both(name, owner, fn)
  case(name, owner, function() fn(false) end)
  case(name .. ", stream = true", owner, function() fn(true) end)
end

-- ---- the parser (h1.c) ----

print("parsing:")
both("obs-fold joined with one space", "h1", function(stream)
  local res, body = fetch(raw .. "/fold", nil, stream)
  ok(res, body, "GET /fold")
  eq(res.headers["x-fold"], "a b c", "x-fold")
  eq(body, "hello", "body")
end)
both("Content-Length with whitespace around it", "h1", function(stream)
  local res, body = fetch(raw .. "/clws", nil, stream)
  ok(res, body, "GET /clws")
  eq(res.headers["content-length"], "13", "content-length")
  eq(body, "hello, world!", "body")
end)
both("chunk extensions with quoted ; and =, on every chunk and the last", "h1", function(stream)
  local res, body = fetch(raw .. "/chunkext", nil, stream)
  ok(res, body, "GET /chunkext")
  eq(body, "wikipedia", "body")
end)
both("bare LF in the status line, headers and chunk headers", "h1", function(stream)
  local res, body = fetch(raw .. "/lfall", nil, stream)
  ok(res, body, "GET /lfall")
  eq(res.status, 200, "status")
  eq(res.headers["x-a"], "1", "x-a")
  eq(body, "hello\n", "body")
end)

-- ---- redirects (url.lua), against curl ----

-- What curl makes of a redirect: the URL it ends at (without the fragment,
-- which it keeps in url_effective but never sends), the status, the body.
local function curl(url)
  local out = os.tmpname()
  local p = assert(io.popen(("curl -q -sL --noproxy '*' -o '%s' -w '%%{url_effective} %%{http_code}' '%s'"):format(out, url)))
  local line = p:read("*a")
  p:close()
  local f = assert(io.open(out, "rb"))
  local body = f:read("*a")
  f:close()
  os.remove(out)
  local u, code = line:match("^(%S+) (%d+)$")
  return u and u:gsub("#.*$", ""), tonumber(code), body
end

print("redirects:")
local REDIRECTS = {
  dotdot = "/t/a/final", dot = "/t/a/b/x", updown = "/t/a/b/c", query = "/t/a/b/redirect-query?q=1",
  netpath = "/t/path", absdots = "/t/abs/x", pathdots = "/t/y/z/", fragment = "/t/a/frag?f=1",
  above = "/t/top", spaces = "/t/with%20space/a%20b?q=a+b", utf8 = "/t/caf%c3%a9/%c3%a9?x=%c3%a9",
}
local keys = {}
for k in pairs(REDIRECTS) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do
  local url = raw .. "/t/a/b/redirect-" .. k
  local curl_url, curl_code, curl_body = curl(url)
  both("Location " .. k .. " (as curl: " .. tostring(curl_url) .. ")", "url", function(stream)
    eq(curl_url, raw .. REDIRECTS[k], "curl's url_effective")
    local res, body = fetch(url, nil, stream)
    ok(res, body, "GET " .. url)
    eq(res.status, curl_code, "status")
    eq(res.url, curl_url, "res.url")
    eq(body, curl_body, "body (the target the server saw)")
  end)
end
do
  local url = raw .. "/emptyloc"
  local curl_url, curl_code, curl_body = curl(url)
  both("an empty Location returns the 3xx", "url", function(stream)
    eq(curl_code, 302, "curl's status")
    local res, body = fetch(url, nil, stream)
    ok(res, body, "GET /emptyloc")
    eq(res.status, curl_code, "status")
    eq(res.url, curl_url, "res.url")
    eq(body, curl_body, "body")
  end)
end

-- ---- the response exchange (exchange.c) ----

print("content codings:")
for _, c in ipairs { "gzgz", "dig", "dig2" } do
  both("Content-Encoding list " .. c .. " decoded in reverse order", "exchange", function(stream)
    local res, body = fetch(raw .. "/" .. c, nil, stream)
    ok(res, body, "GET /" .. c)
    eq(body, ORIGINAL, "body")
  end)
end
for _, c in ipairs { "br", "compress" } do
  both("unknown coding " .. c .. " is a protocol error", "exchange", function(stream)
    local res, err = fetch(raw .. "/" .. c, nil, stream)
    eq(res, nil, "result")
    eq(type(err) == "table" and err.kind, "protocol", "err.kind")
  end)
  both("unknown coding " .. c .. " with decompress = false: the raw body", "guard", function(stream)
    local res, body = fetch(raw .. "/" .. c, { decompress = false }, stream)
    ok(res, body, "GET /" .. c)
    eq(res.headers["content-encoding"], c, "content-encoding")
    eq(#body, c == "br" and 9 or 8, "body length")
  end)
end
both("five coding layers are an error", "exchange", function(stream)
  local res, err = fetch(raw .. "/layers5", nil, stream)
  eq(res, nil, "result")
  ok(type(err) == "table" and (err.kind == "protocol" or err.kind == "limit"), err, "err.kind protocol or limit")
end)

print("limits and connections:")
both("max_body applies to the final response, not a redirect's body", "exchange", function(stream)
  local res, body = fetch(raw .. "/bigredirect", { max_body = 1000 }, stream)
  ok(res, body, "GET /bigredirect with max_body 1000")
  eq(res.status, 200, "status")
  eq(body, "hello", "body")
end)
both("an idle connection with unsolicited bytes is not reused", "exchange", function(stream)
  local c = http.client {}
  local res, body = fetch(raw .. "/unsolicited", nil, false, c)
  ok(res, body, "request 1")
  eq(body, "hello", "request 1 body")
  lurk.sleep(0.3)                     -- the server writes its bogus response meanwhile
  res, body = fetch(raw .. "/t/second", nil, stream, c)
  ok(res, body, "request 2")
  eq(body, "/t/second", "request 2 body")
end)

case("a connection the server closed while idle is not taken (a POST, never sent twice)", "exchange", function()
  local c = http.client {}
  local res, body = fetch(raw .. "/idle", nil, false, c)
  ok(res, body, "request 1")
  lurk.sleep(0.3)                     -- the server closes it meanwhile
  res, body = c:post(raw .. "/t/posted", { body = "x" })
  ok(res, body, "the POST")
  eq(res.body, "/t/posted", "POST body")
end)

case("a request whose send fails after returning (the server reset the connection) fails as closed", "exchange", function()
  local x = t.private().parser(false)
  local sock = assert(require("lurk.tcp").connect("127.0.0.1", port))
  local status, _, _, body = x:exchange(sock, "GET /reset HTTP/1.1\r\nHost: a\r\n\r\n", false, 1e6, false, "whole")
  ok(status, body, "request 1")
  eq(body, "hello", "request 1 body")
  lurk.sleep(0.3)                     -- the server resets it meanwhile; nothing reads it
  local res, err = x:exchange(sock, "GET /t/second HTTP/1.1\r\nHost: a\r\n\r\n", false, 1e6, false, "whole")
  eq(res, nil, "request 2's result")
  eq(type(err) == "table" and err.kind, "closed", "err.kind")
  eq(type(err) == "table" and err.response_started, false, "err.response_started")
  sock:close()
end)

case("a GET on a pooled connection the server reset goes once more, on a fresh one", "exchange", function()
  local c = http.client {}
  local res, body = fetch(raw .. "/reset", nil, false, c)
  ok(res, body, "request 1")
  -- The reset comes while the loop does not turn: nothing can have seen it
  -- before the next request is sent (a poll at checkout may).
  local t0 = os.clock()
  while os.clock() - t0 < 0.3 do end
  res, body = fetch(raw .. "/t/second", nil, false, c)
  ok(res, body, "request 2")
  eq(body, "/t/second", "request 2 body")
end)

print("TLS endings:")
both("close-delimited body cut without close_notify is a protocol error", "exchange", function(stream)
  local res, err, partial = fetch(secure .. "/tls-cut", { tls = tls }, stream)
  eq(res, nil, "result")
  eq(type(err) == "table" and err.kind, "protocol", "err.kind")
  eq(stream and partial or err.partial, "what arrived", stream and "bytes read before the error" or "err.partial")
end)
both("close-delimited body ended by close_notify", "exchange", function(stream)
  local res, body = fetch(secure .. "/tls-clean", { tls = tls }, stream)
  ok(res, body, "GET /tls-clean")
  eq(body, "what arrived", "body")
end)
both("Content-Length body complete before an unclean cut", "exchange", function(stream)
  local res, body = fetch(secure .. "/tls-clcut", { tls = tls }, stream)
  ok(res, body, "GET /tls-clcut")
  eq(body, "hello", "body")
end)

-- ---- summary ----

if #failed > 0 then
  io.stderr:write(("\n%d case(s) failed:\n"):format(#failed))
  for _, f in ipairs(failed) do io.stderr:write(("  %s [%s]\n"):format(f.name, f.owner)) end
  os.exit(1)
end
t.done()
