-- Proxies: SOCKS5 and socks5h (microsocks, and a scripted server for every failure), and the environment's proxy variables as curl and requests read them (NO_PROXY addresses and blocks, lower case first, httpoxy).
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
os.execute("mkdir -p " .. dir .. " && " .. t.support .. "/certs.sh " .. dir)
t.server("api.py", dir)
local P = dofile(dir .. "/ports.lua")
t.server("wsserver.js", dir)
local W = dofile(dir .. "/ws-ports.lua")
local ca = dir .. "/ca.pem"
local origin4 = t.server("socks.py", "origin", "127.0.0.1")   -- answers with the request line
local origin6 = t.server("socks.py", "origin", "::1")
local socks = "127.0.0.1:" .. t.server("socks.py", "microsocks")
local socks_auth = "127.0.0.1:" .. t.server("socks.py", "microsocks", "user:p@ss")
local function script(case) return "127.0.0.1:" .. t.server("socks.py", "script", case) end

-- Through microsocks: plain HTTP in origin form (the tunnel reaches the
-- origin itself), HTTPS with TLS end to end, names resolved here (socks5)
-- or by the proxy (socks5h).
do
  local o = "http://127.0.0.1:" .. origin4
  for _, scheme in ipairs { "socks5", "socks5h" } do
    local res = t.ok(http.get(o .. "/plain?q=1", { proxy = scheme .. "://" .. socks }))
    t.eq(res.body, "GET /plain?q=1 HTTP/1.1", scheme .. ": origin form through the tunnel")
    res = t.ok(http.get("https://127.0.0.1:" .. P.https .. "/get", { proxy = scheme .. "://" .. socks,
      tls = { cafile = ca } }))
    t.eq(res.status, 200)
    t.eq(type(res.tls.version), "string", "TLS inside the SOCKS tunnel")
    if os.getenv("LURK_KTLS") == "require" then t.eq(res.tls.ktls, true, "kTLS through SOCKS") end
    t.fails("tls", http.get("https://127.0.0.1:" .. P.https .. "/get", { proxy = scheme .. "://" .. socks }))
  end
  local res = t.ok(http.get("https://localhost:" .. P.https .. "/get", { proxy = "socks5h://" .. socks,
    tls = { cafile = ca } }))
  t.eq(res:json().headers.Host, "localhost:" .. P.https, "the proxy resolved localhost; SNI and Host name it")
  -- keep-alive through the tunnel: a client reuses it
  local c = http.client { proxy = "socks5h://" .. socks }
  local conns = {}
  for i = 1, 3 do
    conns[i] = t.ok(c:get("https://127.0.0.1:" .. P.https .. "/get", { tls = { cafile = ca } })).headers["x-connection"]
  end
  t.ok(conns[1] and conns[1] == conns[3], "one tunnel for three requests")
  c:close()
  -- a refused target: microsocks' own reply code
  local err = t.fails("proxy", http.get("http://127.0.0.1:1/", { proxy = "socks5://" .. socks }))
  t.ok(err.message:find("reply code", 1, true), err.message)
  -- the proxy itself unreachable
  err = t.fails("proxy", http.get(o, { proxy = "socks5h://127.0.0.1:1" }))
  t.ok(err.message:find("cannot reach the proxy", 1, true), err.message)
end

-- RFC 1929 login, with the URL's percent-encoding undone.
do
  local o = "http://127.0.0.1:" .. origin4 .. "/auth"
  t.eq(t.ok(http.get(o, { proxy = "socks5h://user:p%40ss@" .. socks_auth })).body, "GET /auth HTTP/1.1")
  local err = t.fails("proxy", http.get(o, { proxy = "socks5h://user:wrong@" .. socks_auth }))
  t.ok(err.message:find("refused the username and password", 1, true), err.message)
  err = t.fails("proxy", http.get(o, { proxy = "socks5h://" .. socks_auth }))
  t.ok(err.message:find("requires a username and password", 1, true), err.message)
end

-- WebSocket through SOCKS: ws:// and wss:// (TLS end to end).
do
  for _, base in ipairs { "ws://127.0.0.1:" .. W.ws, "wss://localhost:" .. W.wss } do
    for _, scheme in ipairs { "socks5h", "socks5" } do
      if not (scheme == "socks5" and base:find("localhost", 1, true)) then  -- localhost may be ::1 here
        local c = t.ok(ws.connect(base .. "/echo", { proxy = scheme .. "://" .. socks, tls = { cafile = ca } }))
        t.ok(c:send("via socks"))
        t.eq(c:receive(5), "via socks", base .. " through " .. scheme)
        c:close()
      end
    end
  end
  t.fails("proxy", ws.connect("ws://127.0.0.1:" .. W.ws .. "/echo", { proxy = "socks5://127.0.0.1:1" }))
end

-- What the client sends, seen by the scripted server: socks5h sends the
-- name, socks5 an address it resolved itself; the login; origin form.
do
  local ok = script("ok")
  local j = json.decode(t.ok(http.get("http://name.lurk.test:8080/x?y", { proxy = "socks5h://u%3Ax:p%3Aw@" .. ok })).body)
  t.eq(j.atyp, 3); t.eq(j.addr, "name.lurk.test"); t.eq(j.port, 8080)
  t.eq(j.user, "u:x"); t.eq(j.pass, "p:w"); t.eq(j.line, "GET /x?y HTTP/1.1")
  j = json.decode(t.ok(http.get("http://localhost:81/", { proxy = "socks5://" .. ok })).body)
  t.ok(j.atyp == 1 or j.atyp == 4, "socks5:// resolves locally"); t.ok(j.addr == "127.0.0.1" or j.addr == "::1", j.addr)
  t.eq(j.user, json.null)
  j = json.decode(t.ok(http.get("http://[::1]:82/", { proxy = "socks5://" .. ok })).body)
  t.eq(j.atyp, 4); t.eq(j.addr, "::1")
  j = json.decode(t.ok(http.get("http://10.1.2.3/", { proxy = "socks5h://" .. ok })).body)
  t.eq(j.atyp, 1); t.eq(j.addr, "10.1.2.3"); t.eq(j.port, 80)
end

-- Every failure is of kind proxy and says what happened.
do
  local names = { "general SOCKS server failure", "connection not allowed by ruleset", "network unreachable",
    "host unreachable", "connection refused", "TTL expired", "command not supported", "address type not supported" }
  for code, name in ipairs(names) do
    local err = t.fails("proxy", http.get("http://127.0.0.1:9/", { proxy = "socks5://" .. script("reply" .. code) }))
    t.ok(err.message:find(name .. " (reply code " .. code .. ")", 1, true), err.message)
    t.eq(err.socks_reply, code)
  end
  for _, case in ipairs {
    { "noauth", "requires a username and password" },
    { "badversion", "not a SOCKS5 proxy" },
    { "badatyp", "malformed SOCKS reply" },
    { "close_greeting", "closed the connection during the greeting" },
    { "close_reply", "closed the connection during the CONNECT reply" },
  } do
    local err = t.fails("proxy", http.get("http://127.0.0.1:9/", { proxy = "socks5h://" .. script(case[1]) }))
    t.ok(err.message:find(case[2], 1, true), case[1] .. ": " .. err.message)
  end
  local err = t.fails("proxy", http.get("http://127.0.0.1:9/", { proxy = "socks5h://a:b@" .. script("authfail") }))
  t.ok(err.message:find("refused the username and password", 1, true), err.message)
  err = t.fails("proxy", ws.connect("ws://127.0.0.1:9/", { proxy = "socks5h://" .. script("reply5") }))
  t.ok(err.message:find("connection refused (reply code 5)", 1, true), err.message)
  -- a proxy that never answers: the connect timeout bounds the handshake
  local silent = script("silent")
  local t0 = lurk.now()
  t.fails("proxy", http.get("http://127.0.0.1:9/", { proxy = "socks5h://" .. silent, timeout = { connect = 0.5 } }))
  t.took(t0, 0.5, "http through a silent SOCKS proxy")
  t0 = lurk.now()
  -- (ws.connect's timeout is over the whole handshake: that deadline ends it)
  t.fails("timeout", ws.connect("ws://127.0.0.1:9/", { proxy = "socks5h://" .. silent, timeout = 0.5 }))
  t.took(t0, 0.5, "ws through a silent SOCKS proxy")
end

-- Proxy URLs: the schemes lurk speaks, SOCKS's default port.
do
  local X = t.private().proxy
  local u = { scheme = "http", host = "x" }
  t.eq(X.proxy_for(u, "socks5://h").port, 1080)
  t.eq(X.proxy_for(u, "socks5h://h:9050").port, 9050)
  t.eq(X.proxy_for(u, "socks5h://u:1@h").port, 1080, "a numeric password is not a port")
  t.eq(X.proxy_for(u, "h:3128").port, 3128)
  t.eq(X.proxy_for(u, "http://h").port, 80)
  t.raises("unsupported proxy scheme socks4://", http.get, "http://127.0.0.1:9/", { proxy = "socks4://127.0.0.1:1080" })
  t.raises("unsupported proxy scheme https://", http.get, "http://127.0.0.1:9/", { proxy = "https://127.0.0.1:3128" })
  t.raises("unsupported proxy scheme socks4a://", ws.connect, "ws://127.0.0.1:9/", { proxy = "socks4a://h" })
end

-- The environment, in child processes: each prints the response body (the
-- origin's request line, or the scripted SOCKS server's JSON) or err.kind.
do
  local child = dir .. "/child.lua"
  local f = io.open(child, "w")
  f:write([[
    local res, err = http.get(arg[1])
    io.write(res and res.body or err.kind)
  ]])
  f:close()
  local function run(envs, url)
    return io.popen(("env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY "
      .. "-u no_proxy -u NO_PROXY -u REQUEST_METHOD %s %s %s %s 2>&1"):format(envs, t.lurk, child, url)):read("*a")
  end
  local dead = "http://127.0.0.1:1"
  local v4, v6 = "http://127.0.0.1:" .. origin4 .. "/", "http://[::1]:" .. origin6 .. "/"
  local direct = "GET / HTTP/1.1"
  t.eq(run("", v6), direct)
  t.eq(run("http_proxy=" .. dead, v6), "proxy")

  -- NO_PROXY: IPv6 literals with and without brackets and ports, CIDR
  -- blocks, and names by suffix; an address entry never matches by suffix.
  for _, case in ipairs {
    { "::1", v6, direct }, { "[::1]", v6, direct }, { "[::1]:8080", v6, direct }, { "::1/128", v6, direct },
    { "::/0", v6, direct }, { "fe80::/10,::2", v6, "proxy" }, { "127.0.0.0/8", v4, direct },
    { "10.0.0.0/8, 127.0.0.1/32", v4, direct }, { "10.0.0.0/8", v4, "proxy" }, { "127.0.0.1:80", v4, direct },
    { "0.1", v4, "proxy" }, { "::1", v4, "proxy" }, { "127.0.0.0/8", v6, "proxy" },
    { "*", v6, direct }, { ".localhost", "http://localhost:" .. origin4 .. "/", direct },
    { "calhost", "http://localhost:" .. origin4 .. "/", "proxy" },
  } do
    t.eq(run(("http_proxy=%s NO_PROXY=%q"):format(dead, case[1]), case[2]), case[3], "NO_PROXY=" .. case[1])
  end

  -- The lower-case variable wins when both are set, even empty; an empty
  -- one is otherwise unset, so ALL_PROXY still applies (curl, requests).
  t.eq(run("http_proxy= HTTP_PROXY=" .. dead, v4), direct)
  t.eq(run("no_proxy= NO_PROXY='*' http_proxy=" .. dead, v4), "proxy")
  t.eq(run("no_proxy=127.0.0.1 NO_PROXY= http_proxy=" .. dead, v4), direct)
  local ok = script("ok")
  t.eq(json.decode(run("http_proxy=socks5h://" .. ok .. " HTTP_PROXY=" .. dead, v4)).atyp, 1)
  t.eq(run("http_proxy= ALL_PROXY=" .. dead, v4), "proxy")
  t.eq(run("HTTP_PROXY= all_proxy=" .. dead, v4), "proxy")

  -- httpoxy: under CGI, HTTP_PROXY may come from a request header.
  t.eq(run("REQUEST_METHOD=GET HTTP_PROXY=" .. dead, v4), direct)
  t.eq(run("REQUEST_METHOD=GET http_proxy=" .. dead, v4), "proxy")
  t.eq(run("HTTP_PROXY=" .. dead, v4), "proxy")

  -- SOCKS from the environment, as curl reads all_proxy=socks5h://.
  local j = json.decode(run("all_proxy=socks5h://" .. ok, "http://name.lurk.test/e"))
  t.eq(j.atyp, 3); t.eq(j.addr, "name.lurk.test"); t.eq(j.line, "GET /e HTTP/1.1")
  t.eq(run("ALL_PROXY=socks5://" .. socks, v4), direct, "through microsocks from ALL_PROXY")
  t.ok(run("ALL_PROXY=socks4://" .. socks, v4):find("unsupported proxy scheme socks4://", 1, true))
end

t.done()
