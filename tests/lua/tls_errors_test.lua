-- TLS errors in words: configuration errors name host:port and the file, a server that does not speak TLS says so, refusals and name mismatches explain themselves.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
local echo = t.server("tlsserver.py", "echo", dir)
local ca = dir .. "/ca.pem"

local function refused(pattern, v, err)
  t.fails("tls", v, err)
  t.eq(err.phase, "tls")
  t.ok(tostring(err):find(pattern), "message: " .. tostring(err))
  t.ok(not tostring(err):find("%-0x%x%x%x%x"), "no mbedTLS code: " .. tostring(err))
  t.ok(not tostring(err):find("TLS with :", 1, true), "a host is named: " .. tostring(err))
  return err
end

-- A CA file that is not there: the host and the file, and that it is missing.
refused("^TLS with 127%.0%.0%.1:" .. echo .. ": cannot load CA certificates from /nope%.pem: No such file or directory$",
        tcp.connect("127.0.0.1", echo, { tls = { cafile = "/nope.pem" } }))
refused("^TLS with %[::1%]:" .. echo .. ": cannot load CA certificates from /nope%.pem",
        tcp.connect("::1", echo, { tls = { cafile = "/nope.pem" } }))
-- A file that is there but holds no certificate.
local junk = dir .. "/junk.pem"
local f = assert(io.open(junk, "w")) f:write("not a certificate\n") f:close()
refused("cannot load CA certificates from " .. junk:gsub("%p", "%%%0") .. ": no certificate in it",
        tcp.connect("127.0.0.1", echo, { tls = { cafile = junk } }))

-- SSL_CERT_FILE / SSL_CERT_DIR that cannot be read (the trust store is read
-- once per runtime: a child lurk with that environment).
local function child(env)
  local p = io.popen(("env -u SSL_CERT_FILE -u SSL_CERT_DIR %s %s -e " ..
    "'local s, e = tcp.connect(\"127.0.0.1\", %d, { tls = true }) print(e.kind, e.message)' 2>&1")
    :format(env, t.lurk, echo))
  local out = p:read("*a")
  p:close()
  return out
end
local out = child("SSL_CERT_FILE=/nope/bundle.pem")
t.ok(out:find("^tls\tTLS with 127%.0%.0%.1:%d+: SSL_CERT_FILE names /nope/bundle%.pem, which cannot be read: " ..
              "No such file or directory"), out)
out = child("SSL_CERT_DIR=/nope/certs")
t.ok(out:find("^tls\tTLS with 127%.0%.0%.1:%d+: SSL_CERT_DIR names /nope/certs, which cannot be read"), out)

-- A plain HTTP server on the port: it answers the ClientHello with a 400.
local http_port = t.server("tcpserver.py", "http")
refused("^the server at 127%.0%.0%.1:" .. http_port .. " does not speak TLS %(is it plain HTTP%?%): " ..
        "it answered \"HTTP/1%.1 400 Bad Request\"$", tcp.connect("127.0.0.1", http_port, { tls = { cafile = ca } }))
-- A server that speaks first, in plain text (SMTP without STARTTLS).
local banner = t.server("tcpserver.py", "banner")
refused("^the server at 127%.0%.0%.1:" .. banner .. " does not speak TLS: it sent \"220 mail%.example ESMTP\" in plain text$",
        tcp.connect("127.0.0.1", banner, { tls = { cafile = ca } }))

-- A refusal by alert, with the alert's name and a hint.
refused("^the server at 127%.0%.0%.1:" .. echo .. " refused the TLS handshake with alert handshake_failure %(no cipher suite",
        tcp.connect("127.0.0.1", echo, { tls = { cafile = ca, min_version = "1.3",
                                                  ciphers = "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256" } }))

-- A name mismatch: the name expected and every name the certificate holds.
refused("does not match host wrong%.example: its subjectAltName has DNS:localhost, IP:127%.0%.0%.1",
        tcp.connect("127.0.0.1", echo, { tls = { cafile = ca, servername = "wrong.example" } }))

-- The same words through starttls.
local plain = assert(tcp.connect("127.0.0.1", http_port))
refused("^the server at 127%.0%.0%.1:" .. http_port .. " does not speak TLS %(is it plain HTTP%?%)",
        plain:starttls { cafile = ca })

-- And a good connection still works.
local s = assert(tcp.connect("127.0.0.1", echo, { tls = { cafile = ca } }))
t.eq(s:send("hi\n"), 3)
t.eq(s:receive(), "hi")
s:close()

t.done()
