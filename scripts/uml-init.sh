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
#     line (unknown key=value boot parameters become init's environment):
#     UML_RUN_STATE holds argv (the command, NUL-separated) and cwd;
#     UML_RUN_PRIVATE_TMP=1 asks for a tmpfs on /tmp; UML_RUN_NOFILE is the caller's
#     open-files limit; UML_RUN_TRACE=1 traces this script onto the command's stderr;
#   - opens the result files (stdout, stderr, status) in that directory first, so they
#     stay reachable even when /tmp is then covered by a tmpfs;
#   - mounts /proc, /sys, /dev (devtmpfs; the kernel usually mounted it already),
#     /dev/pts, and tmpfs on /dev/shm and /run (the host's are not the guest's);
#   - loads the kTLS, AES-GCM/CCM, ChaCha20-Poly1305 and IPv6 modules (IPv6 is a module
#     in this kernel: without it there is no ::1) and brings `lo` up;
#   - runs the command as root in the caller's cwd with a clean environment (PATH
#     with /usr/bin ahead of any pyenv shim, HOME=/root, UML_RUN=1), stdin /dev/null,
#     stdout/stderr into the result files;
#   - writes the command's exit status to the status file, syncs, and powers the
#     machine off. linux.uml's own exit code says nothing about the command: the host
#     side reads the status file, and a missing one means the guest died.
#
# Every program started inside UML costs ~50-100 ms (each fork/exec and each file the
# dynamic loader opens is a trip through ptrace and hostfs), so the whole setup is one
# perl program (perl-base is Essential in Debian): mount(2), finit_module(2) and the
# SIOCSIFFLAGS ioctl through perl's syscall()/ioctl(), instead of a dozen mount,
# insmod and ip runs. Boot to the command takes about 1.5 s that way.
#
# Module loading: the module tree lives at /usr/lib/uml/modules/<uname -r>, not at
# /lib/modules, so nothing finds it by itself (this is why module autoloading "does
# not work" in a stock UML), and the host need not have kmod (insmod/modprobe). The
# perl code is a small modprobe: dependencies from modules.dep, aliases from
# modules.alias, built-ins from modules.builtin. The kernel's request_module() helper
# (/proc/sys/kernel/modprobe) is pointed at a copy of this script in /run, so
# on-demand loading (TCP_ULP "tls", "gcm(aes)", AF_INET6, ...) works too. Run as
# anything but PID 1, this script is that helper: `uml-init.sh [-q] [--] NAME...`
# loads modules or aliases by name (inside the guest: /run/uml-run/modprobe NAME).

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# Modules loaded at boot, by name (dependencies come from modules.dep; the crypto
# templates gcm, ctr, ghash, ccm and chacha20poly1305 are not symbol dependencies of
# tls: the crypto API looks them up by name when a key is installed).
boot_modules=(ipv6 tls gf128mul ghash-generic ctr gcm ccm
              libchacha chacha_generic libpoly1305 poly1305_generic chacha20poly1305)

# The perl half. Modes: `setup SELF MODULE...` (PID 1's mounts, modules, lo) and
# `modprobe [-q] [--] NAME...`.
read -r -d '' perl_code <<'PERL'
use strict; use warnings;
my ($mode, @args) = @ARGV;
my $quiet = 0;
sub say { print STDERR "uml-init: @_\n" unless $quiet; }
sub slurp { my $f = shift; open(my $h, '<', $f) or return undef; local $/; my $s = <$h>; $s }
sub spew { my ($f, $s) = @_; open(my $h, '>', $f) or return 0; print $h $s; close($h) }

my $moddir;   # set by find_moddir() once /proc is there
sub find_moddir {
    my $release = slurp('/proc/sys/kernel/osrelease') // ''; chomp $release;
    $moddir = "/usr/lib/uml/modules/$release";
}
my (%dep, %byname, %builtin, @aliases, %done, $indexed);
sub modname { my $n = shift; $n =~ s{.*/}{}; $n =~ s/\.ko(\..*)?$//; $n =~ tr/-/_/; $n }
sub index_modules {
    return if $indexed++;
    open(my $d, '<', "$moddir/modules.dep") or do { say("no $moddir/modules.dep"); return };
    while (<$d>) {
        chomp; my ($p, $deps) = split /:\s*/, $_, 2; next unless defined $p && length $p;
        $dep{$p} = [split ' ', $deps // ''];
        $byname{modname($p)} = $p;
    }
    if (open(my $b, '<', "$moddir/modules.builtin")) { while (<$b>) { chomp; $builtin{modname($_)} = 1 } }
}
sub load_path {
    my $p = shift;
    return 1 if $done{$p}++;
    for my $d (@{$dep{$p} // []}) { load_path($d) or return 0 }
    my $n = modname($p);
    return 1 if -e "/sys/module/$n/initstate";
    if ($p !~ /\.ko$/) { say("$p: compressed modules are not supported"); return 0 }
    open(my $f, '<', "$moddir/$p") or do { say("$moddir/$p: $!"); return 0 };
    my $params = '';
    # finit_module(fd, params, flags): 313 on x86_64, the only arch UML runs on.
    return 1 if syscall(313, fileno($f), $params, 0) == 0 || $!{EEXIST};
    say("finit_module $p: $!");
    return 0;
}
sub glob_re {   # modules.alias patterns are fnmatch globs
    my $g = shift; my $re = '';
    while ($g =~ /\G(?:(\*)|(\?)|(\[[^\]]*\])|(.))/gs) {
        $re .= defined $1 ? '.*' : defined $2 ? '.' : defined $3 ? $3 : quotemeta($4);
    }
    qr/^$re$/s
}
sub load_name {
    my $want = shift; index_modules();
    my $n = $want; $n =~ tr/-/_/;
    return load_path($byname{$n}) if exists $byname{$n};
    return 1 if $builtin{$n};
    unless (@aliases) {
        if (open(my $a, '<', "$moddir/modules.alias")) {
            while (<$a>) { push @aliases, [$1, $2] if /^alias\s+(\S+)\s+(\S+)/ }
        }
    }
    my $found = 0;
    for my $al (@aliases) {
        next unless $al->[0] eq $want || ($al->[0] =~ /[*?\[]/ && $want =~ glob_re($al->[0]));
        $found = 1;
        load_name($al->[1]) or return 0;
    }
    say("no module or alias named $want") unless $found;
    return $found;
}

if ($mode eq 'modprobe') {
    find_moddir();
    my $rc = 0;
    while (@args && $args[0] =~ /^-/) { my $o = shift @args; $quiet = 1 if $o eq '-q'; last if $o eq '--' }
    for (@args) { load_name($_) or $rc = 1 }
    exit $rc;
}

# --- setup (PID 1) ---
my ($self, @boot) = @args;
my $code = slurp($self);   # now, before a tmpfs may cover it
my %mounted;
sub refresh_mounts { %mounted = map { (split ' ')[1] => 1 } split /\n/, (slurp('/proc/mounts') // '') }
sub mnt {
    my ($type, $dir, $opts) = @_;
    return 1 if $mounted{$dir};
    mkdir $dir unless -d $dir;
    my ($src, $flags, $data) = ($type, 0, $opts // '');
    # mount(source, target, type, flags, data): 165 on x86_64
    return 1 if syscall(165, $src, $dir, $type, $flags, $data) == 0;
    say("cannot mount $type on $dir: $!");
    return 0;
}
mnt('proc', '/proc');
refresh_mounts();
mnt('sysfs', '/sys');
mnt('devtmpfs', '/dev', 'mode=0755');
mnt('devpts', '/dev/pts', 'gid=5,mode=620,ptmxmode=666');
mnt('tmpfs', '/dev/shm', 'mode=1777');
mnt('tmpfs', '/run', 'mode=0755');
if (($ENV{UML_RUN_PRIVATE_TMP} // '0') eq '1') {
    delete $mounted{'/tmp'};
    mnt('tmpfs', '/tmp', 'mode=1777');
}
spew('/proc/sys/kernel/hostname', "uml\n");
find_moddir();

# The request_module() helper must outlive a tmpfs over /tmp: keep a copy in /run.
mkdir '/run/uml-run';
if (defined $code && spew('/run/uml-run/modprobe', $code) && chmod(0755, '/run/uml-run/modprobe')) {
    spew('/proc/sys/kernel/modprobe', "/run/uml-run/modprobe\n");
} else {
    say("cannot install the module helper: $!");
}

if (-d $moddir) {
    for (@boot) { load_name($_) or say("cannot load module $_") }
} else {
    say("no module tree at $moddir: kTLS and IPv6 are unavailable");
}

# ip link set lo up: SIOCGIFFLAGS / SIOCSIFFLAGS on a struct ifreq (40 bytes).
if (socket(my $s, 2, 2, 0)) {
    my $ifr = pack('a16 x24', 'lo');
    if (ioctl($s, 0x8913, $ifr)) {
        my $flags = unpack('x16 s', $ifr);
        $ifr = pack('a16 s x22', 'lo', $flags | 1);
        ioctl($s, 0x8914, $ifr) or say("cannot bring lo up: $!");
    } else { say("no lo: $!") }
} else { say("socket: $!") }
exit 0;
PERL

# --- request_module() helper mode (and manual use inside the guest) -------------
if [ "$$" != 1 ]; then
    exec perl -e "$perl_code" modprobe "$@"
fi

# --- PID 1 ----------------------------------------------------------------------
power_off() {
    sync
    # sysrq "o" powers off without another program; poweroff -f is the fallback.
    echo o >/proc/sysrq-trigger 2>/dev/null
    sleep 5
    poweroff -f >/dev/null 2>&1
    while :; do sleep 1000; done   # PID 1 must never exit: that is a kernel panic
}

state=${UML_RUN_STATE:-}
if [ -z "$state" ] || [ ! -d "$state" ]; then
    echo "uml-init: UML_RUN_STATE is not a directory: '$state' (run this through scripts/uml-run.sh)" >&2
    power_off
fi

# Results first: these descriptors survive the mounts below. Our own diagnostics go
# with the command's stderr.
exec 3>"$state/stdout" 4>"$state/stderr" 5>"$state/status"
exec 1>&4 2>&4 </dev/null
if [ "${UML_RUN_TRACE:-0}" = 1 ]; then
    PS4='+ uml-init: '
    set -x
fi

mapfile -d '' -t argv <"$state/argv"
IFS= read -r -d '' cwd <"$state/cwd"

perl -e "$perl_code" setup "$0" "${boot_modules[@]}"

nofile=${UML_RUN_NOFILE:-}
case $nofile in ''|*[!0-9]*) nofile=65536 ;; esac
ulimit -n "$nofile" 2>/dev/null || ulimit -n 65536 2>/dev/null
ulimit -c 0

rc=1
if ! cd -- "$cwd"; then
    echo "uml-init: cannot enter $cwd inside the guest" >&2
elif [ ${#argv[@]} -eq 0 ]; then
    echo "uml-init: no command given" >&2
else
    # A clean environment without running env(1): unexport whatever the kernel and
    # bash put in ours, in a subshell.
    (
        for v in $(compgen -e); do export -n "${v?}"; done
        export PATH HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \
            LANG=C.UTF-8 UML_RUN=1 PWD="$cwd"
        set +x
        command -v -- "${argv[0]}" >/dev/null ||
            { echo "uml-run: ${argv[0]}: command not found (inside the guest)" >&2; exit 127; }
        exec "${argv[@]}"
    ) </dev/null >&3 2>&4
    rc=$?
fi
printf '%s\n' "$rc" >&5
exec 3>&- 4>&- 5>&-
power_off
