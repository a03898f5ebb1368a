-- HTTP client: methods, bodies, headers, redirects, auth, keep-alive, timeouts, limits, HTTPS, against httpbin behind nginx and a raw byte-exact server.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
t.server("api.py", dir)
local P = dofile(dir .. "/ports.lua")
local base = "http://127.0.0.1:" .. P.http
local ca = dir .. "/ca.pem"

-- Every method, and an arbitrary token.
for _, m in ipairs { "get", "delete", "post", "put", "patch" } do
  local res = t.ok(http[m](base .. "/" .. m, m ~= "get" and m ~= "delete" and { body = "data" } or nil))
  t.eq(res.status, 200, m)
  t.eq(res:json().url, base .. "/" .. m)
end
do
  local res = t.ok(http.head(base .. "/static/1k"))
  t.eq(res.status, 200); t.eq(res.body, ""); t.eq(res.headers["content-length"], "1024")
  res = t.ok(http.options(base .. "/get"))
  t.ok(res.headers.allow:find("GET", 1, true))
  res = t.ok(http.request { method = "PURGE", url = base .. "/hello" })
  t.eq(res.status, 405 == res.status and 405 or res.status)   -- nginx decides; it is a response, not an error
end

-- Query, headers, JSON and form bodies.
do
  local res = t.ok(http.get(base .. "/get?x=1", { query = { q = "a b&c", list = { 1, 2 } },
    headers = { ["X-Custom"] = "yes" } }))
  local j = res:json()
  t.eq(j.args.q, "a b&c"); t.eq(j.args.x, "1"); t.eq(j.args.list[2], "2")
  t.eq(j.headers["X-Custom"], "yes")
  t.eq(j.headers["User-Agent"], "lurk/" .. lurk.version)
  res = t.ok(http.post(base .. "/post", { json = { name = "lurk", n = 3, list = { 1, 2 } } }))
  j = res:json()
  t.eq(j.json.name, "lurk"); t.eq(j.json.list[2], 2)
  t.eq(j.headers["Content-Type"], "application/json")
  res = t.ok(http.post(base .. "/post", { form = { a = "1", b = "x y" } }))
  j = res:json()
  t.eq(j.form.a, "1"); t.eq(j.form.b, "x y")
  local big = ("0123456789"):rep(100000)              -- 1 MB request body
  res = t.ok(http.put(base .. "/put", { body = big, timeout = 20 }))
  t.eq(#res:json().data, #big)
end

-- Streamed and multipart request bodies, and Expect: 100-continue.
do
  local pieces = { "alpha ", "beta ", "", "gamma" }
  local i = 0
  local res = t.ok(http.post(base .. "/post", { body = function() i = i + 1; return pieces[i] end }))
  t.eq(res:json().data, "alpha beta gamma", "a function body is sent chunked")
  local path = dir .. "/upload.txt"
  local f = io.open(path, "wb"); f:write(("z"):rep(200000)); f:close()
  f = io.open(path, "rb")
  res = t.ok(http.put(base .. "/put", { body = f }))
  f:close()
  t.eq(#res:json().data, 200000, "a file body is sent with its length")
  t.eq(res:json().headers["Content-Length"], "200000")
  res = t.ok(http.post(base .. "/post", { form = { note = "hi" },
    files = { doc = { path = path, content_type = "text/plain" }, inline = { content = "abc", filename = "a.txt" } } }))
  local j = res:json()
  t.eq(#j.files.doc, 200000); t.eq(j.files.inline, "abc"); t.eq(j.form.note, "hi")
  t.ok(j.headers["Content-Type"]:find("multipart/form-data; boundary=", 1, true))
  res = t.ok(http.put(base .. "/put", { body = ("e"):rep(100000), headers = { Expect = "100-continue" } }))
  t.eq(#res:json().data, 100000, "body sent after 100 Continue")
end

-- Responses: status codes are responses; headers case-insensitive and repeated.
do
  local res = t.ok(http.get(base .. "/status/418"))
  t.eq(res.status, 418); t.eq(res.ok, false)
  t.fails("status", res:expect(200, 201))
  t.eq(res:expect(418), res)
  res = t.ok(http.get(base .. "/status/204"))
  t.eq(res.status, 204); t.eq(res.body, "")
  res = t.ok(http.get(base .. "/response-headers?X-Rep=1&X-Rep=2"))
  t.eq(res.headers["X-REP"], "1, 2")
  t.eq(#res.headers:all("x-rep"), 2)
  t.eq(res.headers["x-rep"], res.headers["X-Rep"])
  local seen = 0
  for k in pairs(res.headers) do if k == "x-rep" then seen = seen + 1 end t.eq(k, k:lower()) end
  t.eq(seen, 1)
  t.ok(res.timings.total > 0 and res.timings.ttfb > 0)
  t.ok(res.timings.total >= res.timings.ttfb, "the end comes no sooner than the first byte")
  -- A body that trickles in: total counts to its last byte, as curl's
  -- time_total does (time_starttransfer ~3 ms, time_total ~0.32 s here).
  local drip = t.ok(http.get(base .. "/drip?numbytes=5&duration=0.4&delay=0"))
  t.eq(drip.body, "*****")
  t.ok(drip.timings.total - drip.timings.ttfb > 0.2, ("ttfb %.3f, total %.3f"):format(drip.timings.ttfb, drip.timings.total))
  t.eq(tostring(res):match("^HTTP 200"), "HTTP 200")
  -- A connection's responses reuse the strings of the fields that did not
  -- change (src/lua/http.c, struct parser): what changed must show.
  local c = http.client()
  local function fields(q)
    local r = t.ok(c:get(base .. "/response-headers?" .. q))
    return r.headers, r.headers["x-connection"]
  end
  local h1, conn = fields("X-A=1&X-B=same")
  t.eq(h1["x-a"], "1"); t.eq(h1["x-b"], "same")
  local h2, conn2 = fields("X-A=2&X-B=same")
  t.eq(conn2, conn, "the same connection")
  t.eq(h2["x-a"], "2", "a changed value"); t.eq(h2["x-b"], "same")
  local h3 = fields("X-A=2&X-B=same")
  t.eq(h3["x-a"], "2", "the same head again"); t.ok(h3 ~= h2, "a table of its own")
  local h4 = fields("X-A=1&X-A=3&X-B=other")
  t.eq(h4["x-a"], "1, 3", "a field now repeated"); t.eq(table.concat(h4:all("x-a"), "|"), "1|3")
  t.eq(h4["x-b"], "other")
  local h5 = fields("X-A=1&X-A=3&X-B=other")
  t.eq(h5["x-a"], "1, 3", "repeated again"); t.eq(#h5:all("x-a"), 2)
  local h6 = fields("X-C=9")
  t.eq(h6["x-a"], nil, "a field gone"); t.eq(h6["x-c"], "9")
  c:close()
end

-- Chunked responses (httpbin streams through nginx without buffering).
do
  local res = t.ok(http.get(base .. "/stream/5"))
  local n = 0
  for _ in res.body:gmatch("[^\n]+") do n = n + 1 end
  t.eq(n, 5)
end

-- Decompression: gzip and deflate by default, with the limit on the decoded size.
do
  local res = t.ok(http.get(base .. "/gzip"))
  t.eq(res:json().gzipped, true)
  t.eq(res:json().headers["Accept-Encoding"], "gzip, deflate")
  res = t.ok(http.get(base .. "/deflate"))
  t.eq(res:json().deflated, true)
  res = t.ok(http.get(base .. "/gzip", { decompress = false }))
  t.eq(res.body:sub(1, 2), "\31\139", "decompress = false keeps the gzip bytes")
  t.eq(res.headers["content-encoding"], "gzip")
end

-- Streaming: read, chunks, lines, save, close; the connection is reused once
-- a streamed body has been read to the end.
do
  local c = http.client { base_url = base }
  local res = t.ok(c:get("/stream/20", { stream = true }))
  t.eq(res.body, nil)
  local n = 0
  for line in res:lines() do
    n = n + 1
    t.eq(json.decode(line).id, n - 1)
  end
  t.eq(n, 20)
  local conn = res.headers["x-connection"]
  t.eq(t.ok(c:get("/hello")).headers["x-connection"], conn, "reused after the stream ended")

  res = t.ok(c:get("/static/64k", { stream = true }))
  t.eq(#res:read(1000), 1000)
  local total = 1000
  for chunk in res:chunks() do total = total + #chunk end
  t.eq(total, 65536)
  t.eq(res:read(), nil, "read after the end")

  res = t.ok(c:get("/static/1m", { stream = true }))
  local path = dir .. "/saved"
  t.eq(res:save(path), 1024 * 1024)
  local f = io.open(path, "rb"); t.eq(#f:read("*a"), 1024 * 1024); f:close()

  res = t.ok(c:get("/static/1m", { stream = true }))
  t.eq(#res:read(10), 10)
  res:close()                                  -- abandoned: that connection is closed
  t.eq(t.ok(c:get("/hello")).body, "hello\n")
  c:close()
end

-- Downloads go to a file through the ring; no progress line when not a TTY.
do
  local path = dir .. "/download.bin"
  local res = t.ok(http.download(base .. "/static/1m", path))
  t.eq(res.bytes, 1024 * 1024)
  local f = io.open(path, "rb"); local data = f:read("*a"); f:close()
  t.eq(#data, 1024 * 1024)
  t.eq(data:sub(1, 3), "\0\1\2")
  local err = t.fails("status", http.download(base .. "/status/404", path))
  t.eq(err.status, 404)
  local ferr = t.fails("io", http.download(base .. "/static/1k", "/nonexistent-dir/x"))
  t.ok(ferr.message:find("/nonexistent-dir/x.part: No such file or directory", 1, true), ferr.message)
  local out = io.popen(("%s -e 'assert(http.download(%q, %q, { progress = true }))' 2>&1"):format(
    t.lurk, base .. "/static/1m", path)):read("*a")
  t.ok(out:find("1.0 MiB / 1.0 MiB (100%)", 1, true), "forced progress line: " .. out)
end

-- Redirects of each kind.
do
  local res = t.ok(http.get(base .. "/redirect/3"))
  t.eq(res.status, 200); t.eq(res.url, base .. "/get")
  res = t.ok(http.get(base .. "/relative-redirect/2"))
  t.eq(res.url, base .. "/get")
  res = t.ok(http.get(base .. "/absolute-redirect/2"))
  t.eq(res.status, 200)
  -- 307/308 keep the method and body; 303 (and 302 after POST) become GET
  res = t.ok(http.post(base .. "/redirect-to", { query = { url = "/post", status_code = 307 }, body = "kept" }))
  t.eq(res:json().data, "kept")
  res = t.ok(http.post(base .. "/redirect-to", { query = { url = "/get", status_code = 303 }, body = "dropped" }))
  t.eq(res.status, 200); t.eq(res:json().url, base .. "/get")
  res = t.ok(http.post(base .. "/redirect-to", { query = { url = "/get", status_code = 302 }, body = "x" }))
  t.eq(res.status, 200)
  -- redirects = 0 returns the redirect itself; a chain past the limit is an error
  res = t.ok(http.get(base .. "/redirect/1", { redirects = 0 }))
  t.eq(res.status, 302)
  local err = t.fails("limit", http.get(base .. "/redirect/5", { redirects = 2 }))
  t.ok(err.message:find("more than 2 redirects", 1, true), err.message)
  -- Authorization does not follow a redirect to another origin
  local other = "http://localhost:" .. P.http
  res = t.ok(http.get(base .. "/redirect-to", { query = { url = other .. "/headers" }, bearer = "secret" }))
  t.eq(res:json().headers.Authorization, nil)
  res = t.ok(http.get(base .. "/redirect-to", { query = { url = "/headers" }, bearer = "secret" }))
  t.eq(res:json().headers.Authorization, "Bearer secret")
  -- nor does a Cookie header the caller set
  res = t.ok(http.get(base .. "/redirect-to", { query = { url = other .. "/headers" }, headers = { Cookie = "a=1" } }))
  t.eq(res:json().headers.Cookie, nil)
  res = t.ok(http.get(base .. "/redirect-to", { query = { url = "/headers" }, headers = { Cookie = "a=1" } }))
  t.eq(res:json().headers.Cookie, "a=1")
end

-- Cookies across httpbin's set-and-redirect.
do
  local c = http.client { base_url = base }
  local res = t.ok(c:get("/cookies/set", { query = { flavour = "oat", n = "2" } }))
  t.eq(res:json().cookies.flavour, "oat", "cookies set on a redirect are sent on the next hop")
  res = t.ok(c:get("/cookies/delete", { query = { flavour = "" } }))
  t.eq(res:json().cookies.flavour, nil, "expired by the server")
  t.eq(res:json().cookies.n, "2")
  c:close()
end

-- Authentication.
do
  t.eq(t.ok(http.get(base .. "/basic-auth/u/p", { auth = { "u", "p" } })).status, 200)
  t.eq(t.ok(http.get(base .. "/basic-auth/u/p", { auth = { "u", "wrong" } })).status, 401)
  t.eq(t.ok(http.get("http://u:p@127.0.0.1:" .. P.http .. "/basic-auth/u/p")).status, 200)
  t.eq(t.ok(http.get(base .. "/bearer", { bearer = "tok" })).status, 200)
end

-- Keep-alive: sequential requests share one connection (nginx numbers them).
do
  local c = http.client { base_url = base }
  local first = t.ok(c:get("/hello")).headers["x-connection"]
  for _ = 1, 5 do t.eq(t.ok(c:get("/hello")).headers["x-connection"], first, "connection reused") end
  c:close()
  local fresh = t.ok(http.client { base_url = base }:get("/hello")).headers["x-connection"]
  t.ok(fresh ~= first, "a new client opens its own connection")
end

-- 200 concurrent requests from 200 tasks.
do
  local urls = {}
  for i = 1, 200 do urls[i] = base .. "/hello" end
  local bodies = t.ok(lurk.map(urls, function(u) return assert(http.get(u)).body end, { concurrency = 200 }))
  t.eq(#bodies, 200); t.eq(bodies[200], "hello\n")
end

-- HTTPS through the same code, with the test CA.
do
  local res = t.ok(http.get("https://localhost:" .. P.https .. "/get", { tls = { cafile = ca } }))
  t.eq(res.status, 200)
  t.eq(res:json().headers.Host, "localhost:" .. P.https)
  t.eq(type(res.tls.version), "string")
  t.eq(res.tls.alpn, "http/1.1")
  t.ok(res.timings.tls > 0 and res.timings.connect >= 0 and res.timings.dns >= 0, "timings split")
  t.fails("tls", http.get("https://localhost:" .. P.https .. "/get"))  -- system store does not know the test CA
end

-- Timeouts and limits.
do
  local t0 = lurk.now()
  local err = t.fails("timeout", http.get(base .. "/delay/5", { timeout = 0.5 }))
  t.took(t0, 0.5)
  t.ok(err.message:find("timed out", 1, true), err.message)
  t.fails("limit", http.get(base .. "/static/1m", { max_body = 1000 }))
  t.fails("connect", http.get("http://127.0.0.1:1/"))
end

-- Byte-exact responses from a raw server: each has a stated outcome.
do
  local raw = "http://127.0.0.1:" .. t.server("rawhttp.py")
  t.eq(t.ok(http.get(raw .. "/split")).body, "hello", "one byte per segment")
  t.eq(t.ok(http.get(raw .. "/lf")).body, "hello", "bare LF line ends are accepted")
  t.eq(t.ok(http.get(raw .. "/closedelim")).body, "until close", "close-delimited body")
  t.eq(t.ok(http.get(raw .. "/chunked")).body, "wikipedia", "chunk extensions and trailers")
  for _, case in ipairs { "dupcl", "clchunked", "badchunk", "garbage" } do
    local e = t.fails("protocol", http.get(raw .. "/" .. case))
    t.ok(e.message:find("invalid HTTP response", 1, true), case .. ": " .. e.message)
  end
  t.fails("protocol", http.get(raw .. "/truncated"))   -- never a short body
  t.fails("protocol", http.get(raw .. "/truncchunk"))
  t.fails("limit", http.get(raw .. "/bighead"))
  t.fails("closed", http.get(raw .. "/noresponse"))
  t.fails("limit", http.get(raw .. "/gzipbomb", { max_body = 1024 * 1024 }))
  t.eq(#t.ok(http.get(raw .. "/gzipbomb")).body, 10 * 1024 * 1024)
  t.fails("protocol", http.get(raw .. "/gztrunc"))
  t.fails("protocol", http.get(raw .. "/gzgarbage"))
  t.eq(t.ok(http.get(raw .. "/rawdeflate")).body, "raw deflate body")
  t.eq(t.ok(http.get(raw .. "/zlibdeflate")).body, "zlib deflate body")
  -- Server-sent events, split across 7-byte chunks.
  local res = t.ok(http.get(raw .. "/sse", { stream = true }))
  local evs = {}
  for ev in res:events() do evs[#evs + 1] = ev end
  t.eq(#evs, 4)
  t.eq(evs[1].event, "message"); t.eq(evs[1].data, "first")
  t.eq(evs[2].event, "update"); t.eq(evs[2].id, "7"); t.eq(evs[2].data, "line one\nline two")
  t.eq(evs[3].data, "no space"); t.eq(evs[3].retry, 1500)
  t.eq(evs[4].data, "last")
  -- A stream that breaks raises from the iterator.
  res = t.ok(http.get(raw .. "/truncchunk", { stream = true }))
  t.raises("invalid HTTP response", function() for _ in res:chunks() do end end)
  local t0 = lurk.now()
  t.fails("timeout", http.get(raw .. "/drip", { timeout = 0.5 }))
  t.took(t0, 0.5, "a slow drip cannot hold a request past its total")
  -- A final answer to Expect: 100-continue: the body is never sent.
  local er = t.ok(http.put(raw .. "/expectfail", { body = ("b"):rep(100000), headers = { Expect = "100-continue" } }))
  t.eq(er.status, 417)
  -- IPv6 literals.
  local r6 = t.ok(http.get("http://[::1]:" .. t.server("rawhttp.py", "6") .. "/ok"))
  t.eq(r6.body, "hello"); t.eq(r6.url:match("^http://%[::1%]:%d+/ok$") ~= nil, true)
  -- The per-host limit: 4 at most at once, so 8 slow requests take two rounds.
  local lc = http.client { base_url = raw, max_per_host = 4 }
  local list = {}
  for k = 1, 8 do list[k] = k end
  local before = tonumber(t.ok(http.get(raw .. "/count")).body)   -- accepted so far
  local t0 = lurk.now()
  t.ok(lurk.map(list, function() return assert(lc:get("/slow")).body end, { concurrency = 8 }))
  local took = lurk.now() - t0
  t.ok(took >= 0.38 and took < 1.5, ("8 requests of 0.2 s, 4 at a time: %.2f s"):format(took))
  local after = tonumber(t.ok(http.get(raw .. "/count")).body)    -- same pooled connection as before
  t.eq(after - before, 4, "the client opened exactly 4 connections for 8 requests")
  lc:close()
  -- A caller's "Connection: close" keeps that connection out of the pool.
  local cc = http.client {}
  local n0 = tonumber(t.ok(cc:get(raw .. "/count", { headers = { Connection = "close" } })).body)
  t.eq(tonumber(t.ok(cc:get(raw .. "/count")).body), n0 + 1, "a new connection after Connection: close")
  cc:close()
  -- Cookies: a client keeps them (RFC 6265 domain, path, expiry, Secure);
  -- plain calls keep none.
  local jc = http.client { base_url = raw }
  t.ok(jc:get("/setcookie"))
  local sent = t.ok(jc:get("/echocookie")).body
  t.eq(sent, "plain=1; later=7", "host-only, unexpired, non-secure over http")
  t.eq(t.ok(jc:get("/scoped/echocookie")).body, "scoped=2; plain=1; later=7", "longer paths first")
  local names = {}
  for _, c in ipairs(jc:cookies()) do names[#names + 1] = c.name end
  table.sort(names)
  t.eq(table.concat(names, ","), "later,plain,scoped", "Secure is refused from plain http")
  t.eq(t.ok(jc:get("/echocookie", { headers = { Cookie = "mine=1" } })).body, "mine=1; plain=1; later=7")
  jc:close()
  t.ok(http.get(raw .. "/setcookie"))
  t.eq(t.ok(http.get(raw .. "/echocookie")).body, "", "plain calls keep no cookies")
  t.eq(t.ok(http.client { base_url = raw, cookies = false }:get("/echocookie")).body, "")
  -- Retries: off by default; 503 is retried for idempotent methods only,
  -- honouring Retry-After; the last answer is returned when retries run out.
  t.eq(t.ok(http.get(raw .. "/flaky2-a")).status, 503, "no retries by default")
  local r2 = t.ok(http.get(raw .. "/flaky2-b", { retries = 3 }))
  t.eq(r2.status, 200); t.eq(r2.body, "3", "third attempt succeeded")
  t.eq(t.ok(http.get(raw .. "/flaky5-c", { retries = 2 })).status, 503)
  t.eq(t.ok(http.get(raw .. "/hits-c")).body, "3", "1 + 2 retries")
  t.eq(t.ok(http.post(raw .. "/flaky1-d", { body = "x", retries = 3 })).status, 503, "POST is not retried")
  t.eq(t.ok(http.get(raw .. "/hits-d")).body, "1")
  t.fails("connect", http.get("http://127.0.0.1:1/", { retries = 2 }))
  -- LURK_TRACE=http (or trace = true) prints heads to stderr, secrets masked.
  -- The head is shown as sent (request line, Host, User-Agent, every
  -- field), retries and redirect hops are marked.
  local out = io.popen(("LURK_TRACE=http %s -e 'http.get(%q, { bearer = \"s3cr3t\" })' 2>&1"):format(t.lurk, raw .. "/ok")):read("*a")
  t.ok(out:find("> GET /ok HTTP/1.1\n", 1, true), out)
  t.ok(out:find("> Host: " .. raw:match("//(.*)$") .. "\n", 1, true), out)
  t.ok(out:find("> User-Agent: lurk/", 1, true), out)
  t.ok(out:find("> Accept: */*", 1, true), out)
  t.ok(out:find("Authorization: Bearer ***", 1, true), out)
  t.ok(not out:find("s3cr3t", 1, true), "the token is not printed")
  t.ok(out:find("< 200 OK", 1, true), out)
  out = io.popen(("LURK_TRACE=http %s -e 'http.get(%q, { retries = 1 }); http.get(%q)' 2>&1")
    :format(t.lurk, raw .. "/flaky1-trace", raw .. "/t/a/b/redirect-dotdot")):read("*a")
  t.ok(out:find("* retry 1 of 1 after HTTP 503", 1, true), out)
  t.ok(out:find("* redirect 1: 302 to " .. raw .. "/t/a/final", 1, true), out)
  -- What the server sends reaches the terminal escaped (llhttp lets control
  -- characters through in a reason phrase), in the trace and in tostring(res).
  out = io.popen(("LURK_TRACE=http %s -e 'print(http.get(%q))' 2>&1"):format(t.lurk, raw .. "/escreason")):read("*a")
  t.ok(not out:find("\27", 1, true), "no raw ESC: " .. out)
  t.ok(out:find("< 200 O\\x1b]0;pwned\\x07K", 1, true), out)
  t.ok(out:find("HTTP 200 O\\x1b]0;pwned\\x07K", 1, true), out)
  -- A pooled connection the server closed while idle: the next GET retries once, fresh.
  local c = http.client { base_url = raw }
  t.eq(t.ok(c:get("/idle")).body, "hello")
  lurk.sleep(0.3)
  t.eq(t.ok(c:get("/ok")).body, "hello", "stale pooled connection replaced")
  c:close()
end

-- Proxies: plain HTTP in absolute form, HTTPS through CONNECT (TLS end to
-- end, so kTLS too), environment variables, NO_PROXY, failures of kind proxy.
do
  local pport = t.server("proxy.py", dir)
  local proxy = "http://127.0.0.1:" .. pport
  local res = t.ok(http.get(base .. "/get", { proxy = proxy }))
  t.ok(res.headers.via and res.headers.via:find("tinyproxy", 1, true), "went through tinyproxy")
  res = t.ok(http.get("https://localhost:" .. P.https .. "/get", { proxy = proxy, tls = { cafile = ca } }))
  t.eq(res.status, 200)
  t.eq(res:json().headers.Host, "localhost:" .. P.https)
  t.eq(type(res.tls.version), "string", "TLS inside the tunnel")
  if os.getenv("LURK_KTLS") == "require" then t.eq(res.tls.ktls, true, "kTLS through CONNECT") end
  t.fails("tls", http.get("https://localhost:" .. P.https .. "/get", { proxy = proxy }))
  local err = t.fails("proxy", http.get("https://localhost:1/", { proxy = proxy, tls = { cafile = ca } }))
  t.ok(err.message:find("CONNECT", 1, true), err.message)
  t.fails("proxy", http.get(base .. "/get", { proxy = "http://127.0.0.1:1" }))
  t.raises("unsupported proxy scheme socks4://", http.get, base, { proxy = "socks4://127.0.0.1:1080" })
  -- from the environment, in a child process
  local script = dir .. "/proxied.lua"
  local f = io.open(script, "w")
  f:write(([[
    local res = assert(http.get(%q))
    io.write(res.headers.via and "proxied" or "direct")
  ]]):format(base .. "/get"))
  f:close()
  local function run(envs)
    return io.popen(("%s %s %s 2>&1"):format(envs, t.lurk, script)):read("*a")
  end
  t.eq(run("HTTP_PROXY=" .. proxy), "proxied")
  t.eq(run("http_proxy=" .. proxy .. " NO_PROXY=127.0.0.1"), "direct")
  t.eq(run("http_proxy=" .. proxy .. " no_proxy=*"), "direct")
  t.eq(run(""), "direct")
  -- an authenticating proxy
  local aport = t.server("proxy.py", dir, "user:pw")
  t.eq(t.ok(http.get(base .. "/get", { proxy = "http://127.0.0.1:" .. aport })).status, 407)
  res = t.ok(http.get(base .. "/get", { proxy = "http://user:pw@127.0.0.1:" .. aport }))
  t.eq(res.status, 200)
  res = t.ok(http.get("https://localhost:" .. P.https .. "/get", { proxy = "http://user:pw@127.0.0.1:" .. aport,
    tls = { cafile = ca } }))
  t.eq(res.status, 200)
end

-- Bad arguments raise.
t.raises("bad url", http.get, "ftp://x/")
t.raises("bad url", http.get, "http:///nohost")
t.raises("invalid header name", http.get, base, { headers = { ["Bad Name"] = "x" } })
t.raises("CR, LF", http.get, base, { headers = { X = "a\r\nInjected: 1" } })
t.raises("invalid method", http.request, { method = "GE T", url = base })

os.execute("rm -rf " .. dir)
t.done()
