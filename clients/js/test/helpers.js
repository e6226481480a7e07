// Real processes for the SDK's tests: redis-server and wsgate on free loopback ports, a small
// RESP client, and HS256 tokens minted with node:crypto (independent of the gateway's OpenSSL
// verifier). Every process is stopped by its own PID, also when the test process dies.
import { spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, existsSync, closeSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "../../..");
export const WSGATE_BIN = process.env.WSGATE_BIN || path.resolve(HERE, "../../../build-test/gateway/wsgate");
export const REDIS_SERVER = process.env.REDIS_SERVER || "redis-server";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const children = new Set();
process.on("exit", () => {
  for (const p of children) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

export async function until(pred, ms, what = "condition") {
  const end = Date.now() + ms;
  let lastErr;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
      lastErr = undefined;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${lastErr ? ` (${lastErr.message})` : ""}`);
    await sleep(20);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tail(file, n = 4000) {
  try {
    const t = readFileSync(file, "utf8");
    return t.slice(-n);
  } catch (e) {
    return `<cannot read ${file}: ${e.message}>`;
  }
}

class Child {
  constructor(name, cmd, args, dir) {
    this.name = name;
    this.log = path.join(dir, `${name}.log`);
    const fd = openSync(this.log, "a");
    this.proc = spawn(cmd, args, { stdio: ["ignore", fd, fd], detached: true });
    closeSync(fd);
    children.add(this.proc);
    this.exited = new Promise((resolve) => {
      this.proc.on("exit", (code, signal) => {
        children.delete(this.proc);
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      });
    });
  }

  get running() {
    return this.exitCode === undefined && this.exitSignal === undefined;
  }

  signal(sig) {
    if (this.running) process.kill(this.proc.pid, sig);
  }

  /** Sends sig and waits up to ms; SIGKILLs after that. Returns {code, signal, killed}. */
  async stop(sig = "SIGTERM", ms = 20000) {
    if (!this.running) return { code: this.exitCode, signal: this.exitSignal, killed: false };
    this.signal(sig);
    let timer;
    const t = new Promise((resolve) => (timer = setTimeout(() => resolve(null), ms)));
    const r = await Promise.race([this.exited, t]);
    clearTimeout(timer);
    if (r) return { ...r, killed: false };
    this.signal("SIGKILL");
    return { ...(await this.exited), killed: true };
  }

  logTail(n) {
    return tail(this.log, n);
  }
}

export class Redis extends Child {
  static async start() {
    const dir = mkdtempSync(path.join(os.tmpdir(), "wsgate-js-redis-"));
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const r = new Redis("redis", REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", dir, "--protected-mode", "no"], dir);
      r.port = port;
      r.dir = dir;
      try {
        await until(async () => (await r.command("PING")) === "PONG", 10000, "redis PING");
        return r;
      } catch (e) {
        await r.stop("SIGKILL");
        if (attempt >= 2) throw new Error(`redis-server did not start: ${e.message}\n${r.logTail()}`);
      }
    }
  }

  /** One command on a fresh connection; resolves with the decoded reply. */
  command(...args) {
    return respCommand(this.port, args);
  }

  async cleanup() {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Redis Cluster of `masters` masters and no replicas on 127.0.0.1 (redis-cli --cluster create),
 *  for the admin view's shard table. Each node is a Redis child; addrs are "127.0.0.1:port". */
export class RedisCluster {
  static async start(masters = 3) {
    const c = new RedisCluster();
    c.nodes = [];
    c.dir = mkdtempSync(path.join(os.tmpdir(), "wsgate-js-cluster-"));
    try {
      for (let i = 0; i < masters; i++) {
        let port = await freePort();
        while (port + 10000 > 65535) port = await freePort(); // the cluster bus listens at port + 10000
        const dir = path.join(c.dir, String(port));
        mkdirSync(dir);
        const r = new Redis(`cluster-${port}`, REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1",
          "--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no", "--cluster-enabled", "yes",
          "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
          "--cluster-require-full-coverage", "no", "--cluster-allow-pubsubshard-when-down", "yes"], dir);
        r.port = port;
        r.addr = `127.0.0.1:${port}`;
        c.nodes.push(r);
        await until(async () => (await r.command("PING")) === "PONG", 10000, `cluster node ${port} PING`);
      }
      const cli = process.env.REDIS_CLI || "redis-cli";
      const r = spawnSync(cli, ["--cluster", "create", ...c.nodes.map((n) => n.addr), "--cluster-replicas", "0",
        "--cluster-yes"], { encoding: "utf8", timeout: 60000 });
      if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
      await until(async () => {
        for (const n of c.nodes)
          if (!/cluster_state:ok/.test(await n.command("CLUSTER", "INFO"))) return false;
        const views = await Promise.all(c.nodes.map((n) => c.slots(n)));
        return views.every((v) => JSON.stringify(v) === JSON.stringify(views[0]));
      }, 30000, "cluster_state:ok and one slot map on every node");
      return c;
    } catch (e) {
      await c.cleanup();
      throw e;
    }
  }

  /** {"127.0.0.1:port": slots served} as node n's CLUSTER SLOTS says. */
  async slots(n = this.nodes.find((x) => x.running)) {
    const out = {};
    for (const [lo, hi, [host, port]] of await n.command("CLUSTER", "SLOTS"))
      out[`${host}:${port}`] = (out[`${host}:${port}`] || 0) + hi - lo + 1;
    return Object.fromEntries(Object.entries(out).sort());
  }

  get seeds() {
    return "redis+cluster://" + this.nodes.map((n) => n.addr).join(",");
  }

  async cleanup() {
    for (const n of this.nodes) await n.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function respEncode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

// Returns [value, rest] or null when buf holds no complete reply yet.
function respParse(buf, i = 0) {
  const nl = buf.indexOf("\r\n", i);
  if (nl < 0) return null;
  const kind = String.fromCharCode(buf[i]);
  const line = buf.toString("utf8", i + 1, nl);
  const next = nl + 2;
  if (kind === "+") return [line, next];
  if (kind === "-") return [new Error(line), next];
  if (kind === ":") return [Number(line), next];
  if (kind === "$") {
    const n = Number(line);
    if (n < 0) return [null, next];
    if (buf.length < next + n + 2) return null;
    return [buf.toString("utf8", next, next + n), next + n + 2];
  }
  if (kind === "*") {
    const n = Number(line);
    const out = [];
    let at = next;
    for (let k = 0; k < n; k++) {
      const r = respParse(buf, at);
      if (!r) return null;
      out.push(r[0]);
      at = r[1];
    }
    return [out, at];
  }
  throw new Error(`bad RESP reply ${JSON.stringify(line)}`);
}

/** Sends several commands on one connection; resolves with all replies in order. */
export function respPipeline(port, commands, ms = 10000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const replies = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("redis reply timed out"));
    }, ms);
    sock.on("connect", () => sock.write(Buffer.concat(commands.map(respEncode))));
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      let at = 0;
      for (;;) {
        const r = respParse(buf, at);
        if (!r) break;
        replies.push(r[0]);
        at = r[1];
      }
      buf = buf.subarray(at);
      if (replies.length === commands.length) {
        clearTimeout(timer);
        sock.end();
        resolve(replies);
      }
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export async function respCommand(port, args) {
  const [r] = await respPipeline(port, [args]);
  if (r instanceof Error) throw r;
  return r;
}

// The harness's speed-ups (tests/integration/wsgate_harness.py): a dead Redis link is seen
// and mended within about a second.
const FAST = ["--redis-heartbeat-interval-ms", "200", "--redis-heartbeat-timeout-ms", "1000", "--redis-backoff-max-ms", "500"];
// What the development setting grants: every channel, to anyone.
export const DEV_ACCESS = ["--anonymous-subscribe", "*", "--anonymous-publish", "*"];

export class Gateway extends Child {
  /** Starts a node and waits for /readyz (standalone when redis is null). args: extra flags;
   *  without any --jwt-/--anonymous- flag the node gets DEV_ACCESS. */
  static async start({ redis = null, args = [], name = "gw", ready = true, logLevel = "debug" } = {}) {
    if (!existsSync(WSGATE_BIN)) throw new Error(`no wsgate binary at ${WSGATE_BIN} (set WSGATE_BIN or build build-test/)`);
    const dir = mkdtempSync(path.join(os.tmpdir(), "wsgate-js-gw-"));
    const access = args.some((a) => /^--(jwt-|anonymous-)/.test(a)) ? [] : DEV_ACCESS;
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const argv = ["--listen", `127.0.0.1:${port}`, "--log-level", logLevel, "--node-id", name, ...FAST, ...access, ...args];
      if (redis) argv.push("--redis-url", `redis://127.0.0.1:${redis.port}`);
      const g = new Gateway(name, WSGATE_BIN, argv, dir);
      g.port = port;
      g.dir = dir;
      g.url = `ws://127.0.0.1:${port}/ws`;
      g.http = `http://127.0.0.1:${port}`;
      try {
        await until(async () => {
          if (!g.running) throw new Error(`exited with ${g.exitCode}`);
          const r = await fetch(`${g.http}/${ready ? "readyz" : "healthz"}`);
          return r.status === 200;
        }, 10000, `${name} ready`);
        return g;
      } catch (e) {
        await g.stop("SIGKILL");
        const log = g.logTail();
        if (attempt < 2 && /in use|bind/i.test(log)) continue;
        throw new Error(`${name} did not start: ${e.message}\n${log}`);
      }
    }
  }

  async metrics() {
    const text = await (await fetch(`${this.http}/metrics`)).text();
    const out = {};
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const m = /^(\S+?)(\{.*\})?\s+(\S+)$/.exec(line);
      if (m) out[m[1] + (m[2] || "")] = Number(m[3]);
    }
    return out;
  }

  /** For after(): a node that is still running must drain and exit 0. */
  async cleanup() {
    const r = await this.stop("SIGTERM", 20000);
    rmSync(this.dir, { recursive: true, force: true });
    return r;
  }
}

/** Writes a file in a fresh temporary directory; returns its path. */
export function tempFile(name, content) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wsgate-js-"));
  const p = path.join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
}

const b64url = (b) => Buffer.from(b).toString("base64url");

/** An HS256 JWT for claims (exp defaults to an hour from now). */
export function mintToken(secret, claims) {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }));
  const sig = createHmac("sha256", secret).update(`${header}.${body}`).digest("base64url");
  return `${header}.${body}.${sig}`;
}

/** Whether a binary can be run (for skipping). */
export function haveBinary(cmd) {
  return spawnSync(cmd, ["--version"], { stdio: "ignore" }).status === 0;
}

/** Collects events of an emitter into a list, with a waiter for the n-th. */
export function recorder(target, name, map = (e) => e) {
  const list = [];
  target.on(name, (e) => list.push(map(e)));
  Object.defineProperty(list, "waitFor", {
    value: (n, ms, what = `${n} ${name} events`) => until(() => list.length >= n, ms, what),
  });
  return list;
}
