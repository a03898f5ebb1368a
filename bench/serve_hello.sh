#!/usr/bin/env bash
# Server CPU per request for "hello" under wrk -t1 -c64: lurk's http.serve
# (a Lua handler) vs Node's http module and nginx serving a static 1 KiB file
# (one process: master_process off, one worker), interleaved, each round 5 s;
# the server's CPU from /proc/<pid>/stat (utime+stime of all its threads).
# Prints the medians and lurk's ratio to each peer.
#   bench/serve_hello.sh [lurk] [rounds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
lurk=${1:-$here/../build/lurk}
rounds=${2:-3}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
cat >"$out/hello.lua" <<'LUA'
local srv = assert(http.serve({ port = 0, idle_timeout = 600 }, function(req)
  return 200, { ["content-type"] = "text/plain" }, "hello"
end))
print(srv.port)
io.stdout:flush()
LUA
cat >"$out/hello.js" <<'JS'
const s = require("http").createServer((q, r) => { r.writeHead(200, { "content-type": "text/plain" }); r.end("hello"); });
s.listen(0, "127.0.0.1", () => console.log(s.address().port));
JS
mkdir -p "$out/ngx/www"
head -c 1024 /dev/urandom >"$out/ngx/www/1k"
nport=$(free_port)
start() { # name cmd...: starts a server, sets pid and port
  "${@:2}" >"$out/$1.port" & pid=$!
  for _ in $(seq 100); do [ -s "$out/$1.port" ] && break; sleep 0.05; done
  port=$(head -1 "$out/$1.port")
}
measure() { # name pid port
  local c0 c1 n
  c0=$(proc_cpu "$2")
  n=$(wrk -t1 -c64 -d5s "http://127.0.0.1:$3${4:-/}" | awk '/requests in/ {print $1}')
  c1=$(proc_cpu "$2")
  python3 -c "import os; t=os.sysconf('SC_CLK_TCK'); print('%-5s %8d requests, %.2f us server CPU per request' % ('$1', $n, ($c1-$c0)/t/$n*1e6))"
}
start lurk "$lurk" "$out/hello.lua"; lpid=$pid; lport=$port
start node node "$out/hello.js"; jpid=$pid; jport=$port
start_nginx "$out/ngx" "keepalive_requests 100000;" "listen 127.0.0.1:$nport; location / { root $out/ngx/www; }"
gpid=$nginx_pid
for _ in $(seq "$rounds"); do
  measure lurk "$lpid" "$lport"
  measure node "$jpid" "$jport"
  measure nginx "$gpid" "$nport" /1k
done | tee "$out/rounds"
awk '/server CPU/ { x[$1] = x[$1] " " $4 }
     function med(s,   a, n, i, j, t) { n = split(s, a, " ")
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { l = med(x["lurk"]); j = med(x["node"]); g = med(x["nginx"])
       printf "medians: lurk %.2f us, node %.2f us, nginx (static 1 KiB) %.2f us: lurk %.2fx node, %.2fx nginx\n", l, j, g, l / j, l / g }' "$out/rounds"
