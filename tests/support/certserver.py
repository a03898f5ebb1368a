#!/usr/bin/env python3
"""openssl s_server peers for certs_test.lua (the certificate matrix).

usage: certserver.py DIR PKI

PKI is made by pki.sh (if not already there). DIR/servers.txt has one line
per case:

    NAME ADDRESS CERT CHAIN [S_SERVER OPTIONS...]

and each case gets its own `openssl s_server -www` on ADDRESS (127.0.0.1 or
::1) and a free port, presenting PKI/CERT.pem (key PKI/CERT.key) followed by
PKI/CHAIN.pem ("-": no chain). Every server keeps serving until this process
ends. Once all of them accept connections this writes DIR/ports.lua
(return { NAME = port, ... }) and prints "PORT <n> PID <pid>" (n: the first
case's port); it exits when its parent does. Each server's output is in
DIR/logs/NAME.{out,err}. A case whose address cannot be bound (no IPv6
loopback, say) gets no port, and its reason goes into ports.lua as
skipped = { NAME = "why" }.
"""
import os
import signal
import subprocess
import sys
import time

from tlsserver import CHILDREN, HERE, stop, watch_parent   # the same child and parent handling


def start(d, pki, name, addr, cert, chain, extra):
    """Starts one s_server on addr, port 0; s_server prints the port it bound
    ("ACCEPT 127.0.0.1:41234") once it listens, so no other process can have
    answered for it."""
    logs = os.path.join(d, "logs")
    os.makedirs(logs, exist_ok=True)
    out = os.path.join(logs, name + ".out")
    err = os.path.join(logs, name + ".err")
    host = "[%s]" % addr if ":" in addr else addr
    cmd = ["openssl", "s_server", "-accept", host + ":0", "-www",
           "-cert", os.path.join(pki, cert + ".pem"), "-key", os.path.join(pki, cert + ".key")]
    if chain != "-":
        cmd += ["-cert_chain", os.path.join(pki, chain + ".pem")]
    cmd += extra
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=o, stderr=e)
    CHILDREN.append(proc)
    return proc, out, err


def accepted_port(proc, out, err):
    """The port from s_server's ACCEPT line, None while it starts up, or an
    error text if it exited."""
    with open(out) as f:
        for line in f:
            if line.startswith("ACCEPT "):
                return int(line.rsplit(":", 1)[1])
    if proc.poll() is not None:
        with open(err) as f:
            return "s_server exited (%s): %s" % (proc.returncode, " ".join(f.read().split())[:300])
    return None


def main():
    d, pki = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    signal.signal(signal.SIGTERM, stop)
    subprocess.run([os.path.join(HERE, "pki.sh"), pki], check=True)
    cases = []
    with open(os.path.join(d, "servers.txt")) as f:
        for line in f:
            if line.strip():
                name, addr, cert, chain, *extra = line.split()
                cases.append((name, addr, start(d, pki, name, addr, cert, chain, extra)))
    ports, skipped = {}, {}
    deadline = time.time() + 20
    for name, addr, (proc, out, err) in cases:
        while True:
            got = accepted_port(proc, out, err)
            if isinstance(got, int):
                ports[name] = got
                break
            if isinstance(got, str) or time.time() > deadline:
                why = got or "s_server did not listen within 20 s"
                if ":" in addr:     # IPv6: the test says why it skips the case
                    skipped[name] = "no server on [%s]: %s" % (addr, why)
                    break
                raise SystemExit("%s: %s" % (name, why))
            time.sleep(0.01)
    with open(os.path.join(d, "ports.lua"), "w") as f:
        f.write("return {\n")
        for name, port in ports.items():
            f.write("  %s = %d,\n" % (name, port))
        f.write("  skipped = {\n")
        for name, why in skipped.items():
            f.write("    %s = %s,\n" % (name, '"%s"' % why.replace("\\", "\\\\").replace('"', '\\"')))
        f.write("  },\n}\n")
    print("PORT %d PID %d" % (ports[cases[0][0]], os.getpid()), flush=True)
    watch_parent()


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        for child in CHILDREN:      # no server outlives a failed start
            child.kill()
        raise
