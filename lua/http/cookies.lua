-- http/cookies.lua - the cookie jar of an http.client (RFC 6265 section 5,
-- with RFC 6265bis's rules for Secure), and its cookies.txt files.
--
-- jar.list holds the cookies in creation order, oldest first: a cookie that
-- replaces another takes the old one's place and creation number (seq), so
-- eviction takes from the front and equal-length paths are sent oldest first
-- (section 5.4 step 2). What a server can make the jar hold is bounded like a
-- browser's: MAX_PER_DOMAIN cookies per Domain value, MAX_COOKIES in all, none
-- longer than MAX_LINE bytes, none living past MAX_AGE; past a count limit
-- the oldest go first.
--
-- Deliberately not done: SameSite and __Host-/__Secure- prefixes (there is no
-- browsing context to apply them to); HttpOnly is kept only so that saving
-- writes it back. Loopback is not a secure origin here (browsers treat it as
-- one): Secure cookies are set and sent over https only.
local P, lurk = ...

local M = {}
local http_date = P.url.http_date
local public_suffix = P.public_suffix        -- src/lua/psl.c
local mkerror = lurk.error
local concat, sort, remove, ipairs, tonumber = table.concat, table.sort, table.remove, ipairs, tonumber

local MAX_PER_DOMAIN = 50
local MAX_COOKIES = 3000
local MAX_LINE = 4096
local MAX_AGE = 400 * 86400            -- RFC 6265bis section 5.5: at most 400 days

local Jar = {}
Jar.__index = Jar

local function new_jar() return setmetatable({ list = {}, seq = 0 }, Jar) end

local function is_ip(host) return host:match("^[%d.]+$") or host:find(":", 1, true) end

local function domain_match(host, domain)
  if host == domain then return true end
  return #host > #domain and host:sub(-#domain - 1) == "." .. domain and not is_ip(host)
end

local function path_match(path, cpath)
  if path == cpath then return true end
  if path:sub(1, #cpath) ~= cpath then return false end
  return cpath:sub(-1) == "/" or path:sub(#cpath + 1, #cpath + 1) == "/"
end

local function default_path(u)
  local dir = u.target:match("^[^?]*"):match("^(.*)/[^/]*$")
  return (dir and dir ~= "") and dir or "/"
end

local function live(c, t) return not c.expires or c.expires > t end

-- Drops the cookies that have expired.
function Jar:purge()
  local list, t, keep = self.list, os.time(), {}
  for _, c in ipairs(list) do
    if live(c, t) then keep[#keep + 1] = c end
  end
  if #keep < #list then self.list = keep end
end

-- Puts c in the jar: in the place (and with the creation number) of the
-- cookie with its name, domain and path if there is one, else last. An
-- expired c only deletes. Then the oldest go until the limits hold.
function Jar:put(c)
  local list = self.list
  for i, o in ipairs(list) do
    if o.name == c.name and o.domain == c.domain and o.path == c.path then
      if not live(c, os.time()) then remove(list, i); return end
      c.seq, list[i] = o.seq, c
      return
    end
  end
  if not live(c, os.time()) then return end
  self.seq = self.seq + 1
  c.seq = self.seq
  list[#list + 1] = c
  local n = 0
  for _, o in ipairs(list) do
    if o.domain == c.domain then n = n + 1 end
  end
  if n > MAX_PER_DOMAIN then
    for i, o in ipairs(list) do
      if o.domain == c.domain then remove(list, i); break end
    end
  end
  if #list > MAX_COOKIES then
    self:purge()
    list = self.list
    while #list > MAX_COOKIES do remove(list, 1) end
  end
end

-- RFC 6265bis section 5.7 step 16: a plain-http response cannot set a cookie
-- that would shadow a Secure one of the same name on an overlapping domain
-- whose path covers the new one's.
function Jar:shadows_secure(c)
  for _, o in ipairs(self.list) do
    if o.secure and o.name == c.name and (domain_match(o.domain, c.domain) or domain_match(c.domain, o.domain))
       and path_match(c.path, o.path) then
      return true
    end
  end
  return false
end

-- The cookie a Set-Cookie value makes for a response to u, or nil when it
-- is to be ignored.
local function parse(u, line, secure_origin)
  if #line > MAX_LINE then return nil end
  local name, value, attrs = line:match("^%s*([^=;]-)%s*=%s*([^;]*)(.*)$")
  if not name or name == "" then return nil end
  value = value:match("^%s*(.-)%s*$")
  -- Control characters, TAB included, would corrupt a cookies.txt line and
  -- the Cookie header alike (curl refuses them too).
  if (name .. value):find("[%z\1-\31\127]") then return nil end
  local c = { name = name, value = value, path = default_path(u), domain = u.host, host_only = true }
  local domain
  -- Every attribute is read; a repeated one counts as its last occurrence
  -- (section 5.3 steps 4 and 7), so an earlier Domain that does not match
  -- cannot drop a cookie the last one allows.
  for attr in attrs:gmatch(";%s*([^;]*)") do
    local k, v = attr:match("^([^=]-)%s*=%s*(.-)%s*$")
    k = (k or attr):lower():match("^%s*(.-)%s*$")
    if k == "domain" and v and v ~= "" then
      domain = v:lower():gsub("^%.", "")
    elseif k == "path" then
      -- An empty or relative Path means the default path (section 5.2.4).
      c.path = (v and v:sub(1, 1) == "/") and v or default_path(u)
    elseif k == "max-age" and v and v:match("^-?%d+$") then
      c.expires = os.time() + tonumber(v)
      c.max_age = true
    elseif k == "expires" and v and not c.max_age then
      c.expires = http_date(v)
    elseif k == "secure" then
      c.secure = true
    elseif k == "httponly" then
      c.http_only = true
    end
  end
  c.max_age = nil
  if c.expires and c.expires > os.time() + MAX_AGE then c.expires = os.time() + MAX_AGE end
  if domain then
    -- Section 5.3 step 5: a public suffix only as the host's own name, and
    -- then host-only.
    if not is_ip(domain) and public_suffix(domain) then
      if domain ~= u.host then return nil end
    elseif domain_match(u.host, domain) then
      c.domain, c.host_only = domain, false
    else
      return nil
    end
  end
  -- RFC 6265bis section 5.7 step 15: Secure only from a secure origin.
  if c.secure and not secure_origin then return nil end
  return c
end

-- jar:store(u, values): stores the cookies of a response to u, values being
-- its Set-Cookie field values.
function Jar:store(u, values)
  local secure_origin = u.scheme == "https"
  for _, line in ipairs(values) do
    local c = parse(u, line, secure_origin)
    if c and (secure_origin or not self:shadows_secure(c)) then self:put(c) end
  end
end

-- Longer paths first, then oldest first: seq is unique, so the order is total
-- and the same whatever table.sort does with equal keys.
local function send_order(a, b)
  if #a.path ~= #b.path then return #a.path > #b.path end
  return a.seq < b.seq
end

-- jar:header(u) -> the Cookie header for a request to u, or nil.
function Jar:header(u)
  if #self.list == 0 then return nil end
  local path, out, t = u.target:match("^[^?]*"), {}, os.time()
  local expired = false
  for _, c in ipairs(self.list) do
    if not live(c, t) then
      expired = true
    elseif (c.host_only and u.host == c.domain or (not c.host_only and domain_match(u.host, c.domain)))
       and path_match(path, c.path) and (not c.secure or u.scheme == "https") then
      out[#out + 1] = c
    end
  end
  if expired then self:purge() end
  if #out == 0 then return nil end
  sort(out, send_order)
  for i, c in ipairs(out) do out[i] = c.name .. "=" .. c.value end
  return concat(out, "; ")
end

-- ---- cookies.txt (the Netscape format curl's -b/-c and wget read and write) ----
--
-- One cookie a line, seven TAB-separated fields: domain, TRUE if subdomains
-- match too, path, TRUE if Secure, expiry in seconds since the epoch (0 for a
-- session cookie), name, value. "#HttpOnly_" before the domain marks an
-- HttpOnly cookie; other lines starting with '#' are comments.

-- io.open and friends give "path: reason" and the errno.
local function io_error(what, path, msg, errno)
  msg = msg and msg:gsub("^.*: ", "") or "failed"
  return mkerror { kind = "io", phase = "io", errno = errno, message = ("%s %s: %s"):format(what, path, msg) }
end

-- The cookie a cookies.txt line describes, or nil for a comment or a line
-- that is malformed (skipped, as curl does).
local function parse_line(line)
  line = line:gsub("\r$", "")
  local http_only = false
  if line:sub(1, 10) == "#HttpOnly_" then
    http_only, line = true, line:sub(11)
  elseif line:sub(1, 1) == "#" or not line:find("%S") then
    return nil
  end
  local f = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = field end
  if #f == 6 then f[7] = "" end      -- an empty value, as curl writes none
  if #f ~= 7 then return nil end
  local domain, sub, path, secure, expiry, name, value = f[1], f[2], f[3], f[4], f[5], f[6], f[7]
  domain = domain:lower():gsub("^%.", "")
  if domain == "" or (sub ~= "TRUE" and sub ~= "FALSE") or (secure ~= "TRUE" and secure ~= "FALSE")
     or path:sub(1, 1) ~= "/" or not expiry:match("^%d+$") or name == ""
     or (name .. value):find("[%z\1-\31\127]") or #line > MAX_LINE then
    return nil
  end
  expiry = tonumber(expiry)
  return { name = name, value = value, domain = domain, path = path, host_only = sub == "FALSE",
           secure = secure == "TRUE" or nil, http_only = http_only or nil,
           expires = expiry > 0 and expiry or nil }
end

-- jar:load(path) -> true | nil, err: adds the cookies of a cookies.txt file,
-- in its order, as if set one after another.
function Jar:load(path)
  local f, msg, errno = io.open(path, "rb")
  if not f then return nil, io_error("reading", path, msg, errno) end
  local data, rmsg, rerrno = f:read("*a")
  f:close()
  if not data then return nil, io_error("reading", path, rmsg, rerrno) end
  for line in data:gmatch("[^\n]+") do
    local c = parse_line(line)
    if c then self:put(c) end
  end
  return true
end

-- jar:save(path) -> true | nil, err: writes every unexpired cookie, session
-- cookies included (expiry 0, as curl writes them). The file is written
-- under a temporary name in the same directory, then renamed over path, so
-- a reader never sees half a file and a failed save leaves the old one.
function Jar:save(path)
  self:purge()
  local out = { "# Netscape HTTP Cookie File\n", "# https://curl.se/docs/http-cookies.html\n",
                "# Written by lurk ", lurk.version, ".\n\n" }
  for _, c in ipairs(self.list) do
    out[#out + 1] = concat({ (c.http_only and "#HttpOnly_" or "") .. (c.host_only and "" or ".") .. c.domain,
      c.host_only and "FALSE" or "TRUE", c.path, c.secure and "TRUE" or "FALSE",
      ("%d"):format(c.expires or 0), c.name, c.value }, "\t") .. "\n"
  end
  -- A random name: two processes saving the same jar file must not write
  -- into one temporary file (P.random_hex is http.lua's, set by the time
  -- any client exists).
  local tmp = ("%s.%s.tmp"):format(path, P.random_hex(8))
  local f, msg, errno = io.open(tmp, "wb")
  if not f then return nil, io_error("writing", path, msg, errno) end
  local ok, wmsg, werrno = f:write(concat(out))
  local cok, cmsg, cerrno = f:close()
  if not ok or not cok then
    os.remove(tmp)
    return nil, io_error("writing", path, wmsg or cmsg, werrno or cerrno)
  end
  local rok, rmsg, rerrno = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, io_error("writing", path, rmsg, rerrno)
  end
  return true
end

-- jar:cookies() -> a copy of every unexpired cookie, oldest first.
function Jar:cookies()
  self:purge()
  local out = {}
  for i, c in ipairs(self.list) do
    out[i] = { name = c.name, value = c.value, domain = c.domain, path = c.path, expires = c.expires,
               secure = c.secure or false, host_only = c.host_only, http_only = c.http_only or false }
  end
  return out
end

M.new_jar = new_jar
M.limits = { per_domain = MAX_PER_DOMAIN, total = MAX_COOKIES, line = MAX_LINE }

return M
