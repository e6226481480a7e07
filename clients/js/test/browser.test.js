// The SDK in headless Chromium (Debian's chromium through puppeteer-core): as the module the
// node serves at /sdk/wsgate.js, and inside the node's demo page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";

import { Redis, Gateway, until } from "./helpers.js";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
let puppeteer, browser, redis, g;

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (deploy/install-deps.sh installs Debian's chromium)`);
  puppeteer = (await import("puppeteer-core")).default;
  redis = await Redis.start();
  g = await Gateway.start({ redis, name: "browser" });
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
  // Same origin as the WebSocket, so the node's default Origin check lets it in.
  await page.goto(`${g.http}/healthz`);
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
  assert.match(log, /connected to ws:\/\//);
  assert.deepEqual(problems, []);
  await page.close();
});
