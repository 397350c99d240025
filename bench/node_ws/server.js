// The peer for bench/chat_fanout.py: a minimal Node.js `ws` broadcast server.
// Every message is sent to every open client with ws.send (the usual broadcast loop);
// `rate` messages/s are injected on a 10 ms timer, each stamped with its send time.
//   node server.js <port> <rate_per_s> <text_chars>
"use strict";
const { WebSocketServer, WebSocket } = require("ws");
const { performance } = require("perf_hooks");

const port = Number(process.argv[2]);
const rate = Number(process.argv[3]);
const pad = "x".repeat(Number(process.argv[4] || 90));
const wss = new WebSocketServer({ host: "127.0.0.1", port, backlog: 4096, perMessageDeflate: false });
const now = () => (performance.timeOrigin + performance.now()) / 1000;

let sent = 0;
let start = 0;
wss.on("listening", () => {
  start = now();
  console.log("READY");
  setInterval(() => {
    const due = Math.floor((now() - start) * rate) - sent;
    for (let i = 0; i < due; i++) {
      const msg = JSON.stringify({ id: `m${sent}`, user: "bench", text: pad, ts: now() });
      sent++;
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(msg);
      }
    }
  }, 10);
});
wss.on("connection", (ws) => {
  ws.on("message", () => {}); // the join frame: one room here
  ws.on("error", () => {});
});
process.on("SIGTERM", () => process.exit(0));
