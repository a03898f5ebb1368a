-- A chat-style WebSocket client: one task reads your lines from stdin and
-- sends them while another prints whatever the server sends. Connects where
-- you point it (tests/lua/ws_lifecycle_test.lua runs it against a local
-- server, checking that it exits as soon as you quit).
--
--   lurk examples/chat.lua wss://chat.example.com/room
local url = assert(arg[1], "usage: lurk examples/chat.lua ws[s]://host/path")
local conn = assert(ws.connect(url, { ping_interval = 20, ping_timeout = 10 }))
print("connected to " .. url .. (conn.tls and (" over " .. conn.tls.version .. (conn.tls.ktls and " (kTLS)" or "")) or ""))

-- conn:messages() ends after a clean close (1000, 1001 or no code) and
-- raises the error value for any other end: pcall keeps the reason.
local printer = lurk.spawn(function()
  local ok, err = pcall(function()
    for msg, kind in conn:messages() do
      print(kind == "text" and ("< " .. msg) or ("< [%d bytes of binary]"):format(#msg))
    end
  end)
  print("connection ended: " .. (ok and "closed normally" or tostring(err)))
end)

-- lurk.lines() reads stdin through the ring: the printer keeps printing
-- while this task waits for your next line.
for line in lurk.lines() do
  if line == "/quit" then break end
  assert(conn:send(line))
end
conn:close(1000, "bye")
printer:join()
