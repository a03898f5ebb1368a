#!/bin/sh
# An installed lurk stands alone: `cmake --install` into a scratch prefix, the
# source tree's .deps/ moved aside (put back on exit), then the installed lurk
# runs, a host builds with nothing but pkg-config (the lines docs/c-api.md
# gives, shared and static) and runs, and no installed file refers to the
# source tree (runpaths by readelf -d, text files by content).
# usage: install_test.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
# Runs alone (RUN_SERIAL): other tests use .deps/ while it is away.
set -e
build=$1
src=$(cd "$2" && pwd)
sanitize=${3:+-fsanitize=$3}             # an instrumented lurk needs an instrumented host
prefix=$(mktemp -d /tmp/lurk-install.XXXXXX)
deps=$src/.deps
aside=$src/.deps.moved-by-test
deps_real=$(readlink -f "$deps" 2>/dev/null || echo "$deps")
restore() {
    if [ -e "$aside" ] || [ -L "$aside" ]; then mv "$aside" "$deps"; fi
    rm -rf "$prefix"
}
trap restore EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null || fail "cmake --install"
lib=$(ls -d "$prefix"/lib*/ | head -1)
for f in bin/lurk include/lurk.h share/man/man1/lurk.1 share/doc/lurk/README.md share/doc/lurk/c-api.md; do
    [ -e "$prefix/$f" ] || fail "$f not installed"
done
for f in liblurk.a liblurk.so liblurk.so.0 pkgconfig/lurk.pc lua/5.1/lurk.so; do
    [ -e "$lib/$f" ] || ls "$lib"/*/"$f" >/dev/null 2>&1 || fail "$f not installed under $lib"
done

# From here on nothing of the source tree's libraries is reachable.
if [ -e "$deps" ] || [ -L "$deps" ]; then
    [ ! -e "$aside" ] || fail "$aside exists: a previous run did not finish; move it back to .deps"
    mv "$deps" "$aside"
fi

# Every installed ELF file: a runpath only relative to itself ($ORIGIN), and
# every library it needs found.
n=0
for f in $(find "$prefix" -type f); do
    [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    n=$((n + 1))
    readelf -d "$f" | sed -n 's/.*(\(RPATH\|RUNPATH\)).*\[\(.*\)\]/\2/p' | tr ':' '\n' | while read -r p; do
        case $p in '$ORIGIN'*) ;; *) fail "$f has the runpath $p" ;; esac
    done
    case $f in *.a) continue ;; esac
    ! ldd "$f" 2>&1 | grep 'not found' || fail "$f needs a library not installed"
    ! ldd "$f" | grep -i -e luajit -e mbed -e liburing -e llhttp || fail "$f links a library lurk bundles"
done
[ "$n" -ge 3 ] || fail "only $n ELF files installed"
for d in "$src" "$deps_real"; do
    ! grep -rlI -F "$d" "$prefix" || fail "these installed files name $d"
done

# The installed program, on its own good LuaJIT.
out=$("$prefix/bin/lurk" -e 'print(jit.version_num >= 20199, jit.version)') || fail "installed lurk: $out"
case $out in true*) ;; *) fail "installed lurk runs on an old LuaJIT: $out" ;; esac
"$prefix/bin/lurk" --version >/dev/null || fail "installed lurk --version"
if command -v man >/dev/null; then
    man -l "$prefix/share/man/man1/lurk.1" 2>/dev/null | grep -q "lurk" || fail "man -l lurk.1"
fi

# A host built with pkg-config alone, against the installed tree only.
export PKG_CONFIG_PATH="$lib/pkgconfig"
unset PKG_CONFIG_LIBDIR
[ "$(pkg-config --modversion lurk)" = "$(sed -n 's/^#define LURK_VERSION "\(.*\)"/\1/p' "$src/include/lurk.h")" ] \
    || fail "pkg-config --modversion lurk"
libdir=$(pkg-config --variable=libdir lurk)
cat >"$prefix/hello.lua" <<'LUA'
local lurk, json = require "lurk", require "lurk.json"
lurk.sleep(0.05)
local n = 0
for _ in pairs { a = 1, b = 2 } do n = n + 1 end
print(json.encode { installed = true, from = require("host").id(), good = jit.version_num >= 20199, n = n })
LUA
run_host() {
    out=$(LD_LIBRARY_PATH="$libdir" "$1" "$prefix/hello.lua") || fail "the $2 host failed: $out"
    echo "$out" | grep -q '"installed":true' || fail "the $2 host printed: $out"
    echo "$out" | grep -q '"good":true' || fail "the $2 host runs on an old LuaJIT: $out"
    ! readelf -d "$1" | grep -i -e luajit -e mbed -e uring || fail "the $2 host links a library lurk bundles"
}
# shellcheck disable=SC2046
cc $sanitize -o "$prefix/host" "$src/examples/embed/host.c" $(pkg-config --cflags --libs lurk) \
    || fail "cc host.c \$(pkg-config --cflags --libs lurk)"
run_host "$prefix/host" shared
if [ -z "$sanitize" ]; then
    # shellcheck disable=SC2046
    cc -o "$prefix/host-static" "$src/examples/embed/host.c" $(pkg-config --cflags lurk) \
        $(pkg-config --libs --static lurk | sed 's/-llurk/-l:liblurk.a/') \
        || fail "the static host does not build"
    ! readelf -d "$prefix/host-static" | grep -q 'liblurk' || fail "the static host needs liblurk.so"
    run_host "$prefix/host-static" static
fi

# The installed C module in a stock luajit: refused when that LuaJIT is old.
if [ -x /usr/bin/luajit ] && [ -z "$sanitize" ]; then
    cpath="$(dirname "$(find "$lib" -path '*lua/5.1/lurk.so')")/?.so"
    if [ "$(/usr/bin/luajit -e 'io.write(jit.version_num)')" -lt 20199 ]; then
        ! out=$(LUA_CPATH="$cpath" /usr/bin/luajit -e 'require "lurk"' 2>&1) || fail "old luajit loaded lurk: $out"
        echo "$out" | grep -q "issue 827" || fail "old luajit: $out"
        out=$(LURK_ALLOW_OLD_LUAJIT=1 LUA_CPATH="$cpath" /usr/bin/luajit \
              -e 'print(require("lurk").run(function() return 42 end))' 2>&1) || fail "LURK_ALLOW_OLD_LUAJIT=1: $out"
    else
        out=$(LUA_CPATH="$cpath" /usr/bin/luajit -e 'print(require("lurk").run(function() return 42 end))' 2>&1) \
            || fail "/usr/bin/luajit: $out"
    fi
    [ "$out" = 42 ] || fail "the installed lurk.so in /usr/bin/luajit printed: $out"
fi
echo "ok: $n ELF files without runpaths into the tree; lurk, a pkg-config host (shared and static) ran with .deps/ away"
