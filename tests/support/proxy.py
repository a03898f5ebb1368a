#!/usr/bin/env python3
"""tinyproxy (a widely used HTTP proxy with CONNECT) on 127.0.0.1, for the
HTTP proxy tests.

usage: proxy.py DIR [USER:PASS]   (prints "PORT <n> PID <pid>"; with
                                   USER:PASS the proxy requires Basic auth)
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


def main():
    d = os.path.abspath(sys.argv[1])
    os.makedirs(d, exist_ok=True)
    exe = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not os.path.exists(exe):
        raise SystemExit("tinyproxy not found (scripts/install-deps.sh installs it)")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = os.path.join(d, "tinyproxy-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 200\n"
                "LogLevel Critical\nDisableViaHeader No\nUser root\nGroup root\n" % port)
        if len(sys.argv) > 2:
            user, pw = sys.argv[2].split(":", 1)
            f.write("BasicAuth %s %s\n" % (user, pw))
    proc = subprocess.Popen([exe, "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, lambda *_: (proc.kill(), os._exit(0)))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.025)
    print("PORT %d PID %d" % (port, os.getpid()), flush=True)
    parent = PARENT
    while proc.poll() is None and os.getppid() == parent:
        time.sleep(0.2)
    proc.kill()


if __name__ == "__main__":
    main()
