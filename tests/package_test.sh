#!/bin/sh
# The Debian package: scripts/package-deb.sh (what `make package` runs) builds
# lurk_<version>_<arch>.deb; dpkg-deb shows the files it must hold and a
# Depends naming only installed packages of the distribution; lintian finds no
# error or warning; unpacked into a scratch root with the source tree's .deps/
# moved aside (put back on exit), its lurk runs and a host builds with its
# lurk.pc and runs.
# usage: package_test.sh SOURCE_DIR
# Runs alone (RUN_SERIAL): other tests use .deps/ while it is away.
set -e
src=$(cd "$1" && pwd)
tmp=$(mktemp -d /tmp/lurk-package.XXXXXX)
deps=$src/.deps
aside=$src/.deps.moved-by-test
restore() {
    if [ -e "$aside" ] || [ -L "$aside" ]; then mv "$aside" "$deps"; fi
    rm -rf "$tmp"
}
trap restore EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in dpkg-deb dpkg-shlibdeps dpkg-architecture; do
    command -v $t >/dev/null || fail "$t missing: make deps installs dpkg-dev"
done

deb=$(JOBS=2 "$src/scripts/package-deb.sh" "$tmp") || fail "scripts/package-deb.sh"
version=$(sed -n 's/^#define LURK_VERSION "\(.*\)"/\1/p' "$src/include/lurk.h")
[ "$(basename "$deb")" = "lurk_${version}_$(dpkg --print-architecture).deb" ] || fail "named $deb"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

dpkg-deb -c "$deb" | awk '{ print $6 }' >"$tmp/files"
for f in ./usr/bin/lurk ./usr/include/lurk.h ./usr/include/lurk/luajit-2.1/lua.h \
         ./usr/lib/$ma/liblurk.so ./usr/lib/$ma/liblurk.so.0 ./usr/lib/$ma/liblurk.a \
         ./usr/lib/$ma/pkgconfig/lurk.pc ./usr/lib/$ma/lua/5.1/lurk.so \
         ./usr/share/man/man1/lurk.1.gz ./usr/share/doc/lurk/copyright ./usr/share/doc/lurk/changelog.gz \
         ./usr/share/doc/lurk/README.md.gz ./usr/share/doc/lurk/c-api.md.gz; do
    grep -qx "$f" "$tmp/files" || fail "$f not in the package"
done

# Depends: only packages of the distribution (dpkg-shlibdeps found them
# installed, from the archive), none for what lurk bundles.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for p in $(echo "$depends" | sed -e 's/([^)]*)//g' -e 's/[,|]/ /g'); do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || fail "Depends on $p, not an installed package"
    case $p in *luajit*|*mbed*|*uring*|*llhttp*|lurk*) fail "Depends on $p, which lurk bundles" ;; esac
done
echo "$depends" | grep -q libc6 || fail "Depends lacks libc6: $depends"

if command -v lintian >/dev/null; then
    lintian --tag-display-limit 0 "$deb" >"$tmp/lintian" 2>&1 || true
    cat "$tmp/lintian"
    ! grep -E '^(E|W): ' "$tmp/lintian" || fail "lintian reports errors or warnings"
else
    fail "lintian missing: make deps installs it"
fi

# Unpacked, with nothing of the source tree's libraries reachable.
dpkg-deb -x "$deb" "$tmp/root"
if [ -e "$deps" ] || [ -L "$deps" ]; then
    [ ! -e "$aside" ] || fail "$aside exists: a previous run did not finish; move it back to .deps"
    mv "$deps" "$aside"
fi
root=$tmp/root
out=$("$root/usr/bin/lurk" -e 'print(jit.version_num >= 20199, (require "lurk.json").encode{ 1 })') ||
    fail "the packaged lurk: $out"
[ "$out" = "true	[1]" ] || fail "the packaged lurk printed: $out"
if command -v man >/dev/null; then
    man -l "$root/usr/share/man/man1/lurk.1.gz" 2>/dev/null | grep -q lurk || fail "man -l lurk.1.gz"
fi
export PKG_CONFIG_PATH="$root/usr/lib/$ma/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/host" "$src/examples/embed/host.c" $(pkg-config --cflags --libs lurk) ||
    fail "cc host.c \$(pkg-config --cflags --libs lurk) against the package"
echo 'print(require("lurk.json").encode{ packaged = true, good = jit.version_num >= 20199 })' >"$tmp/hello.lua"
out=$(LD_LIBRARY_PATH="$root/usr/lib/$ma" "$tmp/host" "$tmp/hello.lua") || fail "the host: $out"
echo "$out" | grep -q '"good":true' || fail "the host printed: $out"
echo "ok: $(basename "$deb"), Depends: $depends"
