#!/usr/bin/env python3
"""TLS peers for lurk's tests, on 127.0.0.1.

usage:
  tlsserver.py nginx DIR     nginx with one server block per case (see CASES);
                             writes DIR/ports.lua and DIR/big.bin (+ its SHA-256)
  tlsserver.py echo DIR      a TLS 1.2/1.3 echo server (Python's ssl, i.e. OpenSSL)
  tlsserver.py starttls DIR  plain text until "STARTTLS\\n", then TLS echo
  tlsserver.py wsproxy DIR PORT
                             nginx ending TLS 1.3 in front of the WebSocket (or any
                             HTTP) server on 127.0.0.1:PORT (bench/run.sh)
  tlsserver.py SCENARIO DIR  one of: close_notify, noclose, reset, midrecord (each
                             after the client sends a line), eager, sink (see below)

Prints "PORT <n> PID <pid> DIR <dir>" once ready; exits when its parent does.
Certificates come from certs.sh in DIR.
"""
import hashlib
import os
import shutil
import signal
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

BOTH = "TLSv1.2 TLSv1.3"
# name: (cert, protocols, TLS 1.2 ciphers, TLS 1.3 suites)
CASES = {
    "good": ("good", BOTH, None, None),
    "tls12_aes128": ("good", "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", None),
    "tls12_aes256": ("good", "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", None),
    "tls12_chacha": ("good", "TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", None),
    "tls13_aes128": ("good", "TLSv1.3", None, "TLS_AES_128_GCM_SHA256"),
    "tls13_aes256": ("good", "TLSv1.3", None, "TLS_AES_256_GCM_SHA384"),
    "tls13_chacha": ("good", "TLSv1.3", None, "TLS_CHACHA20_POLY1305_SHA256"),
    "tls12_cbc": ("good", "TLSv1.2", "ECDHE-ECDSA-AES128-SHA256", None),
    "expired": ("expired", BOTH, None, None),
    "future": ("future", BOTH, None, None),
    "wronghost": ("wronghost", BOTH, None, None),
    "ipmismatch": ("ipmismatch", BOTH, None, None),
    "selfsigned": ("selfsigned", BOTH, None, None),
    "unknownca": ("unknownca", BOTH, None, None),
    "tls10": ("good", "TLSv1 TLSv1.1", "DEFAULT:@SECLEVEL=0", None),
    "clientcert": ("good", BOTH, None, None),
    "shortticket": ("good", BOTH, None, None),   # sessions (and ticket lifetimes) of 1 s
}


def free_ports(n):
    """n distinct free loopback ports. The sockets stay bound until all n are
    chosen: closed one at a time, the kernel may hand the same port out twice
    (and nginx then silently serves two server blocks on one port)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_port():
    return free_ports(1)[0]


CHILDREN = []


def stop(*_):
    for p in CHILDREN:
        p.kill()
    os._exit(0)


def watch_parent():
    parent = PARENT
    while True:
        time.sleep(0.2)
        if os.getppid() != parent:
            stop()


def certs(d):
    subprocess.run([os.path.join(HERE, "certs.sh"), d], check=True)


def wait_listen(port, proc=None):
    for _ in range(200):
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.025)
    raise SystemExit("port %d never listened" % port)


def run_nginx(d):
    size = int(os.environ.get("LURK_BIG_MB", "64")) << 20
    big = os.path.join(d, "big.bin")
    if not os.path.exists(big) or os.path.getsize(big) != size:
        with open(big, "wb") as f:
            f.write(os.urandom(size))
    digest = hashlib.sha256(open(big, "rb").read()).hexdigest()

    def servers(ports):
        blocks = []
        for name, (cert, protos, ciphers, suites) in CASES.items():
            lines = [
                "server {",
                "  listen 127.0.0.1:%d ssl;" % ports[name],
                "  ssl_certificate %s/%s.pem;" % (d, cert),
                "  ssl_certificate_key %s/%s.key;" % (d, cert),
                "  ssl_protocols %s;" % protos,
                "  ssl_session_tickets on;",
            ]
            if ciphers:
                lines.append("  ssl_ciphers %s;" % ciphers)
            if suites:
                lines.append("  ssl_conf_command Ciphersuites %s;" % suites)
            if name == "shortticket":
                lines.append("  ssl_session_timeout 1s;")
            if name == "clientcert":
                lines.append("  ssl_client_certificate %s/ca.pem;" % d)
                lines.append("  ssl_verify_client on;")
                lines.append("  location = /whoami { return 200 '$ssl_client_s_dn\\n'; }")
            lines += [
                "  location = / { return 200 'hello from nginx\\n'; }",
                "  location = /big.bin { root %s; }" % d,
                "}",
            ]
            blocks.append("\n".join(lines))
        return "\n".join(blocks)

    ports = start_nginx(d, "nginx", list(CASES), servers)
    with open(os.path.join(d, "ports.lua"), "w") as f:
        f.write("return {\n")
        for name, port in ports.items():
            f.write("  %s = %d,\n" % (name, port))
        f.write('  big_sha256 = "%s", big_size = %d, dir = "%s",\n}\n' % (digest, size, d))
    print("PORT %d PID %d DIR %s" % (ports["good"], os.getpid(), d), flush=True)
    watch_parent()


def run_wsproxy(d, backend):
    def servers(ports):
        return "\n".join([
            "server {",
            "  listen 127.0.0.1:%d ssl;" % ports["proxy"],
            "  ssl_certificate %s/good.pem;" % d,
            "  ssl_certificate_key %s/good.key;" % d,
            "  ssl_protocols TLSv1.3;",
            "  location / {",
            "    proxy_pass http://127.0.0.1:%d;" % backend,
            "    proxy_http_version 1.1;",
            "    proxy_set_header Upgrade $http_upgrade;",
            "    proxy_set_header Connection upgrade;",
            "    proxy_buffering off;",
            "    proxy_read_timeout 1h;",
            "  }",
            "}",
        ])

    ports = start_nginx(d, "wsproxy", ["proxy"], servers)
    print("PORT %d PID %d DIR %s" % (ports["proxy"], os.getpid(), d), flush=True)
    watch_parent()


def start_nginx(d, name, names, servers):
    """Starts nginx with the server blocks servers(ports) gives for fresh ports,
    one per name, and returns {name: port} once all of them listen. A port
    another process took between our choice and nginx's bind makes nginx exit;
    then it starts again on new ports. nginx writes its pid file only after
    every bind succeeded, so that file, not a connect (which another process's
    listener could answer), says the ports are nginx's."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("nginx not found (scripts/install-deps.sh installs nginx-light)")
    conf = os.path.join(d, name + ".conf")
    log = os.path.join(d, name + "-error.log")
    pidfile = os.path.join(d, name + ".pid")
    for _ in range(5):
        ports = dict(zip(names, free_ports(len(names))))
        write_nginx_conf(conf, d, name, servers(ports))
        if os.path.exists(pidfile):
            os.remove(pidfile)
        proc = subprocess.Popen([nginx, "-c", conf, "-p", d, "-e", log])
        for _ in range(400):
            if proc.poll() is not None or os.path.exists(pidfile):
                break
            time.sleep(0.025)
        if proc.poll() is None and all(wait_listen(p, proc) for p in ports.values()):
            CHILDREN.append(proc)
            return ports
        proc.kill()
        proc.wait()
    raise SystemExit("nginx did not start; see " + log)


def write_nginx_conf(path, d, name, servers):
    """An nginx.conf for a foreground, single-process nginx whose files all
    live in d, serving the given server blocks."""
    with open(path, "w") as f:
        f.write("""
daemon off;
master_process off;
worker_processes 1;
pid %(d)s/%(name)s.pid;
error_log %(d)s/%(name)s-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path %(d)s/tmp-body;
  proxy_temp_path %(d)s/tmp-proxy;
  fastcgi_temp_path %(d)s/tmp-fcgi;
  uwsgi_temp_path %(d)s/tmp-uwsgi;
  scgi_temp_path %(d)s/tmp-scgi;
  sendfile on;
  keepalive_requests 1000;
%(servers)s
}
""" % {"d": d, "name": name, "servers": servers})


def context(d):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "good.pem"), os.path.join(d, "good.key"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def echo(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)


def midrecord(raw, ctx):
    """Handshake through memory BIOs, so the bytes of one record can be cut:
    after the client's line, send half of a 16 KB record, then reset."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=True)

    def pump():
        data = out.read()
        if data:
            raw.sendall(data)

    while True:
        try:
            obj.do_handshake()
            pump()
            break
        except ssl.SSLWantReadError:
            pump()
            data = raw.recv(65536)
            if not data:
                return
            inc.write(data)
    line = b""
    while not line.endswith(b"\n"):
        try:
            line += obj.read(1)
        except ssl.SSLWantReadError:
            data = raw.recv(65536)
            if not data:
                return
            inc.write(data)
    obj.write(b"y" * 16000)
    record = out.read()
    raw.sendall(record[: len(record) // 2])
    time.sleep(0.2)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


def handle(mode, raw, ctx):
    try:
        if mode == "midrecord":
            midrecord(raw, ctx)
            return
        if mode == "starttls":
            f = raw.makefile("rb")
            line = f.readline()
            if line != b"STARTTLS\n":
                raw.sendall(b"ERR\n")
                return
            raw.sendall(b"GO\n")
        conn = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=(mode != "sink"))
        if mode in ("close_notify", "noclose", "reset", "sink"):
            # Wait for the client's "go", so its handshake (and its switch to
            # kernel TLS) is over before this connection ends.
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(1)
                if not chunk:
                    return
                buf += chunk
        if mode in ("echo", "starttls"):
            echo(conn)
            conn.unwrap()
        elif mode == "close_notify":
            conn.sendall(b"goodbye")
            conn.unwrap()                 # sends close_notify ...
            time.sleep(3)                 # ... and keeps TCP open
        elif mode == "noclose":
            conn.sendall(b"truncated")
            raw.shutdown(socket.SHUT_RDWR)  # FIN without close_notify
        elif mode == "reset":
            conn.sendall(b"x" * 100)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        elif mode == "sink":
            # Reads nothing for half a second (a big send from the client
            # stays in flight), then everything, and appends to DIR/sink.log
            # how many bytes came and whether close_notify ended them (a
            # cut stream raises SSLEOFError instead).
            time.sleep(0.5)
            n, clean = 0, 0
            try:
                while True:
                    data = conn.recv(1 << 20)
                    if not data:
                        clean = 1
                        break
                    n += len(data)
            except (OSError, ssl.SSLError):
                pass
            with open(os.path.join(SINK_DIR, "sink.log"), "a") as f:
                f.write("bytes=%d clean=%d\n" % (n, clean))
        elif mode == "eager":
            # Data right behind the handshake (and TLS 1.3 tickets): what the
            # kernel must find in the socket after the switch.
            conn.sendall(b"early words\n")
            echo(conn)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            raw.close()
        except OSError:
            pass


def run_python(mode, d):
    ctx = context(d)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    print("PORT %d PID %d DIR %s" % (srv.getsockname()[1], os.getpid(), d), flush=True)
    threading.Thread(target=watch_parent, daemon=True).start()
    while True:
        raw, _ = srv.accept()
        threading.Thread(target=handle, args=(mode, raw, ctx), daemon=True).start()


def run_keyupdate(d):
    """openssl s_server, TLS 1.3 only. After the client's "go" line it sends
    "before", a KeyUpdate with update_requested (its interactive "K"
    command), then "after"; once it has read the client's "ping" (which it
    can only decrypt if the client answered with a KeyUpdate of its own) it
    sends "pong", a KeyUpdate without request ("k") and "again"."""
    port = free_port()
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-tls1_3", "-naccept", "1",
         "-cert", os.path.join(d, "good.pem"), "-key", os.path.join(d, "good.key")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    CHILDREN.append(proc)
    wait_listen_state(port)
    print("PORT %d PID %d DIR %s" % (port, os.getpid(), d), flush=True)
    threading.Thread(target=watch_parent, daemon=True).start()

    def say(*cmds):
        for cmd in cmds:
            proc.stdin.write(cmd)
            proc.stdin.flush()
            time.sleep(0.2)

    try:
        for line in proc.stdout:
            if line.strip() == b"go":
                say(b"before\n", b"K\n", b"after\n")
            elif line.strip() == b"ping":
                say(b"pong\n", b"k\n", b"again\n")
    except BrokenPipeError:
        pass                              # the client is gone, and s_server with it
    time.sleep(5)
    stop()


def run_sni(d):
    """openssl s_server that fails any handshake whose SNI is not
    "localhost": it tells whether a client sent SNI, and which."""
    port = free_port()
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-www",
         "-cert", os.path.join(d, "good.pem"), "-key", os.path.join(d, "good.key"),
         "-cert2", os.path.join(d, "good.pem"), "-key2", os.path.join(d, "good.key"),
         "-servername", "nomatch.example", "-servername_fatal"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    CHILDREN.append(proc)
    wait_listen_state(port)
    print("PORT %d PID %d DIR %s" % (port, os.getpid(), d), flush=True)
    watch_parent()


def wait_listen_state(port):
    # Connecting would use up s_server's one accept: look for LISTEN instead.
    want = ":%04X" % port
    for _ in range(200):
        with open("/proc/net/tcp") as f:
            if any(want in l.split()[1] and l.split()[3] == "0A" for l in f.readlines()[1:]):
                return
        time.sleep(0.025)
    raise SystemExit("s_server never listened")


SINK_DIR = "."


def main():
    global SINK_DIR
    mode, d = sys.argv[1], os.path.abspath(sys.argv[2])
    SINK_DIR = d
    certs(d)
    signal.signal(signal.SIGTERM, stop)
    if mode == "nginx":
        run_nginx(d)
    elif mode == "wsproxy":
        run_wsproxy(d, int(sys.argv[3]))
    elif mode == "keyupdate":
        run_keyupdate(d)
    elif mode == "sni":
        run_sni(d)
    else:
        run_python(mode, d)


if __name__ == "__main__":
    main()
