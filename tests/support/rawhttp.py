#!/usr/bin/env python3
"""A raw HTTP server that answers every request with exact bytes, for the
malformed-response tests.

usage: rawhttp.py   (prints "PORT <n> PID <pid>")

The request path picks the answer: GET /<case>. Cases are in CASES; "drip"
sends a valid response one byte per 0.2 s; "split" sends a valid response one
byte per TCP segment; "idle" answers keep-alive, then closes the connection
0.1 s later (a pooled connection that goes stale); "count" answers with the
number of connections accepted so far.
"""
import gzip
import os
import socket
import zlib
import sys
import threading
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CASES = {
    "ok": OK,
    "lf": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "dupcl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!",
    "clchunked": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\nhello\r\n0\r\n\r\n",
    "truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly this",
    "truncchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhel",
    "bighead": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100000 + b"\r\nContent-Length: 0\r\n\r\n",
    "garbage": b"SMTP ready\r\n\r\n",
    "noresponse": b"",
    "closedelim": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n",
}
def encoded(coding, body):
    return (b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
            % (coding, len(body))) + body


BOMB = gzip.compress(b"\0" * (10 << 20))
RAW = zlib.compressobj(9, zlib.DEFLATED, -15)
RAW_DEFLATE = RAW.compress(b"raw deflate body") + RAW.flush()
SSE = (b": a comment\n\n"
       b"data: first\n\n"
       b"event: update\nid: 7\ndata: line one\ndata: line two\n\n"
       b"retry: 1500\ndata:no space\r\n\r\n"
       b"event: empty\n\n"
       b"data: last\n\n")


def chunked(body, size=7):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


CASES.update({
    "sse": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
           + chunked(SSE),
    "gzipbomb": encoded(b"gzip", BOMB),                       # 10 MB of zeros in ~10 KB
    "gztrunc": encoded(b"gzip", gzip.compress(b"x" * 1000)[:-10]),
    "gzgarbage": encoded(b"gzip", b"this is not gzip at all"),
    "rawdeflate": encoded(b"deflate", RAW_DEFLATE),
    "zlibdeflate": encoded(b"deflate", zlib.compress(b"zlib deflate body")),
})
accepted = 0
hits = {}


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head = data.split(b"\r\n\r\n", 1)[0]
    line = head.split(b"\r\n", 1)[0].split(b" ")
    return (line[1].decode().lstrip("/") if len(line) > 1 else ""), head


def handle(conn):
    try:
        while True:
            got = read_request(conn)
            if got is None:
                return
            case, request_head = got
            if case == "drip":
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for b in OK:
                    conn.sendall(bytes([b]))
                    time.sleep(0.2)
            elif case == "split":
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for b in OK:
                    conn.sendall(bytes([b]))
                    time.sleep(0.002)
            elif case == "idle":
                conn.sendall(OK)
                time.sleep(0.1)
                return
            elif case.startswith("flaky"):
                # "flaky<N>-<tag>": 503 with Retry-After: 0 for the first N hits of
                # that tag, then 200 with the hit count.
                n, tag = case[5:].split("-", 1)
                hits[tag] = hits.get(tag, 0) + 1
                if hits[tag] <= int(n):
                    conn.sendall(b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 4\r\n\r\nbusy")
                else:
                    body = str(hits[tag]).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif case.startswith("hits-"):
                body = str(hits.get(case[5:], 0)).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif case.startswith("setcookie"):
                cookies = [
                    b"plain=1",
                    b"scoped=2; Path=/scoped",
                    b"secure=3; Secure",
                    b"foreign=4; Domain=other.example",
                    b"gone=5; Max-Age=0",
                    b"old=6; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
                    b"later=7; Expires=Wed, 21 Oct 2099 07:28:00 GMT",
                ]
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"".join(b"Set-Cookie: " + c + b"\r\n" for c in cookies)
                             + b"Content-Length: 0\r\n\r\n")
            elif case.startswith("echocookie") or case.startswith("scoped/echocookie"):
                body = b""
                for line in request_head.split(b"\r\n"):
                    if line.lower().startswith(b"cookie:"):
                        body = line[7:].strip()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif case == "expectfail":
                conn.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
            elif case == "slow":
                time.sleep(0.2)
                conn.sendall(OK)
            elif case == "count":
                body = str(accepted).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                conn.sendall(CASES.get(case, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                if case in ("truncated", "truncchunk", "closedelim", "garbage", "noresponse"):
                    return
    except OSError:
        pass
    finally:
        conn.close()


def main():
    global accepted
    v6 = len(sys.argv) > 1 and sys.argv[1] == "6"     # rawhttp.py 6: listen on [::1]
    srv = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::1" if v6 else "127.0.0.1", 0))
    srv.listen(128)
    print("PORT %d PID %d" % (srv.getsockname()[1], os.getpid()), flush=True)

    def watch():
        parent = os.getppid()
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()
    while True:
        conn, _ = srv.accept()
        accepted += 1
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
