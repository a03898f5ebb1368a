#!/usr/bin/env python3
"""A raw WebSocket server that sends exact frames, for the protocol-violation
tests, and checks the client's frames.

usage: rawws.py   (prints "PORT <n> PID <pid>")

ws://.../<case>: after the handshake, waits for one frame from the client,
then sends the case's frames (see CASES) and reads the client's frames until
its close frame: the verdict "close <code>, masked, fresh keys" (or what was
wrong) is then served at http://.../verdict/<case>.
ws://.../hs/<case>: a handshake answer that must be refused (see HANDSHAKES).
ws://.../fragments: a fragmented text message with a ping between fragments,
sent a few bytes per TCP segment.
ws://.../then/<end>: sends the text messages "one" and "two" at once, then
ends as <end> says (see ENDINGS: a close with a code, without one, a dropped
TCP connection, a protocol violation), then reads until the client's close.
ws://.../tiny/<n>: a binary message of n bytes "a", sent as n frames of one
byte each (a 1-byte fragment costs 3 bytes on the wire), then a close 1000.
ws://.../stallping: reads the first byte of the client's first frame, then
sends a ping and stops reading for 5 s (so the client's pong cannot go out).
ws://.../head: sends the request head it received as a text message, then
echoes until the client's close.
ws://.../hs/silent: reads the handshake and never answers it.
"""
import base64
import hashlib
import os
import socket
import struct
import threading
import time

# The process that started this server, read at once: a test that fails
# quickly may be gone before a watcher thread asks, which would then
# watch init for ever (and hold the test's output open).
PARENT = os.getppid()

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(b0, payload, masked=False):
    n = len(payload)
    if n < 126:
        head = bytes([b0, (0x80 if masked else 0) | n])
    elif n < 65536:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, (0x80 if masked else 0) | 127]) + struct.pack("!Q", n)
    if masked:
        key = b"\x01\x02\x03\x04"
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


CASES = {
    "rsv": frame(0xC1, b"hi"),
    "opcode": frame(0x83, b""),
    "masked": frame(0x81, b"hi", masked=True),
    "bigping": frame(0x89, b"p" * 126),
    "fragping": frame(0x09, b""),
    "badcont": frame(0x80, b"hi"),
    "badutf8": frame(0x81, b"\xff\xfe"),
    "splitutf8": frame(0x01, "€".encode()[:1]) + frame(0x80, b"\x28"),
    "toolarge": bytes([0x82, 127]) + struct.pack("!Q", 2 << 20),
    "huge": bytes([0x82, 127]) + struct.pack("!Q", (1 << 63) - 1),
    "rsv1": frame(0xC1, b"hi"),           # compressed bit without the extension
}
FRAGMENTS = (frame(0x01, b"Hello, ") + frame(0x89, b"p") + frame(0x00, b"fragmented ")
             + frame(0x80, b"world"))
ENDINGS = {
    "close1000": frame(0x88, b"\x03\xe8"),
    "close1001": frame(0x88, b"\x03\xe9"),
    "close4000": frame(0x88, b"\x0f\xa0bye"),
    "nocode": frame(0x88, b""),
    "protoerr": frame(0xC1, b"hi"),
    "drop": b"",
}
verdicts = {}


def send_tiny(conn, n):
    """n bytes of "a" as n one-byte frames, built a chunk at a time."""
    conn.sendall(bytes([0x02 if n > 1 else 0x82, 1, 0x61]))
    left = n - 2
    chunk = b"\x00\x01a" * 65536
    while left >= 65536:
        conn.sendall(chunk)
        left -= 65536
    if left > 0:
        conn.sendall(b"\x00\x01a" * left)
    if n > 1:
        conn.sendall(b"\x80\x01a")
    conn.sendall(frame(0x88, b"\x03\xe8"))


def await_close(conn):
    while True:
        op, _, _, _ = read_frame(conn)
        if op == 8:
            return


def accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


HANDSHAKES = {
    "noaccept": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "badaccept": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    "noupgrade": "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {a}\r\n\r\n",
    "status200": "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "redirect": "HTTP/1.1 302 Found\r\nLocation: /fragments\r\nContent-Length: 0\r\n\r\n",
    "extension": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    "badext": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Extensions: x-unknown\r\n\r\n",
    "badparam": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Extensions: permessage-deflate; x=1\r\n\r\n",
    "badproto": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Protocol: other\r\n\r\n",
}


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(conn):
    b0, b1 = recv_exact(conn, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(conn, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(conn, 8))[0]
    key = recv_exact(conn, 4) if b1 & 0x80 else None
    payload = recv_exact(conn, n)
    if key:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return b0 & 0x0F, bool(b1 & 0x80), key, payload


def handle(conn):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        path = head.split(" ")[1]
        headers = {}
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if path.startswith("/verdict/"):
            body = verdicts.get(path[9:], "no verdict").encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            return
        a = accept(headers.get("sec-websocket-key", ""))
        if path == "/hs/silent":
            time.sleep(5)
            return
        if path.startswith("/hs/"):
            conn.sendall(HANDSHAKES[path[4:]].replace("{a}", a).encode())
            time.sleep(0.2)
            return
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n" % a).encode())
        case = path[1:]
        if case.startswith("then/"):
            ending = ENDINGS[case[5:]]
            conn.sendall(frame(0x81, b"one") + frame(0x81, b"two") + ending)
            if case == "then/drop":
                return
            await_close(conn)
            return
        if case.startswith("tiny/"):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            send_tiny(conn, int(case[5:]))
            await_close(conn)
            return
        if case == "stallping":
            recv_exact(conn, 1)
            conn.sendall(frame(0x89, b"are you there"))
            time.sleep(5)
            return
        if case == "head":
            conn.sendall(frame(0x81, head.encode()))
            while True:
                op, _, _, payload = read_frame(conn)
                if op == 8:
                    conn.sendall(frame(0x88, b"\x03\xe8"))
                    return
                conn.sendall(frame(0x81 if op == 1 else 0x82, payload))
        if case == "fragments":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(FRAGMENTS), 3):
                conn.sendall(FRAGMENTS[i:i + 3])
                time.sleep(0.002)
            while True:
                op, _, _, _ = read_frame(conn)
                if op == 8:
                    conn.sendall(frame(0x88, b"\x03\xe8"))
                    return
        keys, masked = [], True
        op, m, key, _ = read_frame(conn)          # the client's first message
        keys.append(key)
        masked = masked and m
        conn.sendall(CASES.get(case, b""))        # "closecode": nothing, await the client's close
        while True:
            op, m, key, payload = read_frame(conn)
            keys.append(key)
            masked = masked and m
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                fresh = len(set(keys)) == len(keys)
                verdicts[case] = "close %s, %s, %s" % (code, "masked" if masked else "NOT masked",
                                                      "fresh keys" if fresh else "REUSED keys")
                return
    except (OSError, EOFError, KeyError, IndexError):
        pass
    finally:
        conn.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    # Read before the port is printed: a test that fails at once may be gone
    # before a thread started later could ask, and this server would then
    # watch init forever (holding the test's stderr open).
    parent = PARENT
    print("PORT %d PID %d" % (srv.getsockname()[1], os.getpid()), flush=True)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
