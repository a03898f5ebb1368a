// The same echo round trips from Node's net module, as a peer in the same run.
// usage: node bench/echo_node.js PORT [N [C [SIZE]]]
const net = require("net");
const [port, total = 100000, conns = 64, size = 64] = process.argv.slice(2).map(Number);
const per = Math.floor(total / conns);
const msg = Buffer.alloc(size, "x"); msg[size - 1] = 10;
let done = 0;
const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
for (let i = 0; i < conns; i++) {
  const s = net.connect({ port, host: "127.0.0.1", noDelay: true }, () => s.write(msg));
  let left = per, got = 0;
  s.on("data", (d) => {
    got += d.length;
    while (got >= size) {
      got -= size;
      if (--left > 0) s.write(msg);
      else { s.end(); if (++done === conns) report(); }
    }
  });
}
function report() {
  const dt = Number(process.hrtime.bigint() - t0) / 1e9, cpu = process.cpuUsage(c0);
  const n = per * conns, cpus = (cpu.user + cpu.system) / 1e6;
  console.log(`node echo: ${n} round trips, ${conns} conns, ${size} B: ${(n / dt).toFixed(0)} RT/s, ${(cpus / n * 1e6).toFixed(2)} us CPU/RT`);
}
