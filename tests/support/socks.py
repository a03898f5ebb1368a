#!/usr/bin/env python3
"""SOCKS5 peers for the proxy tests, on loopback.

usage:
  socks.py microsocks [USER:PASS]  microsocks (a widely used SOCKS5 server, from
                                   Debian; scripts/install-deps.sh installs it),
                                   requiring RFC 1929 login with USER:PASS
  socks.py script CASE             a scripted SOCKS5 server sending exact bytes
                                   (CASES below), for the failures a real server
                                   will not produce on demand
  socks.py origin ADDR             a plain HTTP server on ADDR (127.0.0.1 or ::1)
                                   answering every request with its request line

Each prints "PORT <n> PID <pid>" once ready and exits when its parent does.

The "ok" case accepts no authentication or any username and password, grants
the CONNECT without connecting anywhere, then serves HTTP itself: the body is
JSON naming what the client sent (the login, the address type and address of
its CONNECT request, and the HTTP request line that followed).
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

# The process that started this server, read at once: a test that fails
# quickly may be gone before a watcher thread asks, which would then
# watch init for ever (and hold the test's output open).
PARENT = os.getppid()

# name: what the server does after reading the greeting
CASES = ["ok", "noauth", "authfail", "badversion", "close_greeting", "close_reply",
         "badatyp", "silent"] + ["reply%d" % n for n in range(1, 9)]


def watch_parent():
    parent = PARENT
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def recv_exact(c, n):
    data = b""
    while len(data) < n:
        more = c.recv(n - len(data))
        if not more:
            raise EOFError
        data += more
    return data


def read_request(c):
    """The CONNECT request after the greeting: (atyp, address, port)."""
    ver, cmd, _, atyp = recv_exact(c, 4)
    assert ver == 5 and cmd == 1
    if atyp == 1:
        addr = socket.inet_ntop(socket.AF_INET, recv_exact(c, 4))
    elif atyp == 4:
        addr = socket.inet_ntop(socket.AF_INET6, recv_exact(c, 16))
    else:
        addr = recv_exact(c, recv_exact(c, 1)[0]).decode()
    port = struct.unpack(">H", recv_exact(c, 2))[0]
    return atyp, addr, port


GRANTED = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"


def scripted(c, case):
    ver, n = recv_exact(c, 2)
    methods = recv_exact(c, n)
    if case == "close_greeting":
        return
    if case == "silent":
        time.sleep(60)
        return
    if case == "badversion":
        c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        return
    if case == "noauth":
        c.sendall(b"\x05\xff")
        return
    user = pw = None
    if 2 in methods:
        c.sendall(b"\x05\x02")
        _, ulen = recv_exact(c, 2)
        user = recv_exact(c, ulen).decode()
        pw = recv_exact(c, recv_exact(c, 1)[0]).decode()
        if case == "authfail":
            c.sendall(b"\x01\x01")
            return
        c.sendall(b"\x01\x00")
    else:
        c.sendall(b"\x05\x00")
    atyp, addr, port = read_request(c)
    if case.startswith("reply"):
        c.sendall(b"\x05" + bytes([int(case[5:])]) + GRANTED[2:])
        return
    if case == "close_reply":
        c.sendall(GRANTED[:3])
        return
    if case == "badatyp":
        c.sendall(b"\x05\x00\x00\x09")
        return
    # ok: a domain-name bound address, to exercise that form of the reply too
    c.sendall(b"\x05\x00\x00\x03\x09localhost\x04\x38")
    line = b""
    while b"\r\n\r\n" not in line:
        line += c.recv(4096) or b"\r\n\r\n"
    body = json.dumps({"user": user, "pass": pw, "atyp": atyp, "addr": addr, "port": port,
                       "line": line.split(b"\r\n")[0].decode()}).encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def origin(c):
    head = b""
    while b"\r\n\r\n" not in head:
        more = c.recv(4096)
        if not more:
            return
        head += more
    body = head.split(b"\r\n")[0]
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def serve(family, addr, handle):
    s = socket.socket(family)
    s.bind((addr, 0))
    s.listen(64)
    print("PORT %d PID %d" % (s.getsockname()[1], os.getpid()), flush=True)
    threading.Thread(target=watch_parent, daemon=True).start()

    def one(c):
        try:
            handle(c)
        except (EOFError, OSError, AssertionError):
            pass
        finally:
            c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def microsocks(auth):
    exe = shutil.which("microsocks") or "/usr/bin/microsocks"
    if not os.path.exists(exe):
        raise SystemExit("microsocks not found (scripts/install-deps.sh installs it)")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    args = [exe, "-i", "127.0.0.1", "-p", str(port)]
    if auth:
        user, pw = auth.split(":", 1)
        args += ["-u", user, "-P", pw]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def main():
    mode = sys.argv[1]
    if mode == "microsocks":
        microsocks(sys.argv[2] if len(sys.argv) > 2 else None)
    elif mode == "script":
        case = sys.argv[2]
        assert case in CASES, case
        serve(socket.AF_INET, "127.0.0.1", lambda c: scripted(c, case))
    elif mode == "origin":
        addr = sys.argv[2]
        serve(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr, origin)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
