// The SDK against real redis-server and wsgate processes: states, reconnect after a node is
// killed or drained, typed errors, token refresh, re-auth after 4005, terminal 4003.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { Client, WsgateError, State } from "../src/wsgate.js";
import { Redis, Gateway, mintToken, tempFile, until, sleep, recorder } from "./helpers.js";

const WebSocket = globalThis.WebSocket; // node --experimental-websocket
let redis;
const cleanups = [];
const clientCleanups = [];

before(async () => {
  assert.equal(typeof WebSocket, "function", "run with node --experimental-websocket (npm test does)");
  redis = await Redis.start();
});

after(async () => {
  // Clients first, then every node at once: each drain takes its own second or two.
  for (const f of clientCleanups) await f();
  await Promise.all(cleanups.map((f) => f()));
  await redis.cleanup();
});

// A node that the test may kill; after() checks the survivors drain and exit 0.
async function node(opts) {
  const g = await Gateway.start({ redis, ...opts });
  cleanups.push(async () => {
    const wasRunning = g.running;
    const r = await g.cleanup();
    if (wasRunning) assert.deepEqual([r.code, r.killed], [0, false], `${g.name} exits 0 on SIGTERM\n${g.logTail(2000)}`);
  });
  return g;
}

function client(url, opts = {}) {
  const c = new Client(url, { WebSocket, reconnect: { minDelayMs: 50, maxDelayMs: 400, drainJitterMs: 300 }, ...opts });
  clientCleanups.push(async () => c.close());
  return c;
}

const uniq = (p) => `${p}:${randomBytes(6).toString("hex")}`;

test("connect, subscribe, receive a backend and a client publish, close", async () => {
  const g = await node({ name: "solo" });
  const c = client(g.url);
  const states = recorder(c, "state", (e) => e.state);
  const ch = uniq("room");
  const got = [];
  c.connect();
  const sub = c.subscribe(ch, { onMessage: (m) => got.push(m.data) });
  await sub.ready();
  assert.equal(c.state, State.CONNECTED);
  assert.equal(sub.state, "subscribed");
  assert.equal(await redis.command("PUBLISH", `gw:${ch}`, '{"n":1}'), 1);
  const ack = await c.publish(ch, { n: 2 });
  // A client publish is stored with history: the first on a new channel is offset 1.
  assert.equal(ack.offset, 1);
  assert.match(ack.epoch, /^[0-9A-Za-z_-]{1,32}$/);
  await until(() => got.length === 2, 5000, "two messages");
  assert.deepEqual(got, [{ n: 1 }, { n: 2 }]);
  assert.ok((await c.ping()) >= 0);
  c.close();
  assert.equal(c.state, State.CLOSED);
  assert.deepEqual(states, ["connecting", "connected", "closed"]);
  await until(async () => (await g.metrics()).wsgate_connections === 0, 5000, "the node to see the close");
});

async function failover(how) {
  const a = await node({ name: `${how}-a` });
  const b = await node({ name: `${how}-b` });
  const c = client([a.url, b.url]);
  const states = recorder(c, "state", (e) => e.state);
  const drops = recorder(c, "disconnect");
  const ch = uniq("fail");
  const got = [];
  c.connect();
  const sub = c.subscribe(ch, { onMessage: (m) => got.push(m.data) });
  const acks = recorder(sub, "subscribed");
  await sub.ready();
  await redis.command("PUBLISH", `gw:${ch}`, '"before"');
  await until(() => got.length === 1, 5000, "the first message");
  if (how === "kill") {
    await a.stop("SIGKILL");
  } else {
    a.signal("SIGTERM");
  }
  await acks.waitFor(2, 10000, "the resubscribe on node b");
  assert.equal(acks[1].first, false);
  assert.equal(await redis.command("PUBLISH", `gw:${ch}`, '"after"'), 1, "only node b holds the channel now");
  await until(() => got.length === 2, 5000, "the message after the failover");
  assert.deepEqual(got, ["before", "after"]);
  assert.deepEqual(states, ["connecting", "connected", "connecting", "connected"]);
  assert.equal(drops.length, 1);
  if (how === "drain") {
    assert.equal(drops[0].code, 1001);
    assert.equal(drops[0].reason, "server draining");
    assert.ok(drops[0].delayMs >= 0 && drops[0].delayMs < 300, `drain delay ${drops[0].delayMs} within the jitter window`);
    const r = await a.stop("SIGTERM", 20000);
    assert.deepEqual([r.code, r.killed], [0, false], "the drained node exits 0");
  } else {
    assert.equal(drops[0].code, 1006, "a killed node sends no close frame");
  }
  assert.equal((await b.metrics()).wsgate_connections, 1);
}

test("reconnects to another node after a node is SIGKILLed, and resubscribes", () => failover("kill"));
test("reconnects to another node after a drain (1001), and resubscribes", () => failover("drain"));

test("keepalive: a node that stops answering (SIGSTOP, no FIN) is left for another one", async () => {
  const a = await node({ name: "stall-a" });
  const b = await node({ name: "stall-b" });
  const c = client([a.url, b.url], { keepalive: { idleMs: 300, timeoutMs: 300 } });
  const drops = recorder(c, "disconnect");
  const ch = uniq("stall");
  const got = [];
  c.connect();
  const sub = c.subscribe(ch, { onMessage: (m) => got.push(m.data) });
  const acks = recorder(sub, "subscribed");
  await sub.ready();
  a.signal("SIGSTOP");
  const t0 = Date.now();
  try {
    await acks.waitFor(2, 5000, "the resubscribe on node b");
    const took = Date.now() - t0;
    console.log(`[observed] a stalled node was left after ${took} ms (keepalive 300 + 300 ms)`);
    assert.equal(drops[0].code, 1006);
    assert.ok(took >= 550 && took < 2500, `left after ${took} ms`);
    assert.equal(await redis.command("PUBLISH", `gw:${ch}`, '"on b"'), 2, "a still holds its subscription, b too");
    await until(() => got.length === 1, 5000, "the message through node b");
    assert.deepEqual(got, ["on b"]);
  } finally {
    a.signal("SIGCONT");
  }
});

test("typed errors: forbidden", async () => {
  const g = await node({ name: "rights", args: ["--anonymous-subscribe", "pub*", "--anonymous-publish", "pub*"] });
  const c = client(g.url);
  c.connect();
  const sub = c.subscribe("secret");
  await assert.rejects(sub.ready(), (e) => e instanceof WsgateError && e.code === "forbidden");
  assert.equal(sub.state, "unsubscribed");
  assert.equal(c.getSubscription("secret"), undefined, "a refused subscription ends");
  await assert.rejects(c.publish("secret", 1), (e) => e instanceof WsgateError && e.code === "forbidden" && typeof e.requestId === "number");
  await c.subscribe("pub:ok").ready();
  assert.equal((await c.publish("pub:ok", 1)).offset, 1);
  assert.equal(c.state, State.CONNECTED, "errors do not close the connection");
  assert.equal((await g.metrics())['wsgate_client_errors_total{code="forbidden"}'], 2);
});

test("typed errors: rate_limited", async () => {
  const g = await node({ name: "rate", args: ["--client-rate", "1", "--client-burst", "3"] });
  const c = client(g.url);
  c.connect();
  await until(() => c.state === State.CONNECTED, 5000, "connected");
  const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => c.publish("r", i)));
  const ok = results.filter((r) => r.status === "fulfilled").length;
  const limited = results.filter((r) => r.status === "rejected" && r.reason instanceof WsgateError && r.reason.code === "rate_limited").length;
  assert.equal(ok + limited, 12, JSON.stringify(results.map((r) => r.reason?.code)));
  assert.ok(ok >= 1 && ok <= 5, `${ok} accepted with a burst of 3`);
  assert.ok(limited >= 7, `${limited} rate_limited`);
  assert.equal(c.state, State.CONNECTED);
});

// A node that grants nothing without a token; tokens come from the test's own HMAC.
async function authNode(name) {
  const secret = randomBytes(32).toString("hex");
  const file = tempFile("hmac.key", secret);
  const g = await node({ name, args: ["--jwt-hmac-secret-file", file, "--jwt-leeway", "0"] });
  const now = () => Math.floor(Date.now() / 1000);
  const token = (ttl, extra = {}) => mintToken(secret, { sub: "alice", exp: now() + ttl, channels: ["room:*"], publish: ["room:*"], ...extra });
  return { g, token };
}

test("refreshes the token before expiry with getToken and an auth frame, on the same connection", async () => {
  const { g, token } = await authNode("refresh");
  const reasons = [];
  const c = client(g.url, {
    getToken: async ({ reason }) => {
      reasons.push(reason);
      return token(reason === "connect" ? 3 : 3600);
    },
  });
  const tokens = recorder(c, "token");
  const drops = recorder(c, "disconnect");
  c.connect();
  const ch = uniq("room");
  const got = [];
  await c.subscribe(ch, { onMessage: (m) => got.push(m.data) }).ready();
  await tokens.waitFor(2, 5000, "the refreshed token's ack");
  assert.deepEqual(reasons, ["connect", "refresh"]);
  assert.equal(tokens[0].sub, "alice");
  assert.ok(tokens[1].exp > tokens[0].exp + 3000, "the session now runs to the new exp");
  await sleep(Math.max(0, tokens[0].exp * 1000 - Date.now()) + 1500); // past the first token's exp
  assert.equal(drops.length, 0, "no disconnect");
  assert.equal(c.state, State.CONNECTED);
  await c.publish(ch, "still here");
  await until(() => got.length === 1, 5000, "a message after the first exp");
  const m = await g.metrics();
  assert.equal(m.wsgate_connections_accepted_total, 1, "one connection throughout");
  assert.equal(m['wsgate_client_errors_total{code="unauthorized"}'], 0);
});

test("re-authenticates with a new token after a 4005 expiry close", async () => {
  const { g, token } = await authNode("expiry");
  const reasons = [];
  const c = client(g.url, {
    getToken: async ({ reason }) => {
      reasons.push(reason);
      if (reason === "refresh") throw new Error("token service down"); // so the old token runs out
      return token(reason === "connect" ? 2 : 3600);
    },
  });
  const drops = recorder(c, "disconnect");
  c.connect();
  const ch = uniq("room");
  const got = [];
  const sub = c.subscribe(ch, { onMessage: (m) => got.push(m.data) });
  const acks = recorder(sub, "subscribed");
  await drops.waitFor(1, 8000, "the 4005 close");
  assert.equal(drops[0].code, 4005);
  assert.equal(drops[0].reason, "token expired");
  await acks.waitFor(2, 8000, "the resubscribe after re-auth");
  assert.equal(reasons[0], "connect");
  assert.ok(reasons.includes("refresh"));
  assert.equal(reasons.at(-1), "expired", "a new token is fetched before reconnecting");
  await redis.command("PUBLISH", `gw:${ch}`, '"again"');
  await until(() => got.length === 1, 5000, "a message on the new session");
  assert.equal(c.state, State.CONNECTED);
  assert.equal((await g.metrics())['wsgate_clients_shed_total{reason="token_expired"}'] ?? 1, 1);
});

test("a refused token (4003) stops the client and reports why", async () => {
  const { g } = await authNode("refused");
  let calls = 0;
  const c = client(g.url, {
    getToken: async () => {
      calls++;
      return mintToken("not the node's secret, but long enough", { sub: "mallory" });
    },
  });
  const errors = recorder(c, "error");
  const attempts = recorder(c, "attempt");
  const closed = new Promise((resolve) => c.on("closed", resolve));
  c.connect();
  const ev = await closed;
  assert.equal(c.state, State.CLOSED);
  assert.equal(ev.code, 4003);
  assert.ok(ev.error instanceof WsgateError);
  assert.equal(ev.error.code, "unauthorized");
  assert.match(ev.error.message, /bad_signature/);
  await sleep(1000);
  assert.equal(attempts.length, 1, "no reconnect after a terminal refusal");
  assert.equal(calls, 1);
  assert.ok(errors.some((e) => e.closeCode === 4003));
  await assert.rejects(c.publish("room:1", 1), (e) => e.code === "disconnected");
});

test("presence: presence(), presenceStats(), join and leave events once per user across nodes", async () => {
  const secret = randomBytes(32).toString("hex");
  const file = tempFile("presence.key", secret);
  const args = ["--jwt-hmac-secret-file", file, "--presence-channels", "room:*", "--presence-leave-delay", "0"];
  const a = await node({ name: "pres-a", args });
  const b = await node({ name: "pres-b", args });
  const as = (sub, info) => async () => mintToken(secret, { sub, channels: ["room:*"], ...(info ? { info } : {}) });
  const watcher = client(a.url, { getToken: as("watcher") });
  watcher.connect();
  const events = [];
  const sub = watcher.subscribe("room:p", { presence: true, onJoin: (e) => events.push(e), onLeave: (e) => events.push(e) });
  await sub.ready();
  const tab1 = client(b.url, { getToken: as("alice", { name: "Alice" }) });
  const tab2 = client(a.url, { getToken: as("alice", { name: "Alice" }) });
  tab1.connect();
  tab2.connect();
  await tab1.subscribe("room:p").ready();
  await tab2.subscribe("room:p").ready();
  await until(async () => (await watcher.presenceStats("room:p")).connections === 3, 5000, "3 connections");
  assert.deepEqual(await watcher.presenceStats("room:p"), { channel: "room:p", connections: 3, users: 2 });
  const page = await watcher.presence("room:p", { limit: 10 });
  assert.equal(page.cursor, "0");
  assert.deepEqual(page.members.map((m) => m.user).sort(), ["alice", "alice", "watcher"]);
  assert.deepEqual(page.members.find((m) => m.user === "alice").info, { name: "Alice" });
  tab1.close();
  tab2.close();
  await until(() => events.some((e) => e.type === "leave"), 5000, "alice's leave");
  await sleep(300);
  assert.deepEqual(events.filter((e) => e.user === "alice").map((e) => e.type), ["join", "leave"]);
  assert.deepEqual(events.find((e) => e.type === "join" && e.user === "alice"), { type: "join", channel: "room:p", user: "alice", info: { name: "Alice" } });
});

test("a backend's disconnect: 4010 reconnects, 4011 (a ban) stops with server_disconnect", async () => {
  const secret = randomBytes(32).toString("hex");
  const apiKey = randomBytes(16).toString("hex");
  const g = await node({
    name: "srvapi",
    args: ["--jwt-hmac-secret-file", tempFile("hmac.key", secret), "--api-key-file", tempFile("api.keys", apiKey + "\n")],
  });
  const now = () => Math.floor(Date.now() / 1000);
  const token = () => mintToken(secret, { sub: "zoe", iat: now(), exp: now() + 3600, channels: ["room:*"] });
  const disconnect = async (body) => {
    const r = await fetch(`${g.http}/api/disconnect`, {
      method: "POST",
      headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 200);
    return r.json();
  };
  const c = client(g.url, { getToken: async () => token() });
  const drops = recorder(c, "disconnect");
  const attempts = recorder(c, "attempt");
  c.connect();
  const acks = recorder(c.subscribe(uniq("room")), "subscribed");
  await acks.waitFor(1, 5000, "the first subscribe");
  // Nodes of earlier tests may still share the Redis: each answers, one closes.
  const first = await disconnect({ user: "zoe" });
  assert.equal(first.closed, 1, JSON.stringify(first));
  assert.equal(first.answered, first.nodes, JSON.stringify(first));
  await drops.waitFor(1, 5000, "the 4010 close");
  assert.equal(drops[0].code, 4010);
  await acks.waitFor(2, 5000, "the resubscribe after 4010");

  const closed = new Promise((resolve) => c.on("closed", resolve));
  const answer = await disconnect({ user: "zoe", reconnect: false, reason: "banned" });
  assert.equal(answer.closed, 1);
  const ev = await closed;
  assert.equal(ev.code, 4011);
  assert.equal(ev.error.code, "server_disconnect");
  assert.equal(ev.error.closeCode, 4011);
  assert.equal(ev.error.message, "banned");
  const tries = attempts.length;
  await sleep(800);
  assert.equal(attempts.length, tries, "no reconnect after a ban");
  assert.equal(c.state, State.CLOSED);
});

test("a backend's unsubscribe ends the subscription with an event and no resubscribe", async () => {
  const secret = randomBytes(32).toString("hex");
  const apiKey = randomBytes(16).toString("hex");
  const g = await node({
    name: "srvunsub",
    args: ["--jwt-hmac-secret-file", tempFile("hmac.key", secret), "--api-key-file", tempFile("api.keys", apiKey + "\n")],
  });
  const now = () => Math.floor(Date.now() / 1000);
  const c = client(g.url, { getToken: async () => mintToken(secret, { sub: "yan", iat: now(), exp: now() + 3600, channels: ["room:*"] }) });
  const drops = recorder(c, "disconnect");
  c.connect();
  const ch = uniq("room"), keep = uniq("room");
  const gone = c.subscribe(ch);
  const stays = c.subscribe(keep);
  await gone.ready();
  await stays.ready();
  const events = recorder(gone, "unsubscribe");
  const clientEvents = recorder(c, "unsubscribe");
  const r = await fetch(`${g.http}/api/unsubscribe`, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ user: "yan", channel: ch, reason: "moderated" }),
  });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).unsubscribed, 1);
  await events.waitFor(1, 5000, "the unsubscribe event");
  assert.deepEqual(events[0], { channel: ch, reason: "moderated" });
  assert.equal(clientEvents.length, 1);
  assert.equal(gone.state, "unsubscribed");
  await assert.rejects(gone.ready(), (e) => e.code === "server_unsubscribe");
  // After a reconnect only the other channel comes back.
  const acks = recorder(stays, "subscribed");
  await disconnectOnce(g, apiKey);
  await drops.waitFor(1, 5000, "the 4010 close");
  await acks.waitFor(1, 5000, "the resubscribe of the other channel");
  assert.equal(gone.state, "unsubscribed");
  const m = await g.metrics();
  assert.equal(m.wsgate_subscriptions, 1, "only the kept channel is subscribed on the node");
});

async function disconnectOnce(g, apiKey) {
  const r = await fetch(`${g.http}/api/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ user: "yan" }),
  });
  assert.equal(r.status, 200);
}
