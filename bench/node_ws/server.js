// The peer for bench/chat_fanout.py: a minimal Node.js `ws` chat server doing the same work
// as the gateway minus auth, moderation and persistence: a `send` frame is broadcast to
// every open client with ws.send (the usual loop), one message per frame, in the gateway's
// `batch` shape, and acked to its sender. `join` answers `joined`; one room.
// A positive <max_clients> terminates connections past it (to test the bench's refusal).
//   node server.js <port> [max_clients]
"use strict";
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2]);
const wss = new WebSocketServer({ host: "127.0.0.1", port, backlog: 4096, perMessageDeflate: false });
const maxClients = Number(process.argv[3] || 0);
let seq = 0;

wss.on("listening", () => console.log("READY"));
wss.on("connection", (ws) => {
  if (maxClients > 0 && wss.clients.size > maxClients) {
    ws.terminate();
    return;
  }
  ws.on("message", (data) => {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "join") {
      ws.send(JSON.stringify({ v: 1, type: "joined", room: frame.room, user: null, can_post: true }));
    } else if (frame.type === "send") {
      seq++;
      const message = { id: `n${seq}`, seq, room: "bench", text: frame.text, at: new Date().toISOString() };
      const batch = JSON.stringify({ v: 1, type: "batch", room: "bench", skipped: 0, messages: [message] });
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(batch);
      }
      ws.send(JSON.stringify({ v: 1, type: "ack", id: frame.id, message_id: message.id, status: "visible" }));
    }
  });
  ws.on("error", () => {});
});
process.on("SIGTERM", () => process.exit(0));
