#!/usr/bin/env bash
# Server CPU per GiB of a big file over HTTPS: lurk's http.file on its
# userspace TLS record layer (nettle) vs nginx (OpenSSL, userspace: no
# "Options KTLS") serving the same file with the same certificate, curl as
# the client, interleaved rounds, TLS 1.3 with the suite given (both servers
# see the same ClientHello). Server CPU from /proc/<pid>/stat.
#   bench/serve_https_file.sh [lurk] [MiB] [rounds] [curl's TLS 1.3 suite]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
lurk=${1:-$here/../build/lurk}
mib=${2:-256}
rounds=${3:-3}
suite=${4:-TLS_AES_128_GCM_SHA256}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
"$here/../tests/support/certs.sh" "$out/c" >/dev/null 2>&1
head -c $((mib << 20)) /dev/urandom >"$out/big.bin"
cat >"$out/serve.lua" <<'LUA'
local path, cert, key = arg[1], arg[2], arg[3]
local srv = assert(http.serve({ port = 0, tls = { cert = cert, key = key } }, function(req)
  if req.tls.ktls_tx then io.stderr:write("lurk: kTLS TX engaged; this figure is not userspace TLS\n") end
  return 200, {}, http.file(path)
end))
print(srv.port)
io.stdout:flush()
LUA
"$lurk" "$out/serve.lua" "$out/big.bin" "$out/c/good.pem" "$out/c/good.key" >"$out/lurk.port" & lpid=$!
for _ in $(seq 100); do [ -s "$out/lurk.port" ] && break; sleep 0.05; done
lport=$(head -1 "$out/lurk.port")
gport=$(free_port)
start_nginx "$out/ngx" "" "listen 127.0.0.1:$gport ssl;
    ssl_certificate $out/c/good.pem;
    ssl_certificate_key $out/c/good.key;
    ssl_protocols TLSv1.3;
    location = /big.bin { root $out; }"
gpid=$nginx_pid
measure() { # name pid port
  local c0 c1
  c0=$(proc_cpu "$2")
  curl -q -sS --noproxy '*' --cacert "$out/c/ca.pem" --tlsv1.3 --tls13-ciphers "$suite" -o /dev/null \
    "https://localhost:$3/big.bin"
  c1=$(proc_cpu "$2")
  python3 -c "import os; t=os.sysconf('SC_CLK_TCK'); print('%-5s %d MiB over HTTPS (%s): %.2f s server CPU per GiB' % ('$1', $mib, '$suite', ($c1-$c0)/t/($mib/1024)))"
}
for _ in $(seq "$rounds"); do
  measure lurk "$lpid" "$lport"
  measure nginx "$gpid" "$gport"
done | tee "$out/rounds"
awk '/server CPU per GiB/ { for (i = 1; i < NF; i++) if ($(i + 1) == "s" && $(i + 2) == "server") x[$1] = x[$1] " " $i }
     function med(s,   a, n, i, j, t) { n = split(s, a, " ")
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { l = med(x["lurk"]); g = med(x["nginx"])
       printf "medians: lurk %.2f s/GiB, nginx %.2f s/GiB: lurk %.2fx nginx\n", l, g, l / g }' "$out/rounds"
