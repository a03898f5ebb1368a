#!/usr/bin/env python3
"""Hostile peers for lurk's hostile_test: servers that stall, drip, flood or
break off, each on 127.0.0.1.

usage: hostile.py DIR   (certificates from certs.sh in DIR; prints
                         "PORT <http> PID <pid>" and writes DIR/hostile.lua
                         with every port below)

ports (one listener each, since a TLS peer misbehaves before any path is sent):
  http        plain HTTP and WebSocket; the request path picks the behaviour (PATHS)
  https       the same paths behind TLS (good.pem)
  silent      accepts, reads, never sends a byte (so a ClientHello goes unanswered)
  tls_alert   answers the ClientHello with a fatal handshake_failure alert, keeps TCP open
  tls_reset   reads the ClientHello, sends half a ServerHello record, then resets (RST)
  tls_drip    a real handshake whose server bytes go out one every 0.25 s
  tls_midalert  a real handshake; after the request, a response head and part of its
              body, then a fatal alert (bad_record_mac) that OpenSSL itself produced by
              being fed a forged record; TCP stays open

PATHS (on http and https):
  /silent       reads the request, never answers
  /drip         "HTTP/1.1 200 OK" and then endless headers, one byte per second
  /headers      endless short headers (too many headers)
  /longheader   one header value that never ends (head too large)
  /status       a reason phrase that never ends
  /chunked      a chunked body of 64 KiB chunks that never ends
  /biglength    Content-Length: 10^15 and bytes without end
  /chunkext     a chunk extension that never ends (no body byte ever comes)
  /trailers     the last chunk, then trailers without end
  /interim      "100 Continue" responses without end
  /reset        half a response head, then a reset
  /ws/len/N     WebSocket 101, then a binary frame header claiming N bytes (and a
                few of them); the connection is then held open
  /ws/frags     WebSocket 101, then a message in 4 KiB fragments that never ends
  /ws/silent    WebSocket 101, then nothing
  /ws/drip      the 101 answer one byte every 0.25 s
  /ws/headers   a 101 status line, then endless headers
  /ws/reset     half a 101 answer, then a reset

A peer that writes without end stops when the client goes away. The server
exits when its parent does.
"""
import base64
import hashlib
import itertools
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

# The process that started this server, read at once: a test that fails
# quickly may be gone before a watcher thread asks, which would then
# watch init for ever (and hold the test's output open).
PARENT = os.getppid()

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HANDSHAKE_FAILURE = b"\x15\x03\x03\x00\x02\x02\x28"   # alert record: fatal, handshake_failure (40)


def watch_parent():
    parent = PARENT
    while True:
        time.sleep(0.2)
        if os.getppid() != parent:
            os._exit(0)


def reset(sock):
    """Close with RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def hold(sock):
    """Keep the connection open, discarding what arrives, until the client closes."""
    sock.settimeout(30)
    while sock.recv(65536):
        pass


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def forever(sock, first, piece):
    sock.sendall(first)
    while True:
        sock.sendall(piece)


def ws_accept(head):
    key = ""
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    digest = hashlib.sha1(key.encode() + GUID).digest()
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n" % base64.b64encode(digest).decode()).encode()


def serve_path(sock, raw):
    """One request on sock (plain or TLS); raw takes socket options and resets."""
    head = read_head(sock)
    if head is None:
        return
    path = head.split(" ")[1] if " " in head else "/"
    if path == "/silent":
        hold(sock)
    elif path == "/drip":
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answer = b"HTTP/1.1 200 OK\r\n"
        n = 0
        while True:
            for b in answer:
                sock.sendall(bytes([b]))
                time.sleep(1)
            n += 1
            answer = b"X-Drip-%d: slow\r\n" % n
    elif path == "/headers":
        n = 0
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        while True:
            n += 1
            sock.sendall(b"X-H%d: v\r\n" % n)
    elif path == "/longheader":
        forever(sock, b"HTTP/1.1 200 OK\r\nX-Long: ", b"a" * 4096)
    elif path == "/status":
        forever(sock, b"HTTP/1.1 200 ", b"O" * 4096)
    elif path == "/chunked":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in itertools.count():       # numbered, so no two chunks are equal strings
            sock.sendall(b"10000\r\n%016d" % i + b"c" * 65520 + b"\r\n")
    elif path == "/biglength":
        forever(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n", b"b" * 65536)
    elif path == "/chunkext":
        forever(sock, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=", b"e" * 4096)
    elif path == "/trailers":
        n = 0
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
        while True:
            n += 1
            sock.sendall(b"X-T%d: v\r\n" % n)
    elif path == "/interim":
        forever(sock, b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 64)
    elif path == "/reset":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
        time.sleep(0.1)
        reset(raw)
    elif path.startswith("/ws/len/"):
        n = int(path[8:])
        sock.sendall(ws_accept(head) + bytes([0x82, 127]) + struct.pack("!Q", n) + b"z" * 1024)
        hold(sock)
    elif path == "/ws/frags":
        sock.sendall(ws_accept(head) + bytes([0x02, 126]) + struct.pack("!H", 4096) + b"f" * 4096)
        for i in itertools.count():
            sock.sendall(bytes([0x00, 126]) + struct.pack("!H", 4096) + b"%016d" % i + b"f" * 4080)
    elif path == "/ws/silent":
        sock.sendall(ws_accept(head))
        hold(sock)
    elif path == "/ws/noread":
        # Upgrade, then never read again: the client's sends fill TCP's buffers.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(ws_accept(head))
        time.sleep(60)
    elif path == "/ws/drip":
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in ws_accept(head):
            sock.sendall(bytes([b]))
            time.sleep(0.25)
        hold(sock)
    elif path == "/ws/headers":
        n = 0
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        while True:
            n += 1
            sock.sendall(b"X-H%d: v\r\n" % n)
    elif path == "/ws/reset":
        sock.sendall(ws_accept(head)[:30])
        time.sleep(0.1)
        reset(raw)
    else:
        sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


class Bio:
    """A server-side TLS session over memory BIOs, so this code decides when
    (and how fast) each byte reaches the client, and can feed OpenSSL input
    the client never sent."""

    def __init__(self, raw, ctx, pace=0.0):
        self.raw, self.pace = raw, pace
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)

    def flush(self):
        data = self.out.read()
        if self.pace:
            for b in data:
                self.raw.sendall(bytes([b]))
                time.sleep(self.pace)
        elif data:
            self.raw.sendall(data)

    def fill(self):
        data = self.raw.recv(65536)
        if not data:
            raise EOFError
        self.inc.write(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()

    def read_head(self):
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                data += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self.fill()
        return data


def midalert(raw, ctx):
    s = Bio(raw, ctx)
    s.handshake()
    s.read_head()
    s.obj.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"p" * 1000)
    s.flush()
    time.sleep(0.1)
    # A forged application-data record: OpenSSL fails to authenticate it and
    # answers with a fatal bad_record_mac alert, encrypted like any record.
    s.inc.write(b"\x17\x03\x03\x00\x40" + os.urandom(64))
    try:
        s.obj.read(65536)
    except ssl.SSLError:
        pass
    alert = s.out.read()
    if not alert:
        raise SystemExit("OpenSSL produced no alert")
    raw.sendall(alert)
    hold(raw)


def handle(kind, raw, ctx):
    try:
        if kind == "http":
            serve_path(raw, raw)
        elif kind == "https":
            raw = ctx.wrap_socket(raw, server_side=True)   # detaches the plain socket
            serve_path(raw, raw)
        elif kind == "silent":
            hold(raw)
        elif kind == "tls_alert":
            raw.recv(65536)                    # the ClientHello
            raw.sendall(HANDSHAKE_FAILURE)
            hold(raw)
        elif kind == "tls_reset":
            raw.recv(65536)
            raw.sendall(b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03")
            time.sleep(0.1)
            reset(raw)
        elif kind == "tls_drip":
            Bio(raw, ctx, pace=0.25).handshake()
            hold(raw)
        elif kind == "tls_midalert":
            midalert(raw, ctx)
    except (OSError, EOFError, ssl.SSLError):
        pass
    finally:
        try:
            raw.close()
        except OSError:
            pass


def listen(kind, ctx):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)

    def loop():
        while True:
            raw, _ = srv.accept()
            threading.Thread(target=handle, args=(kind, raw, ctx), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def main():
    d = os.path.abspath(sys.argv[1])
    subprocess.run([os.path.join(HERE, "certs.sh"), d], check=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "good.pem"), os.path.join(d, "good.key"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    kinds = ("http", "https", "silent", "tls_alert", "tls_reset", "tls_drip", "tls_midalert")
    ports = {k: listen(k, ctx) for k in kinds}
    with open(os.path.join(d, "hostile.lua"), "w") as f:
        f.write("return {\n%s}\n" % "".join("  %s = %d,\n" % (k, p) for k, p in ports.items()))
    print("PORT %d PID %d" % (ports["http"], os.getpid()), flush=True)
    watch_parent()


if __name__ == "__main__":
    main()
