-- Fetch many URLs at once, at most N at a time, and report status, size and
-- time for each. Whatever URLs you pass are fetched: not run by the tests.
--
--   lurk examples/fetch_many.lua -n 8 https://example.com/ https://example.org/ ...
local limit, urls = 8, {}
local i = 1
while i <= #arg do
  if arg[i] == "-n" then limit = tonumber(arg[i + 1]); i = i + 2
  else urls[#urls + 1] = arg[i]; i = i + 1 end
end
if #urls == 0 then
  io.stderr:write("usage: lurk examples/fetch_many.lua [-n limit] URL...\n")
  os.exit(2)
end
local t0 = lurk.now()
local rows = lurk.map(urls, function(url)
  local res, err = http.get(url, { timeout = 15 })
  if not res then return ("%-5s %-50s %s"):format("ERR", url, err.kind .. ": " .. err.message) end
  return ("%-5d %-50s %8d bytes  %6.0f ms  %s"):format(res.status, url, #res.body, res.timings.total * 1e3,
    res.tls and (res.tls.version .. (res.tls.ktls and " kTLS" or "")) or "")
end, { concurrency = limit })
for _, row in ipairs(rows) do print(row) end
print(("%d URLs in %.2f s, %d at a time"):format(#urls, lurk.now() - t0, limit))
