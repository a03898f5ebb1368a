-- A chat server: every message a client sends over the WebSocket at /chat
-- goes to every connected client (the sender too), with join and leave
-- notices. Run: lurk examples/ws_broadcast.lua [port], then connect two
-- clients, e.g. `websocat ws://127.0.0.1:PORT/chat?name=ann`.
--
-- Each client has an outbox (a channel) and a writer task: the broadcast
-- only queues, so one slow reader never holds up the others; a client
-- whose outbox stays full (64 messages behind) is dropped.
-- LURK_EXAMPLE_ONCE=1: starts, runs three Node ws clients against itself
-- (tests/support/wschat.js), checks what they saw, and exits (for CI).
local clients = {}          -- conn -> { name, outbox }
local count = 0

local function broadcast(text)
  for c, cl in pairs(clients) do
    -- 0 s: queue now or never; a client that far behind is cut off.
    if not cl.outbox:send(text, 0) then c:close(1008, "too slow") end
  end
end

local srv = assert(http.serve({ host = "127.0.0.1", port = tonumber(arg and arg[1]) or 0 }, function(req)
  if req.path ~= "/chat" then return 404, {}, "connect a WebSocket to /chat?name=you\n" end
  local c, err = ws.upgrade(req, { max_message = 64 * 1024, ping_interval = 30 })
  if not c then return err.status or 400, {}, err.message end
  count = count + 1
  local name = (req.query.name or ""):gsub("[^%w_-]", "")
  if name == "" then name = "guest" .. count end
  local cl = { name = name, outbox = lurk.channel(64) }
  clients[c] = cl
  local writer = lurk.spawn(function()
    for text in cl.outbox do
      if not c:send(text) then break end
    end
  end)
  broadcast("* " .. name .. " joined")
  for msg, kind in c:messages() do
    if kind == "text" then broadcast(name .. ": " .. msg) end
  end
  clients[c] = nil
  cl.outbox:close()
  writer:join()
  broadcast("* " .. name .. " left")
end))
print("chat on ws://127.0.0.1:" .. srv.port .. "/chat")

if os.getenv("LURK_EXAMPLE_ONCE") then
  -- Three Node clients: each waits for all three to join, says one line,
  -- and must see all three lines (tests/support/wschat.js checks).
  local support = os.getenv("LURK_SUPPORT") or ((arg[0]:match("^(.*)/") or ".") .. "/../tests/support")
  local out = os.tmpname()
  os.execute(("(node %s/wschat.js ws://127.0.0.1:%d/chat 3 > %s 2>&1; echo \"rc=$?\" >> %s) &")
    :format(support, srv.port, out, out))
  local text
  for _ = 1, 2000 do
    lurk.sleep(0.01)
    local f = io.open(out)
    text = f:read("*a")
    f:close()
    if text:find("rc=%d+") then break end
  end
  os.remove(out)
  io.write(text)
  srv:close()
  assert(text:find("^OK 3 clients") and text:find("rc=0"), "the Node chat clients failed")
end
