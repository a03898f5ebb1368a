-- The server's cost of http.file: serves an N MiB file K times to curl
-- (over TLS when given a certificate) and prints, per MiB sent, the
-- io_uring_enter calls and ring ops of this process and the splices, and
-- the process's CPU per GiB. Inside user-mode-linux (kTLS) this is the
-- "syscalls and copies per MiB" figure of README's performance section.
--   lurk bench/serve_file.lua MiB rounds [cert key ca]
local mib, rounds = tonumber(arg[1] or "64"), tonumber(arg[2] or "4")
local cert, key, ca = arg[3], arg[4], arg[5]
local P = debug.getregistry()["lurk.private"]   -- the splice totals (tests/lua/lib/t.lua does the same)
local dir = os.tmpname()
os.remove(dir)
local path = dir .. ".bin"
os.execute(("head -c %d /dev/urandom > %s"):format(mib * 1048576, path))
local info
local srv = assert(http.serve({ port = 0, tls = cert and { cert = cert, key = key } or nil },
  function(req) info = req.tls; return 200, {}, http.file(path) end))
local url = (cert and "https://localhost:" or "http://127.0.0.1:") .. srv.port .. "/f"

local function cpu()
  local f = io.open("/proc/self/stat")
  local s = f:read("*a")
  f:close()
  local fields = {}
  for v in s:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = v end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100    -- utime, stime (ticks)
end

local s0, b0, c0 = lurk.stats(), P.sendfile_stats()
local splices0 = select(2, P.sendfile_stats())
local t0 = cpu()
for _ = 1, rounds do
  local rcf = dir .. ".rc"
  os.execute(("(curl -q -sS --noproxy '*' -o /dev/null %s %s; echo $? > %s) &"):format(ca and ("--cacert " .. ca) or "", url, rcf))
  while true do
    local f = io.open(rcf)
    if f then
      local rc = f:read("*a"); f:close(); os.remove(rcf)
      assert(tonumber(rc) == 0, "curl failed")
      break
    end
    lurk.sleep(0.01)
  end
end
local t1, s1 = cpu(), lurk.stats()
local bytes, splices = P.sendfile_stats()
local total = mib * rounds
print(("http.file %s%s: %d MiB x %d: %.2f io_uring_enter and %.2f ring ops per MiB, %.2f splices per MiB, "
  .. "%.0f%% of bytes spliced; server CPU %.2f s per GiB (includes the poll loop waiting on curl)")
  :format(cert and "TLS" or "plain", info and (info.ktls_tx and " (kTLS TX)" or " (userspace TLS)") or "",
    mib, rounds, (s1.enters - s0.enters) / total, (s1.ops - s0.ops) / total, (splices - splices0) / total,
    (bytes - b0) / (total * 1048576) * 100, (t1 - t0) / (total / 1024)))
srv:close()
os.remove(path)
