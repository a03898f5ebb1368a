-- The LuaJIT lurk runs on: JIT on, and compiled table iteration right.
-- Debian 12's LuaJIT (a 2022 snapshot) ends a compiled pairs() loop early
-- (LuaJIT issue 827): a script's loop silently skips entries. install-deps.sh
-- builds Debian 13's LuaJIT on Debian 12 for this; this test fails on the old one.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

t.eq(jit.status(), true, "the JIT compiler is on")
print("  " .. jit.version)

-- Issue 827: an outer pairs() over a hash, an inner pairs() over an array,
-- and a call to a vararg function (which returns to the interpreter) each
-- round. Once the traces were blacklisted and patched, the outer loop stopped
-- after one entry. (The shape matters: without the vararg call, or with the
-- check out of line, the old LuaJIT passes.)
do
  local inner = { 1, 2, 3, 4, 5 }
  local outer = { a = inner, b = inner, c = inner, d = inner, e = inner }
  local function leave(...) for _ = 1, 100 do end end
  local ok, err = pcall(function()
    for round = 1, 200000 do
      leave()
      local n = 0
      for _, v in pairs(outer) do
        for _ in pairs(v) do end
        n = n + 1
      end
      assert(n == 5, "round " .. round .. " saw " .. n .. " of 5 entries")
    end
  end)
  t.ok(ok, "compiled pairs() over a hash part: " .. tostring(err))
end

-- Array and hash parts of one table, a value changed mid-array, and next()
-- driven by hand: every entry once, compiled or not.
do
  local tab = {}
  for i = 1, 80 do tab[i] = i end
  tab[60] = true
  for i = 1, 40 do tab["k" .. i] = i end
  local bad
  for round = 1, 20000 do
    local n = 0
    for k, v in pairs(tab) do
      if not v then bad = "nil value at " .. tostring(k) end
      n = n + 1
    end
    local m, k = 0, next(tab)
    while k ~= nil do m = m + 1; k = next(tab, k) end
    if n ~= 120 or m ~= 120 then bad = ("round %d: pairs saw %d, next saw %d of 120"):format(round, n, m) end
    if bad then break end
  end
  t.eq(bad, nil, "pairs() and next() over array and hash parts")
end

t.done()
