-- Cookie jar: repeated attributes, send order, public suffixes, limits, Secure, cookies.txt files (and curl reading and writing them), argument checks; through http.client against a loopback server and on the jar itself.
local t = dofile(arg[0]:match("(.*/)") .. "lib/t.lua")

local dir = t.tmpdir()
local port = t.server("cookieserver.py")
local base = "http://127.0.0.1:" .. port
-- Through the server as a proxy, any host name reaches it on loopback (the
-- request names the whole URL), so cookie domains are tested without DNS.
local proxy = base
local J = t.private().cookies

-- A URL table as the jar gets it from http.lua.
local function U(url)
  local scheme, host, target = url:match("^(%a+)://([^/]+)(.*)$")
  return { scheme = scheme, host = host, port = scheme == "https" and 443 or 80, target = target ~= "" and target or "/" }
end

-- The query that makes the server set these Set-Cookie values, in order.
local function sets(...)
  local q = {}
  for _, v in ipairs { ... } do q[#q + 1] = "c=" .. http.urlencode(v) end
  return "?" .. table.concat(q, "&")
end

local function names(list)
  local out = {}
  for _, c in ipairs(list) do out[#out + 1] = c.name end
  return table.concat(out, ",")
end

local function find(list, name)
  for _, c in ipairs(list) do if c.name == name then return c end end
end

-- A Cookie header's pairs in a set order, where the sender's order is its
-- own business (curl's).
local function sorted(header)
  local l = {}
  for pair in header:gmatch("[^;%s][^;]*") do l[#l + 1] = pair end
  table.sort(l)
  return table.concat(l, "; ")
end

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- 1. Repeated Domain and Path attributes: the last one decides; an empty or
-- relative Path means the default path.
do
  local c = http.client { proxy = proxy }
  t.ok(c:get("http://www.example.com/set" .. sets("a=1; Domain=other.org; Domain=example.com",
                                                  "b=2; Domain=example.com; Domain=other.org")))
  t.eq(t.ok(c:get("http://shop.example.com/")).body, "a=1", "an earlier non-matching Domain does not drop it")
  local a = find(c:cookies(), "a")
  t.eq(a.domain, "example.com"); t.eq(a.host_only, false)
  t.eq(find(c:cookies(), "b"), nil, "the last Domain refuses it")
  c:close()

  local jar = J.new_jar()
  jar:store(U "http://h.example/dir/page", { "p=1; Path=/a; Path=/b", "q=1; Path=/a; Path=", "r=1; Path=/a; Path=rel" })
  t.eq(find(jar:cookies(), "p").path, "/b", "the last Path")
  t.eq(find(jar:cookies(), "q").path, "/dir", "an empty Path resets to the default path")
  t.eq(find(jar:cookies(), "r").path, "/dir", "a Path not starting with / resets to the default path")
  t.eq(jar:header(U "http://h.example/dir/x"), "q=1; r=1")
end

-- 2. Equal-length paths are sent oldest first; a replaced cookie keeps its
-- creation time.
do
  local c = http.client { base_url = base }
  t.ok(c:get("/set?many=40&prefix=k"))
  local want = {}
  for i = 1, 40 do want[i] = "k" .. i .. "=v" end
  t.eq(t.ok(c:get("/")).body, table.concat(want, "; "), "in creation order")
  t.ok(c:get("/set" .. sets("k1=new", "deep=1; Path=/x")))
  want[1] = "k1=new"
  t.eq(t.ok(c:get("/")).body, table.concat(want, "; "), "k1 replaced in its place")
  t.eq(t.ok(c:get("/x/y")).body, "deep=1; " .. table.concat(want, "; "), "longer paths first")
  c:close()

  local jar = J.new_jar()
  local u = U "http://h.example/"
  jar:store(u, { "x=1", "y=2" })
  jar:store(u, { "x=3" })
  t.eq(jar:header(u), "x=3; y=2", "the replaced x is still older than y")
  jar:store(u, { "x=4; Max-Age=0", "x=5" })
  t.eq(jar:header(u), "y=2; x=5", "a deleted cookie set again is new")
end

-- 3. Public suffixes (libpsl): refused as a Domain, host-only when the host
-- is the suffix itself.
do
  local c = http.client { proxy = proxy }
  t.ok(c:get("http://www.example.co.uk/set" .. sets("s=1; Domain=co.uk", "ok=1; Domain=example.co.uk")))
  t.eq(t.ok(c:get("http://other.co.uk/")).body, "", "Domain=co.uk refused")
  t.eq(t.ok(c:get("http://shop.example.co.uk/")).body, "ok=1")
  t.ok(c:get("http://a.b.test/set" .. sets("s=1; Domain=test", "ok=1; Domain=b.test")))
  t.eq(t.ok(c:get("http://c.test/")).body, "", "Domain=test refused")
  t.eq(t.ok(c:get("http://x.b.test/")).body, "ok=1")
  t.eq(names(c:cookies()), "ok,ok")
  c:close()

  local P = t.private()
  t.eq(P.public_suffix("co.uk"), true); t.eq(P.public_suffix("com"), true)
  t.eq(P.public_suffix("test"), true, "unknown top-level names are suffixes ('*' rule)")
  t.eq(P.public_suffix("github.io"), true, "private-section entries too")
  t.eq(P.public_suffix("example.co.uk"), false)
  t.raises("string expected", P.public_suffix)

  local jar = J.new_jar()
  jar:store(U "http://me.github.io/", { "g=1; Domain=github.io" })
  jar:store(U "http://co.uk/", { "h=1; Domain=co.uk", "i=1; Domain=.CO.UK" })
  t.eq(names(jar:cookies()), "h,i", "the suffix as the host's own name")
  t.eq(jar:cookies()[1].host_only, true, "becomes host-only")
  t.eq(jar:header(U "http://co.uk/"), "h=1; i=1")
  t.eq(jar:header(U "http://www.co.uk/"), nil, "not sent to names under it")
end

-- 4. Limits: 50 per domain, 3000 in all, 4096 bytes a cookie; the oldest go.
do
  local c = http.client { base_url = base }
  t.ok(c:get("/set?many=99&prefix=a"))
  t.eq(#c:cookies(), 50, "99 cookies in one response keep 50")
  t.eq(c:cookies()[1].name, "a50", "the oldest were evicted")
  t.ok(c:get("/set?many=99&prefix=b"))
  t.eq(#c:cookies(), 50, "a second response does not grow the jar")
  t.eq(c:cookies()[1].name, "b50")
  t.ok(c:get("/set" .. sets("big=" .. ("x"):rep(4100), "fits=" .. ("y"):rep(4000))))
  t.eq(find(c:cookies(), "big"), nil, "a cookie over 4096 bytes is ignored")
  t.ok(find(c:cookies(), "fits"))
  c:close()
  local L = J.limits
  t.eq(L.per_domain, 50); t.eq(L.total, 3000); t.eq(L.line, 4096)
  local far = J.new_jar()
  far:store(U "http://h.example/", { "f=1; Max-Age=99999999999", "g=1; Expires=Fri, 01 Jan 9999 00:00:00 GMT" })
  for _, k in ipairs(far:cookies()) do
    t.ok(k.expires <= os.time() + 400 * 86400, k.name .. " expires within 400 days")
  end

  local jar = J.new_jar()
  for d = 1, 61 do
    local vals = {}
    for i = 1, 50 do vals[i] = ("c%d=%d"):format(i, d) end
    jar:store(U(("http://d%d.example/"):format(d)), vals)
  end
  local all = jar:cookies()
  t.eq(#all, 3000, "3000 in all")
  t.eq(all[1].domain, "d2.example", "the oldest domain's cookies went first")
  t.eq(jar:header(U "http://d1.example/"), nil)
end

-- 5. Secure cookies only from https, and plain http cannot overwrite or
-- shadow one.
do
  local c = http.client { base_url = base }
  t.ok(c:get("/set" .. sets("s=1; Secure", "plain=1")))
  t.eq(names(c:cookies()), "plain", "Secure refused over http")
  c:close()

  local jar = J.new_jar()
  jar:store(U "https://www.example.com/", { "s=1; Secure; Domain=example.com", "t=1; Secure" })
  jar:store(U "http://www.example.com/", { "s=2", "s=3; Domain=example.com", "s=4; Path=/sub", "t=2", "u=1" })
  t.eq(jar:header(U "https://www.example.com/sub"), "s=1; t=1; u=1", "the secure ones stay")
  t.eq(jar:header(U "http://www.example.com/"), "u=1")
  jar:store(U "https://www.example.com/", { "s=5; Domain=example.com" })
  t.eq(jar:header(U "http://a.example.com/"), "s=5", "https may replace it")
end

-- 6. cookies.txt: save, load, http.client{ cookies = path }, atomic writes,
-- errors of kind io, malformed lines skipped; curl reads and writes them.
do
  local file = dir .. "/jar.txt"
  local c = http.client { proxy = proxy }
  t.ok(c:get("http://www.example.com/dir/set" .. sets("sess=1", "dom=2; Domain=example.com; Path=/",
    "ho=3; HttpOnly; Max-Age=3600", "empty=")))
  t.eq(c:save_cookies(file), true)
  local text = readfile(file)
  t.ok(text:find("^# Netscape HTTP Cookie File\n"), text)
  t.ok(text:find("\nwww.example.com\tFALSE\t/dir\tFALSE\t0\tsess\t1\n", 1, true), text)
  t.ok(text:find("\n.example.com\tTRUE\t/\tFALSE\t0\tdom\t2\n", 1, true), text)
  t.ok(text:find("\n#HttpOnly_www.example.com\tFALSE\t/dir\tFALSE\t%d+\tho\t3\n"), text)
  t.ok(text:find("\nwww.example.com\tFALSE\t/dir\tFALSE\t0\tempty\t\n", 1, true), text)
  -- Written under another name and renamed: a hard link to the old file
  -- keeps the old contents, and no temporary file is left.
  os.execute(("ln %q %q"):format(file, file .. ".old"))
  t.ok(c:get("http://www.example.com/dir/set" .. sets("sess=changed")))
  t.eq(c:save_cookies(file), true)
  t.eq(readfile(file .. ".old"), text, "the old file was not written in place")
  t.ok(readfile(file):find("\tsess\tchanged\n", 1, true))
  local ls = io.popen("ls " .. dir):read("*a")
  t.eq(ls, "jar.txt\njar.txt.old\n", "no temporary file left")
  c:close()

  local d = t.ok(http.client { proxy = proxy, cookies = file })
  t.eq(names(d:cookies()), "sess,dom,ho,empty", "loaded in their order")
  local ho = find(d:cookies(), "ho")
  t.eq(ho.http_only, true); t.ok(ho.expires > os.time() + 3500)
  t.eq(t.ok(d:get("http://www.example.com/dir/x")).body, "sess=changed; ho=3; empty=; dom=2")
  t.eq(t.ok(d:get("http://other.example.com/dir/x")).body, "dom=2")
  d:close()

  -- Hand-written lines: comments, #HttpOnly_, a six-field line (empty
  -- value), and malformed or expired ones, which are skipped.
  local hand = dir .. "/hand.txt"
  writefile(hand, table.concat({
    "# a comment",
    "",
    "127.0.0.1\tFALSE\t/\tFALSE\t0\tgood\tyes",
    "#HttpOnly_127.0.0.1\tFALSE\t/\tTRUE\t0\thttponly\tyes",
    "127.0.0.1\tFALSE\t/\tFALSE\t0\tnovalue",
    "127.0.0.1\tFALSE\t/\t0\tfive",
    "127.0.0.1\tMAYBE\t/\tFALSE\t0\tbadflag\tx",
    "127.0.0.1\tFALSE\tnoslash\tFALSE\t0\tbadpath\tx",
    "127.0.0.1\tFALSE\t/\tFALSE\tsoon\tbadexpiry\tx",
    "127.0.0.1\tFALSE\t/\tFALSE\t1000\texpired\tx",
    "127.0.0.1\tFALSE\t/\tFALSE\t0\textra\tx\ty",
    "127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tlater\tz\r",
  }, "\n") .. "\n")
  local e = http.client { base_url = base }
  t.eq(e:load_cookies(hand), true)
  t.eq(names(e:cookies()), "good,httponly,novalue,later")
  t.eq(find(e:cookies(), "httponly").http_only, true)
  t.eq(find(e:cookies(), "httponly").secure, true)
  t.eq(find(e:cookies(), "later").expires, 4102444800)
  t.eq(t.ok(e:get("/")).body, "good=yes; novalue=; later=z")

  -- Errors: kind io, never raised.
  t.fails("io", e:load_cookies(dir .. "/missing.txt"))
  t.fails("io", e:load_cookies(dir))
  local err = t.fails("io", e:save_cookies(dir .. "/no/such/dir/jar.txt"))
  t.ok(tostring(err):find("no/such/dir/jar.txt", 1, true), tostring(err))
  t.fails("io", e:save_cookies(dir))
  e:close()
  local fresh = t.ok(http.client { cookies = dir .. "/not-yet.txt" })
  t.eq(#fresh:cookies(), 0, "a missing file is an empty jar")
  t.fails("io", http.client { cookies = dir })

  -- curl -c writes a file lurk loads; curl -b reads the file lurk saves.
  local cfile = dir .. "/curl.txt"
  local cmd = ("curl -s --noproxy '*' -c %q %q >/dev/null"):format(cfile,
    base .. "/set" .. sets("fromcurl=1", "hc=2; HttpOnly", "longlived=3; Max-Age=3600"))
  t.eq(os.execute(cmd), 0, cmd)
  t.ok(readfile(cfile):find("#HttpOnly_127.0.0.1", 1, true), "curl wrote an HttpOnly line")
  local f = t.ok(http.client { base_url = base, cookies = cfile })
  t.eq(sorted(t.ok(f:get("/")).body), "fromcurl=1; hc=2; longlived=3", "lurk sends what curl stored")
  t.ok(f:get("http://localhost:" .. port .. "/set" .. sets("lurk=4; Path=/p")))
  local lfile = dir .. "/lurk.txt"
  t.eq(f:save_cookies(lfile), true)
  f:close()
  local out = io.popen(("curl -s --noproxy '*' -b %q %q"):format(lfile, base .. "/")):read("*a")
  t.eq(sorted(out), "fromcurl=1; hc=2; longlived=3", "curl sends what lurk saved")
  out = io.popen(("curl -s --noproxy '*' -b %q %q"):format(lfile, "http://localhost:" .. port .. "/p/q")):read("*a")
  t.eq(out, "lurk=4")
  local g = http.client { proxy = proxy }
  t.ok(g:get("http://www.example.com/set" .. sets("wide=5; Domain=example.com")))
  t.eq(g:save_cookies(lfile), true)
  g:close()
  out = io.popen(("curl -s -x %q -b %q %q"):format(proxy, lfile, "http://deep.www.example.com/")):read("*a")
  t.eq(out, "wide=5", "curl honours lurk's include-subdomains")
end

-- 7. Argument checks name the function.
do
  local c = http.client {}
  t.raises("save_cookies: path must be a non%-empty string", c.save_cookies, c, 42)
  t.raises("save_cookies: path must be a non%-empty string", c.save_cookies, c)
  t.raises("load_cookies: path must be a non%-empty string", c.load_cookies, c, {})
  t.raises("save_cookies: call it as a method", c.save_cookies, "jar.txt")
  t.raises("load_cookies: this client keeps no cookies", function()
    local n = http.client { cookies = false }
    return n:load_cookies(dir .. "/jar.txt")
  end)
  t.raises("http.client: cookies must be a boolean or a cookies.txt path", http.client, { cookies = 1 })
  c:close()
end

t.done()
