#!/usr/bin/env bash
# Runs lurk's Lua integration tests with the lurk program under valgrind's
# memcheck: any invalid read or write, bad free, or definite/indirect leak
# fails the test. Slow (valgrind runs code 20-50x slower), so optional:
# `make valgrind`, not part of `make test`.
#
# Uninitialised-value checks are off: valgrind does not see the kernel fill
# io_uring receive buffers (no syscall returns them), so every byte lurk
# receives would look uninitialised. AddressSanitizer and UBSan runs cover
# the rest (make test-asan).
#
#   scripts/valgrind.sh [BUILD_DIR] [test names...]    e.g. scripts/valgrind.sh build http ws
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
shift || true
tests=("$@")
# Suites whose timing checks hold at valgrind's speed.
[ ${#tests[@]} -gt 0 ] || tests=(json dns tcp tls http http_safety ws fault)

command -v valgrind >/dev/null || { echo "valgrind: not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
export LURK_SUPPORT=$top/tests/support
fails=0
for t in "${tests[@]}"; do
    log=$build/valgrind-$t.log
    start=$(date +%s)
    valgrind --quiet --error-exitcode=99 --undef-value-errors=no --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect \
        --log-file="$log" "$build/lurk" "$top/tests/lua/${t}_test.lua" >"$build/valgrind-$t.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ ! -s "$log" ]; then
        echo "valgrind: $t ok ($(( $(date +%s) - start )) s, no errors, no leaks)"
    else
        echo "valgrind: $t FAILED (exit $rc); see $log and $build/valgrind-$t.out" >&2
        fails=$((fails + 1))
    fi
done
exit $(( fails > 0 ))
