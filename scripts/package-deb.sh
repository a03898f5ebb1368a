#!/bin/sh
# Builds a Debian binary package, OUT/lurk_<version>_<arch>.deb.
#
#   scripts/package-deb.sh [OUT]          (OUT defaults to build/; `make package`)
#
# A separate tree, OUT/deb, is configured for the prefix /usr (so the libraries
# and the C module land in /usr/lib/<multiarch>, where Debian's luajit looks)
# without the tests, built, installed stripped into OUT/deb/root, given
# Debian's documentation files and control data, and packed with dpkg-deb.
# What lurk takes from .deps/ (LuaJIT, mbedTLS, and on Debian 12 liburing and
# llhttp) is linked in, so Depends, which dpkg-shlibdeps computes from the
# installed ELF files, names only the distribution's own packages (glibc,
# c-ares, zlib, libedit, libpsl). LURK_DEB_MAINTAINER overrides the
# Maintainer field.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$top/build}" && cd "${1:-$top/build}" && pwd)
tree=$out/deb
stage=$tree/root
maintainer=${LURK_DEB_MAINTAINER:-lurk maintainers <maintainers@lurk.invalid>}
version=$(sed -n 's/^#define LURK_VERSION "\(.*\)"/\1/p' "$top/include/lurk.h")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb=$out/lurk_${version}_${arch}.deb
log() { printf 'package-deb: %s\n' "$*" >&2; }

# Debian's compiler and linker flags, with every hardening feature.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
ldflags=$(dpkg-buildflags --get LDFLAGS)
cmake -S "$top" -B "$tree" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)" \
    -DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="$ldflags" \
    -DCMAKE_MODULE_LINKER_FLAGS="$ldflags" -DLURK_BUILD_TESTS=OFF -DLURK_WERROR=ON \
    >"$tree.log" 2>&1 &&
cmake --build "$tree" -j "${JOBS:-$(nproc)}" >>"$tree.log" 2>&1 ||
    { tail -n 30 "$tree.log" >&2; log "build failed (log: $tree.log)"; exit 1; }
rm -rf "$stage"
DESTDIR=$stage cmake --install "$tree" --strip >>"$tree.log" 2>&1 ||
    { tail -n 30 "$tree.log" >&2; log "install failed"; exit 1; }
[ -f "$stage/usr/lib/$multiarch/liblurk.so.0" ] || { log "not installed in /usr/lib/$multiarch"; exit 1; }
strip --strip-debug --remove-section=.comment --enable-deterministic-archives "$stage/usr/lib/$multiarch/liblurk.a"
for f in "$stage/usr/bin/lurk" "$stage/usr/lib/$multiarch/liblurk.so.$version" "$stage/usr/lib/$multiarch/lua/5.1/lurk.so"; do
    strip --remove-section=.comment --remove-section=.note "$f"
done

# What lintian reports and is so on purpose.
mkdir -p "$stage/usr/share/lintian/overrides"
cat >"$stage/usr/share/lintian/overrides/lurk" <<'EOF'
# mbedTLS 3.6 with lurk's patch (scripts/patches/mbedtls-3.6.patch: a TLS 1.2
# RSA-PSS fix and a certificate-extension hook), linked in: Debian 12's
# libmbedtls is 2.28, without TLS 1.3, and no release has the patch.
lurk: embedded-library mbedtls [usr/bin/lurk]
lurk: embedded-library mbedtls [usr/lib/*/liblurk.so.*]
lurk: embedded-library mbedtls [usr/lib/*/lua/5.1/lurk.so]
# One package on purpose (program, library, headers, C module), so that
# apt-get install ./lurk_*.deb gives everything; not a split for the archive.
lurk: package-name-doesnt-match-sonames liblurk0
lurk: link-to-shared-library-in-wrong-package usr/lib/*/liblurk.so.* [usr/lib/*/liblurk.so]
EOF

# Debian's documentation layout: a copyright file instead of LICENSE, a
# changelog, manuals compressed.
doc=$stage/usr/share/doc/lurk
{
    printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n'
    printf 'Upstream-Name: lurk\n\nFiles: *\nCopyright: 2026 The lurk authors\nLicense: Expat\n'
    sed -n '/^Permission/,$p' "$top/LICENSE" | sed -e 's/^$/./' -e 's/^/ /'
} >"$doc/copyright"
rm -f "$doc/LICENSE"
date=$(git -C "$top" log -1 --format=%cD 2>/dev/null || date -R)
printf 'lurk (%s) unstable; urgency=medium\n\n  * Built from the lurk source tree%s.\n\n -- %s  %s\n' \
    "$version" "$(git -C "$top" rev-parse --short HEAD 2>/dev/null | sed 's/^/ at /')" "$maintainer" "$date" |
    gzip -9n >"$doc/changelog.gz"
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
for f in "$doc"/*.md; do [ "$(wc -c <"$f")" -lt 4096 ] || gzip -9n "$f"; done

# Ownership and modes as Debian expects (shared libraries not executable).
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/usr/bin/lurk"

# Control data. dpkg-shlibdeps wants a debian/control to read.
mkdir -p "$stage/DEBIAN" "$tree/shlibdeps/debian"
printf 'Source: lurk\n\nPackage: lurk\nArchitecture: any\n' >"$tree/shlibdeps/debian/control"
depends=$(cd "$tree/shlibdeps" && dpkg-shlibdeps -O -e"$stage/usr/bin/lurk" \
    -e"$stage/usr/lib/$multiarch/liblurk.so.0" -e"$(find "$stage" -name lurk.so)" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { log "dpkg-shlibdeps found no dependencies"; exit 1; }
cat >"$stage/DEBIAN/control" <<EOF
Package: lurk
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Suggests: pkgconf | pkg-config, gcc | c-compiler
Section: net
Priority: optional
Description: Lua-scriptable networking runtime on io_uring and kernel TLS
 lurk runs Lua scripts whose HTTP, WebSocket and TCP calls read like plain
 sequential code: every call that would block submits io_uring operations
 and yields the calling coroutine, and TLS sessions are handed to the
 kernel (kTLS) after an mbedTLS handshake.
 .
 This package holds the lurk program (scripts and a REPL), the embedding
 library liblurk (shared and static, with lurk.h, lurk.pc and the LuaJIT
 headers matching the LuaJIT built into it), the C module for luajit
 (require "lurk"), the manual page and the documentation.
EOF
printf 'liblurk 0 lurk (>= %s)\n' "$version" >"$stage/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' >"$stage/DEBIAN/triggers"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN"/*
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
