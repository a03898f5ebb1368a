-- http/url.lua - URLs and the wire formats around them, for the http
-- module and its parts: parsing (with a small cache), percent-encoding,
-- query strings, base64, origins, redirect targets, HTTP dates.
local P = ...

local M = {}
local concat, sort = table.concat, table.sort
local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber

-- ---- encoding helpers ----

-- A byte as %XX. (Named, not a closure per call: a function that makes
-- closures cannot be compiled by this LuaJIT, so hot paths make none.)
local function pct_byte(c) return ("%%%02X"):format(c:byte()) end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", pct_byte))
end
M.urlencode = urlencode
M.pct_byte = pct_byte

function M.urldecode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A query or form value: a string, a number, or a boolean ("true", "false").
-- Anything else (a function, userdata such as json.null, a table where a
-- scalar belongs) has no encoding a server would read back: nil, and why.
local function scalar(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" or tv == "boolean" then return tostring(v) end
  return nil, v == nil and "nil" or (tv == "userdata" and "userdata (json.null?)" or ("a " .. tv))
end

-- query_string{ b = 2, a = { 1, 3 } } -> "a=1&a=3&b=2" (keys sorted): a list
-- repeats its key, booleans are written "true"/"false". A nested hash table,
-- a list with holes or of non-scalars, a function or userdata is nil, msg.
function M.query_string(t)
  local keys, out = {}, {}
  for k in pairs(t) do
    local tk = type(k)
    if tk ~= "string" and tk ~= "number" then return nil, ("a key of type %s"):format(tk) end
    keys[#keys + 1] = tostring(k)
  end
  sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if v == nil then v = t[tonumber(k)] end
    if type(v) == "table" then
      local n = #v
      for kk in pairs(v) do
        if type(kk) ~= "number" or kk < 1 or kk > n or kk % 1 ~= 0 then
          return nil, ("%s: a nested table (only a list of values repeats the key)"):format(k)
        end
      end
      for i = 1, n do
        local s, why = scalar(v[i])
        if not s then return nil, ("%s[%d]: cannot encode %s"):format(k, i, why) end
        out[#out + 1] = urlencode(k) .. "=" .. urlencode(s)
      end
    else
      local s, why = scalar(v)
      if not s then return nil, ("%s: cannot encode %s"):format(k, why) end
      out[#out + 1] = urlencode(k) .. "=" .. urlencode(s)
    end
  end
  return concat(out, "&")
end

-- http.encode_query(t) -> string: query_string, raising (at the caller) on
-- what it cannot encode.
function M.encode_query(t)
  if type(t) ~= "table" then error("http.encode_query: expected a table, got " .. type(t), 2) end
  local s, err = M.query_string(t)
  if not s then error("http.encode_query: " .. err, 2) end
  return s
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for k = 3, 0, -1 do
      local idx = math.floor(n / 64 ^ k) % 64 + 1
      q[#q + 1] = b64chars:sub(idx, idx)
    end
    if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
    out[#out + 1] = concat(q)
  end
  return concat(out)
end
M.base64 = base64

-- ---- URLs ----

-- parse_url(s) -> { scheme, host, port, target, userinfo } | nil, err
local parse_url_uncached
local url_cache, url_cache_n = {}, 0
-- Scripts hit the same URLs again and again: recent parses are kept, and
-- shared. Inside this module a parsed URL is never changed (a request with
-- a query makes its own); only derived strings (origin, url) are cached on it.
local function parse_url(s)
  local c = url_cache[s]
  if not c then
    local err
    c, err = parse_url_uncached(s)
    if not c then return nil, err end
    if url_cache_n >= 256 then url_cache, url_cache_n = {}, 0 end
    url_cache[s], url_cache_n = c, url_cache_n + 1
  end
  return c
end

function parse_url_uncached(s)
  if type(s) ~= "string" then return nil, "URL must be a string" end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not an absolute http(s) URL" end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return nil, "unsupported scheme " .. scheme end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" or target:sub(1, 1) == "?" then target = "/" .. target end
  if target:find("[%s%c]") then return nil, "URL contains spaces or control characters" end
  local userinfo, hostport = authority:match("^(.*)@(.*)$")
  hostport = hostport or authority
  local host, port
  if hostport:sub(1, 1) == "[" then
    host, port = hostport:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = hostport:match("^([^:]*):?(%d*)$")
  end
  if not host or host == "" then return nil, "URL has no host" end
  -- The host goes into the Host header and to the resolver as it is.
  if host:find("[%s%c]") then return nil, "URL contains spaces or control characters" end
  port = port ~= "" and tonumber(port) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then return nil, "port out of range" end
  return { scheme = scheme, host = host:lower(), port = port, target = target, userinfo = userinfo }
end
-- The public parser hands out a copy the caller may change.
function M.parse_url(s)
  local c, err = parse_url(s)
  if not c then return nil, err end
  if not c.origin then c.origin = c.scheme .. "://" .. c.host .. ":" .. c.port end
  return { scheme = c.scheme, host = c.host, port = c.port, target = c.target, userinfo = c.userinfo,
           origin = c.origin }
end

local function origin(u)
  local o = u.origin
  if not o then
    o = u.scheme .. "://" .. u.host .. ":" .. u.port
    u.origin = o
  end
  return o
end

local function url_string(u)
  local s = u.url
  if s then return s end
  local host = u.host:find(":", 1, true) and ("[" .. u.host .. "]") or u.host
  local default = (u.scheme == "https" and u.port == 443) or (u.scheme == "http" and u.port == 80)
  s = u.scheme .. "://" .. host .. (default and "" or (":" .. u.port)) .. u.target
  u.url = s
  return s
end

-- RFC 3986 5.2.4: a path without its "." and ".." segments (a ".." above
-- the root stays at the root). path starts with "/".
local function remove_dots(path)
  if not path:find("/%.") then return path end
  local out, n, dir = {}, 0, false
  for seg in path:gmatch("/([^/]*)") do
    if seg == "." then
      dir = true
    elseif seg == ".." then
      if n > 0 then out[n], n = nil, n - 1 end
      dir = true
    else
      n = n + 1
      out[n], dir = seg, false
    end
  end
  return "/" .. concat(out, "/") .. ((dir and n > 0) and "/" or "")
end

-- A Location as curl sends it on (lib/urlapi.c, urlencode_str): a space
-- becomes %20 before the query and + in it, a byte above 0x7F %xx; control
-- characters are left for parse_url to refuse.
local function lower_pct(c) return ("%%%02x"):format(c:byte()) end
local function curl_encode(s)
  if not s:find("[ \128-\255]") then return s end
  local path, query = s:match("^([^?]*)(.*)$")
  return (path:gsub(" ", "%%20"):gsub("[\128-\255]", lower_pct)
          .. query:gsub(" ", "+"):gsub("[\128-\255]", lower_pct))
end

-- Splits a target into its path with the dot segments removed and its query.
local function normal_target(target)
  local path, query = target:match("^([^?]*)(.*)$")
  if path == "" then path = "/" end
  return remove_dots(path) .. query
end

-- The target of a redirect, relative to the URL that answered (RFC 3986
-- 5.2, the reference resolved against base, a parsed URL): a parsed URL, or
-- nil if it is unusable. The fragment stays with the client.
local function resolve(location, base)
  location = curl_encode((location:gsub("#.*$", "")))
  local prefix, rest = location:match("^(%a[%w+.-]*://[^/?]*)(.*)$")
  if not prefix and location:sub(1, 2) == "//" then
    prefix, rest = location:match("^(//[^/?]*)(.*)$")
    prefix = base.scheme .. ":" .. prefix
  end
  if prefix then return parse_url(prefix .. normal_target(rest)) end
  if location:match("^%a[%w+.-]*:") then return nil end   -- another scheme (mailto:, ...)
  local target
  if location == "" then
    target = base.target
  elseif location:sub(1, 1) == "/" then
    target = normal_target(location)
  elseif location:sub(1, 1) == "?" then
    target = base.target:match("^[^?]*") .. location
  else
    target = normal_target((base.target:match("^([^?]*/)") or "/") .. location)
  end
  if target:find("[%s%c]") then return nil end
  return { scheme = base.scheme, host = base.host, port = base.port, target = target }
end

-- An HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT", also with dashes as
-- cookies write it) as seconds since the epoch, or nil.
local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }
local function http_date(v)
  local d, mon, y, h, mi, sec = v:match("(%d%d?)[ -](%a%a%a)[ -](%d+) (%d+):(%d+):(%d+)")
  mon = mon and MONTHS[mon:lower()]
  if not mon then return nil end
  y = tonumber(y)
  if y < 100 then y = y + (y < 70 and 2000 or 1900) end
  -- os.time reads local time; correct by the offset of the epoch.
  local t = os.time { year = y, month = mon, day = tonumber(d), hour = tonumber(h), min = tonumber(mi),
                      sec = tonumber(sec), isdst = false }
  return t and (t + (os.time() - os.time(os.date("!*t"))))
end


M.http_date = http_date
M.parse = parse_url
M.origin = origin
M.string = url_string
M.resolve = resolve

return M
