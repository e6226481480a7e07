// The admin view's script (gateway/static/admin.html), served at /admin.js (no inline script:
// see the page's Content-Security-Policy).
"use strict";
const $ = (id) => document.getElementById(id);
// In memory only: sessionStorage is shared with every page of this origin (the demo page too).
let key = "";
let last = new Map(); // node id -> {time_ms, messages_in, messages_out}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function rate(prev, cur, field) {
  if (!prev || cur.time_ms <= prev.time_ms) return "–";
  return ((cur[field] - prev[field]) * 1000 / (cur.time_ms - prev.time_ms)).toFixed(1);
}

function render(data) {
  const nodes = data.nodes.slice().sort((a, b) => a.id.localeCompare(b.id));
  const body = $("nodes").tBodies[0];
  body.replaceChildren();
  const channels = new Map();
  const seen = new Map();
  for (const n of nodes) {
    const tr = document.createElement("tr");
    tr.dataset.node = n.id;
    const prev = last.get(n.id);
    cell(tr, n.id);
    cell(tr, n.address);
    cell(tr, n.version);
    cell(tr, n.draining ? "draining" : n.ready ? "ready" : "not ready", n.ready ? "ok" : "down");
    cell(tr, n.connections);
    cell(tr, n.channels);
    cell(tr, rate(prev, n, "messages_in"));
    cell(tr, rate(prev, n, "messages_out"));
    cell(tr, n.shed);
    body.appendChild(tr);
    seen.set(n.id, n);
    for (const c of n.top_channels) channels.set(c.channel, (channels.get(c.channel) || 0) + c.subscribers);
  }
  last = seen;
  renderShards(nodes);
  const cbody = $("channels").tBodies[0];
  cbody.replaceChildren();
  for (const [name, subs] of [...channels].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
    const tr = document.createElement("tr");
    tr.dataset.channel = name;
    // Channel names are chosen by clients, anonymous ones too: shown quoted, as data, never as a
    // link or as words of this page (a name like "https://..." or "node down: call ..." is a name).
    const td = document.createElement("td"), code = document.createElement("code");
    code.textContent = JSON.stringify(name);
    td.title = "channel name, as chosen by a client";
    td.appendChild(code);
    tr.appendChild(td);
    cell(tr, subs);
    cell(tr, presence.get(name) || "–");
    cbody.appendChild(tr);
  }
  refreshPresence([...channels.keys()]);
}

// The Redis side: each node's mode and, in cluster mode, one row per shard (its master's
// address and slots, as each node's map has them) with each node's link to that master.
function renderShards(nodes) {
  const modes = [...new Set(nodes.map((n) => (n.redis && n.redis.mode) || "unknown"))].sort();
  $("redis-mode").textContent = "Redis mode: " + (modes.join(", ") || "–");
  const linked = nodes.filter((n) => n.redis && Array.isArray(n.redis.masters));
  const table = $("shards");
  table.hidden = linked.length === 0;
  const head = table.tHead.rows[0];
  head.replaceChildren();
  for (const h of ["shard master", "slots", ...linked.map((n) => "link of " + n.id)]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  const masters = new Map(); // address -> {slots: Set, links: Map(node id -> entry)}
  for (const n of linked)
    for (const m of n.redis.masters) {
      const e = masters.get(m.address) || { slots: new Set(), links: new Map() };
      e.slots.add(m.slots);
      e.links.set(n.id, m);
      masters.set(m.address, e);
    }
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const [addr, e] of [...masters].sort((a, b) => a[0].localeCompare(b[0]))) {
    const tr = document.createElement("tr");
    tr.dataset.master = addr;
    cell(tr, addr);
    cell(tr, [...e.slots].join(" / ")); // two figures: the nodes' maps disagree (a move under way)
    for (const n of linked) {
      const m = e.links.get(n.id);
      const live = m && m.link === "live";
      cell(tr, !m ? "not linked" : live ? "live, " + Number(m.rtt_ms).toFixed(1) + " ms" : m.link, live ? "ok" : "down");
      tr.lastChild.title = m ? m.reconnects + " reconnect(s)" : "this node's map has no such master";
    }
    body.appendChild(tr);
  }
}

// Presence counts of the listed channels (GET /api/presence_stats, same key); a channel
// outside --presence-channels answers 400 and shows "–". Shown at the next render.
const presence = new Map(); // channel -> "connections / users"
let presenceBusy = false;
async function refreshPresence(names) {
  if (presenceBusy || !key) return;
  presenceBusy = true;
  try {
    for (const name of names.slice(0, 20)) {
      const r = await fetch("/api/presence_stats?channel=" + encodeURIComponent(name),
                            { headers: { Authorization: "Bearer " + key } }).catch(() => null);
      const body = r && r.ok ? await r.json().catch(() => null) : null;
      if (body) presence.set(name, body.connections + " / " + body.users);
      else presence.delete(name);
    }
  } finally {
    presenceBusy = false;
  }
}

async function refresh() {
  if (!key) return;
  try {
    const r = await fetch("/admin/api/cluster", { headers: { Authorization: "Bearer " + key } });
    if (r.status === 401) { $("status").textContent = "key refused"; return; }
    if (!r.ok) { $("status").textContent = "cluster view unavailable (" + r.status + ")"; return; }
    render(await r.json());
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    $("status").textContent = "node unreachable: " + e.message;
  }
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  key = $("key").value.trim();
  refresh();
});

$("publish-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  let data;
  try { data = JSON.parse($("pub-data").value); } catch (e) { $("pub-result").textContent = "data is not JSON"; return; }
  const r = await fetch("/api/publish", {
    method: "POST",
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify({ channel: $("pub-channel").value, data }),
  });
  const body = await r.json().catch(() => ({}));
  $("pub-result").textContent = r.ok ? "published at offset " + body.offset : "refused: " + (body.error || r.status);
});

$("disconnect-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { user: $("dis-user").value, reconnect: !$("dis-stop").checked };
  if ($("dis-reason").value) body.reason = $("dis-reason").value;
  const r = await fetch("/api/disconnect", {
    method: "POST",
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const a = await r.json().catch(() => ({}));
  // textContent only: the answer is data, never markup.
  $("dis-result").textContent = r.ok
    ? "closed " + a.closed + " connection(s); " + a.answered + " of " + a.nodes + " node(s) answered"
    : "refused: " + (a.error || r.status) + (a.message ? " (" + a.message + ")" : "");
});

setInterval(refresh, 1000);
refresh();
