-- Keep-alive GETs of a small file from nginx: N requests from C tasks sharing
-- one client (one pooled connection per task). Prints requests/s and client
-- CPU per request, to set beside wrk -t1 -cC on the same URL. With
-- "headers", each request also reads a response header (which makes the
-- response's headers table: see lua/http.lua, ResponseMT).
-- usage: lurk bench/http_get.lua URL [N [C [headers]]]
local url, n, conc = arg[1], tonumber(arg[2]) or 100000, tonumber(arg[3]) or 64
local read_headers = arg[4] == "headers"
local c = http.client { max_per_host = conc }
assert(c:get(url)):expect(200)
local per = math.floor(n / conc)
local c0, t0, s0 = os.clock(), lurk.now(), lurk.stats()
local tasks = {}
for i = 1, conc do
  tasks[i] = lurk.spawn(function()
    for _ = 1, per do
      local res = assert(c:get(url)):expect(200)
      if read_headers then assert(res.headers["content-type"]) end
    end
  end)
end
for i, r in ipairs(lurk.wait(tasks)) do assert(r[1], ("task %d: %s"):format(i, tostring(r[2]))) end
local dt, total, s1 = lurk.now() - t0, per * conc, lurk.stats()
print(("lurk  %d GETs, %d tasks%s: %.0f req/s, %.2f us client CPU per request, %.2f io_uring_enter per request"):format(
  total, conc, read_headers and ", reading a header" or "", total / dt, (os.clock() - c0) / total * 1e6,
  (s1.enters - s0.enters) / total))
c:close()
