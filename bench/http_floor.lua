-- The floor under http.get: keep-alive GETs as bare x:exchange calls (the
-- connection's parser: head prebuilt, response read and parsed in C, no
-- pool, options or response object), C tasks. What lurk's HTTP layer adds is http_get.lua minus this.
-- usage: lurk bench/http_floor.lua HOST PORT PATH [N [C]]
-- The bare exchange through lurk's internals (the private table of src/lua/runtime.c).
local P = debug.getregistry()["lurk.private"]
local host, port, path = arg[1], tonumber(arg[2]), arg[3]
local n, conc = tonumber(arg[4]) or 100000, tonumber(arg[5]) or 64
local req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: lurk\r\nAccept: */*\r\n\r\n"):format(path, host, port)
local per = math.floor(n / conc)
local c0, t0 = os.clock(), lurk.now()
local tasks = {}
for i = 1, conc do
  tasks[i] = lurk.spawn(function()
    local s, p
    for k = 0, per - 1 do
      if k % 500 == 0 then             -- nginx closes after keepalive_requests
        if s then s:close() end
        s, p = assert(tcp.connect(host, port)), P.parser(false)
      end
      p:reset(false)
      local status, err = p:exchange(s, req, false, 1048576, false, "whole")
      assert(status == 200, err)
    end
    s:close()
  end)
end
for i, r in ipairs(lurk.wait(tasks)) do assert(r[1], ("task %d: %s"):format(i, tostring(r[2]))) end
local total = per * conc
print(("floor %d bare exchanges, %d tasks: %.0f req/s, %.2f us client CPU per request"):format(
  total, conc, total / (lurk.now() - t0), (os.clock() - c0) / total * 1e6))
