-- repl.lua - the Lua half of lurk's REPL (src/cli/repl.c is the C half).
--
-- C hands each line to feed(); a complete chunk runs as a task, so it may
-- wait on the network while other tasks go on, and C keeps the loop turning
-- and asks busy() until it has finished. Values are shown by pretty().
--
-- Top-level `local`s persist from chunk to chunk (as in Node's REPL): each
-- chunk runs in an environment over _G that also holds the names earlier
-- chunks declared, and its top-level `local` statements are rewritten into
-- assignments that declare names there (rewrite_locals). Chunks run with the
-- JIT off, so the count hook that Ctrl-C sets reaches a chunk's loops.
--
-- Whatever a server sent (reason phrase, header values, a body) is shown
-- with control characters escaped: an ESC from the network never reaches
-- the terminal, and binary bodies show as a size and a hex preview.
local C = ...                   -- { write = fn(s), chunk = fn(co), tty = bool, color = bool }
local lurk = require "lurk"
local json = require "lurk.json"
local http = require "lurk.http"

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

-- %q escapes C0 controls and DEL; C1 controls (U+0080-U+009F, which some
-- terminals obey as CSI, OSC, ...) are escaped byte by byte as well.
local function quote(s)
  return (format("%q", s):gsub("\\\n", "\\n"):gsub("\194[\128-\159]", function(c)
    return "\\194\\" .. c:byte(2)
  end))
end

-- Text shown unquoted (a body preview, a header value, a message): control
-- characters other than tab and newline become Lua escapes.
local function esc(s)
  return (tostring(s):gsub("[%z\1-\8\11-\31\127]", function(c)
    return c == "\r" and "\\r" or "\\" .. c:byte()
  end):gsub("\194[\128-\159]", function(c) return "\\194\\" .. c:byte(2) end))
end
R.esc = esc

local function show_string(s)
  if #s > LONG then
    return paint("string", quote(s:sub(1, LONG - 40)):sub(1, -2) .. '..."')
      .. paint("dim", format(" (%d bytes)", #s))
  end
  return paint("string", quote(s))
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

-- Content types that are text whatever their bytes look like.
local function text_type(ct)
  return ct:find("^text/") or ct:find("json") or ct:find("xml") or ct:find("javascript")
    or ct:find("^application/x%-www%-form%-urlencoded") or ct:find("^application/x%-ndjson")
end

-- Whether body is to be shown as bytes: a type that is not text, or
-- content that is not UTF-8 text (a NUL, or bytes UTF-8 does not allow).
local function is_binary(body, ct)
  ct = type(ct) == "string" and ct:lower():match("^%s*([^;%s]+)") or nil
  if ct and text_type(ct) then return false, ct end
  if ct and ct ~= "application/octet-stream" then return true, ct end
  local head = body:sub(1, 1024)
  if head:find("%z") then return true, ct end
  -- Lead bytes must be followed by the right number of continuation bytes
  -- (a sequence cut at the end of the sample is allowed).
  local i, n = 1, #head
  while i <= n do
    local b = head:byte(i)
    local len = b < 0x80 and 1 or b >= 0xC2 and b <= 0xDF and 2 or b >= 0xE0 and b <= 0xEF and 3
      or b >= 0xF0 and b <= 0xF4 and 4 or nil
    if not len then return true, ct end
    for j = i + 1, math.min(i + len - 1, n) do
      local c = head:byte(j)
      if c < 0x80 or c > 0xBF then return true, ct end
    end
    i = i + len
  end
  return false, ct
end

local function hex_preview(s, n)
  local out = {}
  for i = 1, math.min(#s, n) do out[i] = format("%02x", s:byte(i)) end
  return concat(out, " ") .. (#s > n and " ..." or "")
end

local function show_response(v)
  local tls = v.tls and format(", %s%s", v.tls.version or "TLS", v.tls.ktls and " kTLS" or "") or ""
  local time = v.timings and v.timings.total and format(", %.1f ms", v.timings.total * 1000) or ""
  local out = { paint("bold", format("HTTP %d %s", v.status, esc(v.reason)))
    .. paint("dim", format("  %s%s%s", esc(v.url or ""), tls, time)) }
  local names = {}
  for k in pairs(v.headers) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    local hv = v.headers[k]
    if type(hv) == "table" then hv = concat(hv, ", ") end
    out[#out + 1] = paint("dim", esc(k) .. ": ") .. esc(hv)
  end
  local body = v.body
  local binary, ct = false, nil
  if type(body) == "string" then binary, ct = is_binary(body, v.headers["content-type"]) end
  if binary then
    out[#out + 1] = ""
    out[#out + 1] = paint("dim", format("<%d bytes, %s>", #body, esc(ct or "binary")))
      .. " " .. hex_preview(body, 32)
  elseif type(body) == "string" and #body > 0 then
    local preview = body:sub(1, 512)
    local lines = {}
    for line in (preview .. "\n"):gmatch("(.-)\n") do
      if #lines == 12 then break end
      lines[#lines + 1] = esc(line:gsub("\r$", ""))
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

-- lurk's objects without a __tostring of their own, by metatable: a short
-- description instead of their internals.
local describe = {}
do
  local function mt_of(make, ...)
    local ok, v = pcall(make, ...)
    return ok and type(v) == "table" and getmetatable(v) or nil
  end
  local function field(t, k) local v = rawget(t, k) return v end
  local function add(mt, fn) if mt and not rawget(mt, "__tostring") then describe[mt] = fn end end
  add(mt_of(lurk.channel), function(ch)
    local ok, n = pcall(ch.len, ch)
    return format("<lurk.channel: %s queued, capacity %s%s>", ok and n or "?", field(ch, "cap") or "?",
      field(ch, "closed") and ", closed" or "")
  end)
  add(mt_of(lurk.semaphore, 0), function(s)
    return format("<lurk.semaphore: %s available>", field(s, "count") or "?")
  end)
  add(mt_of(lurk.group), function(g)
    local tasks = field(g, "tasks")
    return format("<lurk.group: %s tasks>", type(tasks) == "table" and #tasks or "?")
  end)
end

-- An error value (lurk.error's, with kind and message) is shown as its
-- fields, which say more than its one-line __tostring.
local function is_error(t)
  return type(rawget(t, "kind")) == "string" and rawget(t, "message") ~= nil
end

local function show_table(t, depth, seen, indent)
  if seen[t] then return paint("dim", "<cycle: " .. tostring(t) .. ">") end
  local mt = getmetatable(t)
  if type(mt) == "table" and describe[mt] then
    local ok, s = pcall(describe[mt], t)
    if ok then return paint("dim", s) end
  end
  if type(mt) == "table" and rawget(mt, "__tostring") and (depth > 0 or not is_error(t)) then
    return paint("dim", esc(tostring(t)))
  end
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
  if v == json.null then return paint("nil", "json.null") end
  return esc(tostring(v))
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

-- An error's text may quote a server (a reason phrase in a status error).
local function show_error(e)
  if C.tty then
    out(paint("err", esc(tostring(e))) .. "\n")
  else
    io.stdout:flush()
    io.stderr:write(esc(tostring(e)), "\n")
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
  -- Trailing nils are absent values (http.get's missing err), not results.
  while n > 1 and select(n, ...) == nil do n = n - 1 end
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

-- ---- locals that persist ----

-- Names declared by a top-level `local` of an earlier chunk, and their
-- values. Chunks see them before globals; assigning one changes it.
local declared, values = {}, {}
local env = setmetatable({}, {
  __index = function(_, k) if declared[k] then return values[k] end return _G[k] end,
  __newindex = function(_, k, v) if declared[k] then values[k] = v else _G[k] = v end end,
})
-- What a rewritten `local a, b = ...` assigns to: declares, then sets.
local declare = setmetatable({}, {
  __newindex = function(_, k, v) declared[k] = true values[k] = v end,
})
local DECLARE = "lurk_repl_locals"      -- its name in the chunk's prelude

local KEYWORDS = {}
for _, k in ipairs { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" } do
  KEYWORDS[k] = true
end

-- Lua tokens of src: { k = "name" | "kw" | "str" | "num" | "op", v, s, e,
-- nl = first on its line }, or nil when src ends inside a string or a long
-- comment (the compiler then says what is wrong).
local function scan(src)
  local toks, i, n, nl = {}, 1, #src, true
  local function push(k, s, e)
    toks[#toks + 1] = { k = k, v = src:sub(s, e), s = s, e = e, nl = nl }
    nl = false
  end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      nl, i = true, i + 1
    elseif c:find("^%s") then
      i = i + 1
    elseif src:find("^%-%-", i) then
      local eq = src:match("^%-%-%[(=*)%[", i)
      if eq then
        local _, e = src:find("]" .. eq .. "]", i, true)
        if not e then return nil end
        i = e + 1
      else
        i = (src:find("\n", i, true) or n + 1)
      end
    elseif src:find("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local _, e = src:find("]" .. eq .. "]", i, true)
      if not e then return nil end
      push("str", i, e)
      i = e + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while true do
        local d = src:sub(j, j)
        if d == "" or d == "\n" then return nil end
        if d == "\\" then j = j + 2 elseif d == c then break else j = j + 1 end
      end
      push("str", i, j)
      i = j + 1
    elseif c:find("^[%a_]") then
      local _, e = src:find("^[%w_]*", i + 1)
      push(KEYWORDS[src:sub(i, e)] and "kw" or "name", i, e)
      i = e + 1
    elseif c:find("^%d") or src:find("^%.%d", i) then
      local _, e = src:find("^[%w%.]*", i)
      while src:find("^[eEpP][%+%-]", e) do _, e = src:find("^[%w%.]*", e + 2) end
      push("num", i, e)
      i = e + 1
    else
      local op = src:match("^%.%.%.", i) or src:match("^[=~<>]=", i) or src:match("^%.%.", i)
        or src:match("^::", i) or c
      push("op", i, i + #op - 1)
      i = i + #op
    end
  end
  return toks
end

local OPEN = { ["function"] = true, ["do"] = true, ["if"] = true, ["repeat"] = true }
local CLOSE = { ["end"] = true, ["until"] = true }
local BRACKET = { ["("] = 1, ["{"] = 1, ["["] = 1, [")"] = -1, ["}"] = -1, ["]"] = -1 }

-- Rewrites the chunk's top-level `local` statements into declarations:
-- `local a, b = e` becomes `L.a, L.b = e` (the values are computed first,
-- as for a local), `local a` becomes `L.a = nil`, `local function f`
-- becomes `function L.f`. Nothing moves across lines. Also returns where
-- the chunk could be cut into statements and a final expression: after a
-- top-level `;`, or before a token that starts a top-level line.
local function rewrite(src, toks)
  local edits, cuts, depth, brackets = {}, {}, 0, 0
  local function edit(s, e, text) edits[#edits + 1] = { s = s, e = e, text = text } end
  for i, t in ipairs(toks) do
    local v = t.v
    if depth == 0 and brackets == 0 and i > 1 then
      if t.nl then cuts[#cuts + 1] = t.s end
      if v == ";" and t.k == "op" then cuts[#cuts + 1] = t.e + 1 end
    end
    if t.k == "kw" and OPEN[v] then
      depth = depth + 1
    elseif t.k == "kw" and CLOSE[v] then
      depth = depth - 1
    elseif t.k == "op" and BRACKET[v] then
      brackets = brackets + BRACKET[v]
    elseif v == "local" and t.k == "kw" and depth == 0 and brackets == 0 then
      local nxt = toks[i + 1]
      if nxt and nxt.v == "function" and toks[i + 2] and toks[i + 2].k == "name" then
        edit(t.s, t.e, "")
        edit(toks[i + 2].s, toks[i + 2].e, DECLARE .. "." .. toks[i + 2].v)
      elseif nxt and nxt.k == "name" then
        local j = i + 1
        while true do
          edit(toks[j].s, toks[j].e, DECLARE .. "." .. toks[j].v)
          if toks[j + 1] and toks[j + 1].v == "," and toks[j + 2] and toks[j + 2].k == "name" then
            j = j + 2
          else
            break
          end
        end
        edit(t.s, t.e, "")
        if not (toks[j + 1] and toks[j + 1].v == "=") then edit(toks[j].e + 1, toks[j].e, " = nil") end
      end
    end
  end
  table.sort(edits, function(a, b) return a.s > b.s end)
  for _, ed in ipairs(edits) do src = src:sub(1, ed.s - 1) .. ed.text .. src:sub(ed.e + 1) end
  return src, cuts
end

-- An expression is evaluated as an argument (of an identity function), not
-- returned as a tail call, so an error it raises keeps its position.
local function identity(...) return ... end

-- Compiles code (on the chunk's first line, after the prelude) to run in
-- the REPL's environment, with the JIT off for it and every function it
-- defines: a compiled loop never checks hooks, so Ctrl-C could not stop it.
local function load_chunk(code)
  local fn, err = loadstring("local " .. DECLARE .. ", _id = ... " .. code, "=stdin")
  if not fn then return nil, err end
  setfenv(fn, env)
  if jit then jit.off(fn, true) end
  return function() return fn(declare, identity) end
end

local MAX_CUTS = 8              -- `stmts; expr` splits tried, from the end

local function compile(src)
  local fn = load_chunk("return _id(" .. src .. "\n)")
  if fn then return fn end
  local toks = scan(src)
  if not toks then return load_chunk(src) end
  local body, cuts = rewrite(src, toks)
  local err
  fn, err = load_chunk(body)
  if fn then return fn end
  -- Statements, then an expression to show: `r = f(); r` (whose error,
  -- "'=' expected near '<eof>'", also reads as "incomplete").
  for i = #cuts, math.max(1, #cuts - MAX_CUTS + 1), -1 do
    local head = src:sub(1, cuts[i] - 1)
    local htoks = scan(head)
    if htoks then
      local f = load_chunk(rewrite(head, htoks) .. " return _id(" .. src:sub(cuts[i]) .. "\n)")
      if f then return f end
    end
  end
  return nil, err
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

-- Every key reachable from v, through __index tables too. Behind an
-- __index function the methods are usually the metatable's own functions
-- (res.headers:all).
local function fields(v, into, depth)
  if depth > 4 then return end
  if type(v) == "table" then
    for k in pairs(v) do if type(k) == "string" then into[k] = into[k] or v[k] end end
  end
  local ok, mt = pcall(getmetatable, v)
  local index = ok and type(mt) == "table" and rawget(mt, "__index")
  if type(index) == "table" then
    fields(index, into, depth + 1)
  elseif type(index) == "function" then
    for k, f in pairs(mt) do
      if type(k) == "string" and type(f) == "function" then into[k] = into[k] or f end
    end
  elseif type(v) == "string" then
    fields(string, into, depth + 1)
  end
end

-- complete(word) -> sorted candidates for a word like "https.g" or "res:j"
function R.complete(word)
  local path, sep, part = word:match("^(.-)([.:])([%w_]*)$")
  local base, out = env, {}          -- the chunks' view: their locals, then _G
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
  if base == env then
    fields(_G, found, 0)
    for k in pairs(declared) do found[k] = values[k] end
  else
    fields(base, found, 0)
  end
  -- Internals (_conn, _pool) and metamethods only when asked for with "_".
  local hidden = part:sub(1, 1) ~= "_"
  for k, v in pairs(found) do
    if k:sub(1, #part) == part and is_ident(k) and (sep ~= ":" or type(v) == "function")
        and not (hidden and k:sub(1, 1) == "_") then
      out[#out + 1] = path .. sep .. k
    end
  end
  table.sort(out)
  return out
end

return R
