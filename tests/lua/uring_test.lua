-- The ring's cheaper paths and their fallbacks: one io_uring_enter per sequential round trip (a send nobody waits for shares the enter of the receive after it), sends that fill the socket, sends queued behind one another, failures of a send that had returned, and the features named in lurk.stats().ring. ctest also runs this file with LURK_URING_OFF forcing each feature off.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local off = os.getenv("LURK_URING_OFF") or ""
local ring = lurk.stats().ring
local function has(f) return (", " .. ring .. ","):find(", " .. f .. ",", 1, true) ~= nil end
local function forced(f) return off == "all" or ("," .. off .. ","):find("," .. f .. ",", 1, true) ~= nil end

-- 1. Each feature is on unless forced off (this kernel has them all: 6.18),
-- and a forced-off one is not used.
local uname = io.popen("uname -r"):read("*l")
local major, minor = uname:match("^(%d+)%.(%d+)")
local modern = tonumber(major) * 100 + tonumber(minor) >= 612
for _, f in ipairs { "ring-fd", "skip-cqe", "min-wait", "fixed-files", "recv-multishot" } do
  if forced(f) then
    t.ok(not has(f), f .. " forced off: not in " .. ring)
  elseif modern then
    t.ok(has(f), f .. " on a " .. uname .. " kernel: in " .. ring)
  end
end

local echo = t.server("tcpserver.py", "echo")

-- 2. Sequential echo: one enter per round trip with skip-cqe (the send posts
-- no CQE, so the enter that submits it waits for the receive), two without.
do
  local s = assert(tcp.connect("127.0.0.1", echo))
  local n = 300
  assert(s:send("warm\n"))
  t.eq(s:receive("*l"), "warm")
  local e0 = lurk.stats().enters
  for i = 1, n do
    local msg = ("%08d"):format(i)
    t.eq(s:send(msg), 8, "send returns the byte count")
    assert(s:receive(8) == msg, "echo " .. i)
  end
  local per = (lurk.stats().enters - e0) / n
  io.write(("sequential echo: %.3f io_uring_enter per round trip (ring: %s)\n"):format(per, ring))
  t.ok(per <= (has("skip-cqe") and 1.05 or 2.05), "enters per round trip " .. per)
  s:close()
end

-- 2b. The same over WebSocket, and over TLS with lurk's record layer (no
-- kernel TLS here): the reader task hands each message to the script
-- without an enter of its own, and a WSS frame is sealed into the
-- connection's output queue and sent without a wait of its own.
do
  local dir = t.tmpdir()
  os.execute(t.support .. "/certs.sh " .. dir .. " >/dev/null 2>&1")
  t.server("wsserver.js", dir)
  local W = dofile(dir .. "/ws-ports.lua")
  for _, case in ipairs {
    { "WebSocket", "ws://127.0.0.1:" .. W.ws .. "/echo", { compress = false } },
    { "WSS", "wss://localhost:" .. W.wss .. "/echo",
      { compress = false, tls = { cafile = dir .. "/ca.pem", ktls = false } } },
  } do
    local name, url, opts = case[1], case[2], case[3]
    local c = assert(ws.connect(url, opts))
    assert(c:send("warm"))
    t.eq(c:receive(), "warm")
    local n = 200
    local e0 = lurk.stats().enters
    for i = 1, n do
      assert(c:send("m" .. i))
      assert(c:receive() == "m" .. i, name .. " echo " .. i)
    end
    local per = (lurk.stats().enters - e0) / n
    io.write(("sequential %s echo: %.3f io_uring_enter per round trip\n"):format(name, per))
    t.ok(per <= (has("skip-cqe") and 1.05 or 2.05), name .. ": enters per round trip " .. per)
    c:close()
  end
end

local function pattern(n, salt)
  local b = {}
  for i = 0, 255 do b[#b + 1] = string.char((i + salt) % 256) end
  return table.concat(b):rep(math.ceil(n / 256)):sub(1, n)
end

-- 3. A send larger than the socket's buffers (the kernel takes part, the
-- rest waits for room), then sends queued behind it: bytes stay in order.
do
  local s = assert(tcp.connect("127.0.0.1", echo))
  local parts = { pattern(8 * 1048576, 1), pattern(1000, 2), pattern(3 * 1048576, 3), "end\n" }
  local want = table.concat(parts)
  local t0 = lurk.now()
  local r = lurk.spawn(function() return s:receive(#want) end)
  for i, p in ipairs(parts) do t.eq(s:send(p), #p, "send " .. i) end
  local ok, back = r:join()
  t.ok(ok and back == want, "12 MiB in four sends echoed byte-exact, in order")
  -- Without a stall: a receive that stopped taking input (the reader
  -- slower than the echo) and then got none until a timer woke the loop
  -- took 30 s here.
  local took = lurk.now() - t0
  t.ok(took < 10, ("12 MiB echoed in %.1f s (want < 10)"):format(took))
  -- Back-to-back small sends with nothing between them: each waits behind
  -- the one before, none is lost or reordered.
  for i = 1, 50 do assert(s:send(("%03d,"):format(i))) end
  local got = s:receive(200)
  local exp = {}
  for i = 1, 50 do exp[#exp + 1] = ("%03d,"):format(i) end
  t.eq(got, table.concat(exp), "50 sends in a row arrive in order")
  s:close()
end

-- 3b. A send queued behind one nobody waited for starts when that one's
-- callback runs, right after the enter that submitted it: that enter must
-- not also wait for another completion (here a 3 s sleep in another task).
-- Before this was handled, the second send waited for the sleep to end.
do
  local s = assert(tcp.connect("127.0.0.1", echo))
  local sleeper = lurk.spawn(function() lurk.sleep(3) end)
  lurk.sleep(0)
  local t0 = lurk.now()
  assert(s:send("first,"))           -- returns at once (nowait)
  assert(s:send("second\n"))        -- waits behind it
  local took = lurk.now() - t0
  t.ok(took < 1, ("a send queued behind a nowait one took %.3f s (want < 1 s)"):format(took))
  t.eq(s:receive("*l"), "first,second", "both arrived, in order")
  sleeper:cancel()
  s:close()
end

-- 3c. A send nobody waits for that the socket cannot take at once (a peer
-- with a tiny MSS, so a small send buffer, that reads only after 0.3 s):
-- the kernel sends the rest as the peer reads, and the reply to the whole
-- message arrives without the receive waiting for anything else.
do
  local p = assert(io.popen(("python3 -c '%s'"):format([[
import socket,time
s=socket.socket(); s.setsockopt(socket.IPPROTO_TCP,socket.TCP_MAXSEG,536)
s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)
s.bind(("127.0.0.1",0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c,_=s.accept(); time.sleep(0.3); d=b""
while len(d)<65536:
    b=c.recv(65536)
    if not b: break
    d+=b
c.sendall(b"got %d\n" % len(d)); c.recv(1)
]]), "r"))
  local port = tonumber(p:read("*l"))
  local s = assert(tcp.connect("127.0.0.1", port))
  local t0 = lurk.now()
  t.eq(s:send(pattern(65536, 7)), 65536, "64 KiB handed over at once")
  t.eq(s:receive("*l"), "got 65536", "the peer got all of it and answered")
  local took = lurk.now() - t0
  t.ok(took < 1.5, ("the reply came %.3f s after the send (the peer waits 0.3 s)"):format(took))
  s:close()
  p:close()
end

-- 4. A send that fails after it returned (the peer reset the connection):
-- the next operation on the socket reports it; nothing is left in flight.
do
  local reset = t.server("tcpserver.py", "reset")
  local s = assert(tcp.connect("127.0.0.1", reset))
  t.eq(s:receive(7), "partial")
  lurk.sleep(0.05)                 -- the RST has arrived
  local ok, err
  for _ = 1, 20 do                 -- the first sends may still be accepted
    ok, err = s:send(("x"):rep(1000))
    if not ok then break end
    local r, rerr = s:receive_some(10)
    if not r then ok, err = r, rerr break end
  end
  t.ok(not ok and err and err.kind == "closed", "a reset connection's send fails: " .. tostring(err))
  s:close()
  lurk.sleep(0.01)
  t.eq(lurk.stats().in_flight, 0, "no op left in flight")
end

-- 5. A send the script does not wait for, then close: the bytes go out
-- before the close (the peer sees them, then the end).
do
  local p = assert(io.popen(("python3 -c '%s'"):format([[
import socket,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c,_=s.accept(); d=b""
while True:
    b=c.recv(65536)
    if not b: break
    d+=b
print(len(d), d[:5].decode(), flush=True)
]]), "r"))
  local port = tonumber(p:read("*l"))
  local s = assert(tcp.connect("127.0.0.1", port))
  assert(s:send("hello" .. ("!"):rep(99995)))
  s:close()
  lurk.sleep(0.1)                  -- the bytes go out at the task's next wait (p:read blocks lurk)
  t.eq(p:read("*l"), "100000 hello", "sent then closed: all bytes arrived")
  p:close()
end

-- 5b. The same over TLS: sends sealed into the output queue and not waited
-- for, then close: every record goes out, then close_notify, then the end.
do
  local dir = t.tmpdir()
  os.execute(t.support .. "/certs.sh " .. dir .. " >/dev/null 2>&1")
  local p = assert(io.popen(("python3 -c '%s' %s"):format([[
import socket,ssl,sys
ctx=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1]+"/good.pem",sys.argv[1]+"/good.key")
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c,_=s.accept(); c=ctx.wrap_socket(c,server_side=True,suppress_ragged_eofs=False); d=b""
try:
    while True:
        b=c.recv(65536)
        if not b: break
        d+=b
    end="close_notify"
except ssl.SSLEOFError:
    end="cut"
print(len(d), d[:5].decode(), d[-3:].decode(), end, flush=True)
]], dir), "r"))
  local port = tonumber(p:read("*l"))
  local s = assert(tcp.connect("localhost", port, { tls = { cafile = dir .. "/ca.pem", ktls = false } }))
  for i = 1, 20 do assert(s:send(("hello" .. ("!"):rep(4990)):sub(1, 4995) .. ("%05d"):format(i))) end
  s:close()
  lurk.sleep(0.2)
  t.eq(p:read("*l"), "100000 hello 020 close_notify", "TLS: 20 sends then close: all records, then close_notify")
  p:close()
end

-- 6. Sockets in the ring's file table: each connection, dialled or
-- accepted, takes a slot while open (lurk.stats().files) and gives it back
-- when closed, and closing it closes the socket at once, although the table
-- held it too: the peer sees the end of the stream while this process is
-- blocked in a system call and runs no loop turn.
do
  local fixed = has("fixed-files")
  local f0 = lurk.stats().files
  local ln = assert(tcp.listen("127.0.0.1", 0))
  local port = ln.port
  local srv = lurk.spawn(function()
    local got = {}
    for i = 1, 10 do got[i] = assert(ln:accept()) end
    return got
  end)
  local cs = {}
  for i = 1, 10 do cs[i] = assert(tcp.connect("127.0.0.1", port)) end
  local _, ss = assert(srv:join())
  t.eq(lurk.stats().files - f0, fixed and 20 or 0, "10 dialled and 10 accepted sockets in the table")
  for i = 1, 10 do
    assert(cs[i]:send("ping " .. i .. "\n"))
    t.eq(ss[i]:receive("*l"), "ping " .. i, "through the table, connection " .. i)
    assert(ss[i]:send("pong\n"))
    t.eq(cs[i]:receive("*l"), "pong", "and back, connection " .. i)
  end
  for i = 1, 10 do cs[i]:close(); ss[i]:close() end
  t.eq(lurk.stats().files, f0, "every slot given back at close")
  ln:close()

  local p = assert(io.popen(("python3 -c '%s'"):format([[
import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c,_=s.accept(); c.settimeout(5); d=b""
try:
    while True:
        b=c.recv(100)
        if not b: break
        d+=b
    print("end after", d.decode(), flush=True)
except socket.timeout:
    print("no end in 5 s", flush=True)
]]), "r"))
  local c = assert(tcp.connect("127.0.0.1", tonumber(p:read("*l"))))
  assert(c:send("bye"))
  lurk.sleep(0.05)
  c:close()
  t.eq(p:read("*l"), "end after bye", "the peer saw the close with no loop turn after it")
  p:close()
end

-- 7. Multishot receive: the receive stays armed from one read to the next,
-- so a sequential round trip submits one op (the send), and whatever
-- arrives while nobody reads (data, the end, an error) waits for the next
-- read. Input nobody reads stops being taken at 256 KiB, so it stays
-- bounded; that socket's reads are plain receives from then on.
do
  local multi = has("recv-multishot")
  local s = assert(tcp.connect("127.0.0.1", echo))
  assert(s:send("warm\n"))
  t.eq(s:receive("*l"), "warm")
  local o0, n = lurk.stats().ops, 200
  for i = 1, n do
    assert(s:send(("%08d"):format(i)))
    assert(s:receive(8) == ("%08d"):format(i))
  end
  local per = (lurk.stats().ops - o0) / n
  io.write(("sequential echo: %.3f ops submitted per round trip\n"):format(per))
  if multi then
    t.ok(per <= 1.05, "one op (the send) per round trip with multishot: " .. per)
  else
    t.ok(per >= 1.95, "a send and a receive per round trip without multishot: " .. per)
  end

  -- A read that timed out leaves the receive armed; what comes later is
  -- the next read's, none of it lost.
  s:settimeout(0.05)
  t.fails("timeout", s:receive(8))
  s:settimeout(10)
  assert(s:send("late1234"))
  t.eq(s:receive(8), "late1234", "data after a timed-out read")
  s:close()

  -- Data, then the end, all arriving while the script sleeps.
  local lines = t.server("tcpserver.py", "lines")
  local c = assert(tcp.connect("127.0.0.1", lines))
  t.eq(c:receive("*l"), "one", "the first line")
  lurk.sleep(0.2)
  t.eq(c:receive("*a"), "two\nthree", "the rest, then the end, after a pause")
  c:close()

  -- An error arriving while nobody reads: the next read reports it.
  local reset = t.server("tcpserver.py", "reset")
  c = assert(tcp.connect("127.0.0.1", reset))
  t.eq(c:receive(7), "partial")
  lurk.sleep(0.2)
  t.fails("closed", c:receive(1))
  c:close()

  -- 32 MiB sent to a script that does not read for 0.5 s: at most 256 KiB
  -- is taken meanwhile, then all of it arrives byte-exact.
  local function rss()
    local f = io.open("/proc/self/status")
    local kb = f:read("*a"):match("VmRSS:%s*(%d+)")
    f:close()
    return tonumber(kb) / 1024
  end
  local size = 32 * 1048576
  local big = t.server("tcpserver.py", "big", tostring(size))
  c = assert(tcp.connect("127.0.0.1", big, { max_buffer = 64 * 1048576 }))
  t.eq(#c:receive(1), 1)
  local m0 = rss()
  lurk.sleep(0.5)
  local grew = rss() - m0
  t.ok(grew < 4, ("unread input held while nobody reads: %.1f MiB (want < 4)"):format(grew))
  local rest = c:receive("*a")
  t.eq(#rest, size - 1, "all of it after the pause")
  c:close()

  -- 64 connections echoing 64 KiB each at once: 4 MiB in flight, more than
  -- the loop's 1 MiB of provided buffers, so receives run out of buffers
  -- and are re-armed; every byte arrives, in order.
  local conns, tasks = {}, {}
  for i = 1, 64 do conns[i] = assert(tcp.connect("127.0.0.1", echo)) end
  for i = 1, 64 do
    tasks[i] = lurk.spawn(function()
      local p = pattern(65536, i)
      assert(conns[i]:send(p))
      return conns[i]:receive(65536) == p
    end)
  end
  local good = 0
  for i = 1, 64 do
    local ok, same = tasks[i]:join()
    if ok and same then good = good + 1 end
    conns[i]:close()
  end
  t.eq(good, 64, "64 x 64 KiB echoed byte-exact")
end

t.done()