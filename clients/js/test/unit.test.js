// The SDK's pure logic and its protocol handling against a scripted fake WebSocket: no
// processes, no sockets. What a real node does is in client.test.js and recovery.test.js.
import { test } from "node:test";
import assert from "node:assert/strict";

import { backoffDelay, refreshDelay, closePolicy, ChannelPosition, Client, WsgateError, State } from "../src/wsgate.js";

// A WebSocket whose server side the test scripts: open(), receive(obj), serverClose(code).
class FakeWebSocket {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeWebSocket.instances.push(this);
  }
  send(text) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(text));
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  open() {
    this.readyState = 1;
    this.onopen && this.onopen({});
  }
  receive(obj) {
    this.onmessage && this.onmessage({ data: JSON.stringify(obj) });
  }
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
  last(type) {
    return [...this.sent].reverse().find((m) => m.type === type);
  }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

async function until(pred, ms = 2000, what = "condition") {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(1);
  }
}

function fakeClient(opts = {}) {
  FakeWebSocket.instances = [];
  return new Client("ws://fake/ws", { WebSocket: FakeWebSocket, reconnect: { minDelayMs: 1, maxDelayMs: 4, drainJitterMs: 5 }, ...opts });
}

const latest = () => FakeWebSocket.instances[FakeWebSocket.instances.length - 1];

test("backoff: full jitter between 0 and the exponential cap", () => {
  assert.equal(backoffDelay(0, 500, 15000, () => 0), 0);
  assert.equal(backoffDelay(0, 500, 15000, () => 0.999999), 499);
  assert.equal(backoffDelay(3, 500, 15000, () => 0.999999), 3999);
  assert.equal(backoffDelay(10, 500, 15000, () => 0.999999), 14999, "capped at maxDelayMs");
  assert.equal(backoffDelay(5000, 500, 15000, () => 0.5), 7500, "huge attempt counts do not overflow");
  // Uniform over the window: mean near half the cap, values spread over all ten deciles.
  const n = 20000, cap = 4000, deciles = new Array(10).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = backoffDelay(3, 500, 15000);
    assert.ok(d >= 0 && d < cap);
    sum += d;
    deciles[Math.floor(d / (cap / 10))]++;
  }
  assert.ok(Math.abs(sum / n - cap / 2) < cap * 0.03, `mean ${sum / n}`);
  for (const c of deciles) assert.ok(c > n / 10 * 0.85 && c < n / 10 * 1.15, `deciles ${deciles}`);
});

test("token refresh time: the margin before exp, at most half the remaining lifetime", () => {
  const now = 1_000_000_000_000;
  assert.equal(refreshDelay(now / 1000 + 3600, now, 30000), 3570000);
  assert.equal(refreshDelay(now / 1000 + 4, now, 30000), 2000);
  assert.equal(refreshDelay(now / 1000 - 1, now, 30000), 0);
});

test("close codes: drain, stop, expired, reconnect", () => {
  assert.equal(closePolicy(1001), "drain");
  assert.equal(closePolicy(4003), "stop");
  assert.equal(closePolicy(4005), "expired");
  for (const c of [1000, 1006, 1007, 1011, 4001, 4004, 4008]) assert.equal(closePolicy(c), "reconnect", String(c));
  // A backend's disconnect (POST /api/disconnect): the code says whether to come back.
  for (const c of [4011, 4300, 4301, 4499]) assert.equal(closePolicy(c), "stop", String(c));
  for (const c of [4010, 4100, 4299, 4500]) assert.equal(closePolicy(c), "reconnect", String(c));
});

test("position: in order, duplicates dropped, skipped offsets reported, new epochs", () => {
  const p = new ChannelPosition(null);
  assert.equal(p.since(), null);
  assert.deepEqual(p.accept({ offset: 5, epoch: "E" }), { deliver: true, gap: null });
  assert.deepEqual(p.accept({ offset: 6, epoch: "E" }), { deliver: true, gap: null });
  assert.deepEqual(p.accept({ offset: 6, epoch: "E" }), { deliver: false, gap: null });
  assert.deepEqual(p.accept({ offset: 2, epoch: "E" }), { deliver: false, gap: null });
  assert.equal(p.duplicates, 2);
  assert.deepEqual(p.accept({ offset: 9, epoch: "E" }), { deliver: true, gap: { epoch: "E", from: 7, to: 8 } });
  assert.deepEqual(p.since(), { offset: 9, epoch: "E" });
  // A new epoch that starts at 1 lost nothing of itself; one that starts later did.
  assert.deepEqual(p.accept({ offset: 1, epoch: "F" }), { deliver: true, gap: null });
  assert.deepEqual(p.accept({ offset: 4, epoch: "G" }), { deliver: true, gap: { epoch: "G", from: 1, to: 3 } });
  // Messages without history pass untouched and move nothing.
  assert.deepEqual(p.accept({ data: 1 }), { deliver: true, gap: null });
  assert.deepEqual(p.since(), { offset: 4, epoch: "G" });
});

test("position: subscribe acks", () => {
  const p = new ChannelPosition({ offset: 16, epoch: "E" });
  // recovered: the replay moves the position, not the ack.
  assert.equal(p.acked({ offset: 20, epoch: "E", recovered: true }, { offset: 16, epoch: "E" }), null);
  assert.deepEqual(p.since(), { offset: 16, epoch: "E" });
  // not recovered, same epoch: 17..20 are lost, the position jumps to the ack.
  assert.deepEqual(p.acked({ offset: 20, epoch: "E", recovered: false }, { offset: 16, epoch: "E" }), {
    epoch: "E", from: 17, to: 20, newEpoch: undefined,
  });
  assert.deepEqual(p.since(), { offset: 20, epoch: "E" });
  // not recovered, new epoch: the end of the loss in the old epoch is unknown.
  assert.deepEqual(p.acked({ offset: 3, epoch: "F", recovered: false }, { offset: 20, epoch: "E" }), {
    epoch: "E", from: 21, to: null, newEpoch: "F",
  });
  assert.deepEqual(p.since(), { offset: 3, epoch: "F" });
  // recover:true without since: the ack is the starting position.
  const q = new ChannelPosition(null);
  assert.equal(q.acked({ offset: 0, epoch: "" }, null), null);
  assert.deepEqual(q.since(), { offset: 0, epoch: "" });
  // A plain ack (a node without history) changes nothing.
  const r = new ChannelPosition(null);
  assert.equal(r.acked({ type: "ack", id: 1 }, null), null);
  assert.equal(r.since(), null);
  // A gap notice moves the position past the lost range.
  p.gapNotice({ epoch: "F", from: 4, to: 9 });
  assert.deepEqual(p.since(), { offset: 9, epoch: "F" });
});

test("client: states, subscribe with recover, resubscribe with since, no duplicate, gap events", async () => {
  const c = fakeClient({ random: () => 0.5 });
  const states = [];
  c.on("state", (e) => states.push(e.state));
  const got = [], gaps = [], subscribed = [];
  c.connect();
  latest().open();
  assert.equal(c.state, State.CONNECTED);
  const sub = c.subscribe("room", { onMessage: (m) => got.push(m.offset) });
  sub.on("gap", (g) => gaps.push(g));
  sub.on("subscribed", (s) => subscribed.push(s));
  let ws = latest();
  const s1 = ws.last("subscribe");
  assert.deepEqual({ ...s1, id: 0 }, { type: "subscribe", channel: "room", recover: true, id: 0 });
  ws.receive({ type: "ack", id: s1.id, channel: "room", offset: 4, epoch: "E" });
  await sub.ready();
  for (const o of [5, 6, 6, 7]) ws.receive({ type: "message", channel: "room", data: o, offset: o, epoch: "E" });
  assert.deepEqual(got, [5, 6, 7]);

  ws.serverClose(4008, "slow consumer");
  assert.equal(c.state, State.CONNECTING);
  await until(() => FakeWebSocket.instances.length === 2, 2000, "a second socket");
  ws = latest();
  ws.open();
  const s2 = ws.last("subscribe");
  assert.deepEqual(s2.since, { offset: 7, epoch: "E" }, "resubscribes from the last offset seen");
  assert.equal(s2.recover, undefined);
  ws.receive({ type: "ack", id: s2.id, channel: "room", offset: 10, epoch: "E", recovered: true });
  // The replay overlaps what was seen (7) and then runs into live traffic (11, 11).
  for (const o of [7, 8, 9, 10, 11, 11]) ws.receive({ type: "message", channel: "room", data: o, offset: o, epoch: "E" });
  assert.deepEqual(got, [5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(subscribed.map((s) => [s.first, s.recovered]), [[true, undefined], [false, true]]);

  // A server gap notice is reported and the position continues after it.
  ws.receive({ type: "gap", channel: "room", epoch: "E", from: 12, to: 14 });
  ws.receive({ type: "message", channel: "room", data: 15, offset: 15, epoch: "E" });
  assert.deepEqual(got.slice(-1), [15]);
  assert.deepEqual(gaps, [{ channel: "room", reason: "server", epoch: "E", from: 12, to: 14 }]);

  // Recovery refused on the next reconnect: a gap event, then live messages from the ack on.
  ws.serverClose(1006);
  await until(() => FakeWebSocket.instances.length === 3, 2000, "a third socket");
  ws = latest();
  ws.open();
  const s3 = ws.last("subscribe");
  assert.deepEqual(s3.since, { offset: 15, epoch: "E" });
  ws.receive({ type: "ack", id: s3.id, channel: "room", offset: 2, epoch: "F", recovered: false });
  ws.receive({ type: "message", channel: "room", data: 3, offset: 3, epoch: "F" });
  assert.deepEqual(gaps[1], { channel: "room", reason: "recovery_failed", epoch: "E", from: 16, to: null, newEpoch: "F" });
  assert.deepEqual(got.slice(-1), [3]);
  assert.deepEqual(states, ["connecting", "connected", "connecting", "connected", "connecting", "connected"]);
  c.close();
  assert.equal(c.state, State.CLOSED);
});

test("client: typed errors, and pending requests fail on a lost connection", async () => {
  const c = fakeClient();
  c.connect();
  latest().open();
  const p = c.publish("x", 1);
  const ws = latest();
  ws.receive({ type: "error", id: ws.last("publish").id, code: "forbidden", message: "no" });
  await assert.rejects(p, (e) => e instanceof WsgateError && e.code === "forbidden" && e.message === "no");
  const sub = c.subscribe("secret");
  ws.receive({ type: "error", id: ws.last("subscribe").id, code: "forbidden", message: "not granted" });
  await assert.rejects(sub.ready(), (e) => e.code === "forbidden");
  assert.equal(c.getSubscription("secret"), undefined);
  const q = c.publish("x", 2);
  ws.serverClose(1006);
  await assert.rejects(q, (e) => e.code === "disconnected" && e.closeCode === 1006);
  c.close();
});

test("client: 4003 stops for good, with the server's reason", async () => {
  const c = fakeClient({ token: "t0" });
  const errors = [];
  c.on("error", (e) => errors.push(e));
  c.connect();
  const ws = latest();
  ws.open();
  const auth = ws.last("auth");
  assert.equal(auth.token, "t0");
  ws.receive({ type: "error", id: auth.id, code: "unauthorized", message: "token refused (expired)" });
  ws.serverClose(4003, "unauthorized");
  assert.equal(c.state, State.CLOSED);
  await tick(20);
  assert.equal(FakeWebSocket.instances.length, 1, "no reconnect");
  assert.equal(errors.at(-1).code, "unauthorized");
  assert.equal(errors.at(-1).closeCode, 4003);
});

test("client: 1001 reconnects within the drain window; 4005 fetches a token first", async () => {
  const reasons = [];
  const c = fakeClient({ getToken: async ({ reason }) => (reasons.push(reason), `tok-${reasons.length}`) });
  const delays = [];
  c.on("disconnect", (e) => delays.push([e.code, e.delayMs]));
  c.connect();
  await until(() => FakeWebSocket.instances.length === 1);
  let ws = latest();
  ws.open();
  ws.receive({ type: "ack", id: ws.last("auth").id, sub: "u", exp: Math.floor(Date.now() / 1000) + 3600 });
  assert.equal(c.state, State.CONNECTED);
  ws.serverClose(1001, "server draining");
  await until(() => FakeWebSocket.instances.length === 2);
  assert.ok(delays[0][0] === 1001 && delays[0][1] >= 0 && delays[0][1] < 5);
  ws = latest();
  ws.open();
  assert.equal(ws.last("auth").token, "tok-1", "a token far from expiry is used again");
  ws.receive({ type: "ack", id: ws.last("auth").id, sub: "u", exp: Math.floor(Date.now() / 1000) + 3600 });
  ws.serverClose(4005, "token expired");
  await until(() => FakeWebSocket.instances.length === 3);
  ws = latest();
  ws.open();
  assert.deepEqual(reasons, ["connect", "expired"]);
  assert.equal(ws.last("auth").token, "tok-2");
  c.close();
});

test("keepalive: a silent server gets a ping, then the socket is given up and the client reconnects", async () => {
  const c = fakeClient({ keepalive: { idleMs: 40, timeoutMs: 40 } });
  const closes = [];
  c.on("disconnect", (e) => closes.push(e.code));
  c.connect();
  const first = latest();
  first.open();
  assert.equal(c.state, State.CONNECTED);
  await new Promise((r) => setTimeout(r, 60));
  assert.ok(first.sent.some((m) => m.type === "ping"), "silence past idleMs sends a ping");
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(closes, [1006], "no answer: the socket is given up as lost");
  assert.equal(first.closedWith, 4000);
  await new Promise((r) => setTimeout(r, 20));
  assert.notEqual(latest(), first, "and the client opens a new one");
  first.receive({ type: "pong" }); // a late frame of the old socket changes nothing
  c.close();
});

test("keepalive: a server that answers keeps the connection", async () => {
  const c = fakeClient({ keepalive: { idleMs: 30, timeoutMs: 30 } });
  c.connect();
  const ws = latest();
  ws.open();
  const answer = setInterval(() => ws.last("ping") && ws.receive({ type: "pong" }), 5);
  await new Promise((r) => setTimeout(r, 200));
  clearInterval(answer);
  assert.equal(latest(), ws, "no reconnect");
  assert.equal(c.state, State.CONNECTED);
  c.close();
});
