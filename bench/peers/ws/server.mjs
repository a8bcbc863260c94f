// The Node `ws` peer of the benchmarks: rooms and broadcast written the way a typical Node
// developer would, on the `ws` package. The wire protocol is in ../README.md.
//
//   node bench/peers/ws/server.mjs [port]     (or PORT=...; default 0, a free port)
//
// Prints `LISTENING <port>` once it accepts connections; exits with status 0 on SIGTERM.

import { createServer } from "node:http";
import { WebSocket, WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

// A plain HTTP server carrying the WebSocket server, as most applications have one anyway.
// Anything that is not a WebSocket upgrade gets 426 Upgrade Required.
const server = createServer((req, res) => {
  res.writeHead(426, { "Content-Type": "text/plain" });
  res.end("WebSocket only\n");
});

const wss = new WebSocketServer({
  server,
  perMessageDeflate: false, // compression off, as for every peer
  maxPayload: 1024 * 1024,
});

/** Room name → the sockets in it. */
const rooms = new Map();

function join(ws, room) {
  let members = rooms.get(room);
  if (!members) {
    members = new Set();
    rooms.set(room, members);
  }
  members.add(ws);
  ws.rooms.add(room);
}

function leaveAll(ws) {
  for (const room of ws.rooms) {
    const members = rooms.get(room);
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  }
  ws.rooms.clear();
}

wss.on("connection", (ws) => {
  ws.rooms = new Set();

  ws.on("message", (data) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      ws.close(1007, "invalid JSON");
      return;
    }
    switch (msg?.t) {
      case "join":
        if (typeof msg.room !== "string") return;
        join(ws, msg.room);
        ws.send(JSON.stringify({ t: "joined", room: msg.room }));
        break;
      case "pub": {
        const members = rooms.get(msg.room);
        if (!members) return;
        // Serialize once, send the same string to every member (the sender too, if in it).
        const out = JSON.stringify({ t: "msg", room: msg.room, body: msg.body });
        for (const member of members) {
          if (member.readyState === WebSocket.OPEN) member.send(out);
        }
        break;
      }
      case "echo":
        ws.send(JSON.stringify({ t: "echo", body: msg.body }));
        break;
      default:
        ws.close(1008, "unknown message");
    }
  });

  ws.on("close", () => leaveAll(ws));
  ws.on("error", () => ws.terminate());
});

server.listen(port, "127.0.0.1", () => {
  console.log(`LISTENING ${server.address().port}`);
});

process.on("SIGTERM", () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  server.close(() => process.exit(0));
});
