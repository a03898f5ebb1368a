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
