#!/usr/bin/env python3
"""Loopback TCP peers for lurk's tests.

usage: tcpserver.py MODE   (binds 127.0.0.1 port 0, prints "PORT <n> PID <pid>")

modes:
  echo     echoes every byte back until the client closes
  lines    sends "one\\r\\ntwo\\nthree" then closes (no newline at the end)
  reset    sends "partial" then resets the connection (RST, not FIN)
  silent   accepts and never sends; keeps connections open
  backlog  listens with a backlog of 0 and never accepts, so once the
           accept queue is full further connection attempts hang (SYNs are
           dropped), which the connect-timeout test relies on
  big N    sends N bytes (a repeating pattern) then closes
  http     a plain HTTP server: answers whatever arrives (a TLS ClientHello,
           say) with "HTTP/1.1 400 Bad Request" and closes, as nginx does
  banner   sends "220 mail.example ESMTP\r\n" at once, as a mail server
           does, then reads until the client closes

The server exits when its parent process goes away, so a failed test never
leaves it behind.
"""
import os
import socket
import struct
import sys
import threading
import time

# The process that started this server, read at once: a test that fails
# quickly may be gone before a watcher thread asks, which would then
# watch init for ever (and hold the test's output open).
PARENT = os.getppid()


def watch_parent():
    parent = PARENT
    while True:
        time.sleep(0.2)
        if os.getppid() != parent:
            os._exit(0)


def handle(conn, mode, arg):
    try:
        if mode == "echo":
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        elif mode == "lines":
            conn.sendall(b"one\r\ntwo\nthree")
        elif mode == "reset":
            conn.sendall(b"partial")
            time.sleep(0.1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "http":
            conn.recv(65536)
            body = b"<html>400 The plain HTTP request was sent to HTTPS port</html>\r\n"
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
        elif mode == "banner":
            conn.sendall(b"220 mail.example ESMTP\r\n")
            while conn.recv(65536):
                pass
        elif mode == "silent":
            while conn.recv(65536):
                pass
        elif mode == "big":
            chunk = bytes(range(256)) * 256
            left = arg
            while left > 0:
                n = conn.send(chunk[: min(left, len(chunk))])
                left -= n
    except OSError:
        pass
    finally:
        conn.close()


def main():
    mode = sys.argv[1]
    arg = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(0 if mode == "backlog" else 128)
    print("PORT %d PID %d" % (srv.getsockname()[1], os.getpid()), flush=True)
    threading.Thread(target=watch_parent, daemon=True).start()
    if mode == "backlog":
        while True:
            time.sleep(3600)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, mode, arg), daemon=True).start()


if __name__ == "__main__":
    main()
