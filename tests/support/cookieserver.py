#!/usr/bin/env python3
"""An HTTP server for the cookie tests: it sets the cookies a request asks
for and echoes the ones it receives.

usage: cookieserver.py   (prints "PORT <n> PID <pid>")

GET <path>?c=<Set-Cookie value>&c=...  answers with one Set-Cookie field per
    c, in order (and nothing else);
GET <path>?many=<n>&prefix=<p>  sets n cookies <p>1=v ... <p>n=v;
any request answers with the Cookie field it carried (empty if none) as
its body. The target may be in absolute form ("http://host/path"), so a
client told to use this server as its proxy can ask for any host name
without DNS: cookie domains are tested on loopback.
"""
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The process that started this server, read at once: a test that fails
# quickly may be gone before a watcher thread asks, which would then
# watch init for ever (and hold the test's output open).
PARENT = os.getppid()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        q = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        sets = q.get("c", [])
        if "many" in q:
            p = q.get("prefix", ["m"])[0]
            sets += ["%s%d=v" % (p, i) for i in range(1, int(q["many"][0]) + 1)]
        body = (self.headers.get("Cookie") or "").encode()
        # No Server or Date fields: 99 cookies and Content-Length stay
        # within the client's 100 header fields.
        self.send_response_only(200)
        for s in sets:
            self.send_header("Set-Cookie", s)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print("PORT %d PID %d" % (srv.server_address[1], os.getpid()), flush=True)

    def watch():
        parent = PARENT
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
