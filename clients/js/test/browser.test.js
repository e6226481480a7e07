// The SDK in headless Chromium (Debian's chromium through puppeteer-core): as the module the
// node serves at /sdk/wsgate.js, and inside the node's demo page.
// Also the admin view (/admin) of a three-node cluster, and its shard table on a Redis Cluster.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";

import { Client } from "../src/wsgate.js";
import { Redis, RedisCluster, Gateway, tempFile, until } from "./helpers.js";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
let puppeteer, browser, redis, g;

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (deploy/install-deps.sh installs Debian's chromium)`);
  puppeteer = (await import("puppeteer-core")).default;
  redis = await Redis.start();
  g = await Gateway.start({ redis, name: "browser", args: ["--presence-channels", "demo:*"] });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in a container has no user namespaces for the sandbox.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (g) {
    const r = await g.cleanup();
    assert.deepEqual([r.code, r.killed], [0, false], "the node exits 0 on SIGTERM");
  }
  if (redis) await redis.cleanup();
});

async function newPage() {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  // The node has no favicon; Chromium asks for one anyway.
  page.on("console", (m) => m.type() === "error" && !/favicon\.ico$/.test(m.location()?.url || "") && problems.push(m.text()));
  return { page, problems };
}

test("the SDK module served by the node runs in Chromium: connect, subscribe, publish, typed error", async () => {
  const { page, problems } = await newPage();
  // Same origin as the WebSocket, so the node's default Origin check lets it in. A page of the
  // node that may run scripts: the node's answers carry a CSP, and only its pages allow
  // scripts (from the node itself) and WebSockets (to it); /healthz allows neither.
  await page.goto(`${g.http}/`);
  const ch = `browser:${randomBytes(4).toString("hex")}`;
  const result = await page.evaluate(async (ch) => {
    const { Client, WsgateError } = await import("/sdk/wsgate.js");
    const c = new Client(`ws://${location.host}/ws`);
    const states = [];
    c.on("state", (e) => states.push(e.state));
    c.connect();
    const got = [];
    const sub = c.subscribe(ch, { onMessage: (m) => got.push(m.data) });
    await sub.ready();
    await c.publish(ch, { from: "chromium" });
    const deadline = Date.now() + 5000;
    while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    let typed = null;
    try {
      await c.publish("bad channel!", 1);
    } catch (e) {
      typed = { isWsgateError: e instanceof WsgateError, code: e.code };
    }
    c.close();
    return { states, got, typed };
  }, ch);
  assert.deepEqual(result.got, [{ from: "chromium" }]);
  assert.deepEqual(result.typed, { isWsgateError: true, code: "bad_channel" });
  assert.deepEqual(result.states, ["connecting", "connected", "closed"]);
  assert.deepEqual(problems, []);
  await page.close();
});

test("the demo page connects, joins a channel and shows a published message", async () => {
  const { page, problems } = await newPage();
  await page.goto(`${g.http}/`);
  await page.waitForFunction(() => document.getElementById("state").textContent === "connected", { timeout: 10000 });
  const ch = `demo:${randomBytes(4).toString("hex")}`;
  await page.$eval("#channel", (e, ch) => { e.value = ch; }, ch);
  await page.click("#join-form button[type=submit]");
  await page.waitForFunction((ch) => [...document.querySelectorAll("#joined li.live")].some((li) => li.textContent === ch), { timeout: 10000 }, ch);
  await until(async () => (await redis.command("PUBSUB", "NUMSUB", `gw:${ch}`))[1] === 1, 5000, "the node's Redis subscription");
  assert.equal(await redis.command("PUBLISH", `gw:${ch}`, '{"text":"from the test"}'), 1);
  await page.waitForFunction(() => document.getElementById("log").textContent.includes("from the test"), { timeout: 10000 });
  const log = await page.$eval("#log", (e) => e.textContent);
  assert.match(log, new RegExp(`joined ${ch}`));
  // Who is here: the page's own connection, anonymous.
  await page.waitForFunction((ch) => [...document.querySelectorAll("#here li")].some((li) =>
    li.textContent === `${ch}: 1 connections, 0 users (anonymous)`), { timeout: 10000 }, ch);
  assert.match(log, /connected to ws:\/\//);
  assert.deepEqual(problems, []);
  await page.close();
});

test("the admin view in Chromium lists a three-node cluster as /metrics does, and a killed node drops out", async () => {
  const key = "admin-key-" + randomBytes(8).toString("hex");
  const keys = tempFile("keys", key + "\n");
  const nodes = [];
  const clients = [];
  try {
    for (let i = 0; i < 3; i++)
      nodes.push(await Gateway.start({ redis, name: `adm${i}`, args: ["--api-key-file", keys, "--presence-channels", "admin:*"], logLevel: "info" }));
    const ch = `admin:${randomBytes(4).toString("hex")}`;
    for (let i = 0; i < 3; i++) // 1, 2 and 3 clients on the nodes
      for (let k = 0; k <= i; k++) {
        const c = new Client(`ws://127.0.0.1:${nodes[i].port}/ws`);
        clients.push(c);
        c.connect();
        await c.subscribe(ch).ready();
      }
    const { page, problems } = await newPage();
    await page.goto(`${nodes[0].http}/admin`);
    await page.$eval("#key", (e, key) => { e.value = key; }, key);
    await page.click("#key-form button");
    // This test's nodes (the suite's own node shares the Redis, so it is listed too).
    const shown = async () => (await page.$$eval("#nodes tbody tr", (rows) => rows.map((r) => ({
      id: r.dataset.node, cells: [...r.cells].map((c) => c.textContent) })))).filter((r) => r.id.startsWith("adm"));
    // The page's rows match each node's own /metrics (top channels refresh every 2 s).
    await until(async () => {
      const rows = await shown();
      if (rows.map((r) => r.id).join() !== "adm0,adm1,adm2") return false;
      for (let i = 0; i < 3; i++) {
        const m = await nodes[i].metrics();
        const cells = rows[i].cells;
        if (Number(cells[4]) !== m.wsgate_connections || Number(cells[5]) !== m.wsgate_channels || cells[3] !== "ready")
          return false;
      }
      const busy = await page.$$eval("#channels tbody tr", (rows) => rows.map((r) => [r.dataset.channel, r.cells[1].textContent, r.cells[2].textContent]));
      // Presence: 6 connections cluster-wide, all anonymous (no users).
      return busy.length > 0 && busy[0][0] === ch && busy[0][1] === "6" && busy[0][2] === "6 / 0";
    }, 15000, "the admin view agrees with /metrics on three nodes").catch(async (e) => {
      const busy = await page.$$eval("#channels tbody tr", (rows) => rows.map((r) => r.textContent));
      throw new Error(`${e.message}; page shows ${JSON.stringify(await shown())}, channels ${JSON.stringify(busy)}, ` +
        `status "${await page.$eval("#status", (s) => s.textContent)}"`);
    });
    // One Redis: the mode is said, and there is no shard table.
    assert.deepEqual(await page.evaluate(() => [document.getElementById("redis-mode").textContent,
      document.getElementById("shards").hidden]), ["Redis mode: single", true]);
    // Client-chosen channel names are data: quoted, in <code>, never a link; the key is kept in
    // no storage the demo page (same origin) could read.
    const cell = await page.$eval("#channels tbody tr", (r) => ({
      text: r.cells[0].textContent, code: !!r.cells[0].querySelector("code"), links: document.querySelectorAll("a").length }));
    assert.deepEqual(cell, { text: JSON.stringify(ch), code: true, links: 0 });
    assert.deepEqual(await page.evaluate(() => [sessionStorage.length, localStorage.length]), [0, 0]);
    // The publish box goes through the HTTP API with the same key.
    const got = [];
    clients[0].getSubscription(ch).on("message", (m) => got.push(m.data));
    await page.$eval("#pub-channel", (e, ch) => { e.value = ch; }, ch);
    await page.$eval("#pub-data", (e) => { e.value = '{"from":"admin"}'; });
    await page.click("#publish-form button");
    await page.waitForFunction(() => /published at offset \d+/.test(document.getElementById("pub-result").textContent), { timeout: 10000 });
    await until(() => got.length === 1, 5000, "the admin publish arrives");
    assert.deepEqual(got, [{ from: "admin" }]);
    // The disconnect box: no client here has a token (anonymous dev access), so the count is
    // 0 on each of the three nodes; a bad body shows the API's refusal.
    await page.$eval("#dis-user", (e) => { e.value = "nobody"; });
    await page.click("#disconnect-form button");
    await page.waitForFunction(() => /closed 0 connection\(s\); (\d+) of \1 node\(s\) answered/.test(document.getElementById("dis-result").textContent), { timeout: 10000 });
    const before = problems.length;
    await page.$eval("#dis-user", (e) => { e.value = ""; });
    await page.click("#disconnect-form button");
    await page.waitForFunction(() => /refused: bad_request/.test(document.getElementById("dis-result").textContent), { timeout: 10000 });
    // The browser logs that refusal itself; it is the only problem it adds.
    assert.deepEqual(problems.splice(before), ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]);
    // A killed node drops out within the roster's TTL (5 s) plus one refresh.
    const t0 = Date.now();
    await nodes[2].stop("SIGKILL");
    await until(async () => (await shown()).map((r) => r.id).join() === "adm0,adm1", 8000, "adm2 leaves the page");
    console.log(`[observed] the admin page dropped a killed node after ${Date.now() - t0} ms`);
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    for (const c of clients) c.close();
    for (const n of nodes) await n.cleanup().catch(() => {});
  }
});

test("the admin view in Chromium shows a Redis Cluster's shards and each node's link to them, a killed master down", async () => {
  const key = "admin-key-" + randomBytes(8).toString("hex");
  const keys = tempFile("keys", key + "\n");
  const cluster = await RedisCluster.start(3);
  const nodes = [];
  try {
    for (let i = 0; i < 2; i++)
      nodes.push(await Gateway.start({ name: `shard${i}`, args: ["--api-key-file", keys, "--redis-url", cluster.seeds], logLevel: "info" }));
    const slots = await cluster.slots();
    assert.equal(Object.keys(slots).length, 3);
    const { page, problems } = await newPage();
    await page.goto(`${nodes[0].http}/admin`);
    await page.$eval("#key", (e, key) => { e.value = key; }, key);
    await page.click("#key-form button");
    const table = () => page.evaluate(() => ({
      hidden: document.getElementById("shards").hidden,
      mode: document.getElementById("redis-mode").textContent,
      head: [...document.querySelectorAll("#shards thead th")].map((h) => h.textContent),
      rows: [...document.querySelectorAll("#shards tbody tr")].map((r) => [...r.cells].map((c) => c.textContent)),
    }));
    const linksLive = (rows, except) => rows.every((r) => r.slice(2).every((c) => (r[0] === except) !== /^live, \d+\.\d ms$/.test(c)));
    await until(async () => {
      const t = await table();
      return !t.hidden && t.mode === "Redis mode: cluster" && t.head.join() === "shard master,slots,link of shard0,link of shard1" &&
        JSON.stringify(t.rows.map((r) => [r[0], Number(r[1])])) === JSON.stringify(Object.entries(slots)) && linksLive(t.rows, null);
    }, 15000, "three shards, each with its slots and both nodes' links live").catch(async (e) => {
      throw new Error(`${e.message}; page shows ${JSON.stringify(await table())}, cluster ${JSON.stringify(slots)}`);
    });
    // SIGKILL a master that does not hold the roster (the slot of the {wsgate} tag, asked of Redis).
    const tagSlot = await cluster.nodes[0].command("CLUSTER", "KEYSLOT", "{wsgate}:nodes");
    const owners = await cluster.nodes[0].command("CLUSTER", "SLOTS");
    const holder = owners.find(([lo, hi]) => lo <= tagSlot && tagSlot <= hi)[2][1];
    const victim = cluster.nodes.find((n) => n.port !== holder);
    await victim.stop("SIGKILL");
    await until(async () => {
      const t = await table();
      return t.rows.length === 3 && linksLive(t.rows, victim.addr);
    }, 15000, `both nodes' links to ${victim.addr} shown down, the others live`).catch(async (e) => {
      throw new Error(`${e.message}; page shows ${JSON.stringify(await table())}`);
    });
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    for (const n of nodes) await n.cleanup().catch(() => {});
    await cluster.cleanup();
  }
});
