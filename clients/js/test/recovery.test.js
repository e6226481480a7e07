// Exact recovery through real nodes, against the history contract of docs/PROTOCOL.md
// ("History and recovery": offset/epoch on messages, "since" on subscribe, "recovered" in the
// ack, "gap" notices, the publish ack's offset). Part of `npm test`; alone: `npm run test:recovery`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Client, WsgateError } from "../src/wsgate.js";
import { Redis, Gateway, ROOT, until, recorder } from "./helpers.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LIBRARY = readFileSync(path.join(ROOT, "deploy/redis/wsgate.lua"), "utf8");
let redis;
const nodes = [], clients = [];

before(async () => {
  assert.equal(typeof globalThis.WebSocket, "function", "run with node --experimental-websocket");
  redis = await Redis.start();
  // Nodes will load the library themselves; loading it here too is harmless (same version).
  await redis.command("FUNCTION", "LOAD", "REPLACE", LIBRARY);
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(nodes.map((g) => g.cleanup()));
  await redis.cleanup();
});

async function node(name, args = []) {
  const g = await Gateway.start({ redis, name, args });
  nodes.push(g);
  return g;
}

// Records every frame the SDK sends, to check the exact "since" it asks for.
function recordingWebSocket(sent) {
  return class extends globalThis.WebSocket {
    send(text) {
      sent.push(JSON.parse(text));
      super.send(text);
    }
  };
}

// random 0.99: each reconnect waits almost its whole window, so the test can publish while
// the client is surely away.
function client(urls, sent, reconnect = { minDelayMs: 800, maxDelayMs: 800, drainJitterMs: 800 }) {
  const c = new Client(urls, { WebSocket: recordingWebSocket(sent), reconnect, random: () => 0.99 });
  clients.push(c);
  return c;
}

const uniq = (p) => `${p}-${randomBytes(5).toString("hex")}`;
const key = (ch) => [`{gw:${ch}}:meta`, `{gw:${ch}}:stream`];

/** Backend publish with history; resolves with [offset, epoch]. */
async function fcall(ch, payload, history = "") {
  const [meta, stream] = key(ch);
  const r = await redis.command("FCALL", "wsgate_publish", 2, meta, stream, `gw:${ch}`, JSON.stringify(payload), history, "");
  return [r[0], r[1]];
}

function collect(sub) {
  const got = [];
  sub.on("message", (m) => got.push({ o: m.offset, e: m.epoch, d: m.data }));
  return got;
}

test("publish acks carry the offset, messages carry offset and epoch, the subscribe ack the position", async () => {
  const g = await node("rec-basic");
  const sent = [];
  const c = client(g.url, sent).connect();
  const ch = uniq("basic");
  const [o1, epoch] = await fcall(ch, "before");
  const sub = c.subscribe(ch);
  const acks = recorder(sub, "subscribed");
  const got = collect(sub);
  await sub.ready();
  assert.equal(sent.find((m) => m.type === "subscribe").recover, true, "first subscribe asks for the position");
  assert.deepEqual([acks[0].offset, acks[0].epoch], [o1, epoch]);
  const ack = await c.publish(ch, "mine");
  assert.deepEqual(ack, { offset: o1 + 1, epoch });
  await until(() => got.length === 1, 5000, "the published message");
  assert.deepEqual(got, [{ o: o1 + 1, e: epoch, d: "mine" }]);
});

test("history() answers the stored messages, latest or after a position, and typed errors", async () => {
  const g = await node("rec-history");
  const c = client(g.url, []).connect();
  const ch = uniq("hist");
  let epoch;
  for (let i = 1; i <= 8; i++) [, epoch] = await fcall(ch, { n: i });
  const latest = await c.history(ch, { limit: 3 });
  assert.deepEqual([latest.channel, latest.epoch, latest.offset, latest.complete], [ch, epoch, 8, true]);
  assert.deepEqual(latest.messages.map((m) => [m.offset, m.data.n]), [[6, 6], [7, 7], [8, 8]]);
  const after = await c.history(ch, { limit: 2, since: { offset: 3, epoch } });
  assert.deepEqual(after.messages.map((m) => m.offset), [4, 5]);
  assert.equal(after.complete, true);
  await assert.rejects(c.history(ch, { limit: 0 }), (e) => e instanceof WsgateError && e.code === "bad_request");
});

/** Two nodes and a client on the first, subscribed to a fresh channel and recording. */
async function subscribedOnTwoNodes(name, argsA = []) {
  const a = await node(`${name}-a`, argsA);
  const b = await node(`${name}-b`);
  const sent = [];
  const c = client([a.url, b.url], sent).connect();
  const ch = uniq(name);
  const sub = c.subscribe(ch);
  const acks = recorder(sub, "subscribed");
  const gaps = recorder(sub, "gap");
  const got = collect(sub);
  await sub.ready();
  return { a, b, sent, c, ch, sub, acks, gaps, got };
}

async function exactAcross(how) {
  const { a, sent, c, ch, acks, gaps, got } = await subscribedOnTwoNodes(`rec-${how}`, ["--drain-timeout", "5"]);
  const drops = recorder(c, "disconnect");
  let epoch;
  for (let i = 1; i <= 5; i++) [, epoch] = await fcall(ch, i);
  await until(() => got.length === 5, 5000, "messages 1..5");
  if (how === "kill") await a.stop("SIGKILL");
  else a.signal("SIGTERM");
  await drops.waitFor(1, 5000, "the disconnect");
  for (let i = 6; i <= 10; i++) await fcall(ch, i); // while the client is away
  await acks.waitFor(2, 10000, "the resubscribe on node b");
  assert.equal(acks[1].recovered, true);
  const resub = sent.filter((m) => m.type === "subscribe");
  assert.equal(resub.length, 2);
  assert.deepEqual(resub[1].since, { offset: 5, epoch }, "resubscribed from the last offset seen");
  for (let i = 11; i <= 15; i++) await fcall(ch, i);
  await until(() => got.length >= 15, 5000, "messages 6..15");
  assert.deepEqual(got, Array.from({ length: 15 }, (_, k) => ({ o: k + 1, e: epoch, d: k + 1 })), "every message once, in order");
  assert.deepEqual(gaps, []);
  assert.equal(drops[0].code, how === "kill" ? 1006 : 1001);
}

test("exact recovery across a SIGKILLed node", () => exactAcross("kill"));
test("exact recovery across a drain (1001)", () => exactAcross("drain"));

test("a shed slow consumer (4008) reconnects and recovers every message", async () => {
  const N = 200;
  const g = await node("rec-shed", ["--queue-max-messages", "8", "--socket-sndbuf", "4096", "--recovery-max-messages", "1000"]);
  const sent = [];
  const c = client(g.url, sent, { minDelayMs: 50, maxDelayMs: 50 }).connect();
  const ch = uniq("shed");
  const sub = c.subscribe(ch);
  const acks = recorder(sub, "subscribed");
  const gaps = recorder(sub, "gap");
  const got = collect(sub);
  const drops = recorder(c, "disconnect");
  await sub.ready();
  // Another process publishes 200 x 60 KB while this one does not read at all.
  const pub = spawn(process.execPath, ["--input-type=module", "-e", `
    import { respPipeline } from ${JSON.stringify(path.join(HERE, "helpers.js"))};
    const pad = "x".repeat(60000), cmds = [];
    for (let i = 1; i <= ${N}; i++) cmds.push(["FCALL", "wsgate_publish", 2, ${JSON.stringify(key(ch)[0])}, ${JSON.stringify(key(ch)[1])},
      ${JSON.stringify(`gw:${ch}`)}, JSON.stringify({ i, pad }), "", ""]);
    const r = await respPipeline(${redis.port}, cmds, 30000);
    if (r.some((x) => x instanceof Error)) process.exit(1);
  `], { stdio: "inherit" });
  const published = new Promise((resolve) => pub.on("exit", resolve));
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
  assert.equal(await published, 0, "the backend published everything");
  await drops.waitFor(1, 10000, "the 4008 close");
  assert.equal(drops[0].code, 4008);
  await acks.waitFor(2, 10000, "the resubscribe");
  assert.equal(acks[1].recovered, true);
  await until(() => got.length >= N, 20000, `all ${N} messages`);
  assert.deepEqual(got.map((m) => m.d.i), Array.from({ length: N }, (_, k) => k + 1));
  assert.deepEqual(got.map((m) => m.o), got.map((m, k) => got[0].o + k), "consecutive offsets");
  assert.deepEqual(gaps, []);
});

test("history lost (new epoch): recovered false, a gap event, live messages go on", async () => {
  const { a, ch, acks, gaps, got } = await subscribedOnTwoNodes("rec-epoch");
  let e1;
  for (let i = 1; i <= 3; i++) [, e1] = await fcall(ch, i);
  await until(() => got.length === 3, 5000, "messages 1..3");
  await a.stop("SIGKILL");
  await redis.command("DEL", ...key(ch)); // as a Redis restart without persistence would
  const [, e2] = await fcall(ch, "lost 1");
  await fcall(ch, "lost 2");
  assert.notEqual(e2, e1);
  await acks.waitFor(2, 10000, "the resubscribe");
  assert.equal(acks[1].recovered, false);
  assert.deepEqual([acks[1].offset, acks[1].epoch], [2, e2]);
  assert.deepEqual(gaps, [{ channel: ch, reason: "recovery_failed", epoch: e1, from: 4, to: null, newEpoch: e2 }]);
  await fcall(ch, "live");
  await until(() => got.length === 4, 5000, "the live message");
  assert.deepEqual(got.at(-1), { o: 3, e: e2, d: "live" });
});

test("history trimmed: recovered false and the exact range of missed messages", async () => {
  // Small stream nodes make MAXLEN ~ trim close to the asked length.
  await redis.command("CONFIG", "SET", "stream-node-max-entries", "2");
  const { a, ch, acks, gaps, got } = await subscribedOnTwoNodes("rec-trim");
  let epoch;
  for (let i = 1; i <= 3; i++) [, epoch] = await fcall(ch, i, 3);
  await until(() => got.length === 3, 5000, "messages 1..3");
  await a.stop("SIGKILL");
  for (let i = 4; i <= 30; i++) await fcall(ch, i, 3);
  await acks.waitFor(2, 10000, "the resubscribe");
  await redis.command("CONFIG", "SET", "stream-node-max-entries", "100");
  assert.equal(acks[1].recovered, false);
  assert.deepEqual(gaps, [{ channel: ch, reason: "recovery_failed", epoch, from: 4, to: 30, newEpoch: undefined }]);
  await fcall(ch, 31);
  await until(() => got.length === 4, 5000, "the live message");
  assert.deepEqual(got.map((m) => m.o), [1, 2, 3, 31]);
});
