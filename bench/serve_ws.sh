#!/usr/bin/env bash
# WebSocket echo servers: lurk's ws.upgrade (a handler echoing each message)
# vs Node's most used server (npm ws, tests/support/wsserver.js /echo), both
# driven by the same client (bench/ws_echo.lua), interleaved rounds, 64 B
# text messages over 64 connections and over 1. Server CPU per message
# (echoed round trip) from /proc/<pid>/stat; medians and lurk's ratio.
#   bench/serve_ws.sh [lurk] [rounds] [messages]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lurk=${1:-$here/../build/lurk}
rounds=${2:-3}
n=${3:-100000}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
cat >"$out/echo.lua" <<'LUA'
local srv = assert(http.serve({ port = 0, idle_timeout = 600 }, function(req)
  local c = assert(ws.upgrade(req, { compress = false }))
  while true do
    local msg, kind = c:receive()
    if not msg then return end
    if kind == "binary" then c:send_binary(msg) else c:send(msg) end
  end
end))
print(srv.port)
io.stdout:flush()
LUA
"$lurk" "$out/echo.lua" >"$out/lurk.port" & lpid=$!
"$here/../tests/support/certs.sh" "$out/c" >/dev/null 2>&1
node "$here/../tests/support/wsserver.js" "$out/c" >"$out/node.port" & npid=$!
for _ in $(seq 200); do [ -s "$out/lurk.port" ] && [ -s "$out/node.port" ] && break; sleep 0.05; done
lurl="ws://127.0.0.1:$(head -1 "$out/lurk.port")/echo"
nurl="ws://127.0.0.1:$(awk '{print $2}' "$out/node.port")/echo"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # name pid url conns
  local c0 c1 msgs
  c0=$(cpu "$2")
  msgs=$("$lurk" "$here/ws_echo.lua" "$3" "$n" "$4" 64 | awk '{print $4}')
  c1=$(cpu "$2")
  python3 -c "import os; t=os.sysconf('SC_CLK_TCK'); print('%-5s ws echo server, %d conns: %d messages, %.2f us server CPU per message' % ('$1', $4, $msgs, ($c1-$c0)/t/$msgs*1e6))"
}
for conns in 64 1; do
  for _ in $(seq "$rounds"); do
    measure lurk "$lpid" "$lurl" "$conns"
    measure node "$npid" "$nurl" "$conns"
  done
done | tee "$out/rounds"
awk '/server CPU per message/ { k = $5; x[$1 " " k] = x[$1 " " k] " " $(NF - 5); ks[k] = 1 }
     function med(s,   a, n, i, j, t) { n = split(s, a, " ")
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { for (k in ks) { l = med(x["lurk " k]); j = med(x["node " k])
       printf "medians, %s connection(s): lurk %.2f us, node ws %.2f us per message: lurk %.2fx node\n", k, l, j, l / j } }' "$out/rounds"
