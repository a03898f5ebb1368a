// Chat clients for examples/ws_broadcast.lua (Node's ws package): opens n
// clients (argv[3]) to the URL in argv[2] as c1..cn; once each has seen
// its own join notice, each sends "hi from ci"; each client must then
// receive every one of those lines. Prints "OK <n> clients, <lines> lines
// each" or "FAIL <why>", exit status 0 or 1.
const path = require("path");
const WebSocket = require(path.join(process.env.LURK_NODE_MODULES || path.join(__dirname, "../../.deps/node/node_modules"), "ws"));

const url = process.argv[2];
const n = Number(process.argv[3] || 3);
const fail = (why) => { console.log("FAIL " + why); process.exit(1); };
setTimeout(() => fail("timeout"), 10000);
const socks = [];
const seen = [];
let sent = false, finished = 0, reported = false;
for (let i = 1; i <= n; i++) {
  const ws = new WebSocket(url + "?name=c" + i);
  const lines = new Set();
  seen.push(lines);
  socks.push(ws);
  ws.on("message", (data) => {
    lines.add(String(data));
    // Each client's own join notice means the server has it in its list:
    // once all have theirs, every line sent reaches all of them.
    if (!sent && seen.every((s, k) => s.has("* c" + (k + 1) + " joined"))) {
      sent = true;
      socks.forEach((s, k) => s.send("hi from c" + (k + 1)));
    }
    if ([...Array(n).keys()].every((j) => lines.has("c" + (j + 1) + ": hi from c" + (j + 1)))) {
      if (!lines.done) { lines.done = true; finished++; }
      if (finished === n && !reported) {
        reported = true;
        console.log("OK " + n + " clients, " + n + " lines each");
        socks.forEach((s) => s.close(1000));
        setTimeout(() => process.exit(0), 100);
      }
    }
  });
  ws.on("error", (e) => fail(String(e)));
}
