-- Run inside examples/embed/host.c: an HTTPS request and a WebSocket echo
-- through lurk's modules, while the host's own timer keeps ticking.
-- usage: script.lua HTTPS_URL WSS_URL CAFILE
local lurk = require "lurk"
local https = require "lurk.https"
local ws = require "lurk.ws"
local host = require "host"

local https_url, wss_url, cafile = ...
-- "-": no per-call CA file; the runtime's own (the host's ca_file option).
local tls = cafile ~= "-" and { cafile = cafile } or nil

local before = host.ticks()
local res = assert(https.get(https_url, { tls = tls }))
assert(res.status == 200, "status " .. res.status)
local c = assert(ws.connect(wss_url, { tls = tls }))
local msg = ("host %d says hello"):format(host.id())
assert(c:send(msg))
local echo = assert(c:receive(10))
assert(echo == msg, "echo differs: " .. tostring(echo))
assert(c:close())
lurk.sleep(0.1)
local ticks = host.ticks() - before
assert(ticks >= 3, "the host's timer fired only " .. ticks .. " times while lurk ran")
print(("thread %d: https %d %s, ws echo ok, tls %s kTLS %s"):format(host.id(), res.status,
  #res.body, res.tls.version, tostring(res.tls.ktls)))
