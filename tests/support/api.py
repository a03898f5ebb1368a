#!/usr/bin/env python3
"""An HTTP API for lurk's HTTP tests: httpbin (Debian's python3-httpbin, run by
gunicorn) behind nginx, on 127.0.0.1.

usage: api.py DIR   (prints "PORT <http> PID <pid> DIR <dir>"; DIR/ports.lua has
                     http, https (both nginx) and httpbin (gunicorn directly))

nginx adds "X-Connection: <nginx connection number>" to every response, so
tests can tell whether requests shared a connection, and serves DIR/static/.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlsserver  # noqa: E402  (certificates, ports, child handling)


def main():
    d = os.path.abspath(sys.argv[1])
    tlsserver.certs(d)
    import signal
    signal.signal(signal.SIGTERM, tlsserver.stop)
    ports = {"httpbin": tlsserver.free_port()}
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
    gunicorn = subprocess.Popen(
        [python, "-m", "gunicorn", "--workers", "2", "--threads", "4", "--bind",
         "127.0.0.1:%d" % ports["httpbin"], "--log-level", "warning", "httpbin:app"],
        stdout=subprocess.DEVNULL, cwd=d)
    tlsserver.CHILDREN.append(gunicorn)
    static = os.path.join(d, "static")
    os.makedirs(static, exist_ok=True)
    for name, size in (("1k", 1024), ("64k", 65536), ("1m", 1 << 20)):
        with open(os.path.join(static, name), "wb") as f:
            f.write(bytes(range(256)) * (size // 256))
    common = """
    add_header X-Connection $connection always;
    location /static/ { root %(d)s; }
    location = /hello { return 200 "hello\\n"; }
    location / {
      proxy_pass http://127.0.0.1:%(bin)d;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
    }
""" % {"d": d, "bin": ports["httpbin"]}
    tlsserver.wait_listen(ports["httpbin"])  # before nginx's ports are chosen
    ports.update(tlsserver.start_nginx(d, "api-nginx", ["http", "https"], lambda p: """
  server { listen 127.0.0.1:%(http)d; %(common)s }
  server {
    listen 127.0.0.1:%(https)d ssl;
    ssl_certificate %(d)s/good.pem;
    ssl_certificate_key %(d)s/good.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    %(common)s
  }
""" % {"d": d, "http": p["http"], "https": p["https"], "common": common}))
    with open(os.path.join(d, "ports.lua"), "w") as f:
        f.write("return { http = %d, https = %d, httpbin = %d, dir = %r }\n"
                % (ports["http"], ports["https"], ports["httpbin"], d))
    print("PORT %d PID %d DIR %s" % (ports["http"], os.getpid(), d), flush=True)
    tlsserver.watch_parent()


if __name__ == "__main__":
    main()
