-- Follow a server-sent events stream and print each event as it arrives;
-- Ctrl-C to stop. Connects wherever you point it: not run by the tests.
--
--   lurk examples/sse.lua https://stream.example.com/events
local url = assert(arg[1], "usage: lurk examples/sse.lua URL")
local res = assert(http.get(url, { stream = true, timeout = { connect = 10, read = 300, total = 15 },
  headers = { accept = "text/event-stream" } }))
assert(res:expect(200))
for ev in res:events() do
  print(("[%s]%s %s"):format(ev.event, ev.id and (" #" .. ev.id) or "", ev.data))
end
