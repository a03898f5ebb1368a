// A WebSocket client for lurk's server tests (Node's ws package): connects
// to the URL in argv[2], sends a text, a binary and a 1 MiB text message,
// expects each echoed back, then closes with 1000 and prints one line:
// "OK <extensions> <protocol>" or "FAIL <why>".
const path = require("path");
const WebSocket = require(path.join(process.env.LURK_NODE_MODULES || path.join(__dirname, "../../.deps/node/node_modules"), "ws"));

const url = process.argv[2];
const ws = new WebSocket(url, ["chat", "other"], { perMessageDeflate: true });
const big = "y".repeat(1024 * 1024);
const expected = [["hello", false], [Buffer.from([0, 1, 2, 255]), true], [big, false]];
let got = 0;
const fail = (why) => { console.log("FAIL " + why); process.exit(1); };
setTimeout(() => fail("timeout"), 10000);
ws.on("open", () => { for (const [m] of expected) ws.send(m); });
ws.on("message", (data, isBinary) => {
  const [want, bin] = expected[got++];
  if (bin !== isBinary || !Buffer.from(want).equals(Buffer.from(data))) fail("message " + got + " differs");
  if (got === expected.length) ws.close(1000, "done");
});
ws.on("close", (code) => {
  if (got !== expected.length) fail("closed early with " + code);
  console.log("OK " + (ws.extensions || "-") + " " + (ws.protocol || "-"));
  process.exit(0);
});
ws.on("error", (e) => fail(String(e)));
