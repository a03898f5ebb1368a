#!/usr/bin/env python3
"""Runs dnsmasq as a loopback DNS server for lurk's DNS tests.

usage: dns.py   (prints "PORT <n> PID <pid>")

dnsmasq answers only from its command line (no /etc/hosts, no upstream):
  ok.lurk.test       A 127.0.0.1
  v6.lurk.test       AAAA ::1
  both.lurk.test     A 127.0.0.1 and AAAA ::1
every other name is NXDOMAIN. It exits when this script's parent goes away.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

# The process that started this server, read at once: a test that fails
# quickly may be gone before a watcher thread asks, which would then
# watch init for ever (and hold the test's output open).
PARENT = os.getppid()


def free_port():
    # Both UDP and TCP must be free on the port dnsmasq will take.
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise SystemExit("no free port")


def answers(port, proc):
    """Whether dnsmasq, still running, answers a query on UDP within 5 s."""
    for _ in range(50):
        if proc.poll() is not None:
            return False
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(0.1)
            s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02ok\x04lurk\x04test\x00\x00\x01\x00\x01",
                     ("127.0.0.1", port))
            s.recv(512)
            return proc.poll() is None
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def main():
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(exe):
        print("dnsmasq not found (scripts/install-deps.sh installs dnsmasq-base)", file=sys.stderr)
        sys.exit(1)
    # A port another process takes between our choice and dnsmasq's bind
    # makes dnsmasq exit: start it again on another.
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([
            exe, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--listen-address=127.0.0.1", "--bind-interfaces", "--port=%d" % port,
            "--pid-file", "--user=root", "--log-facility=/dev/null",
            "--address=/ok.lurk.test/127.0.0.1", "--host-record=v6.lurk.test,::1",
            "--host-record=both.lurk.test,127.0.0.1,::1", "--address=/#/",
        ])
        if answers(port, proc):
            break
        proc.kill()
        proc.wait()
    else:
        raise SystemExit("dnsmasq did not start")
    # The test stops us with SIGTERM: take dnsmasq down too.
    signal.signal(signal.SIGTERM, lambda *_: (proc.terminate(), os._exit(0)))
    print("PORT %d PID %d" % (port, os.getpid()), flush=True)
    parent = PARENT
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            if os.getppid() != parent:
                break
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
