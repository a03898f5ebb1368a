-- Certificate matrix: chains, names, dates and extensions, each judged by lurk, by curl (OpenSSL) and by what the case expects.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local GOOD = "good.example.test"
local ktls_required = os.getenv("LURK_KTLS") == "require"   -- as in user-mode-linux
local ktls_checked = 0

-- One case per row: its name, then what lurk must do with it ("accept" or
-- "refuse"). The server (tests/support/certserver.py, one openssl s_server
-- per case) presents PKI/<cert>.pem (cert: default the case's name) followed
-- by PKI/<chain>.pem (chain: default "int", the ordinary intermediate; false:
-- none), all from tests/support/pki.sh, whose root is the only CA either
-- client trusts. lurk connects to 127.0.0.1 with servername = name (default
-- GOOD); ip cases connect to that IP literal with no servername. server: more
-- s_server options. ca: the root both clients trust instead of root.pem.
-- msg: text lurk's refusal must contain. stricter: why lurk may refuse what
-- curl accepts; any other disagreement with curl fails.
local WEAK = "-cipher DEFAULT:@SECLEVEL=0"     -- lets s_server load a weak certificate
local cases = {
  { "good", "accept" },
  { "wildcard", "accept", name = "a.example.test" },
  { "ipv4", "accept", ip = "127.0.0.1" },
  { "ipv6", "accept", ip = "::1" },
  { "upper_host", "accept", cert = "good", name = "GOOD.EXAMPLE.TEST" },
  { "trailing_dot", "accept", cert = "good", name = GOOD .. "." },
  { "servername_ok", "accept", cert = "good",
    note = "servername option: connect to 127.0.0.1, verify " .. GOOD },
  { "int_eku_server", "accept", chain = "int.eku_server" },
  { "nc_permitted_crit", "accept", chain = "int.nc_permitted_crit" },
  { "nc_permitted_ip", "accept", chain = "int.nc_permitted_ip", ip = "127.0.0.1" },
  { "nc_permitted_noncrit", "accept", chain = "int.nc_permitted_noncrit" },
  { "rsa_pss_tls12", "accept", cert = "rsa2048", server = "-tls1_2" },
  { "rsa_tls13", "accept", cert = "rsa2048", server = "-tls1_3" },
  { "nc_root_permitted", "accept", ca = "nc_root", chain = false,
    note = "a trusted root with a critical nameConstraints" },

  { "expired_leaf", "refuse", msg = "expired" },
  { "future_leaf", "refuse", msg = "future" },
  { "expired_int", "refuse", chain = "int.expired" },
  { "future_int", "refuse", chain = "int.future" },
  { "wrong_host", "refuse" },
  { "wc_subsub", "refuse", cert = "wildcard", name = "a.b.example.test" },
  { "wc_apex", "refuse", cert = "wildcard", name = "example.test" },
  { "wc_partial", "refuse", name = "foo.example.test" },
  { "wc_tld", "refuse", name = "tld.test" },
  { "wc_star", "refuse" },
  { "ip_as_dns", "refuse", ip = "127.0.0.1" },
  { "cn_only", "refuse", msg = "has no subjectAltName", stricter = "RFC 9525: names in CN are not trusted" },
  { "cn_right_san_wrong", "refuse" },
  { "self_signed", "refuse", chain = false },
  { "unknown_root", "refuse", chain = "int.other" },
  { "missing_int", "refuse", cert = "good", chain = false },
  { "int_not_ca", "refuse", chain = "int.not_ca" },
  { "int_no_bc", "refuse", chain = "int.no_bc" },
  { "int_no_certsign", "refuse", chain = "int.no_certsign" },
  { "pathlen", "refuse", chain = "pathlen_chain" },
  { "leaf_eku_client", "refuse" },
  { "int_eku_email", "refuse", chain = "int.eku_email",
    msg = "may not issue server certificates (extendedKeyUsage: emailProtection)" },
  { "nc_excluded_noncrit", "refuse", chain = "int.nc_excluded_noncrit", msg = "nameConstraints" },
  { "nc_excluded_crit", "refuse", chain = "int.nc_excluded_crit", msg = "nameConstraints" },
  { "nc_excluded_many_sans", "refuse", chain = "int.nc_excluded_crit", msg = "nameConstraints",
    note = "the excluded name after 70 others" },
  { "nc_permitted_outside", "refuse", chain = "int.nc_permitted_crit", name = "good.other.test" },
  { "nc_permitted_noncrit_outside", "refuse", chain = "int.nc_permitted_noncrit", name = "good.other.test",
    msg = "outside the names permitted by the nameConstraints" },
  { "nc_excluded_ip", "refuse", chain = "int.nc_excluded_ip", ip = "127.0.0.1" },
  { "nc_root_outside", "refuse", ca = "nc_root", chain = false, name = "good.other.test", msg = "nameConstraints" },
  { "nc_dirname", "refuse", chain = "int.nc_dirname", msg = "directoryName",
    stricter = "nameConstraints on directoryName names, which lurk cannot evaluate, fail closed" },
  { "sha1", "refuse", server = WEAK },
  { "rsa1024", "refuse", server = WEAK },
  { "servername_mismatch", "refuse", cert = "good", name = "wrong.example.test" },
}

local dir = t.tmpdir()
local ROOT = dir .. "/pki/root.pem"
do
  local f = assert(io.open(dir .. "/servers.txt", "w"))
  for _, c in ipairs(cases) do
    local chain = c.chain == nil and "int" or c.chain or "-"
    f:write(("%s %s %s %s %s\n"):format(c[1], c.ip == "::1" and "::1" or "127.0.0.1", c.cert or c[1], chain, c.server or ""))
  end
  f:close()
end
t.server("certserver.py", dir, dir .. "/pki")
local P = dofile(dir .. "/ports.lua")

-- lurk: "accept", or "refuse" and the error; anything but a TLS refusal (the
-- server not reached, say) is returned as a problem.
local function lurk_verdict(c, port)
  local s, err = tcp.connect(c.ip or "127.0.0.1", port,
    { timeout = 10, tls = { cafile = c.ca and dir .. "/pki/" .. c.ca .. ".pem" or ROOT, servername = not c.ip and (c.name or GOOD) or nil } })
  if not s then
    if err.kind == "tls" and err.phase == "tls" then return "refuse", err.message end
    return "error", tostring(err), "lurk did not reach the server: " .. tostring(err)
  end
  local problem
  if ktls_required then
    ktls_checked = ktls_checked + 1
    if s.tls.ktls ~= true then problem = "kTLS required, but s.tls.ktls is " .. tostring(s.tls.ktls) end
  end
  local line
  if s:send("GET / HTTP/1.0\r\n\r\n") then line = s:receive("*l") end
  s:close()
  if not (line or ""):find("^HTTP/1%.0 200") then
    problem = "accepted, but no answer from s_server: " .. tostring(line)
  end
  return "accept", nil, problem
end

-- curl (OpenSSL): 0 accepts; 35 (TLS handshake) and 60 (certificate) refuse;
-- anything else (7: could not connect, 28: timeout) is a problem.
local function curl_verdict(c, port)
  local url, route
  if c.ip then
    url = ("https://%s:%d/"):format(c.ip:find(":") and "[" .. c.ip .. "]" or c.ip, port)
    route = ""
  else
    url = ("https://%s:%d/"):format(c.name or GOOD, port)
    route = ("--connect-to ::127.0.0.1:%d"):format(port)
  end
  local p = assert(io.popen(("curl -q -sS -o /dev/null --max-time 10 --noproxy '*' --cacert '%s' %s '%s' 2>&1; echo \"rc=$?\"")
    :format(c.ca and dir .. "/pki/" .. c.ca .. ".pem" or ROOT, route, url)))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  local msg = out:match("^curl: ([^\n]*)") or out:gsub("rc=%d+%s*$", ""):gsub("%s+$", "")
  if rc == 0 then return "accept" end
  if rc == 35 or rc == 60 then return "refuse", msg end
  return "error", msg, ("curl did not reach the server (exit %s): %s"):format(tostring(rc), msg)
end

local rows, problems = {}, {}
local function problem(c, text)
  problems[#problems + 1] = c[1] .. ": " .. text
end

for _, c in ipairs(cases) do
  local name, expect, port = c[1], c[2], P[c[1]]
  local row = { name, expect }
  rows[#rows + 1] = row
  if P.skipped[name] then
    print(("%s: SKIPPED: %s"):format(name, P.skipped[name]))
    row[3], row[4], row[5] = "skipped", "skipped", P.skipped[name]
  elseif not port then
    problem(c, "certserver.py started no server for it")
    row[3], row[4], row[5] = "-", "-", "no server"
  else
    -- curl first: it blocks this whole runtime, and s_server (which serves
    -- one connection at a time) would still be waiting on lurk's
    -- connection, whose close completes only when the loop runs again.
    local curl_v, curl_msg, curl_problem = curl_verdict(c, port)
    local lurk_v, lurk_msg, lurk_problem = lurk_verdict(c, port)
    local notes = {}
    if c.note then notes[#notes + 1] = c.note end
    if lurk_problem then problem(c, lurk_problem) end
    if curl_problem then problem(c, curl_problem) end
    if lurk_v == "accept" and curl_v == "refuse" then
      problem(c, "lurk accepts a certificate curl refuses (curl: " .. curl_msg .. ")")
    end
    if lurk_v ~= expect then
      problem(c, ("lurk: %s, expected: %s%s"):format(lurk_v, expect, lurk_msg and (" (" .. lurk_msg .. ")") or ""))
    end
    if expect == "accept" and curl_v == "refuse" then
      problem(c, "curl refuses a case marked valid: the fixture is broken (curl: " .. curl_msg .. ")")
    end
    if expect == "refuse" and lurk_v == "refuse" and curl_v == "accept" then
      if c.stricter then
        print(("%s: lurk refuses, curl accepts: deliberately stricter (%s)"):format(name, c.stricter))
        notes[#notes + 1] = "stricter than curl: " .. c.stricter
      else
        problem(c, "lurk refuses what curl accepts, and the case is not marked stricter (lurk: " .. lurk_msg .. ")")
      end
    end
    if lurk_v == "refuse" and c.msg and not lurk_msg:find(c.msg, 1, true) then
      problem(c, ("lurk's message lacks %q: %s"):format(c.msg, lurk_msg))
    end
    if lurk_msg then notes[#notes + 1] = "lurk: " .. lurk_msg:gsub("^TLS with %S+: ", "") end
    if curl_msg and curl_v ~= lurk_v then notes[#notes + 1] = "curl: " .. curl_msg end
    row[3], row[4], row[5] = lurk_v .. (lurk_v ~= expect and " !" or ""), curl_v, table.concat(notes, "; ")
  end
end

-- The table, then the problems (each also a failed check below).
do
  local w = { 4, 8, 4, 4 }
  local head = { "case", "expected", "lurk", "curl", "note" }
  for _, r in ipairs(rows) do
    for i = 1, 4 do w[i] = math.max(w[i], #r[i]) end
  end
  local function line(r)
    local cells = {}
    for i = 1, 4 do cells[i] = r[i] .. (" "):rep(w[i] - #r[i]) end
    return "| " .. table.concat(cells, " | ") .. " | " .. r[5]
  end
  print(line(head))
  print("|" .. ("-"):rep(w[1] + 2) .. "|" .. ("-"):rep(w[2] + 2) .. "|" .. ("-"):rep(w[3] + 2) .. "|" .. ("-"):rep(w[4] + 2) .. "|------")
  for _, r in ipairs(rows) do print(line(r)) end
  print(("%d cases, %d problems (lurk's verdict marked ! is not the expected one)%s"):format(#rows, #problems,
    ktls_required and (", kTLS checked on %d accepted connections"):format(ktls_checked) or ""))
  for _, p in ipairs(problems) do print("PROBLEM " .. p) end
end

for _, c in ipairs(cases) do t.ok(P[c[1]] or P.skipped[c[1]], c[1] .. ": has a server") end
for _, p in ipairs(problems) do t.ok(false, p) end
t.done()
