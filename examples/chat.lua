-- A chat-style WebSocket client: one task reads your lines from stdin and
-- sends them while another prints whatever the server sends. Connects where
-- you point it (not run by the tests).
--
--   lurk examples/chat.lua wss://chat.example.com/room
local url = assert(arg[1], "usage: lurk examples/chat.lua ws[s]://host/path")
local conn = assert(ws.connect(url, { ping_interval = 20, ping_timeout = 10 }))
print("connected to " .. url .. (conn.tls and (" over " .. conn.tls.version .. (conn.tls.ktls and " (kTLS)" or "")) or ""))

local printer = lurk.spawn(function()
  for msg, kind in conn:messages() do
    print(kind == "text" and ("< " .. msg) or ("< [%d bytes of binary]"):format(#msg))
  end
  local _, err = conn:receive()
  print("connection ended: " .. tostring(err))
end)

-- lurk.lines() reads stdin through the ring: the printer keeps printing
-- while this task waits for your next line.
for line in lurk.lines() do
  if line == "/quit" then break end
  assert(conn:send(line))
end
conn:close(1000, "bye")
printer:join()
