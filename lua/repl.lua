-- repl.lua - the Lua half of lurk's REPL (src/cli/repl.c is the C half).
--
-- C hands each line to feed(); a complete chunk runs as a task, so it may
-- wait on the network while other tasks go on, and C keeps the loop turning
-- and asks busy() until it has finished. Values are shown by pretty().
local C = ...                   -- { write = fn(s), chunk = fn(co), tty = bool, color = bool }
local lurk = require "lurk"

local concat, format, rep = table.concat, string.format, string.rep
local R = { errors = 0 }

-- ---- showing values ----

local colors = C.color and {
  string = "\27[32m", number = "\27[36m", boolean = "\27[35m", ["nil"] = "\27[35m",
  ["function"] = "\27[34m", dim = "\27[2m", bold = "\27[1m", err = "\27[31m", reset = "\27[0m",
} or setmetatable({}, { __index = function() return "" end })

local function paint(kind, s) return colors[kind] .. s .. colors.reset end

local LONG = 200                -- strings longer than this are elided
local MAX_ITEMS = 40            -- table entries shown at each level
local MAX_DEPTH = 4

local function show_string(s)
  if #s > LONG then
    return paint("string", format("%q", s:sub(1, LONG - 40)):sub(1, -2) .. '..."')
      .. paint("dim", format(" (%d bytes)", #s))
  end
  return paint("string", format("%q", s):gsub("\\\n", "\\n"))
end

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function is_response(v)
  return type(v.status) == "number" and type(v.headers) == "table" and type(v.reason) == "string"
end

local show

local function show_response(v)
  local tls = v.tls and format(", %s%s", v.tls.version or "TLS", v.tls.ktls and " kTLS" or "") or ""
  local time = v.timings and v.timings.total and format(", %.1f ms", v.timings.total * 1000) or ""
  local out = { paint("bold", format("HTTP %d %s", v.status, v.reason))
    .. paint("dim", format("  %s%s%s", v.url or "", tls, time)) }
  local names = {}
  for k in pairs(v.headers) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do out[#out + 1] = paint("dim", k .. ": ") .. tostring(v.headers[k]) end
  local body = v.body
  if type(body) == "string" and #body > 0 then
    local preview = body:sub(1, 512)
    local lines = {}
    for line in (preview .. "\n"):gmatch("(.-)\n") do
      if #lines == 12 then break end
      lines[#lines + 1] = line
    end
    out[#out + 1] = ""
    out[#out + 1] = concat(lines, "\n")
    if #body > #preview or #lines == 12 then
      out[#out + 1] = paint("dim", format("... (%d bytes in all; res.body has them)", #body))
    end
  elseif v.body == nil and v.read then
    out[#out + 1] = paint("dim", "(streamed body: res:read(), res:lines(), res:chunks())")
  end
  return concat(out, "\n")
end

local function show_table(t, depth, seen, indent)
  if seen[t] then return paint("dim", "<cycle: " .. tostring(t) .. ">") end
  local mt = getmetatable(t)
  if mt and rawget(mt, "__tostring") and depth > 0 then return paint("dim", tostring(t)) end
  if depth >= MAX_DEPTH then return paint("dim", "{...}") end
  seen[t] = true
  local keys, n = {}, #t
  for k in pairs(t) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_order)
  local items, shown = {}, 0
  for i = 1, n do
    if shown == MAX_ITEMS then break end
    items[#items + 1] = show(t[i], depth + 1, seen, indent .. "  ")
    shown = shown + 1
  end
  for _, k in ipairs(keys) do
    if shown == MAX_ITEMS then break end
    local name = is_ident(k) and k or ("[" .. show(k, depth + 1, seen, indent) .. "]")
    items[#items + 1] = name .. " = " .. show(t[k], depth + 1, seen, indent .. "  ")
    shown = shown + 1
  end
  seen[t] = nil
  local more = n + #keys - shown
  if more > 0 then items[#items + 1] = paint("dim", format("... (%d more)", more)) end
  if #items == 0 then return "{}" end
  local flat = "{ " .. concat(items, ", ") .. " }"
  if #flat <= 72 and not flat:find("\n", 1, true) then return flat end
  return "{\n" .. indent .. "  " .. concat(items, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
end

function show(v, depth, seen, indent)
  local ty = type(v)
  if ty == "string" then return show_string(v) end
  if ty == "table" then
    if depth == 0 and is_response(v) then return show_response(v) end
    return show_table(v, depth, seen, indent)
  end
  if ty == "number" or ty == "boolean" or ty == "nil" then return paint(ty, tostring(v)) end
  if ty == "function" then return paint("function", tostring(v)) end
  return tostring(v)
end

-- pretty(v) -> a readable rendering of any value
function R.pretty(v) return show(v, 0, {}, "") end

-- ---- output ----

-- print() goes through C, which keeps an open prompt intact around it.
local function out(s) C.write(s) end

function print(...)             -- luacheck: ignore (the REPL's own print)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  out(concat(parts, "\t") .. "\n")
end

local function show_error(e)
  if C.tty then
    out(paint("err", tostring(e)) .. "\n")
  else
    io.stdout:flush()
    io.stderr:write(tostring(e), "\n")
  end
end

-- ---- running chunks ----

local function traceback(e)
  if type(e) == "table" and e.kind == "cancelled" then return e end
  local keep = {}
  for line in (debug.traceback(tostring(e), 2) .. "\n"):gmatch("(.-)\n") do
    -- Frames from xpcall down are the REPL's own: not worth showing.
    if line:find("in function 'xpcall'", 1, true) then break end
    if not line:find("[builtin#", 1, true) then keep[#keep + 1] = line end
  end
  if #keep == 2 then keep[2] = nil end   -- "stack traceback:" and nothing under it
  return concat(keep, "\n")
end

local cancelled = false         -- Ctrl-C cancelled the running chunk

local function report(ok, ...)
  if cancelled then               -- whatever it returned, the user stopped it
    out(paint("dim", "(cancelled)") .. "\n")
    return
  end
  if not ok then
    local e = ...
    if type(e) == "table" and e.kind == "cancelled" then
      out(paint("dim", "(cancelled)") .. "\n")
    else
      R.errors = R.errors + 1
      show_error(e)
    end
    return
  end
  local n = select("#", ...)
  if n == 0 then return end
  local parts = {}
  for i = 1, n do parts[i] = R.pretty((select(i, ...))) end
  out(concat(parts, "\t") .. "\n")
end

local running = false            -- a chunk's task has not finished

local function run(fn)
  cancelled = false
  C.chunk(coroutine.running())    -- where a Ctrl-C may stop code busy in Lua
  local function finish(...)
    C.chunk(nil)
    report(...)
  end
  finish(xpcall(fn, traceback))
  running = false
  R.task = nil
end

local pending                   -- the lines of an incomplete chunk

local function incomplete(err)
  return err:find("'<eof>'$") ~= nil or err:find("<eof>' expected") ~= nil
end

-- An expression is evaluated as an argument (of an identity function), not
-- returned as a tail call, so an error it raises keeps its position.
local function identity(...) return ... end

local function compile(src)
  local fn = loadstring("local _id = ... return _id(" .. src .. "\n)", "=stdin")
  if fn then return function() return fn(identity) end end
  local err
  fn, err = loadstring(src, "=stdin")
  return fn, err
end

-- feed(line) -> "run" | "more" | "empty" | "error"
function R.feed(line)
  local src = pending and (pending .. "\n" .. line) or line:gsub("^%s*=", "return ", 1)
  if not pending and src:match("^%s*$") then return "empty" end
  local fn, err = compile(src)
  if not fn then
    if incomplete(err) then
      pending = src
      return "more"
    end
    pending = nil
    R.errors = R.errors + 1
    show_error(err)
    return "error"
  end
  pending = nil
  running = true
  local t = lurk.spawn(run, fn)     -- runs until it first waits: may be done
  if running then R.task = t end
  return "run"
end

-- finish() -> true when an incomplete chunk was dropped (input ended in it)
function R.finish()
  if not pending then return false end
  local _, err = loadstring(pending, "=stdin")
  pending = nil
  R.errors = R.errors + 1
  show_error(err)
  return true
end

function R.busy() return running end

-- interrupt() -> true if a running chunk was cancelled; an unfinished chunk
-- being typed is dropped either way.
function R.interrupt()
  pending = nil
  if R.task then
    cancelled = true
    R.task:cancel()
    return true
  end
  return false
end

-- ---- completion ----

local keywords = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }

-- Every key reachable from v, through __index tables too.
local function fields(v, into, depth)
  if depth > 4 then return end
  if type(v) == "table" then
    for k in pairs(v) do if type(k) == "string" then into[k] = into[k] or v[k] end end
  end
  local ok, mt = pcall(getmetatable, v)
  if ok and type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
    fields(rawget(mt, "__index"), into, depth + 1)
  elseif type(v) == "string" then
    fields(string, into, depth + 1)
  end
end

-- complete(word) -> sorted candidates for a word like "https.g" or "res:j"
function R.complete(word)
  local path, sep, part = word:match("^(.-)([.:])([%w_]*)$")
  local base, out = _G, {}
  if path then
    if not path:match("^[%a_][%w_]*$") and not path:match("^[%a_][%w_.]*[%w_]$") then return out end
    for name in path:gmatch("[^.]+") do
      local ok, v = pcall(function() return base[name] end)
      if not ok or v == nil then return out end
      base = v
    end
  else
    part, sep, path = word, "", ""
    for _, k in ipairs(keywords) do
      if k:sub(1, #part) == part then out[#out + 1] = k end
    end
  end
  local found = {}
  fields(base, found, 0)
  for k, v in pairs(found) do
    if k:sub(1, #part) == part and is_ident(k) and (sep ~= ":" or type(v) == "function") then
      out[#out + 1] = path .. sep .. k
    end
  end
  table.sort(out)
  return out
end

return R
