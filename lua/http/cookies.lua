-- http/cookies.lua - the cookie jar of an http.client (RFC 6265).
local P = ...

local M = {}
local http_date = P.url.http_date
local concat, sort, ipairs = table.concat, table.sort, ipairs


local Jar = {}
Jar.__index = Jar

local function new_jar() return setmetatable({ list = {} }, Jar) end

local function domain_match(host, domain)
  if host == domain then return true end
  return #host > #domain and host:sub(-#domain - 1) == "." .. domain and not host:match("^[%d.]+$")
end

local function path_match(path, cpath)
  if path == cpath then return true end
  if path:sub(1, #cpath) ~= cpath then return false end
  return cpath:sub(-1) == "/" or path:sub(#cpath + 1, #cpath + 1) == "/"
end

-- Stores the cookies of a response to u.
function Jar:store(u, values)
  local reqpath = u.target:match("^[^?]*")
  local default_path = reqpath:match("^(.*)/[^/]*$")
  if not default_path or default_path == "" then default_path = "/" end
  for _, line in ipairs(values) do
    local name, value, attrs = line:match("^%s*([^=;]-)%s*=%s*([^;]*)(.*)$")
    if name and name ~= "" then
      local c = { name = name, value = value:match("^%s*(.-)%s*$"), path = default_path,
                  domain = u.host, host_only = true }
      local ok = true
      for attr in attrs:gmatch(";%s*([^;]+)") do
        local k, v = attr:match("^([^=]-)%s*=%s*(.-)%s*$")
        k = (k or attr):lower():match("^%s*(.-)%s*$")
        if k == "domain" and v and v ~= "" then
          local d = v:lower():gsub("^%.", "")
          if domain_match(u.host, d) then c.domain, c.host_only = d, false else ok = false end
        elseif k == "path" and v and v:sub(1, 1) == "/" then
          c.path = v
        elseif k == "max-age" and v and v:match("^-?%d+$") then
          c.expires = os.time() + tonumber(v)
          c.max_age = true
        elseif k == "expires" and v and not c.max_age then
          c.expires = http_date(v)
        elseif k == "secure" then
          c.secure = true
        end
      end
      if ok then
        for i = #self.list, 1, -1 do
          local o = self.list[i]
          if o.name == c.name and o.domain == c.domain and o.path == c.path then table.remove(self.list, i) end
        end
        if not c.expires or c.expires > os.time() then self.list[#self.list + 1] = c end
      end
    end
  end
end

local function longer_path_first(a, b) return #a.path > #b.path end

-- The Cookie header for a request to u, or nil.
function Jar:header(u)
  if #self.list == 0 then return nil end
  local path, out, t = u.target:match("^[^?]*"), {}, os.time()
  local keep = {}
  for _, c in ipairs(self.list) do
    if not c.expires or c.expires > t then
      keep[#keep + 1] = c
      local host_ok = c.host_only and u.host == c.domain or (not c.host_only and domain_match(u.host, c.domain))
      if host_ok and path_match(path, c.path) and (not c.secure or u.scheme == "https") then
        out[#out + 1] = c
      end
    end
  end
  self.list = keep
  if #out == 0 then return nil end
  sort(out, longer_path_first)
  for i, c in ipairs(out) do out[i] = c.name .. "=" .. c.value end
  return concat(out, "; ")
end

M.new_jar = new_jar

return M
