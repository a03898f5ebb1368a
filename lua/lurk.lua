-- lurk.lua - the parts of the lurk module best written in Lua: waiting on
-- several tasks, deadlines, groups, channels, semaphores, map, and the
-- coroutine wrappers that let a script's own coroutines do I/O inside a task.
--
-- Everything here is built on three C primitives from task.c, in the
-- private table P that src/lua/runtime.c hands to lurk's own modules (scripts
-- never see it): P.park() suspends the running task until P.unpark(task,
-- ...) hands it values (or its deadline passes, or it is cancelled: then it
-- gets nil, err); lurk.current() names the running task; P.deadline() reads
-- and sets the running task's deadline.
--
-- Waiter lists are doubly linked lists of nodes { task = t, ... }, so a
-- waiter leaves in O(1) wherever it is (20,000 tasks timing out of one
-- semaphore at once must not cost 20,000 scans of the list). A waiter woken
-- by its deadline or by cancellation is still listed until it runs again and
-- unlinks itself; a waker that meets it finds it no longer parked (unpark
-- returns false) and moves on, so a value is never handed to a task that
-- stopped waiting.
local lurk, P = ...

local park, unpark, current, now = P.park, P.unpark, lurk.current, lurk.now
local spawn, deadline, mkerror = lurk.spawn, P.deadline, lurk.error
local select, unpack, pcall, error, type, setmetatable = select, unpack, pcall, error, type, setmetatable
local getmetatable, check_options = getmetatable, P.check_options

local function pack(...) return { n = select("#", ...), ... } end

local function closed_error(what)
  return mkerror { kind = "closed", phase = "wait", message = what .. " is closed" }
end

-- A list is its own sentinel node: list.next is the first waiter.
local function wlist()
  local l = {}
  l.next, l.prev = l, l
  return l
end

local function wpush(l, node)
  node.prev, node.next = l.prev, l
  l.prev.next = node
  l.prev = node
  return node
end

local function wremove(node)
  if node.next then
    node.prev.next, node.next.prev = node.next, node.prev
    node.next, node.prev = nil, nil
  end
end

-- The first waiter, unlinked, or nil.
local function wpop(l)
  local node = l.next
  if node == l then return nil end
  wremove(node)
  return node
end

-- Raises unless self is an object of class cls: the usual cause is a
-- method called with '.' instead of ':'.
local function check_self(self, cls, name)
  if getmetatable(self) ~= cls then
    error(("use %s(...), with ':' (the first argument is %s)"):format(name, type(self)), 3)
  end
end

-- lurk.wait(tasks [, timeout]) -> results | nil, err
-- Waits for every task; results[i] is { ok, ... , n = count } as join gives.
function lurk.wait(tasks, timeout)
  local results, until_ = {}, timeout and (now() + timeout)
  for i = 1, #tasks do
    local left = until_ and until_ - now()
    if left and left <= 0 then
      return nil, mkerror { kind = "timeout", phase = "wait", message = "timed out waiting for tasks" }
    end
    local r = pack(tasks[i]:join(left))
    if r[1] == nil then return nil, r[2] end
    results[i] = r
  end
  return results
end

-- lurk.timeout(s, fn, ...) -> fn's results | nil, err (kind "timeout")
-- Every wait inside fn (in this task) ends by now + s at the latest; an
-- enclosing deadline that comes sooner still applies.
-- The deadline is marked with its length (P.deadline's second argument),
-- so the waits it ends say "the lurk.timeout deadline of 1 s passed".
function lurk.timeout(s, fn, ...)
  if type(s) ~= "number" or s < 0 then error("lurk.timeout: seconds must be a non-negative number", 2) end
  if type(fn) ~= "function" then error("lurk.timeout: expected a function", 2) end
  local prev, prev_s = deadline()
  local mine, mine_s = now() + s, s
  if prev and prev < mine then mine, mine_s = prev, prev_s end
  deadline(mine, mine_s)
  local r = pack(pcall(fn, ...))
  deadline(prev or false, prev_s)
  if not r[1] then error(r[2], 0) end
  -- Past the deadline, whatever fn returned came too late: a strict bound.
  if now() >= mine then
    -- fn's own timeout error says what timed out: keep it.
    local e = r[3]
    if r[2] == nil and type(e) == "table" and e.kind == "timeout" then return nil, e end
    return nil, mkerror { kind = "timeout", phase = "wait", retryable = true, timeout = mine_s,
                          message = mine_s and ("lurk.timeout: the deadline of %g s passed"):format(mine_s)
                            or "lurk.timeout: the task's deadline passed" }
  end
  return unpack(r, 2, r.n)
end

-- Groups: g = lurk.group(); g:spawn(fn, ...); ok, results = g:wait()
-- The first task to fail cancels the others; g:wait() then returns nil, err.
local Group = {}
Group.__index = Group

function lurk.group()
  return setmetatable({ tasks = {}, results = {} }, Group)
end

function Group:spawn(fn, ...)
  local g, i = self, #self.tasks + 1
  local t = spawn(function(...)
    local r = pack(pcall(fn, ...))
    if r[1] then
      g.results[i] = r
    elseif g.err == nil then
      g.err = r[2]
      g:cancel()
    end
  end, ...)
  self.tasks[i] = t
  if self.err ~= nil then t:cancel() end
  return t
end

function Group:cancel()
  for _, t in ipairs(self.tasks) do t:cancel() end
end

-- g:wait([timeout]) -> results | nil, err; results[i] = { true, ..., n = }
function Group:wait(timeout)
  local ok, err = lurk.wait(self.tasks, timeout)
  if not ok then
    self:cancel()
    return nil, err
  end
  if self.err ~= nil then return nil, self.err end
  return self.results
end

-- Channels: ch = lurk.channel([capacity]); ch:send(v); v = ch:recv([timeout])
-- send waits while the buffer is full (capacity 0: until a receiver takes
-- the value); recv waits while it is empty. After ch:close(), send fails and
-- recv drains what is buffered, then returns nil, err (kind "closed").
-- `for v in ch do ... end` receives until the channel is closed.
local Channel = {}
Channel.__index = Channel

function lurk.channel(capacity)
  capacity = capacity or 0
  if type(capacity) ~= "number" or capacity < 0 then error("lurk.channel: capacity must be >= 0", 2) end
  return setmetatable({ cap = capacity, buf = {}, head = 1, tail = 0, receivers = wlist(), senders = wlist() },
                      Channel)
end

local function wake_receiver(ch, v)
  local rs = ch.receivers
  while true do
    local w = wpop(rs)
    if not w then return false end
    if unpark(w.task, v) then return true end
  end
end

-- The next waiting sender that is still parked, given ok; nil if none.
local function take_sender(ch)
  while true do
    local w = wpop(ch.senders)
    if not w then return nil end
    if unpark(w.task, true) then return w end
  end
end

function Channel:send(v, timeout)
  check_self(self, Channel, "ch:send")
  if v == nil then error("ch:send: cannot send nil", 2) end
  if self.closed then return nil, closed_error("channel") end
  if wake_receiver(self, v) then return true end
  if self.tail - self.head + 1 < self.cap then
    self.tail = self.tail + 1
    self.buf[self.tail] = v
    return true
  end
  local me = current()
  if not me then error("ch:send must be called from a task", 2) end
  local w = wpush(self.senders, { task = me, value = v })
  local ok, err = park(timeout, "ch:send")
  wremove(w)
  return ok, err
end

function Channel:recv(timeout)
  check_self(self, Channel, "ch:recv")
  if self.head <= self.tail then
    local v = self.buf[self.head]
    self.buf[self.head] = nil
    self.head = self.head + 1
    -- A sender waiting for room can now put its value in.
    local w = take_sender(self)
    if w then
      self.tail = self.tail + 1
      self.buf[self.tail] = w.value
    end
    return v
  end
  local w = take_sender(self)
  if w then return w.value end
  if self.closed then return nil, closed_error("channel") end
  local me = current()
  if not me then error("ch:recv must be called from a task", 2) end
  w = wpush(self.receivers, { task = me })
  local v, err = park(timeout, "ch:recv")
  wremove(w)
  return v, err
end

function Channel:close()
  check_self(self, Channel, "ch:close")
  if self.closed then return true end
  self.closed = true
  for _, list in ipairs { self.receivers, self.senders } do
    local w = wpop(list)
    while w do
      unpark(w.task, nil, closed_error("channel"))
      w = wpop(list)
    end
  end
  return true
end

-- ch:len() -> values buffered (LuaJIT ignores __len on tables)
function Channel:len() return self.tail - self.head + 1 end

-- for v in ch do: the generic for calls ch(); nil (closed, or the waiting
-- task was cancelled) ends the loop.
function Channel:__call()
  return (self:recv())
end

-- Semaphores: s = lurk.semaphore(n); s:acquire([timeout]); s:release()
local Semaphore = {}
Semaphore.__index = Semaphore

function lurk.semaphore(n)
  if type(n) ~= "number" or n < 0 then error("lurk.semaphore: count must be >= 0", 2) end
  return setmetatable({ count = n, waiters = wlist() }, Semaphore)
end

function Semaphore:acquire(timeout)
  check_self(self, Semaphore, "s:acquire")
  if self.count > 0 then
    self.count = self.count - 1
    return true
  end
  local me = current()
  if not me then error("s:acquire must be called from a task", 2) end
  local w = wpush(self.waiters, { task = me })
  local ok, err = park(timeout, "semaphore:acquire")
  wremove(w)
  return ok, err
end

function Semaphore:release()
  check_self(self, Semaphore, "s:release")
  while true do
    local w = wpop(self.waiters)
    if not w then break end
    if unpark(w.task, true) then return true end  -- the permit passes on
  end
  self.count = self.count + 1
  return true
end

-- s:with(fn, ...) -> fn's results: acquire, call, release even on error.
function Semaphore:with(fn, ...)
  check_self(self, Semaphore, "s:with")
  local ok, err = self:acquire()
  if not ok then return nil, err end
  local r = pack(pcall(fn, ...))
  self:release()
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- lurk.map(list, fn [, { concurrency = n, partial = bool }])
--   -> results | nil, err        (partial: results, errors)
-- Calls fn(item, i) for every item, at most n at a time (default 16), and
-- returns the first result of each call in list order (results.n = #list).
-- A call fails when it raises or returns nil, err: the first failure
-- cancels the calls still running and is returned, with err.index = i. With
-- partial = true every call runs; errors[i] holds each failure.
local MAP_OPTIONS = { concurrency = true, partial = true }

-- A failure of call i as an error value carrying index = i: a raised string
-- (or other non-table) becomes an error of kind "script".
local function map_error(i, e)
  if type(e) ~= "table" then
    e = mkerror { kind = "script", message = ("lurk.map: call %d failed: %s"):format(i, tostring(e)), cause = e }
  end
  e.index = i
  return e
end

function lurk.map(list, fn, opts)
  if type(list) ~= "table" then error("lurk.map: list must be a table (got " .. type(list) .. ")", 2) end
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("lurk.map: fn must be a function (got " .. type(fn) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("lurk.map: opts must be a table (got " .. type(opts) .. ")", 2) end
  opts = check_options(opts or {}, "lurk.map", MAP_OPTIONS, 2)
  local n, partial = opts.concurrency or 16, opts.partial
  if type(n) ~= "number" or n < 1 then error("lurk.map: concurrency must be a number >= 1", 2) end
  if partial ~= nil and type(partial) ~= "boolean" then error("lurk.map: partial must be true or false", 2) end
  local count = #list
  local results, errors, nexti, failed = { n = count }, {}, 1, nil
  local g = lurk.group()
  local function worker()
    while nexti <= count and not failed do
      local i = nexti
      nexti = i + 1
      local r = pack(pcall(fn, list[i], i))
      local e
      if not r[1] then e = r[2]
      elseif r[2] == nil and r[3] ~= nil then e = r[3]
      else results[i] = r[2] end
      if e ~= nil and not failed then
        e = map_error(i, e)
        if partial then
          errors[i] = e
        else
          failed = e
          g:cancel()
        end
      end
    end
  end
  for _ = 1, math.min(n, count) do g:spawn(worker) end
  local ok, err = g:wait()
  if failed then return nil, failed end
  if not ok then return nil, err end
  if partial then return results, errors end
  return results
end

-- P.line_iter(read) -> an iterator of the lines in what read() returns
-- piece by piece (nil or "" at the end; a failure raises): lines lose their
-- "\n" or "\r\n"; a last line without one is still returned.
function P.line_iter(read)
  local buf, ended = "", false
  return function()
    while true do
      local nl = buf:find("\n", 1, true)
      if nl then
        local line = buf:sub(1, nl - 1)
        buf = buf:sub(nl + 1)
        return (line:gsub("\r$", ""))
      end
      if ended then
        if buf == "" then return nil end
        local last = buf
        buf = ""
        return last
      end
      local data, err = read()
      if err ~= nil and data == nil then error(err, 0) end
      if data == nil or data == "" then ended = true else buf = buf .. data end
    end
  end
end

-- for line in lurk.lines() do ... end: standard input, line by line, read
-- through the ring so other tasks keep running while it waits.
function lurk.lines(fd)
  fd = fd or 0
  local read_fd = P.read_fd
  return P.line_iter(function() return read_fd(fd) end)
end

-- A script's own coroutines may call lurk's waiting functions: such a call
-- yields P.yield through the script's coroutine, and these wrappers pass
-- it on to the scheduler and hand the results back down.
local sentinel, co_resume, co_yield, co_create = P.yield, coroutine.resume, coroutine.yield, coroutine.create

local function relay(co, ok, ...)
  if ok and select("#", ...) == 1 and (...) == sentinel and current() then
    return relay(co, co_resume(co, co_yield(sentinel)))
  end
  return ok, ...
end

function coroutine.resume(co, ...)
  return relay(co, co_resume(co, ...))
end

function coroutine.wrap(fn)
  local co = co_create(fn)
  return function(...)
    local function unwrap(ok, ...)
      if not ok then error((...), 0) end
      return ...
    end
    return unwrap(relay(co, co_resume(co, ...)))
  end
end

return lurk
