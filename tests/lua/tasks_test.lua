-- Tasks: spawn, join, sleep order, cancel, timeouts, groups, channels, semaphores, map, coroutines.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

-- spawn runs the new task at once, up to its first wait.
do
  local steps = {}
  local task = lurk.spawn(function(x) steps[#steps + 1] = "child " .. x; lurk.sleep(0.001); steps[#steps + 1] = "child done"; return x * 2, "two" end, 21)
  steps[#steps + 1] = "parent"
  t.eq(steps[1], "child 21", "child ran first")
  t.eq(steps[2], "parent")
  t.eq(task:status(), "waiting")
  local ok, a, b = task:join()
  t.eq(ok, true); t.eq(a, 42); t.eq(b, "two")
  t.eq(task:status(), "done")
  local ok2, a2 = task:join()                 -- joining again gives the same results
  t.eq(ok2, true); t.eq(a2, 42)
end

-- 500 tasks with distinct sleeps wake in order of their deadlines.
do
  local order, tasks = {}, {}
  local n = 500
  local base = lurk.now() + 0.05          -- every deadline is absolute
  for i = 1, n do
    local d = ((i * 7919) % n) -- a permutation of 0..n-1
    tasks[i] = lurk.spawn(function() lurk.sleep(base + d * 0.0004 - lurk.now()); order[#order + 1] = d end)
  end
  t.ok(lurk.wait(tasks))
  t.eq(#order, n)
  local sorted = true
  for i = 2, n do if order[i] < order[i - 1] then sorted = false end end
  t.ok(sorted, "tasks woke in deadline order")
end

-- sleep(0) yields to the other ready tasks without blocking.
do
  local log = {}
  local a = lurk.spawn(function() for i = 1, 3 do log[#log + 1] = "a" .. i; lurk.sleep(0) end end)
  local b = lurk.spawn(function() for i = 1, 3 do log[#log + 1] = "b" .. i; lurk.sleep(0) end end)
  lurk.wait { a, b }
  t.eq(table.concat(log, " "), "a1 b1 a2 b2 a3 b3")
end

-- An error in a task: join returns false, err; other tasks carry on.
do
  local bad = lurk.spawn(function() lurk.sleep(0.001); error("task failed on purpose") end)
  local good = lurk.spawn(function() lurk.sleep(0.002); return "fine" end)
  local ok, err = bad:join()
  t.eq(ok, false)
  t.ok(tostring(err):find("task failed on purpose"), "error value kept")
  t.eq(select(2, good:join()), "fine")
end

-- Cancelling a sleeping task: its sleep returns nil, err (kind cancelled), and
-- every later wait fails at once.
do
  local got = {}
  local task = lurk.spawn(function()
    local v, err = lurk.sleep(10)
    got.v, got.err = v, err
    got.v2, got.err2 = lurk.sleep(10)
    return "after"
  end)
  local t0 = lurk.now()
  lurk.sleep(0.01)
  task:cancel()
  t.eq(select(2, task:join()), "after")
  t.fails("cancelled", got.v, got.err)
  t.fails("cancelled", got.v2, got.err2)
  t.ok(lurk.now() - t0 < 1, "cancel took effect at once")
end

-- lurk.timeout: deadlines nest; the sooner one wins.
do
  local t0 = lurk.now()
  local v, err = lurk.timeout(0.05, function() lurk.sleep(5); return "late" end)
  t.fails("timeout", v, err)
  t.took(t0, 0.05)
  t.eq(lurk.timeout(1, function() lurk.sleep(0.001); return "on time" end), "on time")
  -- inner longer than outer: the outer deadline cuts the inner short
  t0 = lurk.now()
  local inner_err
  local r, oerr = lurk.timeout(0.05, function()
    local _, e = lurk.timeout(5, function() return lurk.sleep(5) end)
    inner_err = e
    return "outer body ended"
  end)
  t.fails("timeout", r, oerr)
  t.eq(inner_err.kind, "timeout")
  t.took(t0, 0.05)
  -- inner shorter: the outer scope is not affected
  local out = lurk.timeout(1, function()
    local x, e = lurk.timeout(0.01, function() return lurk.sleep(5) end)
    t.fails("timeout", x, e)
    return "outer fine"
  end)
  t.eq(out, "outer fine")
  -- errors inside propagate and the deadline is restored
  t.raises("inside", lurk.timeout, 1, function() error("inside") end)
  t.eq(t.private().deadline(), nil, "deadline restored")
end

-- join with a timeout, and lurk.wait.
do
  local slow = lurk.spawn(function() lurk.sleep(0.2); return 1 end)
  t.fails("timeout", slow:join(0.01))
  local res = lurk.wait({ slow, lurk.spawn(function() return 2 end) })
  t.eq(res[1][2], 1); t.eq(res[2][2], 2)
end

-- Groups: the first error cancels the siblings.
do
  local g = lurk.group()
  local sibling_err
  g:spawn(function() lurk.sleep(0.01); error({ kind = "custom" }) end)
  g:spawn(function() local _, e = lurk.sleep(5); sibling_err = e end)
  local t0 = lurk.now()
  local ok, err = g:wait()
  t.eq(ok, nil)
  t.eq(err.kind, "custom")
  t.ok(lurk.now() - t0 < 1, "siblings cancelled")
  t.eq(sibling_err and sibling_err.kind, "cancelled")
  local g2 = lurk.group()
  for i = 1, 5 do g2:spawn(function() lurk.sleep(0.001 * i); return i * i end) end
  local results = t.ok(g2:wait())
  t.eq(results[5][2], 25)
end

-- Channels: unbuffered hand-off, buffering, close, iteration, timeouts.
do
  local ch = lurk.channel()
  local producer = lurk.spawn(function()
    for i = 1, 100 do assert(ch:send(i)) end
    ch:close()
  end)
  local sum, n = 0, 0
  for v in ch do sum = sum + v; n = n + 1 end
  t.eq(n, 100); t.eq(sum, 5050)
  t.ok(producer:join())
  t.fails("closed", ch:recv())
  t.fails("closed", ch:send(1))
  t.raises("cannot send nil", function() ch:send(nil) end)

  local b = lurk.channel(3)
  t.ok(b:send("a")); t.ok(b:send("b")); t.ok(b:send("c"))
  t.eq(b:len(), 3)
  t.fails("timeout", b:send("d", 0.01))  -- full
  t.eq(b:recv(), "a")
  t.fails("timeout", lurk.channel():recv(0.01))

  -- a blocked sender is released when its receiver takes the value
  local u = lurk.channel(0)
  local sent
  local s = lurk.spawn(function() sent = u:send("x") end)
  t.eq(sent, nil)
  t.eq(u:recv(), "x")
  s:join()
  t.eq(sent, true)

  -- a receiver that timed out never gets a value meant for someone else
  local c = lurk.channel(0)
  local r1 = lurk.spawn(function() return c:recv(0.01) end)
  lurk.sleep(0.03)
  local r2 = lurk.spawn(function() return c:recv(1) end)
  c:send("for r2")
  local _, v1, e1 = r1:join()
  t.fails("timeout", v1, e1)
  t.eq(select(2, r2:join()), "for r2")
end

-- Semaphores bound concurrency.
do
  local sem, active, peak = lurk.semaphore(3), 0, 0
  local tasks = {}
  for i = 1, 20 do
    tasks[i] = lurk.spawn(function()
      sem:with(function()
        active = active + 1; if active > peak then peak = active end
        lurk.sleep(0.002)
        active = active - 1
      end)
    end)
  end
  t.ok(lurk.wait(tasks))
  t.eq(peak, 3)
  t.eq(sem.count, 3)
end

-- lurk.map keeps order and respects concurrency; an error is returned.
do
  local active, peak = 0, 0
  local out = lurk.map({ 5, 4, 3, 2, 1 }, function(x)
    active = active + 1; if active > peak then peak = active end
    lurk.sleep(0.002 * x)
    active = active - 1
    return x * 10
  end, { concurrency = 2 })
  t.eq(table.concat(out, ","), "50,40,30,20,10")
  t.eq(peak, 2)
  local r, err = lurk.map({ 1, 2, 3 }, function(x) if x == 2 then error("two!") end lurk.sleep(1) return x end)
  t.eq(r, nil)
  t.ok(tostring(err):find("two!"))
end

-- A script's own coroutines may wait on I/O inside a task.
do
  local gen = coroutine.wrap(function()
    for i = 1, 3 do lurk.sleep(0.001); coroutine.yield(i) end
  end)
  t.eq(gen() + gen() + gen(), 6)
  local co = coroutine.create(function(a) local b = coroutine.yield(a + 1); lurk.sleep(0.001); return b * 2 end)
  local ok, v = coroutine.resume(co, 1)
  t.eq(ok, true); t.eq(v, 2)
  ok, v = coroutine.resume(co, 5)
  t.eq(ok, true); t.eq(v, 10)
  -- a plain coroutine.yield() at task level just lets others run
  local ran = false
  lurk.spawn(function() ran = true end)
  t.eq(ran, true)
end

-- lurk.current() is the task's one object, the one lurk.spawn returned
-- (not a new object per call: a task can be a table key), and it stays
-- usable after the task ends.
do
  local h, same, twice
  h = lurk.spawn(function()
    lurk.sleep(0)                       -- h is set once spawn has returned
    same, twice = rawequal(lurk.current(), h), rawequal(lurk.current(), lurk.current())
    return "done"
  end)
  local seen = { [h] = true }
  t.eq(select(2, h:join()), "done")
  t.eq(same, true, "lurk.current() is lurk.spawn's object")
  t.eq(twice, true, "the same object on every call")
  t.eq(h:status(), "done"); t.ok(seen[h])
  t.ok(rawequal(lurk.current(), lurk.current()), "the main chunk's task too")
end

-- lurk.lines() reads a pipe through the ring while other tasks run: the
-- input pauses half a second after its first line, and a task that ticks
-- three times a millisecond apart has finished before the reading has
-- (ticks counted when the last line is read; the pause leaves a loaded
-- machine ample time).
do
  local out = io.popen(("(printf 'one\\n'; sleep 0.5; printf 'two\\nthree') | %s -e 'local ticks = 0; lurk.spawn(function() for _ = 1, 3 do lurk.sleep(0.001); ticks = ticks + 1 end end); local got = {}; for l in lurk.lines() do got[#got + 1] = l end; io.write(table.concat(got, \",\"), \" \", ticks)'"):format(t.lurk)):read("*a")
  t.eq(out, "one,two,three 3")
end

-- Waiting functions outside a task raise; bad arguments raise.
t.raises("number expected", lurk.sleep, "soon")
t.raises("function expected", lurk.spawn, 42)
t.raises("cannot join itself", function() lurk.current():join() end)

-- Internals are out of scripts' reach: no module, and no socket, holds a
-- name starting with "_" (lurk's own modules get them in a private table).
do
  for name, m in pairs { lurk = lurk, tcp = tcp, http = http, https = https, ws = ws, json = json } do
    for k in pairs(m) do
      t.ok(not tostring(k):find("^_"), name .. "." .. tostring(k) .. " is an internal in a public module")
    end
  end
  t.eq(t.private().park ~= nil, true, "the private table holds them")
end

t.done()
