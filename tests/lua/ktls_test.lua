-- kTLS: all six version x cipher pairs carried by the kernel (tls_stat must rise), data intact both ways, and each setsockopt failure falling back on the same connection.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local stats = t.tls_stat

local required = os.getenv("LURK_KTLS") == "require"
local before = stats()
if not before then
  if required then t.ok(false, "LURK_KTLS=require but /proc/net/tls_stat is missing: kTLS not loaded") end
  t.skip("this kernel has no kTLS (no /proc/net/tls_stat); this test runs inside user-mode-linux as uml.ktls")
end

local dir = os.getenv("LURK_TLS_DIR") or t.tmpdir()
local port = t.server("tlsserver.py", "echo", dir)
local ca = dir .. "/ca.pem"
local mib = tonumber(os.getenv("LURK_KTLS_MB") or "8")

local suites = {
  { "1.2", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256" },
  { "1.2", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384" },
  { "1.2", "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256" },
  { "1.3", "TLS1-3-AES-128-GCM-SHA256" },
  { "1.3", "TLS1-3-AES-256-GCM-SHA384" },
  { "1.3", "TLS1-3-CHACHA20-POLY1305-SHA256" },
}

-- Sends n MiB of a varied pattern while another task reads it back.
local function exchange(s, n)
  local parts = {}
  for i = 1, 64 do parts[i] = string.char(i, 255 - i, i * 3 % 256):rep(5462) .. "xy" end
  local block = table.concat(parts)            -- 1 MiB
  local reader = lurk.spawn(function() return s:receive(n * #block) end)
  for _ = 1, n do assert(s:send(block)) end
  local ok, back = reader:join()
  if not ok or not back then return false end
  return back == block:rep(n)
end

for _, c in ipairs(suites) do
  local name = "TLS " .. c[1] .. " " .. c[2]
  local s = t.ok(tcp.connect("localhost", port, {
    tls = { cafile = ca, min_version = c[1], max_version = c[1], ciphers = c[2], ktls = "require" } }))
  t.eq(s.tls.version, "TLSv" .. c[1], name)
  t.eq(s.tls.cipher, c[2], name)
  t.eq(s.tls.ktls, true, name .. ": " .. tostring(s.tls.fallback))
  t.ok(exchange(s, mib), name .. ": " .. mib .. " MiB both ways intact")
  s:close()
end

local after = stats()
t.ok(after.TlsTxSw >= before.TlsTxSw + #suites, ("TlsTxSw rose: %d -> %d"):format(before.TlsTxSw, after.TlsTxSw))
t.ok(after.TlsRxSw >= before.TlsRxSw + #suites, ("TlsRxSw rose: %d -> %d"):format(before.TlsRxSw, after.TlsRxSw))

-- Fault injection: make the ULP, TLS_RX or TLS_TX step fail (a test-only
-- switch read by src/tls/tls.c); the same connection carries on.
local child = [[
local port, ca, step = ...
local s = assert(tcp.connect("localhost", tonumber(port), { tls = { cafile = ca, ktls = "auto" } }))
local i = s.tls
local msg = ("payload "):rep(100000)
local r = lurk.spawn(function() return s:receive(#msg) end)
assert(s:send(msg))
local ok, back = r:join()
io.write(tostring(i.ktls_tx), " ", tostring(i.ktls_rx), " ", tostring(back == msg), " ", i.fallback or "", "\n")
s:close()
]]
local script = dir .. "/fault.lua"
local f = io.open(script, "w"); f:write(child); f:close()
local want = { ["1"] = "false false true", ["2"] = "true false true", ["3"] = "false true true" }
local why = { ["1"] = "tls ULP", ["2"] = "TLS_RX", ["3"] = "TLS_TX" }
for step = 1, 3 do
  local k = tostring(step)
  local out = io.popen(("LURK_KTLS_FAIL_STEP=%d %s %s %d %s 2>&1; echo EXIT $?"):format(step, t.lurk, script, port, ca)):read("*a")
  t.eq(out:sub(1, #want[k]), want[k], "step " .. k .. " fails: " .. out)
  t.ok(out:find(why[k], 1, true), "step " .. k .. " reason: " .. out)
  t.ok(out:find("\nEXIT 0\n$"), "step " .. k .. " exit status: " .. out)
end

-- With kTLS required, a failure at any step is an error of kind tls, and
-- the process ends cleanly (under ASan: nothing leaked).
for step = 1, 3 do
  local out = io.popen(("LURK_KTLS=require LURK_KTLS_FAIL_STEP=%d %s -e 'local s, e = tcp.connect(\"localhost\", %d, { tls = { cafile = %q } }) print(e and e.kind, e and e.message)' 2>&1; echo EXIT $?"):format(step, t.lurk, port, ca)):read("*a")
  t.ok(out:find("^tls"), "require + failed step " .. step .. ": " .. out)
  t.ok(out:find("kTLS required", 1, true) and out:find(why[tostring(step)], 1, true), out)
  t.ok(out:find("\nEXIT 0\n$"), "step " .. step .. " exit status: " .. out)
end

t.done()
