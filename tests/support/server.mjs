// Starts and stops real chorus-server processes for the browser tests (tests/e2e,
// tests/npm-consumer). Each server gets a free port of its own; a test may stop one
// (SIGTERM, as a deployment would) and start it again on the same port.
//
// The binary is $CHORUS_SERVER_BIN, or target/debug/chorus-server (scripts/test-e2e.sh
// builds it). Its output goes to test-artifacts/e2e/logs/<name>.log.

import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The repository's root directory. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Where screenshots and server logs go (git-ignored). */
export const artifacts = join(root, "test-artifacts", "e2e");

const serverBin = process.env.CHORUS_SERVER_BIN
  ? resolve(root, process.env.CHORUS_SERVER_BIN)
  : join(root, "target", "debug", "chorus-server");

/**
 * A port that was free a moment ago: the OS picks one for a listener on port 0, which is
 * closed again. (Another process could take it in between; nothing on a test machine
 * hands out ports that fast.)
 */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/** A running chorus-server. */
export class ChorusServer {
  /**
   * @param {string} name used for the log file
   * @param {string[]} args extra flags for `chorus-server serve` (after --dev and --bind)
   */
  constructor(name, args) {
    this.name = name;
    this.args = args;
    this.port = undefined;
    this.child = undefined;
    this.exited = undefined;
    mkdirSync(join(artifacts, "logs"), { recursive: true });
    this.log = createWriteStream(join(artifacts, "logs", `${name}.log`));
  }

  /** The server's base URL, e.g. `http://127.0.0.1:PORT`. */
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the server (on a free port the first time, on the same port after `stop`) and
   * resolves once it logs that it is listening.
   */
  async start() {
    this.port ??= await freePort();
    const args = ["serve", "--dev", "--bind", `127.0.0.1:${this.port}`, ...this.args];
    this.log.write(`\n$ chorus-server ${args.join(" ")}\n`);
    const child = spawn(serverBin, args, {
      cwd: root,
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.exited = new Promise((resolveExit) => {
      child.on("exit", (code, signal) => resolveExit({ code, signal }));
    });
    child.stderr.pipe(this.log, { end: false });

    await new Promise((resolveStart, reject) => {
      child.on("error", reject);
      this.exited.then(({ code, signal }) =>
        reject(
          new Error(
            `chorus-server (${this.name}) exited before listening: code ${code}, signal ` +
              `${signal}; see test-artifacts/e2e/logs/${this.name}.log`,
          ),
        ),
      );
      const lines = createInterface({ input: child.stdout });
      lines.on("line", (line) => {
        this.log.write(line + "\n");
        if (line.includes("chorus-server listening on")) resolveStart();
      });
    });
  }

  /** SIGTERM, then resolves when the process has exited (the port is free again). */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const { code, signal } = await this.exited;
    this.log.write(`[chorus-server exited: code ${code}, signal ${signal}]\n`);
  }

  /** Stops the server for good (SIGKILL if SIGTERM is not enough) and closes the log. */
  async close() {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await this.stop();
      clearTimeout(killer);
    }
    await new Promise((done) => this.log.end(done));
  }

  /** A development token for `user` (POST /api/dev/token). */
  async token(user) {
    const response = await fetch(`${this.url}/api/dev/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user }),
    });
    if (!response.ok) throw new Error(`POST /api/dev/token: HTTP ${response.status}`);
    return (await response.json()).token;
  }
}

/** Starts a chorus-server with `--dev --bind 127.0.0.1:<free port>` and `args`. */
export async function startServer(name, args = []) {
  const server = new ChorusServer(name, args);
  await server.start();
  return server;
}
