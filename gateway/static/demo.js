// The demo page's script (gateway/static/index.html), served at /demo.js: pages run no inline
// script (their Content-Security-Policy says script-src 'self').
// The page runs on the SDK the node serves (clients/js/src/wsgate.js): reconnect, resubscribe
// and recovery come from there, so what this page shows is what an application gets.
import { Client } from "./sdk/wsgate.js";

const $ = (id) => document.getElementById(id);
const CLOSE_MEANING = {
  1000: "normal closure", 1001: "server draining (shutting down)", 1006: "connection lost",
  1007: "invalid UTF-8 sent", 1008: "policy violation", 1011: "server error",
  4001: "idle timeout", 4003: "token refused", 4004: "authentication timeout",
  4005: "token expired", 4008: "slow consumer",
};
const STATE_CLASS = { connected: "open", connecting: "connecting", disconnected: "closed", closed: "closed" };
const LOG_MAX = 300, PING_EVERY_MS = 5000;
const params = new URLSearchParams(location.search);
// Always this node: the page shows what a server says as the gateway's words, so it must not
// be pointed at another server (no ?ws=; the page's CSP allows WebSocket to its own origin only).
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const token = params.get("token") || undefined; // a JWT, for nodes that grant anonymous clients nothing

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// One log line: time, heading, optional detail (pretty JSON). Everything goes in as text.
function log(kind, head, detail) {
  const li = el("li", kind), now = new Date();
  const t = el("time", "", now.toLocaleTimeString());
  t.dateTime = now.toISOString();
  const h = el("div", "head");
  h.append(el("strong", "", head));
  li.append(t, h);
  if (detail !== undefined) li.append(el("pre", "", detail));
  const list = $("log");
  list.prepend(li);
  while (list.childElementCount > LOG_MAX) list.lastElementChild.remove();
}

function setState(s, text) {
  $("state").dataset.s = STATE_CLASS[s] || s;
  $("state").textContent = text || s;
}

const client = new Client(wsUrl, { token });
const joined = new Map(); // channel -> Subscription
window.wsgateDemo = { client }; // for the browser test and for poking at it from the console

function renderJoined() {
  const ul = $("joined");
  ul.replaceChildren();
  for (const ch of [...joined.keys()]) {
    const sub = client.getSubscription(ch);
    const live = sub && sub.state === "subscribed";
    const li = el("li", live ? "live" : "pending", ch);
    li.title = live ? "subscribed" : "waiting for the subscription";
    ul.append(li);
  }
}

function join(ch) {
  if (joined.has(ch)) return;
  const sub = client.subscribe(ch, {
    onMessage: (m) => log("msg", m.channel + (m.offset !== undefined ? " #" + m.offset : ""), JSON.stringify(m.data, null, 2)),
  });
  joined.set(ch, sub);
  sub.on("state", renderJoined);
  sub.on("subscribed", (e) => {
    renderHere();
    if (e.first) log("info", "joined " + ch, undefined);
    else if (e.recovered === true) log("info", "rejoined " + ch + ": recovered, missed messages follow", undefined);
    else log("info", "rejoined " + ch, e.recovered === false ? undefined : "no history on this channel: messages sent while away are lost");
  });
  sub.on("gap", (g) => log("err", "missed messages on " + ch,
    "offsets " + g.from + ".." + (g.to === null ? "?" : g.to) + " of epoch " + g.epoch + " cannot be recovered (" + g.reason + ")"));
  sub.on("error", (e) => {
    log("err", "error " + e.code + " on " + ch, e.message);
    if (sub.state === "unsubscribed" && !client.getSubscription(ch)) { joined.delete(ch); renderJoined(); }
  });
  renderJoined();
}

client.on("state", (e) => {
  if (e.state === "connected") setState("connected", "connected");
  else if (e.state === "closed") setState("closed", "closed" + (e.code ? " " + e.code + " (" + (CLOSE_MEANING[e.code] || "unknown") + ")" : ""));
  else setState(e.state);
  if (e.state === "connected") log("info", "connected to " + wsUrl, undefined);
  renderJoined();
});
client.on("disconnect", (e) => {
  const meaning = CLOSE_MEANING[e.code] || "unknown";
  const retry = e.delayMs === null ? "not retrying" : "retrying in " + (e.delayMs / 1000).toFixed(1) + " s";
  setState("connecting", "closed " + e.code + " (" + meaning + "), " + retry);
  $("rtt").textContent = "–";
  log("err", "connection closed: " + e.code + " " + meaning, (e.reason ? "reason: " + e.reason + "; " : "") + retry);
});
client.on("error", (e) => log("err", "error " + e.code, e.message));

// Who is in each joined channel (presence(), on channels the node keeps presence for:
// --presence-channels). User names come from tokens: shown as text, never as markup.
async function renderHere() {
  const items = [];
  for (const ch of [...joined.keys()]) {
    const sub = client.getSubscription(ch);
    if (!sub || sub.state !== "subscribed") continue;
    try {
      const p = await client.presence(ch, { limit: 50 });
      const users = [...new Set(p.members.map((m) => (m.user === null ? "anonymous" : m.user)))];
      const li = el("li", "live", ch + ": " + p.connections + " connections, " + p.users + " users" +
                                  (users.length ? " (" + users.join(", ") + ")" : ""));
      li.dataset.channel = ch;
      items.push(li);
    } catch (e) {
      const li = el("li", "pending", ch + ": " + (e.code === "bad_request" ? "no presence on this channel" : e.code));
      li.dataset.channel = ch;
      items.push(li);
    }
  }
  $("here").replaceChildren(...items);
}

setInterval(() => {
  if (client.state !== "connected") return;
  renderHere();
  client.ping().then((ms) => { $("rtt").textContent = ms.toFixed(0) + " ms"; }, () => {});
}, PING_EVERY_MS);

function channelInput() {
  const ch = $("channel").value.trim();
  if (!ch) log("err", "enter a channel name first", undefined);
  return ch;
}

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const ch = channelInput();
  if (ch) join(ch);
});
$("leave").addEventListener("click", () => {
  const ch = channelInput();
  const sub = ch && joined.get(ch);
  if (!sub) return;
  joined.delete(ch);
  sub.unsubscribe();
  renderJoined();
  log("info", "left " + ch, undefined);
});
$("pub-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const ch = channelInput(), text = $("data").value;
  if (!ch) return;
  let data;
  try { data = JSON.parse(text); } catch { data = text; }
  client.publish(ch, data).then(
    (ack) => log("info", "published to " + ch + (ack.offset !== undefined ? " as #" + ack.offset : ""), undefined),
    (err) => log("err", "publish to " + ch + " failed: " + err.code, err.message));
});
$("data").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("pub-form").requestSubmit();
});
$("clear").addEventListener("click", () => $("log").replaceChildren());

$("url").textContent = wsUrl;
client.connect();
