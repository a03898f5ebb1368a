// The same WebSocket echo round trips from Node's most used client (npm ws).
// usage: node bench/ws_echo_node.js URL [N [C [SIZE]]]
"use strict";
const path = require("path");
const WebSocket = require(path.join(__dirname, "../.deps/node/node_modules/ws"));
const [url, n = 100000, conns = 64, size = 64] = [process.argv[2], ...process.argv.slice(3).map(Number)];
const per = Math.floor(n / conns);
const msg = "m".repeat(size);
let open = 0, done = 0, c0, t0;
const sockets = [];
for (let i = 0; i < conns; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let left = per;
  ws.on("open", () => { if (++open === conns) start(); });
  ws.on("message", () => {
    if (--left > 0) ws.send(msg);
    else if (++done === conns) finish();
  });
  sockets.push(ws);
}
function start() {
  c0 = process.cpuUsage(); t0 = process.hrtime.bigint();
  for (const ws of sockets) ws.send(msg);
}
function finish() {
  const dt = Number(process.hrtime.bigint() - t0) / 1e9, cpu = process.cpuUsage(c0);
  const total = per * conns;
  console.log(`node  ws echo: ${total} messages of ${size} B over ${conns} connections: ${(total / dt).toFixed(0)} msg/s, ${((cpu.user + cpu.system) / 1e6 / total * 1e6).toFixed(2)} us client CPU per round trip`);
  for (const ws of sockets) ws.close();
}
