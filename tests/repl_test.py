#!/usr/bin/env python3
"""The REPL driven through a pseudo-terminal, as a person would use it:
prompts, multi-line input, =expr, pretty printing, an HTTPS request at the
prompt against a local server, a background task printing while the prompt
waits, Ctrl-C cancelling a long lurk.sleep, tab completion, history written
and reloaded; then the same REPL fed by a pipe (no prompt, exit status).
Then a hostile loopback server: escape sequences in its reason phrase,
headers and body never reach the terminal raw, binary bodies show as bytes;
locals that persist, `stmts; expr`, short descriptions of lurk objects,
completion of res.headers without internals, and Ctrl-C stopping a loop the
JIT would compile (a second Ctrl-C ending a chunk no hook reaches).

usage: repl_test.py LURK   (env LURK_SUPPORT: tests/support)
"""
import base64
import hashlib
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LURK = os.path.abspath(sys.argv[1])
SUPPORT = os.environ.get("LURK_SUPPORT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "support")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB0-2]|[\r\x07\x08]")
checks = 0


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


class Repl:
    """A lurk process on a pty; expect() waits for a pattern in its output."""

    def __init__(self, env, args=()):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(LURK, [LURK, *args], env)
        self.out = ""                 # everything seen, escapes removed
        self.raw = b""                # everything seen, as the terminal got it
        self.pos = 0                  # where the next expect() starts looking

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        self.raw += data
        self.out += ANSI.sub("", data.decode("utf-8", "replace"))
        return True

    def expect(self, pattern, timeout=10, what=None):
        global checks
        checks += 1
        deadline = time.time() + timeout
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.out, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.time()
            if left <= 0 or (not self.read(left) and time.time() >= deadline):
                fail("%s: expected %r within %ss; output after the last match:\n%s"
                     % (what or "repl", pattern, timeout, self.out[self.pos:][-2000:]))

    def send(self, s):
        os.write(self.fd, s.encode())

    def line(self, s):
        self.send(s + "\r")

    def wait(self, timeout=10, what="exit"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        fail("%s: the REPL did not exit; its last output:\n%r" % (what, self.out[-600:]))


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        fail(msg)


def main():
    work = tempfile.mkdtemp(prefix="lurk-repl-")
    api = subprocess.Popen([sys.executable, os.path.join(SUPPORT, "api.py"), work],
                           stdout=subprocess.PIPE, text=True)
    try:
        line = api.stdout.readline()
        if "PORT" not in line:
            fail("api.py did not start: %r" % line)
        ports = dict(re.findall(r"(\w+) = (\d+)", open(os.path.join(work, "ports.lua")).read()))
        run(work, int(ports["https"]))
        hostile_port = start_hostile()
        run_more(work, hostile_port)
    finally:
        api.terminate()
        api.wait()
        shutil.rmtree(work, ignore_errors=True)
    print("ok: %d checks" % checks)


def run(work, https_port):
    home = os.path.join(work, "home")
    os.mkdir(home)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TERM": "xterm",
           "NO_COLOR": "1"}
    history = os.path.join(home, ".lurk_history")
    ca = os.path.join(work, "ca.pem")

    r = Repl(env)
    r.expect(r"lurk \S+ .*Ctrl-D quits", what="banner")
    r.expect(r"\n?> $", what="first prompt")

    # Expressions print their values; =expr too; statements print nothing.
    r.line("1 + 1")
    r.expect(r"\n2\n> ", what="bare expression")
    r.line("x = 40")
    r.expect(r"x = 40\n> ", what="statement")
    r.line("=x + 2")
    r.expect(r"\n42\n> ", what="=expr")

    # An incomplete chunk continues on the next line, with its own prompt.
    r.line("function sq(n)")
    r.expect(r">> ", what="continuation prompt")
    r.line("  return n * n")
    r.expect(r">> ")
    r.line("end")
    r.expect(r"\n> ", what="chunk complete")
    r.line("sq(12)")
    r.expect(r"\n144\n> ", what="multi-line function")

    # Pretty printing: nesting, a cycle, a long string elided with its length.
    r.line('{ 1, "two", nested = { deep = true }, long = ("z"):rep(1000) }')
    r.expect(r'1, "two".*long = "zzz.*\.\.\." \(1000 bytes\).*nested = \{ deep = true \}', what="table")
    r.line("local t = { name = 'loop' } t.self = t return t")
    r.expect(r"<cycle: table: 0x[0-9a-f]+>", what="cycle")

    # An error shows its message and position, and the prompt comes back.
    r.line('error("no such thing")')
    r.expect(r"stdin:1: no such thing.*\n> ", what="error")

    # HTTPS at the prompt: the response shown as status, headers and body.
    r.line('res = https.get("https://localhost:%d/get?from=repl", { tls = { cafile = "%s" } })'
           % (https_port, ca))
    r.expect(r"\n> ", what="https.get")
    r.line("res")
    r.expect(r'HTTP 200 OK.*content-type: application/json.*"from":\s*"repl"', what="response")
    r.expect(r"\n> ")

    # Tab completion of a module field and of a method.
    r.send("=https.ge\t")
    r.expect(r"=https\.get", what="completion of https.ge")
    r.line("")
    r.expect(r"function: .*\n> ", what="completed name evaluated")
    r.send("res:js\t")
    r.expect(r"res:json", what="completion of res:js")
    r.line("().args.from")
    r.expect(r'"repl"\n> ', what="completed method called")

    # A background task prints while the prompt waits for input.
    r.line('lurk.spawn(function() lurk.sleep(0.3) print("from the background") end)')
    r.expect(r"from the background", timeout=5, what="background print")

    # Ctrl-C cancels a long sleep and returns to the prompt.
    t0 = time.time()
    r.line("lurk.sleep(30)")
    time.sleep(0.5)
    r.send("\x03")
    r.expect(r"\(cancelled\).*> ", timeout=5, what="Ctrl-C during lurk.sleep")
    check(time.time() - t0 < 5, "Ctrl-C took %.1fs" % (time.time() - t0))
    r.line("=1")
    r.expect(r"\n1\n> ", what="prompt works after Ctrl-C")

    # Ctrl-C stops the chunk, not a background task that happens to be
    # running Lua when the signal comes (LuaJIT's hook is global).
    r.line("bg, stop_bg = 0, false")
    r.expect(r"> ", what="bg set")
    r.line("lurk.spawn(function() while not stop_bg do for i = 1, 3e5 do end bg = bg + 1 lurk.sleep(0) end end)")
    r.expect(r"> ", what="busy background task started")
    r.line("repeat until not lurk.sleep(0.001)")   # ends when cancelled
    time.sleep(0.5)
    mark = len(r.out)
    r.send("\x03")
    # The chunk stops: cancelled by the loop, or interrupted by the hook when
    # it runs Lua first; either way the chunk's own error, not a task's.
    r.expect(r"(\(cancelled\)|stdin:1: interrupted).*> ", timeout=5, what="Ctrl-C with a busy background task")
    check("error in task" not in r.out[mark:], "the background task was interrupted: %r" % r.out[mark:])
    r.line("n1 = bg")
    r.expect(r"> ", what="n1 set")
    r.line("lurk.sleep(0.3)")
    r.expect(r"> ", what="slept")
    r.line("=bg > n1")
    r.expect(r"\ntrue\n> ", what="the background task still runs after Ctrl-C")
    r.line("stop_bg = true")
    r.expect(r"> ", what="background task stopped")

    # Ctrl-C at an empty prompt twice: a hint, not an exit. (A person's
    # keystrokes come after the prompt has put the terminal in raw mode.)
    time.sleep(0.2)
    r.send("\x03")
    r.expect(r"\^C\n> ", what="first Ctrl-C")
    time.sleep(0.2)
    r.send("\x03")
    r.expect(r"Ctrl-D.*> ", what="hint how to quit")

    # Ctrl-D quits (typed once the prompt is back, as a person would).
    time.sleep(0.2)
    r.send("\x04")
    check(r.wait(what="Ctrl-D") == 0, "exit status after Ctrl-D")

    # History: written, and reloaded by the next session (up arrow).
    check(os.path.exists(history), "history file written")
    text = open(history, encoding="utf-8", errors="replace").read()
    check("sq(12)" in text, "history has the lines entered: %r" % text[-300:])
    r = Repl(env)
    r.expect(r"> $")
    r.send("\x1b[A")
    r.expect(r"stop_bg = true", what="up arrow recalls the last entry")
    r.send("\x15")                    # kill the recalled line
    r.send("\x04")
    check(r.wait(what="second session") == 0, "second session exits")

    # LURK_HISTORY= keeps none.
    os.remove(history)
    r = Repl(dict(env, LURK_HISTORY=""))
    r.expect(r"> $")
    r.line("=7 * 6")
    r.expect(r"42\n> ")
    time.sleep(0.2)
    r.send("\x04")
    r.wait(what="LURK_HISTORY= session")
    check(not os.path.exists(history), "no history written with LURK_HISTORY empty")

    # Not a terminal: no prompt or colors, statements in order, and the exit
    # status says whether any failed.
    p = subprocess.run([LURK, "-i"], input="a = 1\n=a + 1\nfor i = 1, 2 do\nprint(i)\nend\n", text=True,
                       capture_output=True, env=env, timeout=20)
    check(p.returncode == 0 and p.stdout == "2\n1\n2\n", "piped: %r %r" % (p.returncode, p.stdout))
    p = subprocess.run([LURK, "-i"], input='print("before")\nerror("bad")\nprint("after")\n', text=True,
                       capture_output=True, env=env, timeout=20)
    check(p.returncode == 1, "piped input with an error exits 1, got %r" % p.returncode)
    check(p.stdout == "before\nafter\n" and "stdin:1: bad" in p.stderr,
          "piped output in order, the error on stderr: %r %r" % (p.stdout, p.stderr))
    check("\x1b[" not in p.stdout and "> " not in p.stdout, "no prompt or colors when piped")


EVIL = b"\x1b]0;pwned title\x07\x1b[2J\x1b]52;c;cHduZWQ=\x07"   # title, clear screen, clipboard
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + EVIL + bytes(range(256))
BLOB = b"\x00\x01\x02" + EVIL + b"\xff\xfe" * 40


def hostile_response(path):
    """The head and body a hostile server sends for path."""
    if path == "/evil-body":
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", b"line one\n" + EVIL + b" end\n"
    if path == "/evil-reason":
        return b"HTTP/1.1 200 OK" + EVIL + b"\r\nContent-Type: text/plain\r\n", b"fine\n"
    if path == "/evil-header":
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Evil: a" + EVIL + b"b\r\n", b"fine\n"
    if path == "/png":
        return b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n", PNG
    if path == "/blob":
        return b"HTTP/1.1 200 OK\r\n", BLOB
    return b"HTTP/1.1 404 Not Found\r\n", b"no\n"


def serve_hostile(conn):
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return
            data += more
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        path = head.split(" ")[1]
        if path == "/ws":             # a WebSocket that accepts and stays open
            key = re.search(r"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
            accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            while conn.recv(65536):
                pass
            return
        status, body = hostile_response(path)
        conn.sendall(status + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


def start_hostile():
    """A loopback HTTP server whose reason phrases, headers and bodies carry
    terminal escape sequences; returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def loop():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve_hostile, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def no_raw_escapes(r, mark, what):
    """Nothing the server sent reached the terminal as an escape sequence."""
    seen = r.raw[mark:]
    for seq in (b"\x1b]0;", b"\x1b[2J", b"\x1b]52;"):
        check(seq not in seen, "%s: the terminal got %r from the server: %r" % (what, seq, seen[-600:]))


def run_more(work, port):
    home = os.path.join(work, "home2")
    os.mkdir(home)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TERM": "xterm",
           "NO_COLOR": "1", "LURK_HISTORY": ""}
    base = "http://127.0.0.1:%d" % port
    r = Repl(env)
    r.expect(r"> $", what="banner (hostile)")

    # A body with escape sequences: shown escaped, never raw. The response is
    # shown alone, with no stray nil for the absent second value.
    mark = len(r.raw)
    r.line('http.get("%s/evil-body")' % base)
    m = r.expect(r"HTTP 200 OK.*?\n> ", what="evil body")
    check(r"line one" in m.group(0) and r"\27]52;c;cHduZWQ=\7" in m.group(0),
          "the body is shown with its escapes spelled out: %r" % m.group(0))
    check(not re.search(r"\tnil\s*\n> $", m.group(0)), "no stray nil after the response: %r" % m.group(0))
    no_raw_escapes(r, mark, "evil body")

    # The reason phrase and a header value, from the server, escaped too
    # (the parser refuses an ESC in a header value: then the error shows).
    for path, what, shown in (("/evil-reason", "reason phrase", r"HTTP 200 OK\\27\]0;pwned title\\7\\27\[2J"),
                              ("/evil-header", "header value", r"x-evil: a\\27\]0;pwned title|Invalid header value")):
        mark = len(r.raw)
        r.line('http.get("%s%s")' % (base, path))
        r.expect(shown, what=what)
        r.expect(r"\n> ")
        no_raw_escapes(r, mark, what)

    # Binary bodies: a size, the type and a hex preview, never the bytes.
    mark = len(r.raw)
    r.line('http.get("%s/png")' % base)
    r.expect(r"<%d bytes, image/png> 89 50 4e 47 0d 0a 1a 0a" % len(PNG), what="png body")
    r.expect(r"\n> ")
    r.line('http.get("%s/blob")' % base)
    r.expect(r"<%d bytes, [^>]+> 00 01 02 1b 5d 30" % len(BLOB), what="binary body without a type")
    r.expect(r"\n> ")
    no_raw_escapes(r, mark, "binary bodies")

    # A background task's uncaught error, quoting a server, shows above the
    # prompt with its escapes spelled out.
    mark = len(r.raw)
    r.line('lurk.spawn(function() lurk.sleep(0.1) error(http.get("%s/evil-reason").reason) end)' % base)
    r.expect(r"lurk: error in task: .*?OK\\27\]0;pwned title", timeout=5, what="task error")
    r.expect(r"> ")
    no_raw_escapes(r, mark, "task error")

    # lurk's objects print as short descriptions, not their internals.
    r.line('c = ws.connect("ws://127.0.0.1:%d/ws")' % port)
    r.expect(r"\n> ", what="ws.connect")
    r.line("c")
    m = r.expect(r"\n(.*?)\n> ", what="a WebSocket shown")
    check(m.group(1).startswith("lurk.ws (ws://127.0.0.1") and "closed_signal" not in m.group(1)
          and "=" not in m.group(1), "a WebSocket connection in short: %r" % m.group(1))
    r.line("c:close()")
    r.expect(r"\n> ")
    for expr, shape in (("lurk.channel(2)", r"<lurk\.channel: 0 queued, capacity 2>"),
                        ("http.client{}", r"http\.client \(no base_url\)"),
                        ("json.null", r"json\.null"),
                        ("lurk.spawn(function() end)", r"lurk\.task \(0x[0-9a-f]+\)"),
                        ("lurk.semaphore(3)", r"<lurk\.semaphore: 3 available>")):
        r.line("=" + expr)
        m = r.expect(r"\n(.*?)\n> ", what=expr)
        check(re.fullmatch(shape, m.group(1)), "%s shows as %r" % (expr, m.group(1)))

    # Locals persist between chunks; so does a pasted multi-line local
    # function; `stmts; expr` shows the expression.
    r.line("local n = 41")
    r.expect(r"\n> ", what="local n")
    r.line("n + 1")
    r.expect(r"\n42\n> ", what="a local from the chunk before")
    r.send("local function fact(k)\r  if k < 2 then return 1 end\r  return k * fact(k - 1)\rend\r")
    r.expect(r"end\n> ", what="pasted local function")
    r.line("fact(6)")
    r.expect(r"\n720\n> ", what="the pasted local function is defined")
    r.line("r = fact(3); r")
    r.expect(r"\n6\n> ", what="r = f(); r")
    r.line("n = n + 1; n")
    r.expect(r"\n42\n> ", what="assigning a persisted local")

    # Completion: res.headers' methods; no internals or metamethods.
    r.line('res = http.get("%s/evil-body")' % base)
    r.expect(r"\n> ")
    r.send("res.headers:a\t")
    r.expect(r"res\.headers:all", what="completion of res.headers:a")
    r.line('("content-type")[1]')
    r.expect(r'"text/plain"\n> ', what="completed headers method called")
    time.sleep(0.2)
    mark = len(r.out)
    r.send("res:\t\t")
    r.expect(r"res:json.*?> res:", what="the methods of res listed")
    listed = r.out[mark:r.pos]
    check("__" not in listed and "res:_" not in listed, "internals or metamethods offered: %r" % listed)
    r.send("\x15")
    r.line("")
    r.expect(r"> ")

    # Ctrl-C stops loops the JIT would compile, in the chunk and in the
    # functions it defines.
    for chunk in ("while true do end", "local function spin() local i = 0 while true do i = i + 1 end end spin()"):
        r.line(chunk)
        time.sleep(0.6)
        t0 = time.time()
        r.send("\x03")
        r.expect(r"stdin:1: interrupted.*?\n> ", timeout=5, what="Ctrl-C in %r" % chunk)
        check(time.time() - t0 < 3, "Ctrl-C took %.1fs" % (time.time() - t0))
    r.line("=1 + 1")
    r.expect(r"\n2\n> ", what="the prompt works after interrupting loops")

    # A loop no hook reaches (compiled code outside the chunk): a second
    # Ctrl-C ends the program, with a word.
    r.line('loadstring("while true do end")()')
    time.sleep(0.6)
    r.send("\x03")
    time.sleep(0.8)
    r.send("\x03")
    code = r.wait(timeout=5, what="second Ctrl-C")
    check(code == 130 and "did not stop at Ctrl-C" in r.out, "second Ctrl-C: %r %r" % (code, r.out[-300:]))


if __name__ == "__main__":
    main()
