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
rm -f /tmp/lurk-cli.$$ /tmp/lurk-cli-$$.lua
echo "ok: cli"
