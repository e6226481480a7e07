// No reconnect storm: 1,000 SDK clients on a node that drains (1001) come back to the other
// node spread over the drain jitter window, not in one burst. Measured and printed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { Client, State } from "../src/wsgate.js";
import { Redis, Gateway, until } from "./helpers.js";

const N = Number(process.env.SPREAD_CLIENTS || 1000);
const WINDOW_MS = Number(process.env.SPREAD_WINDOW_MS || 3000);
const BUCKETS = 10;
let redis, a, b;
const clients = [];

before(async () => {
  redis = await Redis.start();
  // info, not debug: a thousand connections would be a thousand log lines per event.
  a = await Gateway.start({ redis, name: "spread-a", logLevel: "info" });
  b = await Gateway.start({ redis, name: "spread-b", logLevel: "info" });
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all([a, b].map((g) => g && g.cleanup()));
  await redis.cleanup();
});

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

test(`${N} clients reconnecting after a drain spread over the ${WINDOW_MS} ms jitter window`, { timeout: 120000 }, async (t) => {
  const closes = new Array(N), attempts = new Array(N);
  for (let i = 0; i < N; i++) {
    const seen = new Set();
    // The first attempt of each client goes to node a, every later one to node b.
    const c = new Client(() => (seen.has("a") ? b.url : (seen.add("a"), a.url)), {
      WebSocket: globalThis.WebSocket,
      reconnect: { minDelayMs: 200, maxDelayMs: 2000, drainJitterMs: WINDOW_MS },
    });
    c.on("disconnect", (e) => {
      if (closes[i] === undefined) closes[i] = { at: performance.now(), code: e.code, delayMs: e.delayMs };
    });
    c.on("attempt", (e) => {
      if (e.reason !== "connect" && attempts[i] === undefined) attempts[i] = performance.now();
    });
    clients.push(c);
  }
  // Connect in batches: the test is about the reconnect, not about a connect storm.
  for (let i = 0; i < N; i += 100) {
    const batch = clients.slice(i, i + 100);
    for (const c of batch) {
      c.connect();
      c.subscribe("spread");
    }
    await until(() => batch.every((c) => c.getSubscription("spread").state === "subscribed"), 20000, `batch ${i / 100} subscribed`);
  }
  assert.equal((await a.metrics()).wsgate_subscriptions, N);

  const t0 = performance.now();
  a.signal("SIGTERM");
  await until(() => clients.every((c) => c.state === State.CONNECTED && c.getSubscription("spread").state === "subscribed" && closes.filter(Boolean).length === N),
    WINDOW_MS + 30000, "every client back and resubscribed on node b");
  const allBack = performance.now() - t0;
  const r = await a.stop("SIGTERM", 20000);
  assert.deepEqual([r.code, r.killed], [0, false], "the drained node exits 0");

  assert.ok(closes.every((x) => x.code === 1001), "every client saw 1001");
  const delays = closes.map((x) => x.delayMs).sort((x, y) => x - y);
  const times = attempts.map((x) => x - t0).sort((x, y) => x - y);
  const closeSpan = Math.max(...closes.map((x) => x.at)) - Math.min(...closes.map((x) => x.at));
  const spread = times[N - 1] - times[0];
  const hist = new Array(BUCKETS).fill(0);
  for (const d of delays) hist[Math.min(BUCKETS - 1, Math.floor((d / WINDOW_MS) * BUCKETS))]++;
  let peak100 = 0;
  for (let i = 0, j = 0; i < N; i++) {
    while (times[i] - times[j] > 100) j++;
    peak100 = Math.max(peak100, i - j + 1);
  }
  const m = await b.metrics();
  const report = [
    `clients ${N}, drain jitter window ${WINDOW_MS} ms`,
    `1001 closes received over ${closeSpan.toFixed(0)} ms`,
    `chosen delays: min ${delays[0]} p50 ${pct(delays, 50)} p90 ${pct(delays, 90)} max ${delays[N - 1]} ms`,
    `reconnect attempts: first ${times[0].toFixed(0)} ms, last ${times[N - 1].toFixed(0)} ms after SIGTERM; spread ${spread.toFixed(0)} ms`,
    `attempts per ${WINDOW_MS / BUCKETS} ms of the window: ${hist.join(" ")}`,
    `busiest 100 ms: ${peak100} attempts (a storm would be ${N}; uniform is about ${Math.round((N * 100) / WINDOW_MS)})`,
    `all ${N} back and resubscribed on node b after ${allBack.toFixed(0)} ms; node b: ${m.wsgate_connections} connections, ${m.wsgate_subscriptions} subscriptions`,
  ];
  for (const line of report) t.diagnostic(line);
  if (process.env.SPREAD_PRINT) console.log(report.join("\n"));

  assert.equal(m.wsgate_connections, N);
  assert.equal(m.wsgate_subscriptions, N);
  assert.ok(delays[N - 1] < WINDOW_MS, "no delay beyond the window");
  assert.ok(spread >= WINDOW_MS * 0.8, `attempts spread over ${spread} ms, at least 80% of the window`);
  for (const [k, c] of hist.entries()) assert.ok(c >= N / BUCKETS / 2 && c <= (N / BUCKETS) * 1.6, `bucket ${k} holds ${c}`);
  assert.ok(peak100 <= (N * 100) / WINDOW_MS * 2.5, `busiest 100 ms holds ${peak100}`);
});
