-- A webhook receiver: checks GitHub's X-Hub-Signature-256 (HMAC-SHA256 of
-- the raw body with a shared secret), then acts on the event with an http
-- call: a push becomes a message POSTed to NOTIFY_URL (a chat's incoming
-- webhook, say). Run:
--   WEBHOOK_SECRET=s3cret NOTIFY_URL=https://chat.example/hook lurk examples/webhook.lua [port]
-- and point the sender at http://HOST:PORT/hook. Anything unsigned or
-- signed with another secret gets 401 and is not acted on.
-- LURK_EXAMPLE_ONCE=1: starts a stand-in for NOTIFY_URL on loopback, sends
-- itself two pushes with curl (one signed by openssl with the secret, one
-- with a wrong signature), checks the answers and what was forwarded, and
-- exits (for CI).
local once = os.getenv("LURK_EXAMPLE_ONCE")
local secret = os.getenv("WEBHOOK_SECRET") or (once and "s3cret") or error("set WEBHOOK_SECRET")
local notify_url = os.getenv("NOTIFY_URL")

local function verified(req)
  local sig = req.headers["x-hub-signature-256"]
  if type(sig) ~= "string" or not req.body then return false end
  -- lurk.equal: the comparison takes the same time wherever a forged
  -- signature first differs.
  return lurk.equal(sig, "sha256=" .. lurk.hmac_sha256(secret, req.body))
end

local srv = assert(http.serve({ host = "127.0.0.1", port = tonumber(arg and arg[1]) or 0, max_body = 1024 * 1024 },
  function(req)
    if req.path ~= "/hook" or req.method ~= "POST" then return 404, {}, "POST webhooks to /hook\n" end
    if not verified(req) then return 401, {}, { error = "bad or missing X-Hub-Signature-256" } end
    local event = req.headers["x-github-event"] or "unknown"
    local payload, err = req:json()
    if not payload then return 400, {}, { error = "the body is not JSON: " .. tostring(err) } end
    if event == "ping" then return 200, {}, { ok = true, pong = true } end
    if event ~= "push" then return 202, {}, { ok = true, ignored = event } end
    local text = ("%s pushed %d commit(s) to %s"):format(
      payload.pusher and payload.pusher.name or "someone", #(payload.commits or {}),
      payload.repository and payload.repository.full_name or "?")
    if notify_url then
      local res, nerr = http.post(notify_url, { json = { text = text }, timeout = 10 })
      if not res or res.status >= 300 then
        return 502, {}, { error = "could not notify: " .. tostring(nerr or res.status) }
      end
    end
    return 200, {}, { ok = true, forwarded = text }
  end))
print("webhooks on " .. srv.url .. "/hook")

if once then
  -- The stand-in for the chat service the pushes are forwarded to.
  local got = {}
  local chat = assert(http.serve({ port = 0 }, function(req)
    got[#got + 1] = assert(req:json()).text
    return 204
  end))
  notify_url = chat.url .. "/incoming"
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir) == 0)
  local body = '{"pusher":{"name":"ann"},"repository":{"full_name":"ann/lurk"},"commits":[{},{}]}'
  local f = assert(io.open(dir .. "/body.json", "wb"))
  f:write(body)
  f:close()
  -- curl in the background, polled: the server answering it runs on this
  -- same loop, so nothing here may block.
  local function post(sig_cmd, tag)
    os.execute(([[(sig=$(%s); curl -q -sS --noproxy '*' -o %s/%s.out -w '%%{http_code}' -H 'X-GitHub-Event: push' ]]
      .. [[-H "X-Hub-Signature-256: sha256=$sig" -H 'content-type: application/json' --data-binary @%s/body.json ]]
      .. [[%s/hook > %s/%s.code.tmp; mv %s/%s.code.tmp %s/%s.code) &]])
      :format(sig_cmd, dir, tag, dir, srv.url, dir, tag, dir, tag, dir, tag))
    for _ = 1, 2000 do
      local cf = io.open(dir .. "/" .. tag .. ".code")
      if cf then
        local code = cf:read("*a")
        cf:close()
        local of = io.open(dir .. "/" .. tag .. ".out")
        local out = of and of:read("*a") or ""
        if of then of:close() end
        return tonumber(code), out
      end
      lurk.sleep(0.01)
    end
  end
  local good = ("openssl dgst -sha256 -hmac %s %s/body.json | sed 's/.* //'"):format(secret, dir)
  local code, out = post(good, "good")
  print("signed with the secret:", code, out)
  assert(code == 200 and out:find("ann pushed 2 commit%(s%) to ann/lurk"), "the signed push was not accepted")
  code, out = post(("openssl dgst -sha256 -hmac wrong %s/body.json | sed 's/.* //'"):format(dir), "bad")
  print("signed with another secret:", code, out)
  assert(code == 401, "a wrong signature was accepted")
  assert(#got == 1 and got[1] == "ann pushed 2 commit(s) to ann/lurk", "forwarded: " .. #got)
  os.execute("rm -rf " .. dir)
  chat:close()
  srv:close()
end
