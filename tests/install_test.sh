#!/bin/sh
# `cmake --install` into a scratch prefix: the header, both libraries, lurk.pc,
# the C module and the man page land where users look for them, and a host
# program builds against the installed copy with nothing but pkg-config.
# usage: install_test.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
set -e
build=$1
src=$2
sanitize=${3:+-fsanitize=$3}             # an instrumented lurk needs an instrumented host
prefix=$(mktemp -d /tmp/lurk-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null || fail "cmake --install"
lib=$(ls -d "$prefix"/lib*/ | head -1)
for f in bin/lurk include/lurk.h share/man/man1/lurk.1; do
    [ -e "$prefix/$f" ] || fail "$f not installed"
done
for f in liblurk.a liblurk.so pkgconfig/lurk.pc lua/5.1/lurk.so; do
    [ -e "$lib/$f" ] || ls "$lib"/*/"$f" >/dev/null 2>&1 || fail "$f not installed under $lib"
done
pc=$(dirname "$(find "$prefix" -name lurk.pc | head -1)")
# lurk.pc requires luajit and, privately, the libraries in .deps on Debian 12.
export PKG_CONFIG_PATH="$pc:$src/.deps/usr/lib/x86_64-linux-gnu/pkgconfig:$src/.deps/usr/lib/pkgconfig:${PKG_CONFIG_PATH:-}"
[ "$(pkg-config --modversion lurk)" = "$(sed -n 's/^#define LURK_VERSION "\(.*\)"/\1/p' "$src/include/lurk.h")" ] \
    || fail "pkg-config --modversion lurk"
libdir=$(pkg-config --variable=libdir lurk)
# shellcheck disable=SC2046
cc $sanitize -o "$prefix/host" "$src/examples/embed/host.c" $(pkg-config --cflags --libs lurk) -lpthread \
    -Wl,-rpath,"$libdir" $(pkg-config --libs-only-L liburing libllhttp | sed 's/-L/-Wl,-rpath,/g') \
    || fail "the embedding example does not build against the installed lurk"
cat >"$prefix/hello.lua" <<'LUA'
local lurk, json = require "lurk", require "lurk.json"
lurk.sleep(0.05)
print(json.encode { installed = true, from = require("host").id() })
LUA
out=$("$prefix/host" "$prefix/hello.lua") || fail "the installed host failed: $out"
echo "$out" | grep -q '"installed":true' || fail "unexpected output: $out"
man -l "$prefix/share/man/man1/lurk.1" 2>/dev/null | grep -q "lurk" || command -v man >/dev/null || true
echo "ok: installed tree complete, host built with pkg-config and ran"
