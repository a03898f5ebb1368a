#!/usr/bin/env python3
"""The REPL driven through a pseudo-terminal, as a person would use it:
prompts, multi-line input, =expr, pretty printing, an HTTPS request at the
prompt against a local server, a background task printing while the prompt
waits, Ctrl-C cancelling a long lurk.sleep, tab completion, history written
and reloaded; then the same REPL fed by a pipe (no prompt, exit status).

usage: repl_test.py LURK   (env LURK_SUPPORT: tests/support)
"""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
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


if __name__ == "__main__":
    main()
