#!/usr/bin/env bash
# Installs everything lurk needs to build, test and benchmark, idempotently.
#
# System packages come from the distribution. On Debian 12 two libraries are too
# old (liburing >= 2.5, llhttp 9): their Debian 13 binary packages are fetched
# with apt-get download against a private apt state directory (the system's apt
# sources are never touched) and unpacked into .deps/ in the source tree, which
# CMake then searches first.
#
# LuaJIT is built on every Debian release from Debian 13's source tarball, as a
# static PIC archive (with its headers and a luajit program) in .deps/luajit
# (about 20 seconds, once): lurk links it into the program and liblurk, so an
# installed lurk never depends on the LuaJIT of the machine. Debian 12's own
# LuaJIT (a 2022 snapshot) has JIT bugs that give wrong results (pairs() ending
# early once compiled, LuaJIT issue 827), and Debian 13's binary needs glibc 2.38.
#
# mbedTLS is built on every Debian release, from Debian 13's source package with
# lurk's patch (scripts/patches/mbedtls-3.6.patch: a TLS 1.2 RSA-PSS regression of
# 3.6.6, and a hook for certificate extensions such as a critical nameConstraints),
# as static PIC archives in .deps/mbedtls (about 40 seconds, once).
#
# Every source tarball is checked against the SHA-256 in Debian's signed Sources
# index. When everything is present the script only checks and exits, in well
# under a second.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps="$top/.deps"

log() { printf 'install-deps: %s\n' "$*" >&2; }

# The install and package tests run installed copies with .deps/ moved aside
# (tests/install_test.sh); put it back if one of them was killed meanwhile.
if [ ! -e "$deps" ] && [ ! -L "$deps" ] && { [ -e "$top/.deps.moved-by-test" ] || [ -L "$top/.deps.moved-by-test" ]; }; then
    log "restoring .deps/, moved aside by an interrupted test"
    mv "$top/.deps.moved-by-test" "$deps"
fi

. /etc/os-release
major=${VERSION_ID%%.*}

pkgs=(build-essential cmake pkg-config git patch bzip2 xz-utils
      libluajit-5.1-dev luajit libc-ares-dev nettle-dev zlib1g-dev libedit-dev libcmocka-dev libpsl-dev publicsuffix
      nginx-light openssl ca-certificates debian-archive-keyring curl dnsmasq-base
      python3 python3-websockets iproute2 wrk strace user-mode-linux python3-httpbin gunicorn tinyproxy microsocks
      nodejs npm clang libclang-rt-dev valgrind
      dpkg-dev lintian luarocks man-db)
if [ "${major:-0}" -ge 13 ] 2>/dev/null || [ "$ID" != debian ]; then
    pkgs+=(liburing-dev libllhttp-dev)
fi
if [ "$ID" != debian ]; then
    pkgs+=(libmbedtls-dev)            # unpatched: see the mbedTLS step below
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# Node may come from elsewhere (nodesource); only ask apt for it when absent.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"

if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { log "need root to install: ${missing[*]} (run with sudo)"; exit 1; }
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q update </dev/null >/dev/null
    apt-get -q -y install --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    # The nginx and tinyproxy packages may start system services; the tests
    # run their own, so stop the ones the install started.
    if systemctl is-active --quiet nginx 2>/dev/null; then systemctl stop nginx || true; fi
    if [ -s /run/nginx.pid ]; then kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
    if [ -s /run/tinyproxy/tinyproxy.pid ]; then kill "$(cat /run/tinyproxy/tinyproxy.pid)" 2>/dev/null || true; fi
fi

# Debian 12: Debian 13's builds of liburing 2.9 and llhttp 9.2. Every Debian:
# LuaJIT and mbedTLS built from Debian 13's source.
trixie_apt() {
    # apt-get or apt-cache against a private state directory that sees only
    # Debian 13's archive; $state must be set.
    local tool=$1; shift
    "$tool" -q -o "Dir::State=$state" -o "Dir::State::status=/var/lib/dpkg/status" \
        -o "Dir::Cache=$state/cache" -o "Dir::Etc::SourceList=$state/sources.list" \
        -o "Dir::Etc::SourceParts=/dev/null" -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}
trixie_state() {
    state=$(mktemp -d)
    trap 'rm -rf "$state"' EXIT
    mkdir -p "$state"/lists/partial "$state"/cache/archives/partial "$state"/debs "$state"/src
    local keys=/usr/share/keyrings/debian-archive-trixie-stable.gpg,/usr/share/keyrings/debian-archive-trixie-automatic.gpg
    if [ ! -f /usr/share/keyrings/debian-archive-trixie-stable.gpg ]; then
        log "Debian 13 archive keys missing: apt-get install debian-archive-keyring"; exit 1
    fi
    printf 'deb [signed-by=%s] http://deb.debian.org/debian trixie main\ndeb-src [signed-by=%s] http://deb.debian.org/debian trixie main\n' \
        "$keys" "$keys" >"$state/sources.list"
    trixie_apt apt-get update </dev/null >/dev/null
}
# trixie_source PACKAGE: downloads the upstream tarball of Debian 13's source
# package into $state/src, checked against the SHA-256 in the signed Sources
# index, unpacks it into $state/src/PACKAGE and prints the source directory.
trixie_source() {
    local dir file sum
    read -r dir file sum < <(trixie_apt apt-cache showsrc "$1" | awk '
        /^$/ && f { exit }
        /^Directory:/ { d = $2 }
        /^Checksums-Sha256:/ { c = 1; next }
        /^[^ ]/ { c = 0 }
        c && $3 ~ /\.orig\.tar\./ { f = $3; s = $1 }
        END { if (f) print d, f, s }') || true
    [ -n "${sum:-}" ] || { log "no $1 source in Debian 13's index"; exit 1; }
    /usr/lib/apt/apt-helper -q -o APT::Sandbox::User=root download-file "http://deb.debian.org/debian/$dir/$file" \
        "$state/src/$file" "SHA256:$sum" </dev/null >/dev/null
    log "building $1 from Debian 13's source ($file)"
    mkdir "$state/src/$1"
    tar -xf "$state/src/$file" -C "$state/src/$1"
    find "$state/src/$1" -mindepth 1 -maxdepth 1 -type d | head -n 1
}
state=
if [ "$ID" = debian ] && [ "${major:-0}" -lt 13 ] 2>/dev/null; then
    stamp="$deps/.stamp-trixie-4"
    if [ ! -f "$stamp" ]; then
        [ -n "$state" ] || trixie_state
        log "fetching liburing 2.9 and llhttp 9.2 from Debian 13 into .deps/"
        (cd "$state/debs" && trixie_apt apt-get download \
            liburing-dev liburing2 libllhttp-dev libllhttp9.2 </dev/null >/dev/null)
        rm -rf "$deps"; mkdir -p "$deps"
        for d in "$state"/debs/*.deb; do dpkg-deb -x "$d" "$deps"; done
        # Debian 13's liburing headers include <linux/blkdev.h>, which Debian 12's
        # kernel headers lack; liburing only needs this one constant from it.
        mkdir -p "$deps/compat/linux"
        cat >"$deps/compat/linux/blkdev.h" <<'H'
#ifndef LURK_COMPAT_LINUX_BLKDEV_H
#define LURK_COMPAT_LINUX_BLKDEV_H
#include <linux/ioctl.h>
#define BLOCK_URING_CMD_DISCARD _IO(0x12, 0)
#endif
H
        # The .pc files name /usr as their prefix; point them at .deps.
        for pc in $(find "$deps" -name '*.pc'); do
            sed -i -e "s|^prefix=.*|prefix=$deps/usr|" \
                   -E -e "s#^(libdir|includedir|exec_prefix)=/usr#\1=$deps/usr#" "$pc"
        done
        touch "$stamp"
    fi
fi

# LuaJIT from Debian 13's source: a static archive compiled with -fPIC (it goes
# into liblurk.so as well as the program), its headers, and a luajit program
# built on the same archive (lurk compiles lua/*.lua with it; the tests load
# lurk.so into it). No shared libluajit is built, so nothing can link one by
# accident. `luajit` exports the Lua API (-Wl,-E) for C modules, and finds its
# jit.* modules (luajit -b) through LUA_PATH, which CMake sets.
if [ "$ID" = debian ]; then
    stamp="$deps/.stamp-luajit-pic-1"
    if [ ! -f "$stamp" ]; then
        [ -n "$state" ] || trixie_state
        src=$(trixie_source luajit)     # into .deps/luajit
        rm -rf "$deps/luajit" "$deps"/.stamp-luajit-pic-*
        # Compiled for /usr as Debian's luajit is, so that the search paths
        # built into it (package.path, package.cpath) name the system's Lua
        # directories, never .deps/; installed under .deps/luajit.
        make -C "$src" -j"$(nproc)" PREFIX=/usr MULTILIB="lib/$(gcc -print-multiarch)" BUILDMODE=static CFLAGS=-fPIC \
            >"$state/luajit-build.log" 2>&1 &&
        make -C "$src" install PREFIX="$deps/luajit" BUILDMODE=static LDCONFIG=: >>"$state/luajit-build.log" 2>&1 ||
            { tail -n 30 "$state/luajit-build.log" >&2; log "LuaJIT build failed"; exit 1; }
        touch "$stamp"
    fi
fi

# mbedTLS from Debian 13's source with lurk's patch, static and PIC (it goes
# into liblurk.so and the C module), with Debian's configuration (threading
# on, as one runtime per thread needs) plus Everest's X25519. The stamp names
# the recipe's version and the patch's hash, so a change rebuilds it.
if [ "$ID" = debian ]; then
    patch_file="$top/scripts/patches/mbedtls-3.6.patch"
    stamp="$deps/.stamp-mbedtls-3-$(sha256sum "$patch_file" | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        [ -n "$state" ] || trixie_state
        src=$(trixie_source mbedtls)    # with lurk's patch, into .deps/mbedtls
        patch -d "$src" -p1 -s <"$patch_file" ||
            { log "lurk's mbedTLS patch does not apply to ${src##*/}: update scripts/patches/mbedtls-3.6.patch"; exit 1; }
        # Threading as Debian builds it; Everest's X25519 (formally verified,
        # Apache-2.0, shipped in mbedTLS's tarball): handshakes cost 0.70x
        # (TLS 1.2) and 0.81x (TLS 1.3) the CPU of mbedTLS's own X25519 here.
        # MBEDTLS_ECDSA_VERIFY_ALT: lurk verifies ECDSA signatures itself, with
        # nettle on the NIST curves (src/tls/ecdsa.c): a TLS 1.3 handshake with a
        # P-256 certificate spent 75% of its CPU in mbedTLS's two verifications.
        for opt in MBEDTLS_THREADING_C MBEDTLS_THREADING_PTHREAD MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED \
                   MBEDTLS_ECDSA_VERIFY_ALT; do
            python3 "$src/scripts/config.py" -f "$src/include/mbedtls/mbedtls_config.h" set "$opt"
        done
        rm -rf "$deps/mbedtls" "$deps"/.stamp-mbedtls-*
        cmake -S "$src" -B "$state/mbedtls-build" -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX="$deps/mbedtls" \
            -DCMAKE_INSTALL_LIBDIR=lib -DUSE_SHARED_MBEDTLS_LIBRARY=OFF -DUSE_STATIC_MBEDTLS_LIBRARY=ON \
            -DENABLE_PROGRAMS=OFF -DENABLE_TESTING=OFF -DGEN_FILES=OFF -DMBEDTLS_FATAL_WARNINGS=OFF \
            >"$state/mbedtls-build.log" 2>&1 &&
        cmake --build "$state/mbedtls-build" -j"$(nproc)" >>"$state/mbedtls-build.log" 2>&1 &&
        cmake --install "$state/mbedtls-build" >>"$state/mbedtls-build.log" 2>&1 ||
            { tail -n 30 "$state/mbedtls-build.log" >&2; log "mbedTLS build failed"; exit 1; }
        # Everest and libmbedcrypto call each other: one archive, so the
        # linker resolves them in any order (mbedcrypto.pc names only it).
        mkdir "$state/everest"
        (cd "$state/everest" && ar x "$deps/mbedtls/lib/libeverest.a" &&
            ar rs "$deps/mbedtls/lib/libmbedcrypto.a" ./*.o 2>/dev/null)
        rm -f "$deps/mbedtls/lib/libeverest.a" "$deps/mbedtls/lib/libp256m.a"
        touch "$stamp"
    fi
fi

# Test peers from the npm registry (the WebSocket server), kept in .deps/node.
if [ -f "$top/tests/support/package.json" ]; then
    if [ ! -d "$deps/node/node_modules/ws" ] || [ "$top/tests/support/package.json" -nt "$deps/node/.stamp" ]; then
        mkdir -p "$deps/node"
        cp "$top/tests/support/package.json" "$deps/node/"
        [ -f "$top/tests/support/package-lock.json" ] && cp "$top/tests/support/package-lock.json" "$deps/node/"
        log "installing npm test peers into .deps/node"
        (cd "$deps/node" && npm install --no-audit --no-fund --silent </dev/null >/dev/null)
        touch "$deps/node/.stamp"
    fi
fi
exit 0
