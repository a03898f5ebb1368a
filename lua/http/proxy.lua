-- http/proxy.lua - proxies: which one a URL goes through (the request's
-- option, else the environment as curl reads it) and CONNECT tunnels.
local P, lurk, tcp = ...

local M = {}
local U = P.url
local parse_url, base64, urldecode = U.parse, U.base64, U.urldecode
local concat, ipairs, type, tostring, error = table.concat, ipairs, type, tostring, error
local mkerror = lurk.error
local USER_AGENT = "lurk/" .. lurk.version


-- The environment is read once per name: it does not change under a script.
local env_cache = {}
local function env(name)
  local v = env_cache[name]
  if v == nil then
    v = os.getenv(name:lower()) or os.getenv(name:upper()) or false
    env_cache[name] = v
  end
  return v or nil
end

-- NO_PROXY: comma-separated names (a leading dot, or none, also covers
-- subdomains), "*" for every host.
local function no_proxy(host)
  local list = env("no_proxy")
  if not list then return false end
  for item in list:gmatch("[^,%s]+") do
    if item == "*" then return true end
    item = item:lower():gsub("^%.", ""):gsub(":%d+$", "")
    if host == item or host:sub(-#item - 1) == "." .. item then return true end
  end
  return false
end

-- The proxy for u: opts.proxy (a URL, or false for none), else
-- HTTPS_PROXY / HTTP_PROXY (lower case first) unless NO_PROXY says no.
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
    if not p or p == "" then
      u.proxy_auto = false
      return nil
    end
  end
  if not p or p == false or p == "" then return nil end
  if type(p) ~= "string" then error("proxy must be a URL string or false", 0) end
  if not p:match("^%a[%w+.-]*://") then p = "http://" .. p end
  if not p:lower():match("^http://") then error("only http:// proxies are supported (got " .. p .. ")", 0) end
  local pu, err = parse_url(p)
  if not pu then error("bad proxy URL " .. p .. ": " .. err, 0) end
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
    if p and p ~= "" then proxy_for({ scheme = "http", host = "" }, p) end
  end
  env_proxies_checked = true
end

local function proxy_error(message, err)
  return mkerror { kind = "proxy", phase = "connect", message = message,
    cause = err, retryable = err and err.retryable or false }
end

-- Opens a tunnel to u through the proxy (CONNECT), then TLS inside it: the
-- TLS session, and kernel TLS, are end to end with the origin.
local function tunnel(sock, u, pu, tls)
  local target = (u.host:find(":", 1, true) and ("[" .. u.host .. "]") or u.host) .. ":" .. u.port
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
  if not tls then return sock end     -- a plain tunnel (ws:// through a proxy)
  tls.servername = tls.servername or u.host
  local s, terr = sock:starttls(tls)
  if not s then return nil, terr end
  return sock
end

-- For ws.lua: a CONNECT tunnel (TLS inside it when tls is a table).
function M.open_tunnel(u, pu, tls, timeout)
  local sock, err = tcp.connect(pu.host, pu.port, { timeout = timeout })
  if not sock then
    return nil, proxy_error(("cannot reach the proxy %s:%d: %s"):format(pu.host, pu.port, err.message), err)
  end
  local ok, terr = tunnel(sock, u, pu, tls)
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

return M
