-- http.serve and tcp.listen against real clients: curl, wrk and raw sockets.
package.path = arg[0]:match("^(.*)/[^/]*$") .. "/lib/?.lua;" .. package.path
local t = require "t"

local dir = t.tmpdir()

local function sh(cmd) return t.sh(cmd) end

local function curl(args)
  return sh("curl -q -sS --noproxy '*' --max-time 20 " .. args)
end

-- A raw client: sends data, returns everything the server sends until it
-- closes (or nil, err).
local function raw(port, data, timeout)
  local s = assert(tcp.connect("127.0.0.1", port))
  s:settimeout(timeout or 5)
  if data then s:send(data) end
  local got, err = s:receive("*a")
  s:close()
  return got or (err and err.partial), err
end

local errors = {}
local srv = assert(http.serve({ port = 0, max_body = 2 * 1024 * 1024, max_head = 4096, header_timeout = 0.5,
    send_timeout = 0.5, on_error = function(msg, req) errors[#errors + 1] = msg end },
  function(req)
    if req.path == "/hello" then return 200, { ["content-type"] = "text/plain" }, "hello" end
    if req.path == "/json" then return 200, {}, { a = 1, q = req.query } end
    if req.path == "/len" then return 200, {}, tostring(req.body and #req.body or -1) .. " " .. (req.headers["transfer-encoding"] or "-") end
    if req.path == "/chunks" then
      local i = 0
      return 200, { ["x-kind"] = "fn" }, function() i = i + 1; if i <= 3 then return "part" .. i .. "\n" end end
    end
    if req.path == "/remote" then return 200, {}, req.remote end
    if req.path == "/big" then return 200, {}, ("z"):rep(32 * 1024 * 1024) end
    if req.path == "/slow" then lurk.sleep(0.3); return 200, {}, "slow done" end
    if req.path == "/boom" then error("boom in handler") end
    return 404, {}, "not found"
  end))
t.ok(srv.port > 0, "port 0 picks a free port")
t.eq(srv.url, "http://127.0.0.1:" .. srv.port)
local base = srv.url

-- strict options
t.raises("unknown option 'header_timout'", http.serve, { header_timout = 1 }, function() end)
t.raises("handler must be a function", http.serve, { port = 0 })
t.raises("max_body must be a number", http.serve, { max_body = "big" }, function() end)

-- curl: GET, JSON, HEAD, function bodies
local out, rc = curl("-i " .. base .. "/hello")
t.eq(rc, 0, out)
t.ok(out:find("^HTTP/1.1 200 OK\r\n"), out)
t.ok(out:find("content%-length: 5\r\n"), out)
t.ok(out:find("\r\n\r\nhello$"), out)
out = curl("-i '" .. base .. "/json?x=1&y=a%20b'")
t.ok(out:find("content%-type: application/json", 1, false), out)
t.ok(out:find('"q":{', 1, true) and out:find('"y":"a b"', 1, true), out)
out = curl("-I " .. base .. "/hello")
t.ok(out:find("^HTTP/1.1 200 OK\r\n") and out:find("content%-length: 5\r\n") and not out:find("hello"), out)
out = curl("-i " .. base .. "/chunks")
t.ok(out:find("transfer%-encoding: chunked") and out:find("part1\npart2\npart3\n$"), out)
out = curl("-I " .. base .. "/chunks")
t.ok(out:find("transfer%-encoding: chunked") and not out:find("part1"), "HEAD of a function body: headers only")

-- curl: POST 1 MiB, chunked upload, Expect: 100-continue
local f = io.open(dir .. "/1m", "wb")
f:write(("0123456789abcdef"):rep(65536))
f:close()
out = curl("--data-binary @" .. dir .. "/1m " .. base .. "/len")
t.eq(out, "1048576 -")
out = curl("-H 'Transfer-Encoding: chunked' --data-binary @" .. dir .. "/1m " .. base .. "/len")
t.eq(out, "1048576 chunked")
out = curl("-H 'Expect: 100-continue' --expect100-timeout 10 --data-binary @" .. dir .. "/1m -w ' %{time_total}' " .. base .. "/len")
t.ok(out:match("^1048576 %- ") and tonumber(out:match(" ([%d.]+)$")) < 5, "100-continue answered: " .. out)

-- keep-alive: two requests on one connection; HTTP/1.0 closes unless asked
out = curl("-w '%{num_connects}\\n' " .. base .. "/remote " .. base .. "/remote")
local r1, n1, r2, n2 = out:match("^(%S+)(%d)\n(%S+)(%d)\n$")
t.eq(n1, "1", out)
t.eq(n2, "0", "second request reused the connection: " .. out)
t.eq(r1, r2, "same client address")
out = curl("-0 -w '%{num_connects}\\n' " .. base .. "/hello " .. base .. "/hello")
t.eq(out, "hello1\nhello1\n", "HTTP/1.0 without keep-alive: a new connection each time")
out = curl("-0 -H 'Connection: keep-alive' -w '%{num_connects}\\n' " .. base .. "/hello " .. base .. "/hello")
t.eq(out, "hello1\nhello0\n", "HTTP/1.0 with keep-alive reuses")
out = curl("-0 -i " .. base .. "/chunks")
t.ok(not out:find("chunked") and out:find("part1\npart2\npart3\n$"), "HTTP/1.0 gets a close-delimited body: " .. out)

-- a raising handler: 500, the error with its traceback reported, and the server keeps serving
out = curl("-i " .. base .. "/boom")
t.ok(out:find("^HTTP/1.1 500 "), out)
t.eq(#errors, 1)
t.ok(errors[1]:find("boom in handler") and errors[1]:find("stack traceback"), errors[1])
t.eq((curl(base .. "/hello")), "hello")

-- bad input
local function status_of(resp) return resp and tonumber(resp:match("^HTTP/1.1 (%d+)")) end
t.eq(status_of(raw(srv.port, "HELLO THERE\r\n\r\n")), 400, "garbage request line")
t.eq(status_of(raw(srv.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(8000) .. "\r\n\r\n")), 431,
  "head over max_head")
t.eq(status_of(raw(srv.port, "GET / HTTP/1.1\r\nHost: x\r\n" .. ("X-A: b\r\n"):rep(1000))), 431,
  "a head that never ends, over max_head")
t.eq(status_of(raw(srv.port, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n")), 413,
  "Content-Length over max_body")
local chunk = ("%x\r\n%s\r\n"):format(1024 * 1024, ("y"):rep(1024 * 1024))
t.eq(status_of(raw(srv.port, "POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunk:rep(3))),
  413, "chunked body over max_body")
t.eq(status_of(raw(srv.port, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")),
  400, "Content-Length with Transfer-Encoding (smuggling)")
t.eq(status_of(raw(srv.port, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")),
  400, "conflicting Content-Length (smuggling)")
t.eq(status_of(raw(srv.port, "POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxx")),
  400, "Transfer-Encoding not ending in chunked")
-- pipelined requests are answered in order
local piped = raw(srv.port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /len HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
local _, count = piped:gsub("HTTP/1.1 200", "")
t.eq(count, 3, piped)
t.ok(piped:find("3 %-"), piped)

-- slowloris: part of a head, then silence: closed after header_timeout
do
  local s = assert(tcp.connect("127.0.0.1", srv.port))
  local t0 = lurk.now()
  s:send("GET / HTTP/1.1\r\nHost: x\r\n")
  lurk.sleep(0.2)
  s:send("X-Slow: 1\r\n")
  local got, err = s:receive("*a")
  t.took(t0, 0.5, "closed header_timeout after the head began")
  t.ok(got == "" or (err and (err.partial or "") == ""), "nothing answered to an incomplete head")
  s:close()
end

-- a client that stops reading is closed after send_timeout
do
  local s = assert(tcp.connect("127.0.0.1", srv.port))
  s:send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
  local before = srv:connections()
  t.ok(before >= 1)
  lurk.sleep(1.5)
  t.eq(srv:connections(), 0, "the connection of a client that stopped reading was closed")
  s:close()
end

-- thousands of idle connections do not slow a normal request
do
  local idle = {}
  for i = 1, 2000 do idle[i] = assert(tcp.connect("127.0.0.1", srv.port)) end
  local t0 = lurk.now()
  out = curl(base .. "/hello")
  local took = lurk.now() - t0
  t.eq(out, "hello")
  t.ok(took < 2, ("a request among 2000 idle connections took %.3f s"):format(took))
  for i = 1, #idle do idle[i]:close() end
end

-- wrk: many requests over keep-alive connections, no errors
out, rc = sh("wrk -t1 -c8 -d1s " .. base .. "/hello")
t.eq(rc, 0, out)
local reqs = tonumber(out:match("(%d+) requests in"))
t.ok(reqs and reqs > 100, out)
t.ok(not out:find("Non%-2xx") and not out:find("Socket errors"), out)

-- graceful close: the request in flight finishes, idle connections close,
-- new connections are refused
do
  local idle = assert(tcp.connect("127.0.0.1", srv.port))
  idle:send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
  local first = idle:receive(#"HTTP/1.1 200 OK")
  t.eq(first, "HTTP/1.1 200 OK")
  local inflight = lurk.spawn(function()
    local s = assert(tcp.connect("127.0.0.1", srv.port))
    s:send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    return s:receive("*a")
  end)
  lurk.sleep(0.1)
  t.eq(srv:close(), true)
  local ok, resp = inflight:join()
  t.ok(ok and resp:find("connection: close") and resp:find("slow done$"), resp)
  local rest = idle:receive("*a")
  t.ok(rest ~= nil, "the idle connection was closed")
  idle:close()
  t.fails("connect", tcp.connect("127.0.0.1", srv.port))
end

-- max_connections: the extra connection gets 503 and is closed
do
  local s2 = assert(http.serve({ port = 0, max_connections = 2 }, function() return 200, {}, "ok" end))
  local a = assert(tcp.connect("127.0.0.1", s2.port))
  local b = assert(tcp.connect("127.0.0.1", s2.port))
  lurk.sleep(0.1)
  t.eq(status_of(raw(s2.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 503)
  a:close()
  lurk.sleep(0.1)
  t.eq(status_of(raw(s2.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 200,
    "served again once a connection closed")
  b:close()
  s2:close()
end

-- tcp.listen: accept with a timeout, clients(), close
do
  local ln = assert(tcp.listen("127.0.0.1", 0))
  t.ok(ln.port > 0)
  local t0 = lurk.now()
  t.fails("timeout", ln:accept(0.2))
  t.took(t0, 0.2)
  t.raises("unknown option", tcp.listen, "127.0.0.1", 0, { backlg = 1 })
  t.raises("host must be an IP address", tcp.listen, "example.com", 0)
  local got = {}
  local server = lurk.spawn(function()
    for sock in ln:clients() do
      got[#got + 1] = sock:receive("*l")
      sock:send("bye\n")
      sock:close()
    end
    return "ended"
  end)
  for i = 1, 3 do
    local c = assert(tcp.connect("127.0.0.1", ln.port))
    c:send("hi " .. i .. "\n")
    t.eq(c:receive("*l"), "bye")
    c:close()
  end
  ln:close()
  local ok, v = server:join(2)
  t.ok(ok, "clients() ended when the listener closed")
  t.eq(v, "ended")
  t.eq(table.concat(got, ","), "hi 1,hi 2,hi 3")
  t.raises("closed listener", function() return ln:accept() end)
end

t.done()
