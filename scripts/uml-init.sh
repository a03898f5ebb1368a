#!/bin/bash
# uml-init.sh: the init (PID 1) of the user-mode-linux guest started by uml-run.sh,
# and the guest's module loader.
#
# Do not run this by hand: scripts/uml-run.sh copies it into its state directory and
# boots linux.uml with init=<that copy>. Why this exists at all: the host kernel has no
# kernel TLS (CONFIG_TLS unset) and no way to add it, so the kTLS tests run inside
# Debian's user-mode-linux kernel (6.1, CONFIG_TLS=m), whose root filesystem is the
# host's own root mounted through hostfs: the guest sees the same files at the same
# paths, and anything it writes lands on the host.
#
# As PID 1 it:
#   - reads its orders from the host-side state directory named by the kernel command
#     line (unknown key=value parameters become init's environment): UML_RUN_STATE
#     holds argv (the command, NUL-separated) and cwd; UML_RUN_PRIVATE_TMP=1 asks for
#     a tmpfs on /tmp; UML_RUN_NOFILE is the caller's open-files limit;
#   - opens the result files (stdout, stderr, status) in that directory first, so they
#     stay reachable even when /tmp is then covered by a tmpfs;
#   - mounts /proc, /sys, /dev (devtmpfs; the kernel usually mounted it already),
#     /dev/pts, and tmpfs on /dev/shm and /run (the host's are not the guest's);
#   - loads the kTLS, AES-GCM/CCM, ChaCha20-Poly1305 and IPv6 modules (IPv6 is a module
#     in this kernel: without it there is no ::1) and brings `lo` up;
#   - runs the command as root in the caller's cwd with a clean environment
#     (PATH with /usr/bin ahead of any pyenv shims, HOME=/root, UML_RUN=1), stdin
#     /dev/null, stdout/stderr into the result files;
#   - writes the command's exit status to the status file, syncs, and powers the
#     machine off. linux.uml's own exit code says nothing about the command: the host
#     side reads the status file, and a missing one means the guest died.
#
# Module loading: the module tree lives at /usr/lib/uml/modules/<uname -r>, not at
# /lib/modules, so nothing finds it by itself, and the host may not even have kmod
# (insmod/modprobe/modinfo). So this script is its own small modprobe: it resolves
# dependencies from modules.dep and aliases from modules.alias, and loads each .ko with
# finit_module(2) through perl's syscall() (perl-base is Essential in Debian), or with
# insmod when kmod exists. The kernel's request_module() helper
# (/proc/sys/kernel/modprobe) is pointed at a copy of this script in /run, so
# on-demand loading (TCP_ULP "tls", "gcm(aes)", AF_INET6, ...) works too.
# Run as anything but PID 1, the script is that helper: `uml-init.sh [-q] [--] NAME...`
# loads modules or aliases by name.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

moddir=/usr/lib/uml/modules/$(uname -r)

# Modules loaded at boot, by name (deps are resolved from modules.dep; the crypto
# templates gcm, ctr, ghash and chacha20poly1305 are not symbol dependencies of tls,
# the crypto API looks them up at run time, hence the explicit list).
boot_modules=(ipv6 tls gf128mul ghash-generic ctr gcm ccm
              libchacha chacha_generic libpoly1305 poly1305_generic chacha20poly1305)

declare -A mod_done=()

say() { printf 'uml-init: %s\n' "$*" >&2; }

# Load one module file (path relative to $moddir) after its dependencies.
load_path() {
    local rel=$1 line dep name
    [ -z "${mod_done[$rel]:-}" ] || return 0
    mod_done[$rel]=1
    name=${rel##*/}; name=${name%%.ko*}; name=${name//-/_}
    [ ! -d "/sys/module/$name" ] || [ ! -e "/sys/module/$name/initstate" ] || return 0
    line=$(grep -m1 -F -- "$rel:" "$moddir/modules.dep") || true
    for dep in ${line#*:}; do
        load_path "$dep" || return 1
    done
    case $rel in
        *.ko) ;;
        *) say "$rel: compressed modules are not supported"; return 1 ;;
    esac
    if command -v insmod >/dev/null 2>&1; then
        local out
        out=$(insmod "$moddir/$rel" 2>&1) || case $out in
            *'File exists'*) ;;
            *) say "insmod $rel: $out"; return 1 ;;
        esac
    else
        # finit_module(fd, "", 0); 313 on x86_64, the only architecture UML runs on.
        perl -e 'my $none = ""; open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!\n";
                 syscall(313, fileno($f), $none, 0) == 0 or $!{EEXIST}
                     or die "finit_module $ARGV[0]: $!\n";' "$moddir/$rel" \
            || return 1
    fi
}

# Load a module by name or alias (as request_module() asks: "tcp-ulp-tls",
# "crypto-gcm", "net-pf-10", ...). Unknown names fail quietly, like modprobe -q.
load_name() {
    local want=$1 norm pat rel found=0 kw alias mod
    norm=${want//-/_}
    pat=${norm//_/[-_]}
    case $want in
        *[!A-Za-z0-9_-]*) ;;   # not a module name ("crypto-gcm(aes)"): aliases only
        *)
            # A module of that name (file names mix '-' and '_').
            rel=$(grep -m1 -E -- "(^|/)${pat}\.ko[^:]*:" "$moddir/modules.dep") || true
            if [ -n "$rel" ]; then
                load_path "${rel%%:*}"; return
            fi
            # Built in: nothing to do.
            if grep -qE -- "(^|/)${pat}\.ko\$" "$moddir/modules.builtin"; then
                return 0
            fi
            ;;
    esac
    # An alias (patterns are fnmatch globs, matched here with bash's [[ == ]]).
    while read -r kw alias mod; do
        [ "$kw" = alias ] || continue
        # shellcheck disable=SC2053  # $alias is a glob pattern on purpose
        if [[ $want == $alias ]]; then
            found=1
            load_name "$mod" || return 1
        fi
    done <"$moddir/modules.alias"
    [ "$found" = 1 ]
}

# --- request_module() helper mode (and manual use inside the guest) -------------
if [ "$$" != 1 ]; then
    quiet=0 rc=0
    while [ $# -gt 0 ]; do
        case $1 in
            -q) quiet=1 ;;
            --) shift; break ;;
            -*) ;;
            *) break ;;
        esac
        shift
    done
    for m in "$@"; do
        if [ "$quiet" = 1 ]; then load_name "$m" 2>/dev/null || rc=1
        else load_name "$m" || { say "cannot load $m"; rc=1; }
        fi
    done
    exit "$rc"
fi

# --- PID 1 ----------------------------------------------------------------------
power_off() {
    sync
    poweroff -f >/dev/null 2>&1
    echo o >/proc/sysrq-trigger 2>/dev/null
    # reboot(LINUX_REBOOT_MAGIC1, MAGIC2, LINUX_REBOOT_CMD_POWER_OFF)
    perl -e 'syscall(169, 0xfee1dead, 672274793, 0x4321fedc)'
    sleep 1000000   # PID 1 must never exit: that would be a kernel panic
}

state=${UML_RUN_STATE:-}
if [ -z "$state" ] || [ ! -d "$state" ]; then
    say "UML_RUN_STATE is not a directory: '$state' (run this through scripts/uml-run.sh)"
    power_off
fi

# Results first: these descriptors survive the mounts below.
exec 3>"$state/stdout" 4>"$state/stderr" 5>"$state/status"
# Our own diagnostics go with the command's stderr.
exec 2>&4 1>&4 </dev/null

mapfile -d '' -t argv <"$state/argv"
cwd=$(cat "$state/cwd")
[ -n "${UML_RUN_TRACE:-}" ] && { PS4='+ $(cat /proc/uptime) '; set -x; }

mnt() {   # mnt TYPE DIR [OPTIONS]: mount unless something is already there
    mountpoint -q "$2" 2>/dev/null && return 0
    mkdir -p "$2" 2>/dev/null
    mount -t "$1" ${3:+-o "$3"} "$1" "$2" || say "cannot mount $1 on $2"
}
mnt proc /proc
mnt sysfs /sys
mnt devtmpfs /dev mode=0755
mnt devpts /dev/pts gid=5,mode=620,ptmxmode=666
mnt tmpfs /dev/shm mode=1777
mnt tmpfs /run mode=0755
if [ "${UML_RUN_PRIVATE_TMP:-0}" = 1 ]; then
    mount -t tmpfs -o mode=1777 tmpfs /tmp || say "cannot mount tmpfs on /tmp"
fi

hostname uml 2>/dev/null || echo uml >/proc/sys/kernel/hostname

# The request_module() helper must outlive a tmpfs over /tmp: keep a copy in /run.
mkdir -p /run/uml-run
cp "$0" /run/uml-run/modprobe && chmod 755 /run/uml-run/modprobe &&
    echo /run/uml-run/modprobe >/proc/sys/kernel/modprobe

if [ -d "$moddir" ]; then
    for m in "${boot_modules[@]}"; do
        load_name "$m" || say "cannot load module $m"
    done
else
    say "no module tree at $moddir: kTLS and IPv6 are unavailable"
fi

ip link set lo up 2>/dev/null || say "cannot bring lo up"

nofile=${UML_RUN_NOFILE:-}
case $nofile in ''|*[!0-9]*) nofile=65536 ;; esac
ulimit -n "$nofile" 2>/dev/null || ulimit -n 65536 2>/dev/null
ulimit -c 0

set +x
rc=1
if ! cd -- "$cwd"; then
    say "cannot enter $cwd inside the guest"
elif [ ${#argv[@]} -eq 0 ]; then
    say "no command given"
else
    env -i PATH="$PATH" HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
        TERM=dumb LANG=C.UTF-8 UML_RUN=1 PWD="$cwd" \
        "${argv[@]}" </dev/null >&3 2>&4
    rc=$?
fi
printf '%s\n' "$rc" >&5
exec 3>&- 4>&- 5>&-
power_off
