-- lurk's record layer against openssl s_server: all six version x cipher pairs, records tampered with on the way (bad_record_mac, record_overflow), and the server's fatal alert. Runs in user-mode-linux too (uml.records), where the kernel must carry the same records.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = os.getenv("LURK_TLS_DIR") or t.tmpdir()
t.server("records.py", dir)
local R = dofile(dir .. "/records.lua")
local ca = dir .. "/ca.pem"
local ktls_required = os.getenv("LURK_KTLS") == "require"

local function get(port, pair)
  local s, err = tcp.connect("localhost", port, { tls = { cafile = ca, min_version = pair.version,
    max_version = pair.version, ciphers = pair.suite } })
  if not s then return nil, err end
  local info = s.tls
  assert(s:send("GET / HTTP/1.0\r\n\r\n"))
  local data, rerr = s:receive("*a")
  s:close()
  if not data then return nil, rerr, info end
  return data, info
end

local names = {}
for name in pairs(R) do names[#names + 1] = name end
table.sort(names)

for _, name in ipairs(names) do
  local pair = R[name]
  -- Straight to s_server, and through the proxy untouched.
  for _, via in ipairs { "direct", "clean" } do
    local body, info = get(pair[via], pair)
    t.ok(body, name .. " " .. via .. ": " .. tostring(info))
    t.ok(body:find("s_server", 1, true) and body:find("</HTML>", 1, true), name .. " " .. via .. " page whole")
    t.eq(info.version, "TLSv" .. pair.version, name)
    t.eq(info.cipher, pair.suite, name)
    t.eq(info.records, ktls_required and "kernel" or "lurk", name .. " records carried by: " .. tostring(info.fallback))
  end
  -- Tampered responses fail with kind tls, naming the alert.
  for _, mode in ipairs { "header", "nonce", "ciphertext", "tag", "truncate", "replay", "oversize" } do
    local want = mode == "oversize" and "record_overflow" or "bad_record_mac"
    local body, err = get(pair[mode], pair)
    t.fails("tls", body, err, name .. " " .. mode)
    t.ok(err.message:find(want, 1, true), name .. " " .. mode .. ": " .. err.message)
  end
  -- A fatal alert from the server (it could not authenticate lurk's
  -- tampered request) fails the read, naming the alert.
  local body, err = get(pair.client_tag, pair)
  t.fails("tls", body, err, name .. " server alert")
  t.ok(err.message:find("sent TLS alert bad_record_mac", 1, true), name .. " server alert: " .. err.message)
end

t.done()
