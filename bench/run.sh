#!/usr/bin/env bash
# make bench: lurk's benchmarks, each printed next to a peer measured in the
# same run on the same loopback server. Figures from a shared machine mean
# something only side by side.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lurk=${LURK:-$here/../build/lurk}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

cc -O2 -o "$out/echo_server" "$here/echo_server.c"
"$out/echo_server" >"$out/port" &
for _ in $(seq 50); do [ -s "$out/port" ] && break; sleep 0.05; done
port=$(awk '{print $2}' "$out/port")

echo "== task switches"
"$lurk" "$here/sleep0.lua" 10000 100

echo "== TCP echo, 100,000 round trips of 64 bytes (server: epoll echo in C)"
for conns in 1 64; do
  for round in 1 2; do
    "$lurk" "$here/echo.lua" "$port" 100000 "$conns" 64
    if command -v node >/dev/null; then node "$here/echo_node.js" "$port" 100000 "$conns" 64; fi
  done
done

if command -v strace >/dev/null; then
  echo "== syscalls of the lurk client, 64 connections (strace -c -f)"
  strace -c -f -o "$out/strace" "$lurk" "$here/echo.lua" "$port" 100000 64 64 >/dev/null
  awk 'NR<=2 || /io_uring_enter|total/' "$out/strace"
fi

# ---- TLS (userspace: lurk's record layer on nettle; see README for kTLS) ----
cc -O2 -o "$out/aead_ceiling" "$here/aead_ceiling.c" $(pkg-config --cflags --libs nettle)
echo "== TLS: the crypto ceiling (nettle's AEADs, the ones lurk's record layer uses)"
"$out/aead_ceiling" | tee "$out/ceiling"

mb=${LURK_BENCH_MB:-256}
LURK_BIG_MB=$mb python3 "$here/../tests/support/tlsserver.py" nginx "$out/tls" >"$out/tlsport" &
for _ in $(seq 200); do [ -s "$out/tlsport" ] && break; sleep 0.05; done
tport=$(awk '{print $2}' "$out/tlsport")
ca="$out/tls/ca.pem"
cpu_of() { # command...: prints user+sys CPU seconds of the command
  python3 -c 'import resource,subprocess,sys; subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,check=True); r=resource.getrusage(resource.RUSAGE_CHILDREN); print("%.3f" % (r.ru_utime+r.ru_stime))' "$@"
}
echo "== TLS: ${mb} MiB download from nginx, client CPU per GiB (interleaved, 3 rounds, medians)"
for suite in TLS1-3-AES-128-GCM-SHA256 TLS1-3-AES-256-GCM-SHA384 TLS1-3-CHACHA20-POLY1305-SHA256; do
  curl_suite=$(echo "$suite" | sed 's/^TLS1-3-/TLS_/; s/-/_/g')
  for round in 1 2 3; do
    "$lurk" "$here/tls_download.lua" "$tport" "$ca" $((mb << 20)) 1 "$suite"
    c=$(cpu_of curl -s -o /dev/null --cacert "$ca" --tls13-ciphers "$curl_suite" "https://localhost:$tport/big.bin")
    python3 -c "print('curl  %s: %.2f s CPU per GiB' % ('$suite', $c / ($mb / 1024)))"
  done
done | tee "$out/download"
# Medians per suite: lurk over curl, and lurk over nettle's open ceiling.
awk 'FNR == NR { if ($1 == "nettle") ceil[$2] = $4; next }
     / s CPU per GiB/ { for (i = 1; i < NF; i++) if ($(i + 1) == "s" && $(i + 2) == "CPU") v = $i
       s = $0; sub(/.*TLS1-3-/, "", s); sub(/-SHA.*/, "", s); x[$1 " " s] = x[$1 " " s] " " v; suites[s] = 1 }
     function med(s,   a, n, i, j, t) { n = split(s, a, " ")
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { for (s in suites) { l = med(x["lurk " s]); c = med(x["curl " s])
       printf "medians %s: lurk %.2f s/GiB, curl %.2f s/GiB: %.2fx curl; nettle open ceiling %.2f s/GiB: lurk %.2fx it\n",
         s, l, c, l / c, ceil[s], l / ceil[s] } }' "$out/ceiling" "$out/download"

echo "== TLS: handshakes, full and resumed, one request each (interleaved with curl, ECDSA P-256)"
urls=$(for i in $(seq 200); do printf 'https://localhost:%s/ ' "$tport"; done)
for v in 1.3 1.2; do
  curl_v=$( [ $v = 1.3 ] && echo "--tlsv1.3" || echo "--tlsv1.2 --tls-max 1.2")
  for round in 1 2; do
    for mode in full resumed; do
      "$lurk" "$here/tls_handshakes.lua" "$tport" "$ca" 300 1 "$mode" "$v"
      sid=$( [ $mode = full ] && echo "--no-sessionid" || true)
      t0=$(date +%s.%N)
      # shellcheck disable=SC2086
      c=$(cpu_of curl -s $sid $curl_v -H 'Connection: close' --cacert "$ca" $urls)
      t1=$(date +%s.%N)
      python3 -c "print('curl  $mode handshakes (TLS $v, one process, 200 URLs): %.0f/s, %.3f ms CPU each' % (200 / ($t1 - $t0), $c / 200 * 1e3))"
    done
  done
done
if command -v openssl >/dev/null; then
  openssl s_time -connect "127.0.0.1:$tport" -new -time 3 2>/dev/null | grep -E 'connections in [0-9.]+s' | sed 's/^/openssl s_time: /' | head -1
fi

echo "== TLS: RSS per idle connection (200 held open), userspace records (kTLS: see README, user-mode-linux)"
"$lurk" "$here/tls_memory.lua" "$tport" "$ca" 200

# ---- HTTP keep-alive GETs vs wrk (plain HTTP: the runtime's own cost) ----
wrk_cpu() { # URL: wrk -t1 -c64 for 5 s; requests/s and client CPU per request, from one run
  command -v wrk >/dev/null || { echo "wrk not installed: no peer figure"; return; }
  python3 - "$1" <<'PY'
import re, resource, subprocess, sys
out = subprocess.run(["wrk", "-t1", "-c64", "-d5s", sys.argv[1]], capture_output=True, text=True, check=True).stdout
r = resource.getrusage(resource.RUSAGE_CHILDREN)
total = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
print("wrk   -t1 -c64, 5 s: %d GETs: %.0f req/s, %.2f us client CPU per request" % (total, rps, (r.ru_utime + r.ru_stime) / total * 1e6))
PY
}
python3 "$here/../tests/support/api.py" "$out/api" >"$out/apiport" &
for _ in $(seq 200); do [ -s "$out/apiport" ] && break; sleep 0.05; done
aport=$(awk '{print $2}' "$out/apiport")
url="http://127.0.0.1:$aport/static/1k"
echo "== HTTP: keep-alive GET of a 1 KiB file from nginx, 64 connections (interleaved)"
for round in 1 2 3; do
  "$lurk" "$here/http_get.lua" "$url" 100000 64
  "$lurk" "$here/http_get.lua" "$url" 100000 64 headers
  "$lurk" "$here/http_floor.lua" 127.0.0.1 "$aport" /static/1k 100000 64
  wrk_cpu "$url"
done | tee "$out/http"
# Medians over the rounds, and lurk's CPU per request over wrk's.
awk '/us client CPU/ { for (i = 1; i < NF; i++) if ($(i + 1) == "us") v = $i
       k = $1 ($0 ~ /reading a header/ ? "+headers" : ""); x[k] = x[k] " " v }
     function med(s,   a, n, i, j, t) { n = split(s, a, " ")
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { if (!("wrk" in x)) exit
       w = med(x["wrk"]); printf "medians: wrk %.2f us", w
       for (k in x) if (k != "wrk") printf ", %s %.2f us (%.2fx wrk)", k, med(x[k]), med(x[k]) / w
       print "" }' "$out/http"

echo "== HTTPS: keep-alive GET of a 1 KiB file from nginx, 64 connections (interleaved)"
ca_api="$out/api/ca.pem"
surl="https://localhost:$(grep -o 'https = [0-9]*' "$out/api/ports.lua" | awk '{print $3}')/static/1k"
for round in 1 2; do
  SSL_CERT_FILE="$ca_api" "$lurk" "$here/http_get.lua" "$surl" 50000 64
  wrk_cpu "$surl"
done

echo "== One HTTPS request per process, 20 runs each, interleaved (wall time, median)"
python3 - "$lurk" "$surl" "$ca_api" <<'PY'
import os, statistics, subprocess, sys, time
lurk, url, ca = sys.argv[1:4]
def once(cmd, env=None):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t
env = dict(os.environ, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
lt, ct, st = [], [], []
for _ in range(20):
    lt.append(once([lurk, "-e", "assert(https.get(%r, { tls = { cafile = %r } }))" % (url, ca)]))
    ct.append(once(["curl", "-s", "--cacert", ca, url]))
    st.append(once([lurk, "-e", "https.get(%r)" % url], env))
lu, cu, sysca = (statistics.median(x) * 1e3 for x in (lt, ct, st))
print("lurk -e 'https.get(URL)': %.1f ms   curl -s URL: %.1f ms   (same CA file): lurk %.2fx curl" % (lu, cu, lu / cu))
print("lurk with the whole system CA bundle parsed (then refused: the test CA is not in it): %.1f ms" % sysca)
PY

# Medians of lurk's and node's msg/s and CPU per message in FILE, and their ratios.
ws_medians() {
  awk '/msg\/s/ { for (i = 1; i < NF; i++) { if ($(i + 1) == "msg/s,") r[$1] = r[$1] " " $i; if ($(i + 1) == "us") c[$1] = c[$1] " " $i } }
       function med(s,   a, n, i, j, t) { n = split(s, a, " ")
         for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
         return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
       END { if (!("node" in r)) exit
         printf "medians: lurk %.0f msg/s, %.2f us CPU/msg; node %.0f msg/s, %.2f us CPU/msg; lurk %.2fx msg/s, %.2fx CPU\n",
           med(r["lurk"]), med(c["lurk"]), med(r["node"]), med(c["node"]), med(r["lurk"]) / med(r["node"]), med(c["lurk"]) / med(c["node"]) }' "$1"
}

# ---- WebSocket echo vs Node's ws client, against the npm ws server ----
mkdir -p "$out/ws"
"$here/../tests/support/certs.sh" "$out/ws"
node "$here/../tests/support/wsserver.js" "$out/ws" >"$out/wsport" &
for _ in $(seq 200); do [ -s "$out/wsport" ] && break; sleep 0.05; done
wurl="ws://127.0.0.1:$(awk '{print $2}' "$out/wsport")/echo"
echo "== WebSocket echo, 100,000 round trips of 64 bytes over 64 connections (server: npm ws on Node)"
for round in 1 2; do
  "$lurk" "$here/ws_echo.lua" "$wurl" 100000 64 64
  node "$here/ws_echo_node.js" "$wurl" 100000 64 64
done
wssurl="wss://localhost:$(grep -o 'wss = [0-9]*' "$out/ws/ws-ports.lua" | awk '{print $3}')/echo"
echo "== WSS echo, 32-byte text, one connection, sequential (server: npm ws on Node, TLS 1.3; lurk's record layer, no kTLS here; interleaved, 3 rounds, medians)"
for round in 1 2 3; do
  SSL_CERT_FILE="$out/ws/ca.pem" "$lurk" "$here/ws_echo.lua" "$wssurl" 20000 1 32
  NODE_EXTRA_CA_CERTS="$out/ws/ca.pem" node "$here/ws_echo_node.js" "$wssurl" 20000 1 32
done | tee "$out/wss1"
ws_medians "$out/wss1"

# ---- WebSocket echo vs Node's ws client, against a C server (the client isolated) ----
cc -O2 -o "$out/ws_echo_server" "$here/ws_echo_server.c" $(pkg-config --cflags --libs nettle)
"$out/ws_echo_server" >"$out/cwsport" &
for _ in $(seq 50); do [ -s "$out/cwsport" ] && break; sleep 0.05; done
curl_ws="ws://127.0.0.1:$(awk '{print $2}' "$out/cwsport")/echo"
for conns in 1 64; do
  echo "== WebSocket echo, 32-byte text, $conns connection(s) (server: epoll WebSocket echo in C; interleaved, 3 rounds, medians)"
  for round in 1 2 3; do
    "$lurk" "$here/ws_echo.lua" "$curl_ws" 50000 "$conns" 32
    node "$here/ws_echo_node.js" "$curl_ws" 50000 "$conns" 32
  done | tee "$out/cws$conns"
  ws_medians "$out/cws$conns"
done
# The same over TLS 1.3, ended by nginx in front of the C server.
mkdir -p "$out/wsp"
python3 "$here/../tests/support/tlsserver.py" wsproxy "$out/wsp" "$(awk '{print $2}' "$out/cwsport")" >"$out/wspport" &
for _ in $(seq 200); do [ -s "$out/wspport" ] && break; sleep 0.05; done
cwss="wss://localhost:$(awk '{print $2}' "$out/wspport")/echo"
for conns in 1 64; do
  echo "== WSS echo, 32-byte text, $conns connection(s) (server: the C echo behind nginx ending TLS 1.3; lurk's record layer, no kTLS here; interleaved, 3 rounds, medians)"
  for round in 1 2 3; do
    SSL_CERT_FILE="$out/wsp/ca.pem" "$lurk" "$here/ws_echo.lua" "$cwss" 20000 "$conns" 32
    NODE_EXTRA_CA_CERTS="$out/wsp/ca.pem" node "$here/ws_echo_node.js" "$cwss" 20000 "$conns" 32
  done | tee "$out/cwss$conns"
  ws_medians "$out/cwss$conns"
done

# ---- serving ----
echo "== http.serve: \"hello\" under wrk -t1 -c64, server CPU per request vs Node's http and nginx's static 1 KiB file (interleaved)"
"$here/serve_hello.sh" "$lurk" 3
echo "== http.file: splices, io_uring_enter per MiB, server CPU per GiB (plain, then userspace TLS)"
"$lurk" "$here/serve_file.lua" 64 4
"$here/../tests/support/certs.sh" "$out/scerts" >/dev/null 2>&1
"$lurk" "$here/serve_file.lua" 64 4 "$out/scerts/good.pem" "$out/scerts/good.key" "$out/scerts/ca.pem"
echo "== http.file: ${mb} MiB over HTTPS, lurk (userspace TLS) vs nginx, same certificate, curl, server CPU per GiB (interleaved)"
"$here/serve_https_file.sh" "$lurk" "$mb" 3
echo "== WebSocket echo server: lurk's ws.upgrade vs npm ws on Node, client bench/ws_echo.lua, server CPU per message (interleaved)"
"$here/serve_ws.sh" "$lurk" 3 100000
