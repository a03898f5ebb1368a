#!/usr/bin/env python3
"""openssl s_server peers for lurk's record layer, and a tampering proxy.

usage: records.py DIR

Starts one `openssl s_server -www` per TLS version x cipher pair (six) and,
in front of each, one proxy port per way of tampering with the server's
response record; writes DIR/records.lua:

  return { tls12_aes128 = { version = "1.2", suite = "...", direct = <port>,
                            clean = <port>, header = <port>, ... }, ... }

The proxy forwards both ways and parses records. Once it has forwarded the
client's request (TLS 1.2: the client's first application_data record; TLS
1.3: its second, the first being its Finished), it changes the server's
next application_data record of at least 1000 bytes (the response, never a
ticket) according to the port's mode:

  clean       nothing (the proxy itself is transparent)
  header      a bit of the header's version, 0x0303 -> 0x0302 (in the AEAD's additional
              data; kernel TLS checks it first and says EINVAL)
  nonce       the first byte after the header (TLS 1.2 GCM: the explicit nonce)
  ciphertext  a byte in the middle
  tag         the last byte
  truncate    the record's last 10 bytes dropped, its length fixed to match
  replay      the record sent twice (the copy has the wrong sequence number)
  oversize    replaced by a header claiming 2^14 + 2048 + 1 bytes, and those bytes
  client_tag  (the other way) the last byte of the client's request: s_server
              answers with a fatal bad_record_mac alert
  switch      no tampering, but every connection after the first goes to a second
              s_server (other ticket keys): it cannot resume the first one's session

Prints "PORT <direct port of tls13_aes128> PID <pid> DIR <dir>" once ready;
exits when its parent does. Certificates come from certs.sh in DIR.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlsserver as ts  # noqa: E402

PAIRS = {
    "tls12_aes128": ("1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"),
    "tls12_aes256": ("1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"),
    "tls12_chacha": ("1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"),
    "tls13_aes128": ("1.3", "TLS_AES_128_GCM_SHA256", "TLS1-3-AES-128-GCM-SHA256"),
    "tls13_aes256": ("1.3", "TLS_AES_256_GCM_SHA384", "TLS1-3-AES-256-GCM-SHA384"),
    "tls13_chacha": ("1.3", "TLS_CHACHA20_POLY1305_SHA256", "TLS1-3-CHACHA20-POLY1305-SHA256"),
}
MODES = ["clean", "header", "nonce", "ciphertext", "tag", "truncate", "replay", "oversize", "client_tag", "switch"]


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            return None
        buf += b
    return buf


def records(s):
    while True:
        h = read_exact(s, 5)
        if h is None:
            return
        body = read_exact(s, struct.unpack(">H", h[3:5])[0])
        if body is None:
            return
        yield h, body


def tamper(mode, h, body):
    rec = bytearray(h + body)
    if mode == "header":
        rec[2] ^= 0x01
    elif mode == "nonce":
        rec[5] ^= 0x01
    elif mode == "ciphertext":
        rec[5 + len(body) // 2] ^= 0x10
    elif mode == "tag":
        rec[-1] ^= 0x80
    elif mode == "truncate":
        rec = rec[:-10]
        rec[3:5] = struct.pack(">H", len(body) - 10)
    elif mode == "replay":
        return bytes(rec) * 2
    elif mode == "oversize":
        n = 16384 + 2048 + 1
        return bytes([23, 3, 3]) + struct.pack(">H", n) + b"\0" * n
    return bytes(rec)


def proxy(client, upstream, version, mode):
    target = upstream[0]
    if mode == "switch" and len(upstream) > 1:
        upstream.pop(0)                   # the next connections go to the other s_server
    try:
        server = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    sent = threading.Event()

    def up():
        data_records = 0
        try:
            for h, body in records(client):
                out = h + body
                if h[0] == 23:
                    data_records += 1
                    if data_records == (1 if version == "1.2" else 2):
                        if mode == "client_tag":
                            out = out[:-1] + bytes([out[-1] ^ 0x80])
                        sent.set()
                server.sendall(out)
        except OSError:
            pass
        try:
            server.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=up, daemon=True).start()
    done = mode in ("clean", "client_tag", "switch")
    try:
        for h, body in records(server):
            out = h + body
            if not done and sent.is_set() and h[0] == 23 and len(body) >= 1000:
                out = tamper(mode, h, body)
                done = True
            client.sendall(out)
    except OSError:
        pass
    for s in (client, server):
        try:
            s.close()
        except OSError:
            pass


def listen(port, upstream, version, mode):
    upstream = list(upstream)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)

    def accept():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=proxy, args=(c, upstream, version, mode), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def main():
    d = os.path.abspath(sys.argv[1])
    signal.signal(signal.SIGTERM, ts.stop)   # the s_servers go with this process
    ts.certs(d)
    per = 2 + len(MODES)              # s_server, the other s_server, one port per mode
    ports = ts.free_ports(len(PAIRS) * per)
    out = ["return {"]
    for i, (name, (version, cipher, suite)) in enumerate(PAIRS.items()):
        direct, other = ports[i * per], ports[i * per + 1]
        for port in (direct, other):
            args = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-www",
                    "-cert", os.path.join(d, "good.pem"), "-key", os.path.join(d, "good.key")]
            args += ["-tls1_2", "-cipher", cipher] if version == "1.2" else ["-tls1_3", "-ciphersuites", cipher]
            ts.CHILDREN.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL))
        fields = ['version = "%s"' % version, 'suite = "%s"' % suite, "direct = %d" % direct]
        for j, mode in enumerate(MODES):
            p = ports[i * per + 2 + j]
            listen(p, [direct, other], version, mode)
            fields.append("%s = %d" % (mode, p))
        out.append("  %s = { %s }," % (name, ", ".join(fields)))
    out.append("}")
    for i in range(len(PAIRS)):
        ts.wait_listen_state(ports[i * per])
        ts.wait_listen_state(ports[i * per + 1])
    with open(os.path.join(d, "records.lua"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("PORT %d PID %d DIR %s" % (ports[0], os.getpid(), d), flush=True)
    ts.watch_parent()


if __name__ == "__main__":
    main()
