#!/bin/sh
# The LuaRocks rock: `luarocks --lua-version=5.1 make --tree=DIR` in the
# source tree (lurk-0.1.0-1.rockspec) builds and installs lurk.so; with
# `luarocks path`, a good luajit prints 42 from lurk.run, and a LuaJIT older
# than the 2023 rolling release is refused with the reason and the fix (Debian
# 12's /usr/bin/luajit when it is one, and always a good luajit whose jit
# table says it is old) unless LURK_ALLOW_OLD_LUAJIT=1.
# usage: rock_test.sh SOURCE_DIR LUAJIT
set -e
src=$(cd "$1" && pwd)
luajit=$2
tmp=$(mktemp -d /tmp/lurk-rock.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v luarocks >/dev/null || fail "luarocks missing: make deps installs it"

export HOME=$tmp                          # no user configuration of luarocks
(cd "$src" && luarocks --lua-version=5.1 make --tree="$tmp/tree" >"$tmp/log" 2>&1) ||
    { tail -n 30 "$tmp/log" >&2; fail "luarocks make"; }
[ -f "$tmp/tree/lib/lua/5.1/lurk.so" ] || fail "lurk.so not deployed in the tree"
eval "$(luarocks --lua-version=5.1 --tree="$tmp/tree" path)"
unset LURK_ALLOW_OLD_LUAJIT
code='print(require("lurk").run(function() return 42 end))'

out=$("$luajit" -e "$code" 2>&1) || fail "$luajit: $out"
[ "$out" = 42 ] || fail "$luajit printed: $out"

refused() {   # refused DESCRIPTION LUAJIT ARGS...
    what=$1; shift
    ! out=$("$@" 2>&1) || fail "$what loaded lurk: $out"
    echo "$out" | grep -q "known to miscompile.*issue 827.*lurk program.*2023 or later.*LURK_ALLOW_OLD_LUAJIT=1" ||
        fail "$what: unclear refusal: $out"
    out=$(LURK_ALLOW_OLD_LUAJIT=1 "$@" 2>&1) || fail "$what with LURK_ALLOW_OLD_LUAJIT=1: $out"
    [ "$out" = 42 ] || fail "$what with LURK_ALLOW_OLD_LUAJIT=1 printed: $out"
}
refused "a luajit saying it is 2.1.0-beta3" "$luajit" \
    -e 'jit.version, jit.version_num = "LuaJIT 2.1.0-beta3", 20100' -e "$code"
if [ -x /usr/bin/luajit ] && [ "$(/usr/bin/luajit -e 'io.write(jit.version_num)')" -lt 20199 ]; then
    refused "/usr/bin/luajit ($(/usr/bin/luajit -v | cut -d' ' -f1-2))" /usr/bin/luajit -e "$code"
fi
echo "ok: the rock builds; a good luajit runs it, an old one is refused"
