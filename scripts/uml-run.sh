#!/usr/bin/env bash
# uml-run.sh: run one command as root inside a user-mode-linux (UML) guest that sees
# the host's root filesystem, and exit with that command's exit status.
#
#   scripts/uml-run.sh [options] [--] COMMAND [ARGS...]
#
#   --timeout SECS   kill the guest after SECS seconds (default 300; 0 = none);
#                    a killed guest makes the script exit 1
#   --mem SIZE       guest memory, as linux.uml's mem= takes it (default 1G)
#   --private-tmp    give the guest a fresh tmpfs on /tmp instead of the host's /tmp
#   --debug          trace the guest's init (on stderr) and show the UML console log
#   -h, --help       this text
#
# Why: the host kernel has no kernel TLS (CONFIG_TLS unset, and modules cannot be
# added to it), so the kTLS tests run under Debian's `user-mode-linux` package: a
# 6.1 Linux kernel built as an ordinary program (/usr/bin/linux.uml), CONFIG_TLS=m,
# with its modules in /usr/lib/uml/modules/<version>/. It boots in about a second
# with the host's / as its root over hostfs (root=/dev/root rootfstype=hostfs
# rootflags=/), so the build tree, python3, openssl, node, nginx are all there at the
# same paths. io_uring works inside. The guest has one CPU and no network but `lo`.
#
# How (see scripts/uml-init.sh, the guest's init, for the inside half):
#   - the command (NUL-separated argv) and the cwd go into a fresh state directory
#     under /tmp; its path reaches init as an environment variable, because the kernel
#     hands unknown key=value boot parameters to init as its environment;
#   - init runs the command with stdout/stderr going to files in that directory,
#     writes the exit status to a third, and powers off. linux.uml's own exit code
#     says nothing about the command, so this script reads the status file; no
#     status (guest crash, timeout) means exit 1 with a message;
#   - the guest console is discarded (con=null, quiet, loglevel=0) and linux.uml's own
#     output goes to a log that is shown only on failure, so the command's output
#     arrives clean: its stdout on stdout, its stderr on stderr, printed when the
#     command has finished (each stream in order, the two not interleaved);
#   - the command runs in the caller's cwd with a clean environment (PATH, HOME=/root,
#     UML_RUN=1); to pass variables use `uml-run.sh -- env VAR=value COMMAND`; stdin
#     is /dev/null; the caller's open-files limit is carried over;
#   - the guest's RAM is a file UML creates in $TMPDIR: /dev/shm when it has room for
#     it (a small /dev/shm, as in containers, would SIGBUS the guest), else /tmp;
#   - the guest's /proc, /sys, /dev, /dev/shm and /run are its own; /tmp is the
#     host's unless --private-tmp (so a cwd or files under /tmp work as on the host).
#
# Needs root? No more than linux.uml does: it runs as the calling user, and inside the
# guest the command is root. Works with no stdin (CI) and from any cwd.
set -euo pipefail

usage() { sed -n '2,/^# Why/{/^# Why/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf 'uml-run: %s\n' "$*" >&2; exit 2; }

timeout_s=300 mem=1G private_tmp=0 debug=0
while [ $# -gt 0 ]; do
    case $1 in
        --timeout) [ $# -ge 2 ] || die "--timeout needs a value"; timeout_s=$2; shift 2 ;;
        --timeout=*) timeout_s=${1#*=}; shift ;;
        --mem) [ $# -ge 2 ] || die "--mem needs a value"; mem=$2; shift 2 ;;
        --mem=*) mem=${1#*=}; shift ;;
        --private-tmp) private_tmp=1; shift ;;
        --debug) debug=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1 (try --help)" ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || die "no command given (usage: uml-run.sh [--timeout SECS] -- COMMAND [ARGS...])"
case $timeout_s in ''|*[!0-9]*) die "--timeout wants whole seconds, not '$timeout_s'" ;; esac
case $mem in [1-9]*[0-9KMGkmg]|[1-9]) ;; *) die "--mem wants a size like 1G or 512M" ;; esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -r "$here/uml-init.sh" ] || die "missing $here/uml-init.sh"

uml=${UML_LINUX:-}
if [ -z "$uml" ]; then
    uml=$(command -v linux.uml || true)
    [ -n "$uml" ] || [ ! -x /usr/bin/linux.uml ] || uml=/usr/bin/linux.uml
fi
if [ -z "$uml" ] || [ ! -x "$uml" ]; then
    die "linux.uml not found: install Debian's user-mode-linux package (scripts/install-deps.sh)"
fi

# The state directory must be reachable at the same path inside the guest before any
# guest mounts (and its path must survive the kernel command line): plain /tmp.
state=$(mktemp -d /tmp/uml-run.XXXXXXXX)
uml_pid=
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    [ -z "$uml_pid" ] || kill -- "$uml_pid" 2>/dev/null || true
    rm -rf -- "$state"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

install -m 0755 "$here/uml-init.sh" "$state/init"
printf '%s\0' "$@" >"$state/argv"
printf '%s' "$PWD" >"$state/cwd"
mkdir "$state/uml"

# Where UML puts the file backing guest RAM: /dev/shm if it has room, else /tmp.
mem_kb() {
    local n=${1%[KkMmGg]}
    case $1 in
        *[Kk]) echo "$n" ;; *[Mm]) echo $((n * 1024)) ;; *[Gg]) echo $((n * 1024 * 1024)) ;;
        *) echo $((n / 1024)) ;;
    esac
}
ramdir=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    avail=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }') || avail=
    if [ -n "$avail" ] && [ "$avail" -gt "$(( $(mem_kb "$mem") + 65536 ))" ]; then
        ramdir=/dev/shm
    fi
fi

kargs=(mem="$mem" root=/dev/root rootfstype=hostfs rootflags=/ rw
       init="$state/init" con=null ssl=null uml_dir="$state/uml" umid=run
       UML_RUN_STATE="$state" UML_RUN_PRIVATE_TMP="$private_tmp"
       UML_RUN_NOFILE="$(ulimit -n)")
if [ "$debug" = 0 ]; then
    kargs+=(quiet loglevel=0 con0=null)
else   # kernel messages into console.log (linux.uml's stdout), init traced
    kargs+=(con0=null,fd:1 UML_RUN_TRACE=1)
fi

start=$(date +%s)
# timeout(1) gives linux.uml a process group of its own and signals the whole group
# (UML's helper processes included); -k: SIGKILL if SIGTERM did not end it.
set +e
if [ "$timeout_s" -gt 0 ]; then
    TMPDIR=$ramdir timeout -k 5 "$timeout_s" "$uml" "${kargs[@]}" \
        </dev/null >"$state/console.log" 2>&1 &
else
    TMPDIR=$ramdir "$uml" "${kargs[@]}" </dev/null >"$state/console.log" 2>&1 &
fi
uml_pid=$!
wait "$uml_pid"
uml_rc=$?
uml_pid=
set -e

[ ! -s "$state/stdout" ] || cat -- "$state/stdout"
[ ! -s "$state/stderr" ] || cat -- "$state/stderr" >&2

status=
[ ! -s "$state/status" ] || status=$(tr -dc 0-9 <"$state/status")
if [ -n "$status" ] && [ "$debug" = 0 ]; then
    exit "$status"
fi

if [ -z "$status" ]; then
    elapsed=$(( $(date +%s) - start ))
    if [ "$timeout_s" -gt 0 ] && { [ "$uml_rc" = 124 ] || [ "$uml_rc" = 137 ]; }; then
        printf 'uml-run: timed out after %ss; guest killed (command: %s)\n' \
            "$timeout_s" "$*" >&2
    else
        printf 'uml-run: the guest ended after %ss without an exit status for the command (linux.uml exit code %s)\n' \
            "$elapsed" "$uml_rc" >&2
    fi
fi
if [ -s "$state/console.log" ]; then
    printf 'uml-run: UML console log:\n' >&2
    sed 's/^/  | /' "$state/console.log" >&2
fi
[ -z "$status" ] || exit "$status"
exit 1
