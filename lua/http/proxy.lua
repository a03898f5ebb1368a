-- http/proxy.lua - proxies: which one a URL goes through (the request's
-- option, else the environment as curl and Python's requests read it), and
-- the tunnels through them: HTTP CONNECT, and SOCKS5 (RFC 1928, with RFC
-- 1929's username and password).
--
-- Through an HTTP proxy a plain http:// request is sent to the proxy in
-- absolute form (lua/http.lua's build_head); everything else (https://, ws://,
-- wss://, and every request through SOCKS) goes through a tunnel, with TLS
-- inside it end to end with the origin.
local P, lurk, tcp = ...

local M = {}
local U = P.url
local parse_url, base64, urldecode = U.parse, U.base64, U.urldecode
local concat, ipairs, type, tostring, tonumber, error = table.concat, ipairs, type, tostring, tonumber, error
local char, byte, floor = string.char, string.byte, math.floor
local mkerror = lurk.error
local USER_AGENT = "lurk/" .. lurk.version


-- The environment is read once per name: it does not change under a script.
-- curl's and requests' rules: the lower-case variable wins when it is set at
-- all, so an empty http_proxy= turns off an HTTP_PROXY inherited from
-- further up; and under CGI (REQUEST_METHOD set) HTTP_PROXY is ignored,
-- because there it comes from the client's "Proxy:" request header
-- (httpoxy, CVE-2016-5385). An empty value then counts as unset, so
-- all_proxy still applies after an empty http_proxy, as in both.
local env_cache = {}
local function env(name)
  local v = env_cache[name]
  if v == nil then
    v = os.getenv(name)
    if v == nil and not (name == "http_proxy" and os.getenv("REQUEST_METHOD")) then
      v = os.getenv(name:upper())
    end
    if v == "" then v = nil end
    env_cache[name] = v or false
  end
  return v or nil
end

-- ---- NO_PROXY ----

-- An IPv4 or IPv6 literal as its 4 or 16 bytes, or nil for anything else.
local function ip_bytes(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
    return char(a, b, c, d)
  end
  if not s:find(":", 1, true) or s:find("[^%x:.]") then return nil end
  local v4 = ""
  local tail = s:match(":(%d+%.%d+%.%d+%.%d+)$")    -- ::ffff:192.0.2.1
  if tail then
    v4 = ip_bytes(tail)
    if not v4 then return nil end
    s = s:sub(1, -#tail - 1)                       -- keeps the colon before it
    if s:sub(-2) ~= "::" then s = s:sub(1, -2) end
  end
  local left, right = s, nil
  local at = s:find("::", 1, true)
  if at then left, right = s:sub(1, at - 1), s:sub(at + 2) end
  local function groups(part)
    local out = {}
    if part == "" then return out end
    for g in (part .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then return nil end
      local n = tonumber(g, 16)
      out[#out + 1] = char(floor(n / 256), n % 256)
    end
    return out
  end
  local l, r = groups(left), groups(right or "")
  if not l or not r then return nil end
  local want = v4 == "" and 8 or 6
  local missing = want - #l - #r
  if (right and missing < 1) or (not right and missing ~= 0) then return nil end
  return concat(l) .. ("\0\0"):rep(missing) .. concat(r) .. v4
end

-- Whether the first `bits` bits of two addresses of the same family agree.
local function prefix_match(x, y, bits)
  local whole, rest = floor(bits / 8), bits % 8
  if x:sub(1, whole) ~= y:sub(1, whole) then return false end
  if rest == 0 then return true end
  local unit = 2 ^ (8 - rest)
  return floor(byte(x, whole + 1) / unit) == floor(byte(y, whole + 1) / unit)
end

-- NO_PROXY: comma- or space-separated entries; "*" for every host. An
-- address entry (127.0.0.1, ::1, [::1], with or without a port) or block
-- (10.0.0.0/8, ::1/128) matches a host written as an address; a name entry
-- matches that name and its subdomains (a leading dot changes nothing).
-- Ports are ignored, as curl and requests ignore them.
local function no_proxy(host)
  local list = env("no_proxy")
  if not list then return false end
  local addr = ip_bytes(host)
  for item in list:gmatch("[^,%s]+") do
    if item == "*" then return true end
    item = item:lower()
    local bare = item:match("^%[(.-)%]") or item          -- [::1]:8080 -> ::1
    local net, bits = bare:match("^(.-)/(%d+)$")
    if not net then
      net = bare
      -- A port after one colon (host:8080); an IPv6 address has several.
      local _, colons = net:gsub(":", "")
      if colons == 1 then net = net:gsub(":%d*$", "") end
    end
    local nb = ip_bytes(net)
    if addr then
      if nb and #nb == #addr then
        bits = tonumber(bits) or #nb * 8
        if bits <= #nb * 8 and prefix_match(addr, nb, bits) then return true end
      end
    elseif not nb and not bits then
      net = net:gsub("^%.", "")
      if host == net or host:sub(-#net - 1) == "." .. net then return true end
    end
  end
  return false
end

-- ---- choosing the proxy ----

local SCHEMES = { http = 80, socks5 = 1080, socks5h = 1080 }

-- A proxy URL parsed: parse_url's fields, with socks = "local" (socks5://:
-- lurk resolves the origin's name) or "remote" (socks5h://: the proxy does).
local function parse_proxy(p)
  if not p:match("^%a[%w+.-]*://") then p = "http://" .. p end
  local scheme, rest = p:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme:lower()
  local port = SCHEMES[scheme]
  if not port then
    error(("unsupported proxy scheme %s:// in %s (lurk speaks http://, socks5:// and socks5h://)"):format(scheme, p), 0)
  end
  -- parse_url knows http:// only; its default port is then replaced by the
  -- scheme's when the URL names none.
  local pu, err = parse_url("http://" .. rest)
  if not pu then error("bad proxy URL " .. p .. ": " .. err, 0) end
  local hostport = rest:match("^[^/?#]*")
  hostport = hostport:match("^.*@(.*)$") or hostport
  if not hostport:match(":%d+$") then pu.port = port end
  pu.scheme = scheme
  if scheme ~= "http" then pu.socks = scheme == "socks5h" and "remote" or "local" end
  return pu
end

-- The proxy for u: opts.proxy (a URL, or false for none), else
-- HTTPS_PROXY / HTTP_PROXY, then ALL_PROXY, unless NO_PROXY says no.
local function proxy_for(u, opt)
  local p = opt
  if p == nil then
    -- From the environment, which does not change: decided once per URL.
    local auto = u.proxy_auto
    if auto ~= nil then return auto or nil end
    if no_proxy(u.host) then
      u.proxy_auto = false
      return nil
    end
    p = u.scheme == "https" and (env("https_proxy") or env("all_proxy")) or (env("http_proxy") or env("all_proxy"))
    if not p then
      u.proxy_auto = false
      return nil
    end
  end
  if not p or p == "" then return nil end
  if type(p) ~= "string" then error("proxy must be a URL string or false", 0) end
  local pu = parse_proxy(p)
  if opt == nil then u.proxy_auto = pu end
  return pu
end

-- Raises now, if a proxy variable in the environment is unusable, what
-- proxy_for would raise later (checked once: the environment does not
-- change). After it, proxy_for(u, nil) never raises.
local env_proxies_checked = false
local function check_env_proxies()
  if env_proxies_checked then return end
  for _, name in ipairs { "https_proxy", "http_proxy", "all_proxy" } do
    local p = env(name)
    if p then proxy_for({ scheme = "http", host = "" }, p) end
  end
  env_proxies_checked = true
end

local function proxy_error(message, err)
  return mkerror { kind = "proxy", phase = "connect", message = message,
    cause = err, retryable = err and err.retryable or false }
end

-- ---- HTTP CONNECT ----

-- The tunnel's far end as CONNECT names it.
local function authority(u)
  return (u.host:find(":", 1, true) and ("[" .. u.host .. "]") or u.host) .. ":" .. u.port
end

local function connect_tunnel(sock, u, pu)
  local target = authority(u)
  local lines = { "CONNECT " .. target .. " HTTP/1.1", "Host: " .. target, "User-Agent: " .. USER_AGENT }
  if pu.userinfo then lines[#lines + 1] = "Proxy-Authorization: Basic " .. base64(urldecode(pu.userinfo)) end
  local ok, err = sock:send(concat(lines, "\r\n") .. "\r\n\r\n")
  if not ok then return nil, proxy_error("proxy connection failed: " .. tostring(err), err) end
  -- A 2xx answer to CONNECT has no body: parse it as a HEAD response.
  local parser, buf, i = P.parser(true), "", 1
  local status, reason
  while true do
    local ev, j, a, b = parser:feed(buf, i)
    if not ev then return nil, proxy_error("invalid answer to CONNECT: " .. tostring(j), j) end
    i = j
    if ev == "head" then status, reason = a, b
    elseif ev == "done" then break
    elseif ev == "more" then
      local data, rerr = sock:receive_some(4096)
      if not data or data == "" then
        return nil, proxy_error("the proxy closed the connection during CONNECT", rerr)
      end
      buf, i = data, 1
    end
  end
  if status < 200 or status > 299 then
    return nil, mkerror { kind = "proxy", phase = "connect", status = status,
      message = ("proxy refused CONNECT %s: %d %s"):format(target, status, reason) }
  end
  if i <= #buf then
    return nil, proxy_error("the proxy sent data after its CONNECT answer")
  end
  return sock
end

-- ---- SOCKS5 ----

-- RFC 1928's reply codes, named in errors.
local SOCKS_REPLY = {
  [1] = "general SOCKS server failure", [2] = "connection not allowed by ruleset",
  [3] = "network unreachable", [4] = "host unreachable", [5] = "connection refused",
  [6] = "TTL expired", [7] = "command not supported", [8] = "address type not supported",
}

local function u16(n) return char(floor(n / 256), n % 256) end

-- Reads exactly n bytes of the proxy's answer; a short read is the proxy
-- closing (or timing out) mid-handshake.
local function socks_read(sock, n, step)
  local data, err = sock:receive(n)
  if data then return data end
  if err.kind == "closed" then
    return nil, proxy_error(("the SOCKS proxy closed the connection during %s"):format(step), err)
  end
  return nil, proxy_error(("SOCKS handshake failed during %s: %s"):format(step, err.message), err)
end

local function socks_send(sock, data, step)
  local ok, err = sock:send(data)
  if ok then return true end
  return nil, proxy_error(("SOCKS handshake failed during %s: %s"):format(step, err.message), err)
end

-- The CONNECT request's address: the origin's address (socks5://, resolved
-- here with lurk's resolver) or its name (socks5h://, resolved by the proxy).
local function socks_address(u, pu, timeout)
  local host = u.host
  if pu.socks == "local" and not ip_bytes(host) then
    local addrs, err = P.resolve(host, timeout)
    if not addrs then
      return nil, mkerror { kind = err.kind, phase = "dns", cause = err, retryable = err.retryable,
        message = ("cannot resolve %s for the SOCKS proxy: %s"):format(host, err.message) }
    end
    host = addrs[1]
  end
  local ip = ip_bytes(host)
  if ip then return (#ip == 4 and "\1" or "\4") .. ip end
  if #host > 255 then return nil, proxy_error("host name too long for SOCKS: " .. host) end
  return "\3" .. char(#host) .. host
end

-- Asks the proxy for a connection to u (RFC 1928), logging in first with
-- the proxy URL's user:password when it has one (RFC 1929).
local function socks_tunnel(sock, u, pu, timeout)
  local user, pass
  if pu.userinfo then
    user, pass = pu.userinfo:match("^([^:]*):?(.*)$")
    user, pass = urldecode(user), urldecode(pass)
    if #user > 255 or #pass > 255 then
      return nil, proxy_error("SOCKS username and password are limited to 255 bytes each")
    end
  end
  local addr, aerr = socks_address(u, pu, timeout)
  if not addr then return nil, aerr end
  local ok, err = socks_send(sock, user and "\5\2\0\2" or "\5\1\0", "the greeting")
  if not ok then return nil, err end
  local m
  m, err = socks_read(sock, 2, "the greeting")
  if not m then return nil, err end
  local ver, method = byte(m, 1, 2)
  if ver ~= 5 then return nil, proxy_error(("not a SOCKS5 proxy (it answered version %d)"):format(ver)) end
  if method == 255 then
    return nil, proxy_error(user and "the SOCKS proxy accepted none of our authentication methods"
      or "the SOCKS proxy requires a username and password")
  elseif method == 2 and user then
    ok, err = socks_send(sock, "\1" .. char(#user) .. user .. char(#pass) .. pass, "authentication")
    if not ok then return nil, err end
    m, err = socks_read(sock, 2, "authentication")
    if not m then return nil, err end
    if byte(m, 2) ~= 0 then
      return nil, proxy_error(("the SOCKS proxy refused the username and password (status %d)"):format(byte(m, 2)))
    end
  elseif method ~= 0 then
    return nil, proxy_error(("the SOCKS proxy chose an authentication method lurk did not offer (%d)"):format(method))
  end
  ok, err = socks_send(sock, "\5\1\0" .. addr .. u16(u.port), "the CONNECT request")
  if not ok then return nil, err end
  m, err = socks_read(sock, 4, "the CONNECT reply")
  if not m then return nil, err end
  local rver, rep, _, atyp = byte(m, 1, 4)
  if rver ~= 5 then
    return nil, proxy_error(("malformed SOCKS reply (version %d)"):format(rver))
  end
  if rep ~= 0 then
    return nil, mkerror { kind = "proxy", phase = "connect", socks_reply = rep,
      message = ("SOCKS proxy refused CONNECT %s: %s (reply code %d)"):format(authority(u),
        SOCKS_REPLY[rep] or "unknown reply", rep) }
  end
  -- The address the proxy bound, then its port: read and dropped.
  local len
  if atyp == 1 then len = 4 + 2
  elseif atyp == 4 then len = 16 + 2
  elseif atyp == 3 then
    m, err = socks_read(sock, 1, "the CONNECT reply")
    if not m then return nil, err end
    len = byte(m) + 2
  else
    return nil, proxy_error(("malformed SOCKS reply (address type %d)"):format(atyp))
  end
  m, err = socks_read(sock, len, "the CONNECT reply")
  if not m then return nil, err end
  return sock
end

-- Opens a tunnel to u through the proxy pu on sock (CONNECT or SOCKS5),
-- then TLS inside it when tls is a table: the TLS session, and kernel TLS,
-- are end to end with the origin. timeout: the connect timeout (for the
-- local name lookup of socks5://; the socket's own timeout bounds each read).
local function tunnel(sock, u, pu, tls, timeout)
  local ok, err
  if pu.socks then ok, err = socks_tunnel(sock, u, pu, timeout) else ok, err = connect_tunnel(sock, u, pu) end
  if not ok then return nil, err end
  if not tls then return sock end     -- a plain tunnel
  tls.servername = tls.servername or u.host
  local s, terr = sock:starttls(tls)
  if not s then return nil, terr end
  return sock
end

-- Connects to the proxy pu and opens a tunnel to u through it (TLS inside
-- it when tls is a table). The socket's timeout is the connect timeout, so
-- no handshake with the proxy waits longer than that for any answer.
local function open_tunnel(u, pu, tls, timeout)
  local sock, err = tcp.connect(pu.host, pu.port, { timeout = timeout })
  if not sock then
    return nil, proxy_error(("cannot reach the proxy %s:%d: %s"):format(pu.host, pu.port, err.message), err)
  end
  local ok, terr = tunnel(sock, u, pu, tls, timeout)
  if not ok then
    sock:close()
    return nil, terr
  end
  return sock
end

M.proxy_for = proxy_for
M.check_env = check_env_proxies
M.error = proxy_error
M.tunnel = tunnel
M.open_tunnel = open_tunnel

return M
