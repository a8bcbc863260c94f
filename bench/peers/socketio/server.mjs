// The Socket.IO peer of the benchmarks: rooms and broadcast written the way a typical
// Socket.IO developer would (`socket.join`, `io.to(room).emit`). WebSocket transport only;
// the Engine.IO / Socket.IO frames a client sends and receives are in ../README.md.
//
//   node bench/peers/socketio/server.mjs [port]     (or PORT=...; default 0, a free port)
//
// Prints `LISTENING <port>` once it accepts connections; exits with status 0 on SIGTERM.
// SIO_PING_INTERVAL and SIO_PING_TIMEOUT (milliseconds) override the heartbeat, for tests.

import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"], // no HTTP long-polling, no upgrade dance
  serveClient: false,
  perMessageDeflate: false, // compression off, as for every peer
  httpCompression: false,
  // The server pings every pingInterval and drops a client that has not answered within
  // pingTimeout. Generous, so heartbeats cost nothing measurable and a client busy
  // reading a flood still answers in time; the defaults are 25 s and 20 s.
  pingInterval: Number(process.env.SIO_PING_INTERVAL ?? 60_000),
  pingTimeout: Number(process.env.SIO_PING_TIMEOUT ?? 60_000),
  maxHttpBufferSize: 1024 * 1024, // largest message, as for the other peers
});

io.on("connection", (socket) => {
  socket.on("join", (room) => {
    if (typeof room !== "string") return;
    socket.join(room);
    socket.emit("joined", room);
  });

  // The packet is encoded once and written to every member (the sender too, if in it).
  socket.on("pub", (msg) => {
    if (typeof msg?.room !== "string") return;
    io.to(msg.room).emit("msg", { room: msg.room, body: msg.body });
  });

  socket.on("echo", (payload) => {
    socket.emit("echo", payload);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`LISTENING ${httpServer.address().port}`);
});

process.on("SIGTERM", () => {
  // Disconnects every client and closes the HTTP server.
  io.close(() => process.exit(0));
});
