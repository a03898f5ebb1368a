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
M.urlencode, M.urldecode, M.encode_query, M.base64, M.parse_url = U.urlencode, urldecode, U.encode_query, base64,
  U.parse_url
-- For ws.lua: the proxy for a URL, and a tunnel through it (CONNECT or SOCKS5).
P.proxy_for, P.tunnel = proxy_for, proxy.open_tunnel

local DEFAULT_TIMEOUT = P.options.timeout   -- src/lua/task.h: LURK_DEFAULT_TIMEOUT
local DEFAULT_MAX_BODY = 64 * 1024 * 1024
local DEFAULT_REDIRECTS = 10
local USER_AGENT = "lurk/" .. lurk.version

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
local RETRY_STATUS = { [502] = true, [503] = true, [504] = true }
local RETRY_KIND = { connect = true, timeout = true, closed = true, dns = true }

-- Retry-After: seconds, or an HTTP date (then relative to now); capped.
local function retry_after(v)
  if not v then return nil end
  local secs = tonumber(v)
  if not secs then
    local at = http_date(v)
    secs = at and (at - os.time())
  end
  if not secs then return nil end
  return math.max(0, math.min(secs, 60))
end

-- Exponential backoff with jitter: 0.1 s, 0.2 s, 0.4 s ... (x 0.5-1.5), at most 10 s.
local function backoff(attempt)
  return math.min(10, 0.1 * 2 ^ attempt) * (0.5 + math.random())
end

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

local function trace_request(method, u, headers)
  local out = { ("> %s %s"):format(method, url_string(u)) }
  for k, v in pairs(headers) do out[#out + 1] = ("> %s: %s"):format(k, masked(k, v)) end
  io.stderr:write(concat(out, "\n"), "\n")
end

local function trace_response(res)
  local out = { ("< %d %s (%s)"):format(res.status, res.reason, res.url) }
  for k, v in pairs(res.headers) do out[#out + 1] = ("< %s: %s"):format(k, masked(k, v)) end
  local tm = res.timings
  out[#out + 1] = ("< connect %.1f ms, first byte %.1f ms"):format((tm.connect or 0) * 1e3, (tm.ttfb or 0) * 1e3)
  io.stderr:write(concat(out, "\n"), "\n")
end

-- Whether a Connection header value (a string, or a list of them) has the
-- "close" option.
local function has_close(v)
  if type(v) == "table" then v = concat(v, ",") end
  for token in tostring(v):gmatch("[^,%s]+") do
    if token:lower() == "close" then return true end
  end
  return false
end

local function timeouts(t)
  if t == nil then return DEFAULT_TIMEOUT, nil, nil end
  if t == false then return nil, nil, nil end
  if type(t) == "number" then
    if t <= 0 then error("timeout must be positive", 4) end
    return t, nil, nil
  end
  if type(t) ~= "table" then error("timeout must be a number or { connect, read, total }", 4) end
  return t.total or DEFAULT_TIMEOUT, t.connect, t.read
end

-- Adds src's headers to headers. The fields lurk manages itself are
-- recognised in any spelling: credentials and cookies go to st (they follow
-- their origin), the content type gets one canonical name.
local function merge_headers(st, headers, src)
  for k, v in pairs(src) do
    local lk = type(k) == "string" and lower(k)
    if lk == "authorization" then
      st.user_auth = v
    elseif lk == "cookie" then
      st.user_cookie = v
    else
      if lk == "content-type" then
        headers["Content-Type"], headers["content-type"] = nil, nil
        k = "Content-Type"
      elseif lk == "accept-encoding" then
        st.has_accept_encoding = true
      elseif lk == "expect" and lower(tostring(v)) == "100-continue" then
        st.expect = true
      elseif lk == "connection" and has_close(v) then
        -- The server will close after its answer: never back to the pool.
        st.close = true
      end
      headers[k] = v
    end
  end
end

local VALID_METHOD = {}             -- method as given -> upper case, once checked

local function check_method(method)
  local m = VALID_METHOD[method]
  if m then return m end
  if type(method) ~= "string" or not method:match("^[!#$%%&'*+%-.^_`|~%w]+$") then
    error("invalid method " .. tostring(method), 4)
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
local function request_body(o, headers)
  local body = o.body
  if o.json ~= nil then
    local err
    body, err = json.encode(o.json)
    if not body then return false, err end
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  elseif o.form then
    body = U.encode_query(o.form)
    headers["Content-Type"] = headers["Content-Type"] or "application/x-www-form-urlencoded"
  end
  if o.files then
    local boundary = "lurk-" .. C._random_hex(16)
    local parts = {}
    local names = {}
    for k in pairs(o.files) do names[#names + 1] = k end
    sort(names)
    for k, v in pairs(o.form or {}) do
      parts[#parts + 1] = ('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'):format(boundary,
        part_name(k), tostring(v))
    end
    for _, name in ipairs(names) do
      local f = o.files[name]
      if type(f) == "string" then f = { path = f } end
      local data = f.content
      if not data then
        local fh, ferr = io.open(f.path, "rb")
        if not fh then error("files." .. name .. ": " .. tostring(ferr), 4) end
        data = fh:read("*a")
        fh:close()
      end
      local filename = f.filename or (f.path and f.path:match("([^/]+)$")) or name
      local ctype = f.content_type or "application/octet-stream"
      if tostring(ctype):find("[\r\n%z]") then error("files." .. name .. ": content_type contains CR, LF or NUL", 4) end
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
      error("body must be a string, a function returning chunks, or a file", 4)
    end
  end
  return body
end

-- Try n (from 0) of one exchange, with the session's cookies, the proxy
-- and the trace; repeated on failures worth repeating (idempotent methods,
-- and only with a body that can be sent again). Further tries, like
-- further hops and second tries, are tail calls: a loop entered on every
-- request would stop LuaJIT compiling the request path.
local function attempt(st, m, url_t, n)
  local headers, jar = st.headers, st.jar
  -- The caller's Cookie header goes to the first origin only; the
  -- session's jar decides per URL.
  local jc = jar and jar:header(url_t)
  local uc = st.user_cookie and origin(url_t) == st.auth_origin and st.user_cookie or nil
  headers.Cookie = (uc and jc) and (uc .. "; " .. jc) or uc or jc
  st.proxy_url = proxy_for(url_t, st.proxy)
  if st.trace then trace_request(m, url_t, headers) end
  local t0 = st.t0 or now()           -- the first try's start is the request's
  st.t0 = false
  local res, err = exchange(st.pool, m, url_t, headers, st.body, st, t0, true)
  if res and st.trace then trace_response(res) end
  if res and jar and rawget(res.headers, "set-cookie") then jar:store(url_t, res.headers:all("set-cookie")) end
  if not (n < st.retries and IDEMPOTENT[m] and st.replayable and
          ((res and RETRY_STATUS[res.status]) or (not res and RETRY_KIND[err.kind]))) then
    return res, err
  end
  if type(st.body) == "table" then st.body.rewind() end
  local delay = backoff(n)
  if res then
    delay = retry_after(rawget(res.headers, "retry-after")) or delay
    res:close()
  end
  local ok, serr = lurk.sleep(delay)
  if not ok then return nil, serr end
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
  st.u = nu
  return hop(st, n + 1)
end

-- Request states are reused (a request allocates none once the program
-- runs): new_state() sets every field, free_state() drops what they held.
local free_states, nfree = {}, 0

local function new_state(session, u, method, o)
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
      read_timeout = false, max_redirects = 0, proxy = false, proxy_url = false, retries = 0,
      trace = false, t0 = false, spare_headers = {} }
  end
  -- The request's header table comes with the state, emptied.
  st.session, st.pool, st.jar, st.u, st.method, st.headers = session, session.pool, session.jar, u, method,
    st.spare_headers
  st.stream, st.max_body, st.decompress, st.tls = o.stream, o.max_body or DEFAULT_MAX_BODY, o.decompress ~= false, o.tls
  st.body, st.replayable, st.user_auth, st.user_cookie, st.auth, st.auth_origin = false, false, false, false, false, false
  st.has_accept_encoding, st.expect, st.close, st.connect_timeout, st.read_timeout = false, false, false, false, false
  st.max_redirects, st.proxy, st.proxy_url, st.retries, st.trace, st.t0 = 0, false, false, 0, false, false
  return st
end

local function free_state(st)
  if nfree >= 64 then return end
  tclear(st.spare_headers)
  st.session, st.pool, st.jar, st.u, st.headers, st.tls, st.body = false, false, false, false, false, false, false
  st.user_auth, st.user_cookie, st.auth, st.proxy, st.proxy_url = false, false, false, false, false
  nfree = nfree + 1
  free_states[nfree] = st
end

-- The options of a call without any. (No metatable: every option looked up
-- in it is a miss, and a miss on a table without one is cheapest. Nothing
-- writes to it: do_request only reads o.)
local EMPTY = {}

-- do_request(session, o [, method, url]): method and url, when given, stand
-- for o.method and o.url (the shortcuts pass them without copying o).
local function do_request(session, o, method, url)
  if type(o) ~= "table" then error("http.request expects a table of options", 3) end
  method = check_method(method or o.method or "GET")
  url = url or o.url
  if session.base_url and type(url) == "string" and not url:match("^%a[%w+.-]*://") then
    url = session.base_url:gsub("/$", "") .. "/" .. url:gsub("^/", "")
  end
  local u, perr = parse_url(url)
  if not u then error(("http.request: bad url %q: %s"):format(tostring(url), perr), 3) end
  if o.query then
    local q = type(o.query) == "table" and U.encode_query(o.query) or tostring(o.query)
    -- A string query goes into the request line: spaces and control
    -- characters (CR, LF) are percent-encoded, never sent raw.
    q = q:gsub("[%s%c]", pct_byte)
    if q ~= "" then
      -- A URL of its own (u may be the parse cache's), without the strings
      -- derived from the old target.
      u = { scheme = u.scheme, host = u.host, port = u.port, userinfo = u.userinfo,
            target = u.target .. (u.target:find("?", 1, true) and "&" or "?") .. q }
    end
  end

  -- Per-request state, read by hop(), attempt() and exchange().
  local st = new_state(session, u, method, o)
  local headers = st.headers
  if session.headers then merge_headers(st, headers, session.headers) end
  if o.headers then merge_headers(st, headers, o.headers) end
  local body, berr = request_body(o, headers)
  if body == false then return nil, berr end
  st.body = body
  st.replayable = type(body) ~= "table" or body.rewind ~= nil
  if body == nil then st.body = nil end

  local auth = st.user_auth and tostring(st.user_auth)
  if o.bearer then
    auth = "Bearer " .. o.bearer
  elseif o.auth then
    auth = "Basic " .. base64(tostring(o.auth[1]) .. ":" .. tostring(o.auth[2] or ""))
  elseif u.userinfo then
    auth = "Basic " .. base64(urldecode(u.userinfo))
  end
  st.auth, st.auth_origin = auth, origin(u)

  local total, connect_t, read_t = timeouts(o.timeout == nil and session.timeout or o.timeout)
  if st.decompress and not st.has_accept_encoding then headers["Accept-Encoding"] = "gzip, deflate" end
  -- Only Accept-Encoding in headers, so far (see plain_head).
  st.plain = st.decompress and not session.headers and not o.headers and body == nil
  st.connect_timeout, st.read_timeout = connect_t or total, read_t or total
  local max_redirects = o.redirects
  if max_redirects == nil then max_redirects = DEFAULT_REDIRECTS end
  st.max_redirects = max_redirects
  local proxy = o.proxy
  if proxy ~= nil then
    local ok, perr2 = pcall(proxy_for, u, proxy)   -- a bad proxy option is the caller's error
    if not ok then error(perr2, 3) end
  else
    proxy = session.proxy
  end
  st.proxy = proxy
  if st.plain then
    -- What could raise inside the request, checked before it starts (the
    -- request's own proxy option was checked just above).
    check_env_proxies()
    if o.proxy == nil then proxy_for(u, proxy) end
  end
  local retries = o.retries
  if retries == nil then retries = session.retries or 0 end
  if type(retries) ~= "number" or retries < 0 then error("retries must be a number >= 0", 3) end
  st.retries = retries
  st.trace = o.trace or trace_http

  if total then
    -- The total deadline over everything hop() waits on (lurk.timeout's
    -- logic, without its per-call closures and tables).
    local t0 = now()
    local mine = t0 + total
    st.t0 = t0
    local prev = set_deadline(mine)
    if prev and prev < mine then set_deadline(prev) end
    local ok, res, err
    if st.plain then
      -- A plain request runs none of the caller's code and nothing that
      -- raises (its proxy was decided above): no pcall, which this LuaJIT
      -- cannot compile a return through. (Only running out of memory
      -- would leave this deadline on the task.)
      ok, res, err = true, hop(st, 0)
    else
      ok, res, err = pcall(hop, st, 0)
    end
    set_deadline(prev or false)
    if not ok then error(res, 0) end
    if not res and err and err.kind == "timeout" then
      err.message = ("HTTP request to %s timed out after %g s"):format(url_string(st.u), total)
      err.url = url_string(st.u)
    end
    free_state(st)
    return res, err
  end
  local res, err = hop(st, 0)
  free_state(st)
  return res, err
end

-- http.download(url, path [, opts]) -> res | nil, err: streams the body to
-- path through the ring; a progress line on stderr when it is a terminal
-- (opts.progress = false to silence, true to force).
function M.download(url, path, opts)
  if type(path) ~= "string" then error("http.download: path must be a string", 2) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url, o.stream = url, true
  o.method = o.method or "GET"
  local show = o.progress
  o.progress = nil
  if show == nil then show = P.isatty(2) end
  local res, err = M.request(o)
  if not res then return nil, err end
  if not res.ok then
    res:close()
    return nil, mkerror { kind = "status", phase = "read", url = res.url, status = res.status,
      message = ("download of %s failed: HTTP %d %s"):format(res.url, res.status, res.reason) }
  end
  local bar = show and progress_bar(io.stderr)
  local n, serr = res:save(path, bar)
  if not n then return nil, serr end
  if bar then bar(n, n, true) end
  res.bytes = n
  return res
end

-- ---- the module and sessions ----

-- http.get(url, opts) and friends; as methods on clients: c:get(url, opts).
local function shortcuts(target, request, as_method)
  for _, m in ipairs { "get", "head", "delete", "options", "post", "put", "patch" } do
    local method = m:upper()
    local function call(self, url, opts)
      return request(self, opts or EMPTY, method, url)
    end
    if as_method then
      target[m] = call
    else
      target[m] = function(url, opts) return call(nil, url, opts) end
    end
  end
end

local default_session = { pool = new_pool(16) }

-- http.request{ method, url, headers, query, body, json, form, auth, bearer,
--   timeout, redirects, max_body, tls } -> res | nil, err
function M.request(o)
  return do_request(default_session, o)
end
shortcuts(M, function(_, o, method, url) return do_request(default_session, o, method, url) end, false)

-- http.client{ base_url, headers, cookies = true | false | path, timeout, retries, max_per_host }
--   -> client | nil, err
-- cookies = path loads that cookies.txt file when it exists (a missing one
-- is an empty jar; one that cannot be read is an error of kind io). The
-- client never writes it by itself: c:save_cookies(path) does, as curl
-- writes its jar only when asked (-c).
local Client = {}
Client.__index = Client

function M.client(opts)
  opts = opts or {}
  local ck = opts.cookies
  if ck ~= nil and type(ck) ~= "boolean" and type(ck) ~= "string" then
    error("http.client: cookies must be a boolean or a cookies.txt path", 2)
  end
  local jar = ck ~= false and new_jar() or nil
  if type(ck) == "string" then
    local ok, err = jar:load(ck)
    if not ok and err.errno ~= 2 then return nil, err end   -- ENOENT: no jar yet
  end
  local c = setmetatable({ base_url = opts.base_url, headers = opts.headers, timeout = opts.timeout,
    retries = opts.retries, proxy = opts.proxy, pool = new_pool(opts.max_per_host), jar = jar }, Client)
  return c
end

function Client:request(o) return do_request(self, o) end

-- c:cookies() -> { { name, value, domain, path, expires, secure, host_only, http_only }, ... }
-- oldest first
function Client:cookies()
  return self.jar and self.jar:cookies() or {}
end

local function client_jar(self, fn, path)
  if getmetatable(self) ~= Client then error("c:" .. fn .. ": call it as a method (c:" .. fn .. "(path))", 3) end
  if type(path) ~= "string" or path == "" then error("c:" .. fn .. ": path must be a non-empty string", 3) end
  if not self.jar then error("c:" .. fn .. ": this client keeps no cookies (cookies = false)", 3) end
  return self.jar
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
function Client:close() self.pool:close() end
shortcuts(Client, function(self, o, method, url) return do_request(self, o, method, url) end, true)

return M
