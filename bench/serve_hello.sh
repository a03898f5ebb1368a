#!/usr/bin/env bash
# Server CPU per request for "hello" under wrk -t1 -c64: lurk's http.serve
# (a Lua handler) vs Node's http module, interleaved, each round 5 s; the
# server's CPU from /proc/<pid>/stat (utime+stime of all its threads).
#   bench/serve_hello.sh [lurk] [rounds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
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
start() { # name cmd...: starts a server, sets pid and port
  "${@:2}" >"$out/$1.port" & pid=$!
  for _ in $(seq 100); do [ -s "$out/$1.port" ] && break; sleep 0.05; done
  port=$(head -1 "$out/$1.port")
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # name pid port
  local c0 c1 n
  c0=$(cpu "$2")
  n=$(wrk -t1 -c64 -d5s "http://127.0.0.1:$3/" | awk '/requests in/ {print $1}')
  c1=$(cpu "$2")
  python3 -c "import os; t=os.sysconf('SC_CLK_TCK'); print('%-5s %8d requests, %.2f us server CPU per request' % ('$1', $n, ($c1-$c0)/t/$n*1e6))"
}
start lurk "$lurk" "$out/hello.lua"; lpid=$pid; lport=$port
start node node "$out/hello.js"; npid=$pid; nport=$port
for _ in $(seq "$rounds"); do
  measure lurk "$lpid" "$lport"
  measure node "$npid" "$nport"
done
