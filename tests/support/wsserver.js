// WebSocket peers for lurk's tests: the npm "ws" package (the most used
// WebSocket server for Node) on 127.0.0.1, over ws:// and wss://.
//
// usage: node wsserver.js DIR [deflate]   (certificates from certs.sh in DIR;
//        prints "PORT <ws> PID <pid>" and writes DIR/ws-ports.lua (or, with
//        deflate, which enables permessage-deflate, DIR/ws-ports-deflate.lua))
//
// The path picks the behaviour:
//   /echo             echoes every message with its type (text or binary)
//   /close/CODE       closes at once with CODE and the reason "bye"
//   /ping             sends a ping "are you there", then echoes; reports the
//                     pong's payload as a text message "pong:<payload>"
//   /push/N           sends N text messages "msg <i>", then closes with 1000
//   /count            echoes, and on close sends nothing (counts connections)
// A request for subprotocols gets the first one offered.
"use strict";
const path = require("path");
const fs = require("fs");
const http = require("http");
const https = require("https");
const { WebSocketServer } = require(path.join(process.env.LURK_NODE_MODULES || path.join(__dirname, "../../.deps/node/node_modules"), "ws"));

const dir = path.resolve(process.argv[2]);
// "deflate": permessage-deflate with ws's defaults; "deflate-nct": no context
// takeover both ways and 10-bit windows, to exercise those parameters.
const mode = process.argv[3] || "";
const deflate = mode === "deflate" ? true
  : mode === "deflate-nct" ? { serverNoContextTakeover: true, clientNoContextTakeover: true,
                               serverMaxWindowBits: 10, clientMaxWindowBits: 10 }
  : false;

function attach(server) {
  const wss = new WebSocketServer({
    server,
    maxPayload: 64 * 1024 * 1024,
    perMessageDeflate: deflate,
    handleProtocols: (protocols) => (protocols.size ? [...protocols][0] : false),
  });
  wss.on("connection", (ws, req) => {
    const url = req.url;
    if (url.startsWith("/close/")) {
      ws.close(Number(url.slice(7)), "bye");
      return;
    }
    if (url.startsWith("/push/")) {
      const n = Number(url.slice(6));
      for (let i = 1; i <= n; i++) ws.send("msg " + i);
      ws.close(1000, "done");
      return;
    }
    if (url === "/ping") {
      ws.on("pong", (data) => ws.send("pong:" + data.toString()));
      ws.ping("are you there");
    }
    ws.on("message", (data, isBinary) => {
      ws.send(data, { binary: isBinary });
    });
    ws.on("error", () => {});
  });
  return wss;
}

const plain = http.createServer();
const secure = https.createServer({
  cert: fs.readFileSync(path.join(dir, "good.pem")),
  key: fs.readFileSync(path.join(dir, "good.key")),
});
attach(plain);
attach(secure);
plain.listen(0, "127.0.0.1", () => {
  secure.listen(0, "127.0.0.1", () => {
    fs.writeFileSync(path.join(dir, mode ? `ws-ports-${mode}.lua` : "ws-ports.lua"),
      `return { ws = ${plain.address().port}, wss = ${secure.address().port} }\n`);
    console.log(`PORT ${plain.address().port} PID ${process.pid}`);
  });
});
const parent = process.ppid;
setInterval(() => {
  try { process.kill(parent, 0); } catch (e) { process.exit(0); }
  if (process.ppid !== parent) process.exit(0);
}, 200);
process.on("SIGTERM", () => process.exit(0));
