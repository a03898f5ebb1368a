-- Subscribe to a public WebSocket feed and print messages as they arrive
-- (talks to the Internet; tests/lua/ws_lifecycle_test.lua runs it against a
-- local server, checking that it exits once done). The default feed is
-- Coinbase's public ticker; pass another URL and a subscription message to
-- follow something else.
--
--   lurk examples/ws_stream.lua [url [subscribe-json]]
local url = arg[1] or "wss://ws-feed.exchange.coinbase.com"
local subscribe = arg[2] or json.encode {
  type = "subscribe", product_ids = { "BTC-USD" }, channels = { "ticker" } }
local conn = assert(ws.connect(url, { ping_interval = 30 }))
assert(conn:send(subscribe))
local n = 0
for msg in conn:messages() do
  local ok, m = pcall(json.decode, msg)
  if ok and type(m) == "table" and m.price then
    print(("%s  %s  %s"):format(m.time or "", m.product_id or "", m.price))
  else
    print(msg:sub(1, 200))
  end
  n = n + 1
  if n == 20 then break end
end
conn:close()
