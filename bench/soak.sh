#!/usr/bin/env bash
# make soak: 100,000 HTTPS requests to nginx and 10,000 WebSocket
# connect/echo/close cycles against the npm ws server, all on loopback, while
# bench/soak.lua samples the client's RSS and open descriptors. Exits non-zero
# if either grows. Not part of `make test`: it takes minutes.
# usage: bench/soak.sh [N_HTTP [N_WS [CONC]]]   (LURK=path/to/lurk)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
support=$here/../tests/support
lurk=${LURK:-$here/../build/lurk}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

wait_for() { # file: wait until the server wrote its "PORT ..." line
  for _ in $(seq 200); do [ -s "$1" ] && return; sleep 0.05; done
  echo "soak: a server did not start ($1)" >&2
  exit 1
}

# nginx with the test certificates (its big file kept small: not used here).
LURK_BIG_MB=1 python3 "$support/tlsserver.py" nginx "$out/tls" >"$out/tlsport" &
wait_for "$out/tlsport"
https_url="https://localhost:$(awk '{print $2}' "$out/tlsport")/"

# The npm ws server, with the same certificates.
node "$support/wsserver.js" "$out/tls" >"$out/wsport" &
wait_for "$out/wsport"
wss_port=$(grep -o 'wss = [0-9]*' "$out/tls/ws-ports.lua" | awk '{print $3}')
ws_url="ws://127.0.0.1:$(awk '{print $2}' "$out/wsport")/echo"
wss_url="wss://localhost:$wss_port/echo"

echo "lurk: $lurk"
t0=$(date +%s)
status=0
"$lurk" "$here/soak.lua" "$https_url" "$out/tls/ca.pem" "$ws_url" "$wss_url" "${1:-100000}" "${2:-10000}" "${3:-32}" || status=$?
echo "soak: $(( $(date +%s) - t0 )) s in all"
exit $status
