#!/bin/sh
# Command-line behaviour of the lurk program: exit codes, tracebacks, arg.
lurk=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$("$lurk" -e 'print(1 + 1)') || fail "-e exit status"
[ "$out" = 2 ] || fail "-e printed '$out'"
"$lurk" -e 'error("boom")' 2>/tmp/lurk-cli.$$ && fail "an error must exit 1"
grep -q 'boom' /tmp/lurk-cli.$$ || fail "error message missing"
grep -q 'stack traceback' /tmp/lurk-cli.$$ || fail "traceback missing"
out=$(echo 'print(select("#", ...), arg[0])' | "$lurk" -) || fail "stdin script"
[ "$out" = "0	nil" ] || [ "$out" = "0	-" ] || fail "stdin script printed '$out'"
printf 'print(arg[0], arg[1], arg[2], ...)\n' >/tmp/lurk-cli-$$.lua
out=$("$lurk" /tmp/lurk-cli-$$.lua a b) || fail "script exit status"
[ "$out" = "/tmp/lurk-cli-$$.lua	a	b	a	b" ] || fail "arg table: '$out'"
"$lurk" --version | grep -q '^lurk ' || fail "--version"
"$lurk" --version | grep -q '^kTLS: ' || fail "--version kTLS line"
"$lurk" --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option must exit 2"
"$lurk" -e 'syntax error here' 2>/dev/null && fail "syntax error must exit 1"
# Waiting forever on a channel nobody sends on is reported, not a hang.
"$lurk" -e 'lurk.channel():recv()' 2>/tmp/lurk-cli.$$ && fail "deadlock must exit 1"
grep -q 'deadlock' /tmp/lurk-cli.$$ || fail "deadlock not reported"
# An error in the main chunk ends the program even with tasks still sleeping.
start=$(date +%s)
"$lurk" -e 'lurk.spawn(lurk.sleep, 30); lurk.sleep(0.01); error("main failed")' 2>/dev/null && fail "main error must exit 1"
[ $(( $(date +%s) - start )) -lt 10 ] || fail "main error waited for other tasks"
# After the main chunk returns, lurk waits for the tasks it spawned.
out=$("$lurk" -e 'lurk.spawn(function() lurk.sleep(0.05); print("late task ran") end)') || fail "background task"
[ "$out" = "late task ran" ] || fail "background task output '$out'"
# A failing task that is not the main chunk is reported but does not fail the run.
"$lurk" -e 'lurk.spawn(function() error("side task") end)' 2>/tmp/lurk-cli.$$ || fail "side task error must not fail the run"
grep -q 'side task' /tmp/lurk-cli.$$ || fail "side task error not reported"
# The program ends while a task's file write is in flight (a download cut
# short by an error elsewhere): the runtime is torn down cleanly.
"$lurk" -e "local f = assert(debug.getregistry()['lurk.private'].open_write('/tmp/lurk-cli-$$.bin'))
    lurk.spawn(function() f:write(('x'):rep(64 * 1048576)) end)
    error('main failed')" 2>/tmp/lurk-cli.$$
rc=$?
[ $rc = 1 ] || fail "teardown with a file write in flight: exit $rc (want 1): $(tail -n 3 /tmp/lurk-cli.$$)"
grep -q 'main failed' /tmp/lurk-cli.$$ || fail "main error not reported"
# The test library: a test that dies of an error after starting a server
# ends at once (its servers are stopped), not when ctest's timeout kills it.
here=$(cd "$(dirname "$0")" && pwd)
printf 'package.path = "%s/lua/lib/?.lua;" .. package.path\nlocal t = require "t"\nt.server("rawhttp.py")\nerror("died with a server up")\n' "$here" >/tmp/lurk-cli-$$.lua
start=$(date +%s)
LURK_SUPPORT="$here/support" timeout 30 "$lurk" /tmp/lurk-cli-$$.lua 2>/dev/null
rc=$?
[ $rc = 1 ] || fail "a test dying with a server up: exit $rc (want 1; 124 is a hang)"
[ $(( $(date +%s) - start )) -lt 10 ] || fail "a test dying with a server up took too long"
rm -f /tmp/lurk-cli.$$ /tmp/lurk-cli-$$.lua /tmp/lurk-cli-$$.bin
echo "ok: cli"
