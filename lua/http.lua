-- http.lua - the HTTP/1.1 client: URLs, request heads, the connection pool,
-- redirects, timeouts and response objects. Parsing and framing are C
-- (src/http/h1.c through the C half's _parser); bytes move through lurk's sockets,
-- so TLS, and kernel TLS, are underneath whenever the URL says https.
--
-- A request: take a connection for (scheme, host, port, TLS options) from
-- the pool or open one, send the head and body, feed what arrives to the
-- parser until the response ends, then give the connection back if both
-- sides allow keep-alive and nothing extra arrived. A reused connection the
-- server had already closed fails before any response byte: idempotent
-- requests are then sent once more on a fresh connection.
local C, tcp, lurk, json, P = ...

local M = { version = lurk.version }
P.parser = C._parser                  -- for bench/http_floor.lua
P.random_hex = C._random_hex          -- for the cookie jar's temporary files
local concat, insert, sort = table.concat, table.insert, table.sort
local tclear = require "table.clear"
local type, pairs, ipairs, tostring, tonumber, error, select = type, pairs, ipairs, tostring, tonumber, error, select
local mkerror, now = lurk.error, lurk.now
local set_deadline = P.deadline      -- (abs | false) -> the previous deadline
-- Socket methods called per request, without a lookup through __index.
local settimeout = P.sock_methods.settimeout
-- The exchange, called directly: no method lookup through the parser's
-- metatable per request.
local run_exchange = C._exchange

local U, proxy, cookies = P.url, P.proxy, P.cookies
local parse_url, origin, url_string, resolve = U.parse, U.origin, U.string, U.resolve
local base64, urldecode, pct_byte, http_date = U.base64, U.urldecode, U.pct_byte, U.http_date
local proxy_for, proxy_error, tunnel, check_env_proxies = proxy.proxy_for, proxy.error, proxy.tunnel, proxy.check_env
local new_jar = cookies.new_jar
local new_pool = P.pool.new
local lower = string.lower
local new_response, buffer_body, progress_bar = P.response.new, P.response.buffer, P.response.progress_bar
local write_body = P.response.write_body
M.urlencode, M.urldecode, M.encode_query, M.base64, M.parse_url = U.urlencode, urldecode, U.encode_query, base64,
  U.parse_url
-- For ws.lua: the proxy for a URL, and a tunnel through it (CONNECT or SOCKS5).
P.proxy_for, P.tunnel = proxy_for, proxy.open_tunnel

local DEFAULT_TIMEOUT = P.options.timeout   -- src/lua/task.h: LURK_DEFAULT_TIMEOUT
local DEFAULT_MAX_BODY = 64 * 1024 * 1024    -- buffered and streamed requests; downloads have none
local DEFAULT_REDIRECTS = 10
local USER_AGENT = "lurk/" .. lurk.version

-- ---- tracing (LURK_TRACE=http, or trace = true) ----

local trace_env = P.options.trace or os.getenv("LURK_TRACE") or ""
local trace_http = trace_env:find("http", 1, true) ~= nil
local SECRET = { authorization = "scheme", ["proxy-authorization"] = "scheme", cookie = "names",
  ["set-cookie"] = "names" }
-- Credentials keep only their scheme, cookies only their names.
local function masked(name, value)
  local how = SECRET[name:lower()]
  if how == "scheme" then
    local scheme = tostring(value):match("^(%S+)%s")
    return (scheme and (scheme .. " ") or "") .. "***"
  elseif how == "names" then
    return (tostring(value):gsub("=[^;,]*", "=***"))
  end
  return value
end

-- Server-controlled text reaches a terminal: control characters are shown
-- as \xNN, never sent raw.
local function esc_byte(c) return ("\\x%02x"):format(c:byte()) end
local function esc(s) return (tostring(s):gsub("%c", esc_byte)) end

local function trace_lines(lines)
  io.stderr:write(concat(lines, "\n"), "\n")
end

-- The request head exactly as it goes on the wire (request line, Host,
-- User-Agent, every field), credentials and cookies masked.
local function trace_head(head)
  local out = {}
  for line in head:gmatch("([^\r\n]+)\r\n") do
    local name, value = line:match("^([^:]+): (.*)$")
    out[#out + 1] = "> " .. esc(name and (name .. ": " .. masked(name, value)) or line)
  end
  trace_lines(out)
end

local function trace_response(res)
  local out = { ("< %d %s (%s)"):format(res.status, esc(res.reason), esc(res.url)) }
  for k, v in pairs(res.headers) do out[#out + 1] = ("< %s: %s"):format(esc(k), esc(masked(k, v))) end
  local tm = res.timings
  out[#out + 1] = ("< connect %.1f ms, first byte %.1f ms"):format((tm.connect or 0) * 1e3, (tm.ttfb or 0) * 1e3)
  trace_lines(out)
end

-- A line of its own for what lurk decides between exchanges (retries,
-- redirects).
local function trace_note(s)
  trace_lines { "* " .. esc(s) }
end

-- ---- one exchange ----

-- The request head (built and checked in C: the C half's _head).
local function build_head(method, u, headers, body_len, chunked, via)
  local host = u.host_header
  if not host then
    host = u.host:find(":", 1, true) and ("[" .. u.host .. "]") or u.host
    local default = (u.scheme == "https" and u.port == 443) or (u.scheme == "http" and u.port == 80)
    host = host .. (default and "" or (":" .. u.port))
    u.host_header = host
  end
  -- Through an HTTP proxy, plain HTTP requests name the whole URL (absolute
  -- form); through a SOCKS tunnel they are sent as to the origin.
  local extra = via and via.userinfo and ("Proxy-Authorization: Basic " .. base64(urldecode(via.userinfo)) .. "\r\n") or nil
  return C._head(method, via and url_string(u) or u.target, host, headers, body_len, chunked, USER_AGENT, extra)
end

-- A request with no body and only lurk's own header fields (no caller's
-- fields, credentials, cookies or proxy) has the same head every time for
-- its method and URL: kept on the URL.
local function plain_head(method, u, headers)
  local heads = u.heads
  if not heads then
    heads = {}
    u.heads = heads
  end
  local head = heads[method]
  if not head then
    head = build_head(method, u, headers, nil, false, nil)
    heads[method] = head
  end
  return head
end

-- ---- one exchange ----
-- The wire protocol is C (src/http/exchange.c through the connection's
-- parser, conn.x): sending the head (and a small body in the same write),
-- interim responses, framing, limits, decoding, the keep-alive decision.
-- Buffered, one call sends and reads the whole response; streamed, the
-- call ends at the head and res:read() takes the body piece by piece.

local NO_SETUP = { dns = 0, connect = 0, tls = 0 }   -- a pooled connection's setup times
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true }
-- Bytes of a redirect's body drained (and dropped) to reuse its connection.
local REDIRECT_DRAIN = 64 * 1024

-- Sends a request body: a string, or a streamed source (a function returning
-- chunks then nil, or a file) as chunked encoding or with a known length.
local function send_body(sock, body)
  if type(body) == "string" then return sock:send(body) end
  local chunked = body.length == nil
  while true do
    local chunk, rerr = body.next()
    if chunk == nil and rerr then
      return nil, mkerror { kind = "closed", phase = "send", message = "request body source failed: " .. tostring(rerr) }
    end
    if chunk == nil then break end
    if chunk == "" then
      -- nothing this time
    elseif chunked then
      local ok, err = sock:send(("%x\r\n"):format(#chunk) .. chunk .. "\r\n")
      if not ok then return nil, err end
    else
      local ok, err = sock:send(chunk)
      if not ok then return nil, err end
    end
  end
  if chunked then return sock:send("0\r\n\r\n") end
  return true
end

-- Sends the request and reads the response (streamed: its head; res:read
-- reads the body). Returns the response, or nil, err. first: when a
-- kept-alive connection the server had already dropped fails it (an
-- idempotent request, a body that can be sent again), it goes once more on
-- a fresh connection.
local function exchange(pool, method, u, headers, body, opts, t0, first)
  local conn, key, reused = pool:checkout(u, opts, t0)
  if not conn then
    key.url = key.url or url_string(u)
    return nil, key
  end
  local sock, x = conn.sock, conn.x
  local ct = reused and NO_SETUP or conn.timings
  -- Each request's own read timeout (none: false), set only on a change.
  local read_timeout = opts.read_timeout or false
  if conn.timeout ~= read_timeout then
    settimeout(sock, read_timeout)
    conn.timeout = read_timeout
  end
  local blen = type(body) == "string" and #body or (body and body.length)
  local head
  if opts.plain and not opts.proxy_url and headers.Authorization == nil and headers.Cookie == nil then
    head = plain_head(method, u, headers)
  else
    local pu = opts.proxy_url
    head = build_head(method, u, headers, blen, body ~= nil and blen == nil,
                      pu and u.scheme == "http" and not pu.socks and pu)
  end
  if opts.trace then trace_head(head) end
  local is_head, max_body, decompress = method == "HEAD", opts.max_body, opts.decompress
  local drain = opts.max_redirects > 0 and REDIRECT_DRAIN or nil
  local small = type(body) == "string" and #body < 65536 and not opts.expect
  local status, reason, hdrs, rbody, keep, first_at, repeated, done
  local early = false                 -- the server answered before the body went
  if body == nil or small then
    -- The request in one write, and the response read in C with one wait
    -- (buffered) or up to its head (streamed).
    status, reason, hdrs, rbody, keep, first_at, repeated, done = run_exchange(x, sock,
      small and (head .. body) or head, is_head, max_body, decompress, opts.stream and "head" or "whole", drain)
  else
    local ok, err = sock:send(head)
    if ok and opts.expect then
      -- Expect: 100-continue: the server's verdict first (a second at most).
      local v
      v, reason, hdrs, rbody, keep, first_at, repeated = run_exchange(x, sock, nil, is_head, max_body, decompress,
                                                               "continue", drain)
      if v == nil then ok, err = nil, reason
      elseif v ~= "continue" and v ~= "send" then status, early = v, true end
    end
    if ok and not early then ok, err = send_body(sock, body) end
    if not ok then
      status, reason = nil, err
    elseif not early then
      status, reason, hdrs, rbody, keep, first_at, repeated = run_exchange(x, sock, nil, is_head, max_body, decompress,
                                                                         "head", drain)
    end
  end
  if not status then
    local err = reason
    pool:checkin(key, conn, false)
    if first and reused and not err.response_started and IDEMPOTENT[method] and err.kind == "closed"
       and (body == nil or type(body) == "string" or body.rewind ~= nil) then
      if type(body) == "table" then body.rewind() end
      return exchange(pool, method, u, headers, body, opts, t0, false)
    end
    err.url = err.url or url_string(u)
    return nil, err
  end
  local res = new_response(status, reason, hdrs, repeated, rbody, u, conn, ct, first_at - t0)
  if rbody then
    -- Buffered: the response is whole, the connection free.
    res.timings.total = done - t0
    pool:checkin(key, conn, keep and not opts.close, done)
    return res
  end
  res._conn, res._pool, res._key, res._t0 = conn, pool, key, t0
  res._no_reuse = opts.close or early
  res._decoded = decompress and rawget(hdrs, "content-encoding") ~= nil
  return res
end


-- ---- requests ----

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

-- The options of a call without any. (No metatable: every option looked up
-- in it is a miss, and a miss on a table without one is cheapest. Nothing
-- writes to it: do_request only reads o.)
local EMPTY = {}
local default_session = { pool = new_pool(16), defaults = {} }

-- ---- checking what the script gave ----

-- A raise points at the script's line, not at this module's: the first Lua
-- frame outside lua/http.lua and lua/http/*.lua (C frames such as pcall are
-- passed over too, so pcall(http.get, ...) points at the pcall's line).
local getinfo = debug.getinfo
local INTERNAL = { [getinfo(1, "S").source] = true }
for _, f in ipairs { P.url.parse, P.response.new, P.pool.new, P.proxy.proxy_for, P.cookies.new_jar } do
  INTERNAL[getinfo(f, "S").source] = true
end

local function script_where()
  for level = 3, 50 do
    local info = getinfo(level, "Sl")
    if not info then break end
    if info.what ~= "C" and not INTERNAL[info.source] then
      return info.currentline > 0 and (info.short_src .. ":" .. info.currentline .. ": ") or ""
    end
  end
  return ""
end

local function raise(fname, msg)
  error(script_where() .. fname .. ": " .. msg, 0)
end

-- An error raised inside the request machinery (a tls option tcp.connect
-- refuses, a proxy URL) is the script's mistake: its position becomes the
-- script's line.
local function relocate(e)
  if type(e) ~= "string" then return e end
  local rest = e:match("^[^\n]-lua/http[%w_/]*%.lua:%d+: (.*)$")
  return rest and (script_where() .. rest) or e
end

-- The checks tcp.connect makes of a tls table, made before the request
-- starts, so a mistake is reported at the script's line as fname's.
local function check_tls(tls, fname)
  local ok, e = pcall(P.check_tls, tls, fname)
  if not ok then error(relocate(e), 0) end
end

local function set(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

-- Options every request takes, and may take from its client.
local SHARED = { "headers", "query", "auth", "bearer", "timeout", "redirects", "retries", "stream", "decompress",
  "max_body", "proxy", "tls", "trace" }
local BODY = { "body", "json", "form", "files" }
local function options(...)
  local list = {}
  for _, l in ipairs { ... } do for _, k in ipairs(l) do list[#list + 1] = k end end
  return set(list)
end
local REQUEST_OPTIONS = options(SHARED, BODY, { "method", "url" })
local SHORTCUT_OPTIONS = options(SHARED, BODY)
local CLIENT_OPTIONS = options(SHARED, { "base_url", "cookies", "max_per_host" })
local DOWNLOAD_OPTIONS = options(SHARED, BODY, { "method", "progress", "resume" })
local TIMEOUT_OPTIONS = set { "total", "connect", "read" }
local RETRY_OPTIONS = set { "count", "statuses", "methods", "backoff", "max_backoff" }
local AUTH_KEYS = { [1] = true, [2] = true, user = true, pass = true }
local FILE_OPTIONS = set { "path", "content", "filename", "content_type" }

-- Raises for the first key of o not in known, with the closest known one
-- (P.check_options' message, at the script's line).
local function check_opts(o, fname, known)
  for k in pairs(o) do
    if not known[k] then
      local _, msg = pcall(P.check_options, o, fname, known, 1)
      error(script_where() .. tostring(msg), 0)
    end
  end
end

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

local function check_value(fname, name, v)
  local tv = type(v)
  if tv ~= "string" and tv ~= "number" then
    raise(fname, ("header %s: value must be a string or a number (or a list of them), got %s"):format(name, tv))
  end
  if tv == "string" and v:find("[\r\n%z]") then raise(fname, ("header %s: value contains CR, LF or NUL"):format(name)) end
end

-- Header names are tokens; values strings or numbers (or lists of them)
-- without CR, LF or NUL. Returns how many fields there are.
-- whose: "the client's " for c.headers (said only in what is raised: no
-- string is made per request).
local function check_headers(h, fname, whose)
  whose = whose or ""
  if type(h) ~= "table" then raise(fname, whose .. "headers must be a table of name = value, got " .. type(h)) end
  local n = 0
  for k, v in pairs(h) do
    n = n + 1
    if type(k) ~= "string" or not k:find(TOKEN) then
      raise(fname, whose .. (type(k) == "string" and ("invalid header name %q"):format(k)
                             or ("invalid header name (a %s)"):format(type(k))))
    end
    if type(v) == "table" then
      for i = 1, #v do check_value(fname, k, v[i]) end
    else
      check_value(fname, k, v)
    end
  end
  return n
end

local function head_string(fname, what, v)
  if type(v) ~= "string" then raise(fname, ("%s must be a string, got %s"):format(what, type(v))) end
  if v:find("[\r\n%z]") then raise(fname, what .. " contains CR, LF or NUL") end
  return v
end

-- auth = { user, pass } or { user = ..., pass = ... } -> the Authorization value.
local function basic_auth(a, fname)
  if type(a) ~= "table" then raise(fname, "auth must be { user, pass } or { user = u, pass = p }, got " .. type(a)) end
  for k in pairs(a) do
    if not AUTH_KEYS[k] then raise(fname, ("auth: unknown field %s (use { user, pass } or { user = u, pass = p })"):format(tostring(k))) end
  end
  local user, pass = a.user, a.pass
  if user == nil and pass == nil then
    user, pass = a[1], a[2]
  elseif a[1] ~= nil or a[2] ~= nil then
    raise(fname, "auth: give { user, pass } or { user = u, pass = p }, not both")
  end
  if type(user) ~= "string" then raise(fname, "auth: the user name must be a string, got " .. type(user)) end
  if pass ~= nil and type(pass) ~= "string" then raise(fname, "auth: the password must be a string, got " .. type(pass)) end
  -- Basic joins them with ':': one in the name would move the split.
  if user:find(":", 1, true) then raise(fname, "auth: a user name cannot contain ':' (HTTP Basic)") end
  return "Basic " .. base64(user .. ":" .. (pass or ""))
end

-- The Authorization value of o's bearer or auth, false to send none, or nil
-- when o sets neither.
local function auth_option(o, fname)
  local b, a = o.bearer, o.auth
  if b ~= nil and b ~= false then return "Bearer " .. head_string(fname, "bearer", b) end
  if a ~= nil and a ~= false then return basic_auth(a, fname) end
  if b == false or a == false then return false end
  return nil
end

-- A query option as the string appended to the URL's query.
local function query_part(q, fname)
  if type(q) == "table" then
    local s, err = U.query_string(q)
    if not s then raise(fname, "query: " .. err) end
    return s
  end
  if type(q) ~= "string" then raise(fname, "query must be a table or a string, got " .. type(q)) end
  -- It goes into the request line: spaces and control characters (CR, LF)
  -- are percent-encoded, never sent raw, so the server reads them as data.
  return (q:gsub("^%?", ""):gsub("[%s%c]", pct_byte))
end

-- The client's query and the request's: tables merge (the request's keys
-- win); otherwise both are sent, the client's first.
local function merged_query(cq, rq, fname)
  if cq == nil then return rq ~= nil and query_part(rq, fname) or "" end
  if rq == nil then return query_part(cq, fname) end
  if type(cq) == "table" and type(rq) == "table" then
    local m = {}
    for k, v in pairs(cq) do m[k] = v end
    for k, v in pairs(rq) do m[k] = v end
    return query_part(m, fname)
  end
  local a, b = query_part(cq, fname), query_part(rq, fname)
  return (a ~= "" and b ~= "") and (a .. "&" .. b) or (a .. b)
end

local function positive(fname, what, v)
  if type(v) ~= "number" or v <= 0 or v ~= v then raise(fname, ("%s must be a positive number, got %s"):format(what, tostring(v))) end
  return v
end

local function timeouts(t, fname)
  if t == nil then return DEFAULT_TIMEOUT, nil, nil end
  if t == false then return nil, nil, nil end
  if type(t) == "number" then return positive(fname, "timeout", t), nil, nil end
  if type(t) ~= "table" then raise(fname, "timeout must be a number, false or { total, connect, read }, got " .. type(t)) end
  check_opts(t, fname .. " timeout", TIMEOUT_OPTIONS)
  return t.total and positive(fname, "timeout.total", t.total) or DEFAULT_TIMEOUT,
    t.connect and positive(fname, "timeout.connect", t.connect), t.read and positive(fname, "timeout.read", t.read)
end

local function flag(fname, name, v)
  if v ~= nil and type(v) ~= "boolean" then raise(fname, ("%s must be true or false, got %s"):format(name, type(v))) end
  return v
end

-- ---- retries ----

local IDEMPOTENT_METHODS = { "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE" }
local RETRY_STATUS = { [429] = true, [502] = true, [503] = true, [504] = true }
local RETRY_KIND = { connect = true, timeout = true, closed = true, dns = true }
local NO_RETRY = { count = 0 }
local by_count = {}                   -- retries = n -> its policy

-- retries = n or { count, statuses, methods, backoff, max_backoff } -> the
-- policy attempt() follows.
local function retry_policy(r, fname)
  if r == nil or r == 0 or r == false then return NO_RETRY end
  if type(r) == "number" then
    if r < 0 or r % 1 ~= 0 then raise(fname, "retries must be a whole number >= 0, got " .. tostring(r)) end
    local p = by_count[r]
    if not p then
      p = { count = r, statuses = RETRY_STATUS, methods = IDEMPOTENT, backoff = 0.1, max_backoff = 10 }
      by_count[r] = p
    end
    return p
  end
  if type(r) ~= "table" then raise(fname, "retries must be a number or { count, statuses, methods, backoff, max_backoff }") end
  check_opts(r, fname .. " retries", RETRY_OPTIONS)
  local count = r.count == nil and 3 or r.count
  if type(count) ~= "number" or count < 0 or count % 1 ~= 0 then
    raise(fname, "retries.count must be a whole number >= 0, got " .. tostring(count))
  end
  local p = { count = count, statuses = RETRY_STATUS, methods = IDEMPOTENT, backoff = 0.1, max_backoff = 10 }
  if r.statuses ~= nil then
    if type(r.statuses) ~= "table" then raise(fname, "retries.statuses must be a list of status codes") end
    p.statuses = {}
    for _, s in ipairs(r.statuses) do
      if type(s) ~= "number" or s < 100 or s > 999 then raise(fname, "retries.statuses: not a status code: " .. tostring(s)) end
      p.statuses[s] = true
    end
  end
  if r.methods ~= nil then
    if type(r.methods) ~= "table" then raise(fname, "retries.methods must be a list of methods") end
    p.methods = {}
    for _, m in ipairs(r.methods) do
      if type(m) ~= "string" or not m:find(TOKEN) then raise(fname, "retries.methods: not a method: " .. tostring(m)) end
      p.methods[m:upper()] = true
    end
  end
  if r.backoff ~= nil then
    if type(r.backoff) ~= "number" or r.backoff < 0 then raise(fname, "retries.backoff must be a number >= 0") end
    p.backoff = r.backoff
  end
  if r.max_backoff ~= nil then
    if type(r.max_backoff) ~= "number" or r.max_backoff < 0 then raise(fname, "retries.max_backoff must be a number >= 0") end
    p.max_backoff = r.max_backoff
  end
  return p
end

-- Retry-After: seconds, or an HTTP date (then relative to now); capped at
-- 60 s (or max_backoff when that is longer).
local function retry_after(v, cap)
  if not v then return nil end
  local secs = tonumber(v)
  if not secs then
    local at = http_date(v)
    secs = at and (at - os.time())
  end
  if not secs then return nil end
  return math.max(0, math.min(secs, cap))
end

-- Exponential backoff with jitter: backoff * 2^attempt (x 0.5-1.5), at most max_backoff.
local function backoff(p, attempt)
  return math.min(p.max_backoff, p.backoff * 2 ^ attempt) * (0.5 + math.random())
end

-- ---- tracing ----

-- Whether a Connection header value (a string, or a list of them) has the
-- "close" option.
local function has_close(v)
  if type(v) == "table" then v = concat(v, ",") end
  for token in tostring(v):gmatch("[^,%s]+") do
    if token:lower() == "close" then return true end
  end
  return false
end

-- Adds src's headers to headers. Names merge ignoring case (a later
-- "x-trace" replaces an earlier "X-Trace": one field is sent). The fields
-- lurk manages itself are recognised in any spelling: credentials and
-- cookies go to st (they follow their origin), the content type gets one
-- canonical name.
local function merge_headers(st, headers, src)
  local names = st.names
  for k, v in pairs(src) do
    local lk = lower(k)
    if lk == "authorization" then
      st.user_auth = v
    elseif lk == "cookie" then
      st.user_cookie = v
    else
      if lk == "content-type" then
        k = "Content-Type"
      elseif lk == "accept-encoding" then
        st.has_accept_encoding = true
      elseif lk == "expect" and lower(tostring(v)) == "100-continue" then
        st.expect = true
      elseif lk == "connection" and has_close(v) then
        -- The server will close after its answer: never back to the pool.
        st.close = true
      end
      local prev = names[lk]
      if prev and prev ~= k then headers[prev] = nil end
      names[lk] = k
      headers[k] = v
    end
  end
end

local VALID_METHOD = {}             -- method as given -> upper case, once checked

local function check_method(method, fname)
  local m = VALID_METHOD[method]
  if m then return m end
  if type(method) ~= "string" or not method:match(TOKEN) then
    raise(fname, "invalid method " .. (type(method) == "string" and ("%q"):format(method) or tostring(method)))
  end
  m = method:upper()
  VALID_METHOD[method] = m
  return m
end

-- A form field or file name inside a part's quoted header parameter: the
-- characters that would end the quotes or the header line are percent-
-- encoded, as browsers do.
local function part_name(v)
  return (tostring(v):gsub('[%c"]', pct_byte))
end

-- A file as a request body source, read from where it stands.
local function file_source(f)
  local start = f:seek("cur")
  local size = f:seek("end")
  f:seek("set", start)
  return { next = function() return f:read(65536) end, length = size and start and size - start, file = true,
           rewind = function() f:seek("set", start) end }
end

-- Builds a request body from o's body, json, form and files options.
local function request_body(o, headers, fname)
  local body = o.body
  local given = (body ~= nil and 1 or 0) + (o.json ~= nil and 1 or 0) + ((o.form ~= nil and not o.files) and 1 or 0)
  if given > 1 then raise(fname, "give one of body, json and form (files may come with form)") end
  if o.json ~= nil then
    local err
    body, err = json.encode(o.json)
    if not body then return false, err end
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  elseif o.form ~= nil and not o.files then
    if type(o.form) ~= "table" then raise(fname, "form must be a table, got " .. type(o.form)) end
    local s, err = U.query_string(o.form)
    if not s then raise(fname, "form: " .. err) end
    body = s
    headers["Content-Type"] = headers["Content-Type"] or "application/x-www-form-urlencoded"
  end
  if o.files ~= nil then
    if type(o.files) ~= "table" then raise(fname, "files must be a table of field = file, got " .. type(o.files)) end
    if o.form ~= nil and type(o.form) ~= "table" then raise(fname, "form must be a table, got " .. type(o.form)) end
    local boundary = "lurk-" .. C._random_hex(16)
    local parts = {}
    local names, fields = {}, {}
    for k in pairs(o.files) do
      if type(k) ~= "string" then raise(fname, "files: field names must be strings") end
      names[#names + 1] = k
    end
    sort(names)
    for k in pairs(o.form or EMPTY) do
      if type(k) ~= "string" then raise(fname, "form: field names must be strings") end
      fields[#fields + 1] = k
    end
    sort(fields)
    for _, k in ipairs(fields) do
      local v = o.form[k]
      if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
        raise(fname, ("form.%s: cannot send a %s as a form field"):format(k, type(v)))
      end
      parts[#parts + 1] = ('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'):format(boundary,
        part_name(k), tostring(v))
    end
    for _, name in ipairs(names) do
      local f = o.files[name]
      if type(f) == "string" then f = { path = f } end
      if type(f) ~= "table" then raise(fname, ("files.%s must be a path or { path | content, filename, content_type }"):format(name)) end
      check_opts(f, fname .. " files." .. name, FILE_OPTIONS)
      local data = f.content
      if data ~= nil and type(data) ~= "string" then raise(fname, ("files.%s.content must be a string"):format(name)) end
      if not data then
        if type(f.path) ~= "string" then raise(fname, ("files.%s needs a path or content"):format(name)) end
        local fh, ferr = io.open(f.path, "rb")
        if not fh then raise(fname, "files." .. name .. ": " .. tostring(ferr)) end
        data = fh:read("*a")
        fh:close()
      end
      local filename = f.filename or (f.path and f.path:match("([^/]+)$")) or name
      if type(filename) ~= "string" then raise(fname, ("files.%s.filename must be a string"):format(name)) end
      local ctype = head_string(fname, "files." .. name .. ".content_type", f.content_type or "application/octet-stream")
      parts[#parts + 1] = ('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n')
        :format(boundary, part_name(name), part_name(filename), ctype) .. data .. "\r\n"
    end
    parts[#parts + 1] = "--" .. boundary .. "--\r\n"
    body = concat(parts)
    headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  end
  if body ~= nil and type(body) ~= "string" then
    if type(body) == "function" then
      body = { next = body }
    elseif io.type(body) == "file" then
      body = file_source(body)
    else
      raise(fname, "body must be a string, a function returning chunks, or a file, got " .. type(body))
    end
  end
  return body
end

-- Try n (from 0) of one exchange, with the session's cookies, the proxy
-- and the trace; repeated as the retry policy says (and only with a body
-- that can be sent again). Further tries, like further hops and second
-- tries, are tail calls: a loop entered on every request would stop
-- LuaJIT compiling the request path. res.attempts / err.attempts: tries made.
local function attempt(st, m, url_t, n)
  local headers, jar = st.headers, st.jar
  -- The caller's Cookie header goes to the first origin only; the
  -- session's jar decides per URL.
  local jc = jar and jar:header(url_t)
  local uc = st.user_cookie and origin(url_t) == st.auth_origin and st.user_cookie or nil
  headers.Cookie = (uc and jc) and (uc .. "; " .. jc) or uc or jc
  st.proxy_url = proxy_for(url_t, st.proxy)
  local t0 = st.t0 or now()           -- the first try's start is the request's
  st.t0 = false
  local res, err = exchange(st.pool, m, url_t, headers, st.body, st, t0, true)
  if res then res.attempts = n + 1 else err.attempts = n + 1 end
  if res and st.trace then trace_response(res) end
  if res and jar and rawget(res.headers, "set-cookie") then jar:store(url_t, res.headers:all("set-cookie")) end
  local p = st.retry
  if not (n < p.count and p.methods[m] and st.replayable and
          ((res and p.statuses[res.status]) or (not res and RETRY_KIND[err.kind]))) then
    return res, err
  end
  if type(st.body) == "table" then st.body.rewind() end
  local delay = backoff(p, n)
  if res then
    delay = retry_after(rawget(res.headers, "retry-after"), math.max(60, p.max_backoff)) or delay
    res:close()
  end
  if st.trace then
    trace_note(("retry %d of %d after %s, in %.2f s"):format(n + 1, p.count,
      res and ("HTTP " .. res.status) or ("a " .. err.kind .. " error"), delay))
  end
  local ok, serr = lurk.sleep(delay)
  if not ok then
    serr.url, serr.attempts = url_string(url_t), n + 1
    return nil, serr
  end
  return attempt(st, m, url_t, n + 1)
end

-- Hop n (from 0) of a request, and the hops its redirects lead to: the
-- response, or nil, err.
local function hop(st, n)
  local max_redirects, headers, u, method = st.max_redirects, st.headers, st.u, st.method
  if st.auth and origin(u) == st.auth_origin then headers.Authorization = st.auth else headers.Authorization = nil end
  local res, err = attempt(st, method, u, 0)
  if not res then return nil, err end
  local location = rawget(res.headers, "location")
  local follow = location and location ~= "" and REDIRECT[res.status] and max_redirects > 0
  local resend = not (res.status == 303 or ((res.status == 301 or res.status == 302) and method == "POST"))
  if follow and resend and type(st.body) == "table" then
    if st.body.rewind then st.body.rewind() else follow = false end   -- a consumed stream cannot be sent again
  end
  if not follow and st.stream then return res end
  -- Read the body (a redirect's too, so its connection can be reused).
  res, err = buffer_body(res)
  if not res then return nil, err end
  if not follow then return res end
  if n == max_redirects then
    return nil, mkerror { kind = "limit", phase = "read", url = res.url,
      message = ("more than %d redirects (last: %d to %s)"):format(max_redirects, res.status, location) }
  end
  local nu = resolve(location, u)
  if not nu then
    return nil, mkerror { kind = "protocol", phase = "read", url = res.url,
      message = "redirect to an unusable location: " .. location }
  end
  if not resend then
    if method ~= "HEAD" then st.method = "GET" end
    st.body = nil
    headers["Content-Type"] = nil
  end
  if st.trace then trace_note(("redirect %d: %d to %s"):format(n + 1, res.status, url_string(nu))) end
  st.u = nu
  return hop(st, n + 1)
end


-- Request states are reused (a request allocates none once the program
-- runs): new_state() sets every field, free_state() drops what they held.
local free_states, nfree = {}, 0

local function new_state(session, u, method)
  local st
  if nfree > 0 then
    st = free_states[nfree]
    free_states[nfree] = nil
    nfree = nfree - 1
  else
    st = { session = false, pool = false, jar = false, u = false, method = false, headers = false,
      stream = false, max_body = false, decompress = false, tls = false, body = false,
      replayable = false, user_auth = false, user_cookie = false, auth = false, auth_origin = false,
      has_accept_encoding = false, plain = false, expect = false, close = false, connect_timeout = false,
      read_timeout = false, max_redirects = 0, proxy = false, proxy_url = false, retry = NO_RETRY,
      trace = false, t0 = false, spare_headers = {}, names = {} }
  end
  -- The request's header table comes with the state, emptied.
  st.session, st.pool, st.jar, st.u, st.method, st.headers = session, session.pool, session.jar, u, method,
    st.spare_headers
  st.stream, st.max_body, st.decompress, st.tls = false, false, true, nil
  st.body, st.replayable, st.user_auth, st.user_cookie, st.auth, st.auth_origin = false, false, false, false, false, false
  st.has_accept_encoding, st.expect, st.close, st.connect_timeout, st.read_timeout = false, false, false, false, false
  st.max_redirects, st.proxy, st.proxy_url, st.retry, st.trace, st.t0 = 0, false, false, NO_RETRY, false, false
  return st
end

local function free_state(st)
  if nfree >= 64 then return end
  tclear(st.spare_headers)
  tclear(st.names)
  st.session, st.pool, st.jar, st.u, st.headers, st.tls, st.body = false, false, false, false, false, false, false
  st.user_auth, st.user_cookie, st.auth, st.proxy, st.proxy_url = false, false, false, false, false
  nfree = nfree + 1
  free_states[nfree] = st
end

-- Whether the time is up for a deadline at abs (or none: false).
local function passed(abs)
  return abs and now() >= abs - 0.002
end

-- A timeout's err names what timed out and after how long, never the errno
-- text of the read or connect the deadline cancelled.
local function timeout_message(st, err, t0, total, mine, outer, connect_t, read_t)
  local url = url_string(st.u)
  local what
  if mine and passed(mine) and not (outer and outer < mine) then
    what = ("timed out after %g s"):format(total)
  elseif outer and passed(outer) then
    what = ("timed out after %.3g s (the deadline of an enclosing lurk.timeout)"):format(math.max(0, outer - t0))
  elseif err.phase == "dns" or err.phase == "connect" or err.phase == "tls" then
    what = ("timed out after %g s connecting (connect timeout)"):format(connect_t or DEFAULT_TIMEOUT)
  else
    what = ("timed out after %g s without data (read timeout)"):format(read_t or DEFAULT_TIMEOUT)
  end
  -- The pool's own message says what the request waited behind.
  local detail = err.phase == "pool" and err.message
  err.message = ("HTTP request to %s %s"):format(url, what) .. (detail and (": " .. detail) or "")
  err.url = url
end

-- Option k of the request o, else the client's default. (Not a closure in
-- do_request: a function that makes closures is not compiled by this LuaJIT.)
local function opt(o, d, k)
  local v = o[k]
  if v == nil then v = d[k] end
  return v
end

-- do_request(session, o, method, url, fname): method and url, when given,
-- stand for o.method and o.url (the shortcuts pass them without copying o).
-- The session's defaults stand for every option o does not set. fname
-- names the function in what it raises.
local function do_request(session, o, method, url, fname)
  local d = session.defaults
  method = check_method(method or o.method or "GET", fname)
  url = url or o.url
  if type(url) ~= "string" then raise(fname, "url must be a string, got " .. type(url)) end
  local base = session.base_url
  if base and not url:match("^%a[%w+.-]*://") then
    url = base:gsub("/$", "") .. "/" .. url:gsub("^/", "")
  end
  local u, perr = parse_url(url)
  if not u then raise(fname, ("bad url %q: %s"):format(url, perr)) end
  local q, dq = o.query, d.query
  if q ~= nil or dq ~= nil then
    q = merged_query(dq, q, fname)
    if q ~= "" then
      -- A URL of its own (u may be the parse cache's), without the strings
      -- derived from the old target.
      u = { scheme = u.scheme, host = u.host, port = u.port, userinfo = u.userinfo,
            target = u.target .. (u.target:find("?", 1, true) and "&" or "?") .. q }
    end
  end

  -- Per-request state, read by hop(), attempt() and exchange().
  local st = new_state(session, u, method)
  st.stream = flag(fname, "stream", opt(o, d, "stream")) or false
  st.decompress = flag(fname, "decompress", opt(o, d, "decompress")) ~= false
  local max_body = opt(o, d, "max_body")
  st.max_body = max_body == nil and (session.max_body or DEFAULT_MAX_BODY) or positive(fname, "max_body", max_body)
  local tls = opt(o, d, "tls")
  if tls ~= nil and type(tls) ~= "table" then raise(fname, "tls must be a table of TLS options, got " .. type(tls)) end
  if tls ~= nil then check_tls(tls, fname) end
  st.tls = tls
  local trace = flag(fname, "trace", opt(o, d, "trace"))
  st.trace = trace == nil and trace_http or trace

  -- Headers: the client's, then the request's; credentials as they rank.
  local headers = st.headers
  local ch, oh = session.client and session.client.headers, o.headers
  local auth = nil
  -- c.headers is always a table: an empty one counts as none (a plain request).
  if ch and check_headers(ch, fname, "the client's ") == 0 then ch = nil end
  if ch then
    merge_headers(st, headers, ch)
    auth = st.user_auth or nil
    st.user_auth = false
  end
  local da = d.auth_value             -- the client's bearer or auth, checked when it was made
  if da ~= nil then auth = da or nil end
  if oh ~= nil then
    check_headers(oh, fname)
    merge_headers(st, headers, oh)
    if st.user_auth then auth = st.user_auth end
  end
  local oa = auth_option(o, fname)
  if oa ~= nil then
    auth = oa or nil
  elseif u.userinfo then
    auth = "Basic " .. base64(urldecode(u.userinfo))
  end
  if auth then auth = head_string(fname, "Authorization", tostring(auth)) end
  local body, berr = request_body(o, headers, fname)
  if body == false then
    free_state(st)
    berr.url = url_string(u)
    return nil, berr
  end
  st.body = body
  st.replayable = type(body) ~= "table" or body.rewind ~= nil
  if body == nil then st.body = nil end
  st.auth, st.auth_origin = auth or false, origin(u)

  local total, connect_t, read_t = timeouts(opt(o, d, "timeout"), fname)
  if st.decompress and not st.has_accept_encoding then headers["Accept-Encoding"] = "gzip, deflate" end
  -- Only Accept-Encoding in headers, so far (see plain_head).
  st.plain = st.decompress and not ch and oh == nil and body == nil
  st.connect_timeout, st.read_timeout = connect_t or total, read_t or total
  local max_redirects = opt(o, d, "redirects")
  if max_redirects == nil then
    max_redirects = DEFAULT_REDIRECTS
  elseif type(max_redirects) ~= "number" or max_redirects < 0 or max_redirects % 1 ~= 0 then
    raise(fname, "redirects must be a whole number >= 0, got " .. tostring(max_redirects))
  end
  st.max_redirects = max_redirects
  local proxy = opt(o, d, "proxy")
  if proxy ~= nil then
    if proxy ~= false and type(proxy) ~= "string" then raise(fname, "proxy must be a URL string or false, got " .. type(proxy)) end
    local ok, perr2 = pcall(proxy_for, u, proxy)   -- a bad proxy option is the caller's error
    if not ok then error(relocate(perr2), 0) end
  end
  st.proxy = proxy
  -- What could raise inside the request, checked before it starts.
  check_env_proxies()
  local r = o.retries
  st.retry = r ~= nil and retry_policy(r, fname) or d.retry_policy or NO_RETRY
  -- Nothing the request runs can raise (no caller's code, no TLS options
  -- for tcp.connect to refuse): no pcall, which this LuaJIT cannot compile
  -- a return through.
  local safe = st.plain and tls == nil

  local t0 = now()
  local mine = total and t0 + total
  local outer                         -- the task's deadline before this request
  if mine then
    -- The total deadline over everything hop() waits on (lurk.timeout's
    -- logic, without its per-call closures and tables).
    st.t0 = t0
    outer = set_deadline(mine)
    if outer and outer < mine then set_deadline(outer) end
  end
  local ok, res, err
  if safe then
    ok, res, err = true, hop(st, 0)
  else
    ok, res, err = pcall(hop, st, 0)
  end
  if mine then set_deadline(outer or false) end
  if not ok then error(relocate(res), 0) end
  if not res then
    if err.kind == "timeout" then
      if not mine then outer = set_deadline() end
      timeout_message(st, err, t0, total, mine, outer, st.connect_timeout, st.read_timeout)
    end
    err.url = err.url or url_string(st.u)
  end
  free_state(st)
  return res, err
end

-- ---- downloads ----

-- Where a resumable download keeps the validator (ETag or Last-Modified)
-- of the file its part came from: next to the part, one line.
local function validator_path(part) return part .. ".validator" end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

-- A strong validator for If-Range: an ETag that is not weak, else
-- Last-Modified (RFC 9110 13.1.5).
local function validator(res)
  local etag = res.headers.etag
  if etag and not etag:find("^W/") then return etag end
  return res.headers["last-modified"]
end

local function io_error(path, msg, url)
  return mkerror { kind = "io", phase = "io", message = path .. ": " .. msg, url = url }
end

-- The download itself: dl holds its options; part the part file.
local function download(session, url, dest, o, fname)
  local resume = flag(fname, "resume", o.resume)
  local show = o.progress
  if show ~= nil and type(show) ~= "boolean" and type(show) ~= "function" then
    raise(fname, "progress must be true, false or a function(done, total), got " .. type(show))
  end
  if type(dest) ~= "string" or dest == "" then raise(fname, "path must be a non-empty string") end
  local ro = {}
  for k, v in pairs(o) do ro[k] = v end
  ro.progress, ro.resume = nil, nil
  ro.stream = true
  -- No cap unless asked (here or by the client): curl and requests have none.
  ro.max_body = o.max_body or session.defaults.max_body or math.huge
  -- A resumed part is raw bytes: a range of encoded bytes cannot be decoded
  -- on its own, so resumable downloads are never decompressed.
  if resume then ro.decompress = false end
  local part = dest .. ".part"
  local vpath = validator_path(part)
  local have = resume and file_size(part) or 0
  local saved = have > 0 and read_file(vpath) or nil
  if have > 0 then
    local h = {}
    for k, v in pairs(o.headers or EMPTY) do h[k] = v end
    h.Range = ("bytes=%d-"):format(have)
    -- If the file changed since the part was written, the server sends
    -- all of it (200) instead of the rest.
    if saved and saved ~= "" then h["If-Range"] = saved end
    ro.headers = h
  end
  local res, err = do_request(session, ro, o.method, url, fname)
  local function cleanup()
    if not resume then
      os.remove(part)
      os.remove(vpath)
    end
  end
  if not res then
    cleanup()
    return nil, err
  end
  local append, total = false, tonumber(res.headers["content-length"])
  if res.status == 206 and have > 0 then
    local first, last, size = (res.headers["content-range"] or ""):match("^%s*bytes%s+(%d+)%-(%d+)/(%S+)")
    if tonumber(first) ~= have then
      res:close()
      cleanup()
      return nil, mkerror { kind = "protocol", phase = "read", url = res.url,
        message = ("download of %s: asked for bytes %d- and got Content-Range %q"):format(res.url, have,
          tostring(res.headers["content-range"])) }
    end
    append = true
    total = tonumber(size) or (total and have + total)
  elseif res.status == 416 and have > 0 then
    -- Nothing past what we have: complete if the server's size is ours.
    local size = tonumber((res.headers["content-range"] or ""):match("^%s*bytes%s+%*/(%d+)"))
    res:close()
    if size == have then
      local ok, rerr = os.rename(part, dest)
      if not ok then return nil, io_error(dest, tostring(rerr), res.url) end
      os.remove(vpath)
      res.bytes, res.resumed = have, have
      return res
    end
    os.remove(part)
    os.remove(vpath)
    return download(session, url, dest, o, fname)     -- the file changed: from zero
  elseif not res.ok or (res.status == 206) then
    res:close()
    cleanup()
    return nil, mkerror { kind = "status", phase = "read", url = res.url, status = res.status, attempts = res.attempts,
      message = ("download of %s failed: HTTP %d %s"):format(res.url, res.status, res.reason) }
  end
  if res._decoded then total = nil end   -- Content-Length counts encoded bytes
  if resume then
    local v = validator(res)
    local vf = io.open(vpath, "wb")
    if vf then vf:write(v or ""); vf:close() end
  end
  local f, ferr = P.open_write(part, append)
  if not f then
    ferr.url = res.url
    res:close()
    cleanup()
    return nil, ferr
  end
  if show == nil then show = P.isatty(2) end
  local bar = show == true and progress_bar(io.stderr)
  local report = type(show) == "function" and show or bar or nil
  local from = append and have or 0
  if report and from > 0 then report(from, total) end
  local n, serr = write_body(res, f, from, total, report)
  if not n then
    cleanup()
    serr.url = serr.url or res.url
    return nil, serr
  end
  local ok, rerr = os.rename(part, dest)
  if not ok then
    cleanup()
    return nil, io_error(dest, tostring(rerr), res.url)
  end
  os.remove(vpath)
  if bar then bar(n, n, true) end
  res.bytes = n
  if append then res.resumed = have end
  return res
end

-- http.download(url, path [, opts]) -> res | nil, err
function M.download(url, path, opts)
  if opts ~= nil and type(opts) ~= "table" then raise("http.download", "options must be a table, got " .. type(opts)) end
  opts = opts or EMPTY
  check_opts(opts, "http.download", DOWNLOAD_OPTIONS)
  return download(default_session, url, path, opts, "http.download")
end

-- ---- the module and sessions ----

local METHODS = { "get", "head", "delete", "options", "post", "put", "patch" }

-- http.get(url, opts) and friends.
for _, m in ipairs(METHODS) do
  local method, fname = m:upper(), "http." .. m
  M[m] = function(url, opts)
    if opts == nil then return do_request(default_session, EMPTY, method, url, fname) end
    if type(opts) ~= "table" then raise(fname, "options must be a table, got " .. type(opts)) end
    check_opts(opts, fname, SHORTCUT_OPTIONS)
    return do_request(default_session, opts, method, url, fname)
  end
end

-- http.request{ method, url, headers, query, body, json, form, auth, bearer,
--   timeout, redirects, max_body, tls, ... } -> res | nil, err
function M.request(o)
  if type(o) ~= "table" then raise("http.request", "expects a table of options, got " .. type(o)) end
  check_opts(o, "http.request", REQUEST_OPTIONS)
  return do_request(default_session, o, nil, nil, "http.request")
end

-- http.client{ base_url, cookies = true | false | path, max_per_host, and
--   any request option as a default } -> client | nil, err
-- cookies = path loads that cookies.txt file when it exists (a missing one
-- is an empty jar; one that cannot be read is an error of kind io). The
-- client never writes it by itself: c:save_cookies(path) does, as curl
-- writes its jar only when asked (-c).
-- A client is { base_url, headers } for scripts (c.headers is live: what
-- is put in it goes with later requests); its session (defaults, pool,
-- jar) is kept aside.
local Client = {}
Client.__index = Client
local sessions = setmetatable({}, { __mode = "k" })

function M.client(opts)
  if opts ~= nil and type(opts) ~= "table" then raise("http.client", "options must be a table, got " .. type(opts)) end
  opts = opts or EMPTY
  local fname = "http.client"
  check_opts(opts, fname, CLIENT_OPTIONS)
  local ck = opts.cookies
  if ck ~= nil and type(ck) ~= "boolean" and type(ck) ~= "string" then
    raise(fname, "cookies must be a boolean or a cookies.txt path")
  end
  local base = opts.base_url
  if base ~= nil then
    if type(base) ~= "string" then raise(fname, "base_url must be a string, got " .. type(base)) end
    local u, perr = parse_url(base)
    if not u then raise(fname, ("bad base_url %q: %s"):format(base, perr)) end
  end
  local mph = opts.max_per_host
  if mph ~= nil and (type(mph) ~= "number" or mph < 1 or mph % 1 ~= 0) then
    raise(fname, "max_per_host must be a whole number >= 1, got " .. tostring(mph))
  end
  -- The defaults, checked now as a request would check them.
  local d = {}
  for k, v in pairs(opts) do d[k] = v end
  d.base_url, d.cookies, d.max_per_host, d.headers = nil, nil, nil, nil
  if opts.headers ~= nil then check_headers(opts.headers, fname) end
  if d.query ~= nil then query_part(d.query, fname) end
  d.auth_value = auth_option(d, fname)
  d.auth, d.bearer = nil, nil
  timeouts(d.timeout, fname)
  flag(fname, "stream", d.stream); flag(fname, "decompress", d.decompress); flag(fname, "trace", d.trace)
  if d.max_body ~= nil then positive(fname, "max_body", d.max_body) end
  if d.tls ~= nil and type(d.tls) ~= "table" then raise(fname, "tls must be a table of TLS options, got " .. type(d.tls)) end
  if d.tls ~= nil then check_tls(d.tls, fname) end
  if d.redirects ~= nil and (type(d.redirects) ~= "number" or d.redirects < 0 or d.redirects % 1 ~= 0) then
    raise(fname, "redirects must be a whole number >= 0, got " .. tostring(d.redirects))
  end
  if d.proxy ~= nil and d.proxy ~= false and type(d.proxy) ~= "string" then
    raise(fname, "proxy must be a URL string or false, got " .. type(d.proxy))
  end
  d.retry_policy = retry_policy(d.retries, fname)
  d.retries = nil
  local jar = ck ~= false and new_jar() or nil
  if type(ck) == "string" then
    local ok, err = jar:load(ck)
    if not ok and err.errno ~= 2 then return nil, err end   -- ENOENT: no jar yet
  end
  local c = setmetatable({ base_url = base, headers = opts.headers or {} }, Client)
  sessions[c] = { client = c, base_url = base, defaults = d, pool = new_pool(mph), jar = jar }
  return c
end

-- The session of a client method's self, or a raise that shows the call
-- to write when the method was called with "." instead of ":".
local function session_of(self, fname, args)
  local s = sessions[self]
  if not s then
    error(script_where() .. ("c:%s: call it as a method: use c:%s(%s)"):format(fname, fname, args), 0)
  end
  return s
end

function Client:request(o)
  local s = session_of(self, "request", "{ ... }")
  if type(o) ~= "table" then raise("c:request", "expects a table of options, got " .. type(o)) end
  check_opts(o, "c:request", REQUEST_OPTIONS)
  return do_request(s, o, nil, nil, "c:request")
end

for _, m in ipairs(METHODS) do
  local method, fname = m:upper(), "c:" .. m
  Client[m] = function(self, url, opts)
    local s = session_of(self, m, "url [, opts]")
    if opts == nil then return do_request(s, EMPTY, method, url, fname) end
    if type(opts) ~= "table" then raise(fname, "options must be a table, got " .. type(opts)) end
    check_opts(opts, fname, SHORTCUT_OPTIONS)
    return do_request(s, opts, method, url, fname)
  end
end

-- c:download(path_or_url, dest [, opts]) -> res | nil, err: http.download
-- with the client's defaults, base_url, pool and cookies.
function Client:download(url, dest, opts)
  local s = session_of(self, "download", "url, path [, opts]")
  if opts ~= nil and type(opts) ~= "table" then raise("c:download", "options must be a table, got " .. type(opts)) end
  opts = opts or EMPTY
  check_opts(opts, "c:download", DOWNLOAD_OPTIONS)
  return download(s, url, dest, opts, "c:download")
end

-- c:cookies() -> { { name, value, domain, path, expires, secure, host_only, http_only }, ... }
-- oldest first
function Client:cookies()
  local s = session_of(self, "cookies", "")
  return s.jar and s.jar:cookies() or {}
end

local function client_jar(self, fn, path)
  local s = session_of(self, fn, "path")
  if type(path) ~= "string" or path == "" then raise("c:" .. fn, "path must be a non-empty string") end
  if not s.jar then raise("c:" .. fn, "this client keeps no cookies (cookies = false)") end
  return s.jar
end

-- c:save_cookies(path) -> true | nil, err (kind io): every unexpired cookie,
-- session ones too, in the cookies.txt format of curl -c, written atomically.
function Client:save_cookies(path)
  return client_jar(self, "save_cookies", path):save(path)
end

-- c:load_cookies(path) -> true | nil, err (kind io): adds the cookies of a
-- cookies.txt file (curl's -c output, wget's, a browser export); malformed
-- lines are skipped.
function Client:load_cookies(path)
  return client_jar(self, "load_cookies", path):load(path)
end

-- c:close(): closes the idle connections of its pool.
function Client:close()
  session_of(self, "close", "")
  sessions[self].pool:close()
end

function Client:__tostring()
  local s = sessions[self]
  return ("http.client (%s)"):format(s and s.base_url or "no base_url")
end

return M
