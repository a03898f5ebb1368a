-- TLS servers: http.serve and tcp.listen with tls, against curl, openssl s_client and lurk's client.
package.path = arg[0]:match("^(.*)/[^/]*$") .. "/lib/?.lua;" .. package.path
local t = require "t"

local dir = t.tmpdir()
os.execute(t.support .. "/certs.sh " .. dir)
local ca, cert, key = dir .. "/ca.pem", dir .. "/good.pem", dir .. "/good.key"

local function sh(cmd) return t.sh(cmd) end

t.raises("tls.cert must be a file name", http.serve, { tls = { key = key } }, function() end)
t.raises("unknown option 'crt'", tcp.listen, "127.0.0.1", 0, { tls = { crt = cert, key = key } })
local ln, err = tcp.listen("127.0.0.1", 0, { tls = { cert = dir .. "/missing.pem", key = key } })
t.fails("tls", ln, err)
t.ok(tostring(err):find("missing.pem"), tostring(err))

local seen = {}
local srv = assert(http.serve({ port = 0, tls = { cert = cert, key = key, alpn = { "h2x", "http/1.1" } } },
  function(req)
    seen[#seen + 1] = req.tls
    if req.path == "/len" then return 200, {}, tostring(#(req.body or "")) end
    return 200, { ["content-type"] = "text/plain" }, "secure hello"
  end))
t.eq(srv.url, "https://127.0.0.1:" .. srv.port)
local url = "https://localhost:" .. srv.port

-- curl: GET, keep-alive over TLS, a 1 MiB upload
local out, rc = sh(("curl -q -sS --noproxy '*' --cacert %s -w ' %%{num_connects}' %s/a %s/b"):format(ca, url, url))
t.eq(rc, 0, out)
t.eq(out, "secure hello 1secure hello 0", "both over one TLS connection")
t.eq(seen[1].sni, "localhost", "SNI in req.tls")
t.eq(seen[1].alpn, "http/1.1", "ALPN in req.tls")
t.ok(seen[1].version == "TLSv1.3" or seen[1].version == "TLSv1.2", seen[1].version)
local f = io.open(dir .. "/1m", "wb")
f:write(("x"):rep(1024 * 1024))
f:close()
out = sh(("curl -q -sS --noproxy '*' --cacert %s --data-binary @%s/1m %s/len"):format(ca, dir, url))
t.eq(out, "1048576")

-- openssl s_client, TLS 1.2, with SNI
out = sh(("printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | openssl s_client -quiet -tls1_2 "
  .. "-servername api.test -CAfile %s -connect 127.0.0.1:%d 2>/dev/null"):format(ca, srv.port))
t.ok(out:find("^HTTP/1.1 200 OK") and out:find("secure hello$"), out)
t.eq(seen[#seen].version, "TLSv1.2")
t.eq(seen[#seen].sni, "api.test")

-- lurk's own client
local res = assert(http.get(url .. "/", { tls = { cafile = ca } }))
t.eq(res.body, "secure hello")

-- plain text to a TLS server: the handshake fails, the server carries on
do
  local s = assert(tcp.connect("127.0.0.1", srv.port))
  s:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
  local got, e = s:receive("*a")
  t.ok(got == nil or not got:find("secure hello"), "no answer in plain text")
  s:close()
  t.eq(assert(http.get(url .. "/", { tls = { cafile = ca } })).body, "secure hello")
end
srv:close()

-- tcp.listen with TLS: accept returns a socket after the handshake
do
  local l = assert(tcp.listen("127.0.0.1", 0, { tls = { cert = cert, key = key } }))
  local server = lurk.spawn(function()
    local s = assert(l:accept(5))
    local info = s.tls
    local line = s:receive("*l")
    s:send("echo " .. line .. "\n")
    s:close()
    return info
  end)
  local c = assert(tcp.connect("localhost", l.port, { tls = { cafile = ca } }))
  c:send("ping\n")
  t.eq(c:receive("*l"), "echo ping")
  c:close()
  local ok, info = server:join(5)
  t.ok(ok and info and info.sni == "localhost", "the server's socket reports the TLS session")
  l:close()
end

t.done()
