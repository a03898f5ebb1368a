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
-- Waiter lists hold task objects. A waiter woken by its deadline or by
-- cancellation is still listed until it runs again and removes itself; a
-- waker that meets it finds it no longer parked (_unpark returns false) and
-- moves on, so a value is never handed to a task that stopped waiting.
local lurk, P = ...

local park, unpark, current, now = P.park, P.unpark, lurk.current, lurk.now
local spawn, deadline, mkerror = lurk.spawn, P.deadline, lurk.error
local select, unpack, pcall, error, type, setmetatable = select, unpack, pcall, error, type, setmetatable
local tremove, tinsert = table.remove, table.insert

local function pack(...) return { n = select("#", ...), ... } end

local function closed_error(what)
  return mkerror { kind = "closed", phase = "wait", message = what .. " is closed" }
end

local function remove_waiter(list, me)
  for i = #list, 1, -1 do
    if list[i] == me or list[i].task == me then tremove(list, i) return end
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
function lurk.timeout(s, fn, ...)
  if type(s) ~= "number" or s < 0 then error("lurk.timeout: seconds must be a non-negative number", 2) end
  if type(fn) ~= "function" then error("lurk.timeout: expected a function", 2) end
  local prev = deadline()
  local mine = now() + s
  if prev and prev < mine then mine = prev end
  deadline(mine)
  local r = pack(pcall(fn, ...))
  deadline(prev or false)
  if not r[1] then error(r[2], 0) end
  -- Past the deadline, whatever fn returned came too late: a strict bound.
  if now() >= mine then
    return nil, mkerror { kind = "timeout", phase = "wait", retryable = true,
                          message = ("timed out after %g s"):format(s) }
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
  return setmetatable({ cap = capacity, buf = {}, head = 1, tail = 0, receivers = {}, senders = {} }, Channel)
end

local function wake_receiver(ch, v)
  local rs = ch.receivers
  while #rs > 0 do
    if unpark(tremove(rs, 1), v) then return true end
  end
  return false
end

function Channel:send(v, timeout)
  if v == nil then error("channel:send: cannot send nil", 2) end
  if self.closed then return nil, closed_error("channel") end
  if wake_receiver(self, v) then return true end
  if self.tail - self.head + 1 < self.cap then
    self.tail = self.tail + 1
    self.buf[self.tail] = v
    return true
  end
  local me = current()
  if not me then error("channel:send must be called from a task", 2) end
  local w = { task = me, value = v }
  tinsert(self.senders, w)
  local ok, err = park(timeout)
  remove_waiter(self.senders, me)
  return ok, err
end

function Channel:recv(timeout)
  if self.head <= self.tail then
    local v = self.buf[self.head]
    self.buf[self.head] = nil
    self.head = self.head + 1
    -- A sender waiting for room can now put its value in.
    while #self.senders > 0 do
      local w = tremove(self.senders, 1)
      if unpark(w.task, true) then
        self.tail = self.tail + 1
        self.buf[self.tail] = w.value
        break
      end
    end
    return v
  end
  while #self.senders > 0 do
    local w = tremove(self.senders, 1)
    if unpark(w.task, true) then return w.value end
  end
  if self.closed then return nil, closed_error("channel") end
  local me = current()
  if not me then error("channel:recv must be called from a task", 2) end
  tinsert(self.receivers, me)
  local v, err = park(timeout)
  remove_waiter(self.receivers, me)
  return v, err
end

function Channel:close()
  if self.closed then return true end
  self.closed = true
  while #self.receivers > 0 do unpark(tremove(self.receivers, 1), nil, closed_error("channel")) end
  while #self.senders > 0 do unpark(tremove(self.senders, 1).task, nil, closed_error("channel")) end
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
  return setmetatable({ count = n, waiters = {} }, Semaphore)
end

function Semaphore:acquire(timeout)
  if self.count > 0 then
    self.count = self.count - 1
    return true
  end
  local me = current()
  if not me then error("semaphore:acquire must be called from a task", 2) end
  tinsert(self.waiters, me)
  local ok, err = park(timeout)
  remove_waiter(self.waiters, me)
  return ok, err
end

function Semaphore:release()
  local ws = self.waiters
  while #ws > 0 do
    if unpark(tremove(ws, 1), true) then return true end  -- the permit passes on
  end
  self.count = self.count + 1
  return true
end

-- s:with(fn, ...) -> fn's results: acquire, call, release even on error.
function Semaphore:with(fn, ...)
  local ok, err = self:acquire()
  if not ok then return nil, err end
  local r = pack(pcall(fn, ...))
  self:release()
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- lurk.map(list, fn [, { concurrency = n }]) -> results | nil, err
-- Calls fn(item, i) for every item, at most n at a time (default 16), and
-- returns the first result of each call in list order. The first error
-- cancels the calls still running and is returned.
function lurk.map(list, fn, opts)
  local n = opts and opts.concurrency or 16
  if type(n) ~= "number" or n < 1 then error("lurk.map: concurrency must be >= 1", 2) end
  local results, nexti, g = {}, 1, lurk.group()
  local function worker()
    while nexti <= #list do
      local i = nexti
      nexti = i + 1
      results[i] = fn(list[i], i)
    end
  end
  for _ = 1, math.min(n, #list) do g:spawn(worker) end
  local ok, err = g:wait()
  if not ok then return nil, err end
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
