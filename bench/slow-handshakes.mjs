#!/usr/bin/env node
// Slow handshakes (slowloris): what N connections that each send a request head one byte a
// second cost a chorus-server, and whether it ever gives them up.
//
//   node bench/slow-handshakes.mjs BINARY [--connections 500] [--at 5,10,15,30] [-- SERVER ARGS]
//
// Starts `BINARY serve --dev --bind 127.0.0.1:0 SERVER ARGS`, reads its VmRSS from
// /proc/PID/status at baseline (after one request), opens the connections, then reports RSS
// and how many connections are still open at each time in --at (seconds after the last one
// opened). Node 20, no dependencies; Linux only (/proc).

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

function parseArgs(argv) {
  const options = { connections: 500, at: [5, 10, 15, 30], serverArgs: [] };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      options.serverArgs = argv.slice(i + 1);
      break;
    } else if (arg === "--connections") {
      options.connections = Number(argv[++i]);
    } else if (arg === "--at") {
      options.at = argv[++i].split(",").map(Number).sort((a, b) => a - b);
    } else {
      rest.push(arg);
    }
  }
  if (rest.length !== 1 || !(options.connections > 0) || options.at.some((t) => !(t >= 0))) {
    console.error(
      "usage: node bench/slow-handshakes.mjs BINARY [--connections N] [--at S,S,...] [-- SERVER ARGS]",
    );
    process.exit(2);
  }
  options.binary = rest[0];
  return options;
}

function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = status.match(/^VmRSS:\s+(\d+) kB$/m);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}

/** Start the server and resolve with its child process and address, from its log. */
function startServer(binary, args) {
  // Only this run's settings: no CHORUS_* variable of the machine leaks in.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("CHORUS_")),
  );
  const child = spawn(binary, ["serve", "--dev", "--bind", "127.0.0.1:0", ...args], {
    env: { ...env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let log = "";
    const onData = (chunk) => {
      log += chunk;
      const match = log.match(/listening on http:\/\/([^/\s]+)/);
      if (match) {
        child.stdout.off("data", onData);
        child.stdout.resume(); // keep draining the log
        const [host, port] = match[1].split(/:(?=\d+$)/);
        resolve({ child, host, port: Number(port) });
      }
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", onData);
    child.on("exit", (code) => reject(new Error(`server exited (${code}) before listening`)));
  });
}

/** One complete request, so the baseline includes the first request's allocations. */
function request(host, port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host, () =>
      socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    socket.on("data", () => {});
    socket.on("end", resolve);
    socket.on("error", reject);
  });
}

/** The head of a request that never ends: a request line and one header growing forever. */
function slowByte(index) {
  const head = "GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
  return index < head.length ? head[index] : "a";
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const { child, host, port } = await startServer(options.binary, options.serverArgs);
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const rows = [];
  const report = (label, open) => {
    const rss = rssKiB(child.pid);
    rows.push({ label, rssKiB: rss, open });
    console.log(`${label.padEnd(12)} RSS ${(rss / 1024).toFixed(1).padStart(7)} MiB   open ${open}`);
  };

  try {
    await request(host, port);
    await sleep(500);
    report("baseline", 0);

    let open = 0;
    const sockets = new Set();
    const connects = [];
    for (let i = 0; i < options.connections; i++) {
      const socket = net.connect(port, host);
      socket.setNoDelay(true);
      socket.sent = 0;
      connects.push(
        new Promise((resolve) => {
          socket.once("connect", () => {
            open++;
            sockets.add(socket);
            socket.write(slowByte(socket.sent++));
            resolve();
          });
          socket.once("error", resolve);
        }),
      );
      socket.on("error", () => {});
      socket.on("data", () => {}); // a 408 or anything else: the close below counts
      socket.on("close", () => {
        if (sockets.delete(socket)) open--;
      });
    }
    await Promise.all(connects);
    const opened = open;
    const trickle = setInterval(() => {
      for (const socket of sockets) socket.write(slowByte(socket.sent++));
    }, 1000);

    const start = Date.now();
    for (const at of options.at) {
      await sleep(Math.max(0, start + at * 1000 - Date.now()));
      report(`after ${at} s`, open);
    }
    clearInterval(trickle);
    for (const socket of sockets) socket.destroy();
    console.log(
      JSON.stringify({
        bench: "slow-handshakes",
        binary: options.binary,
        serverArgs: options.serverArgs,
        connections: options.connections,
        opened,
        rows,
      }),
    );
  } finally {
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15000);
    await exited;
    clearTimeout(timer);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
