// @wsgate/client: the wsgate protocol (docs/PROTOCOL.md) with reconnect, token refresh and
// recovery of missed messages. One ES module with no imports, so that a node can serve this
// very file to browsers (/sdk/wsgate.js) and Node 20+ can import it unchanged.

/** Connection states. */
export const State = Object.freeze({
  DISCONNECTED: "disconnected",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  CLOSED: "closed",
});

/** Subscription states. */
export const SubState = Object.freeze({
  UNSUBSCRIBED: "unsubscribed",
  SUBSCRIBING: "subscribing",
  SUBSCRIBED: "subscribed",
});

const DEFAULTS = Object.freeze({
  minDelayMs: 500,
  maxDelayMs: 15000,
  // A drained node closes all its clients at once: spreading their returns over this window
  // is what keeps the next node from taking every reconnect in the same instant.
  drainJitterMs: 5000,
  refreshBeforeMs: 30000,
  requestTimeoutMs: 10000,
  // A connection whose server went away without a FIN or RST (a pulled cable, a dead NAT
  // entry) shows nothing in the browser; the server's WebSocket pings are answered by the
  // browser without the page seeing them. Silence for idleMs sends an application ping;
  // silence for timeoutMs more gives the socket up and reconnects.
  keepaliveIdleMs: 30000,
  keepaliveTimeoutMs: 10000,
});

/** An error reply of the server (code is the protocol's slug) or of the SDK itself
 * (code "timeout", "disconnected", "closed", "token", "unauthorized", "token_expired"). */
export class WsgateError extends Error {
  constructor(code, message, fields = {}) {
    super(message || code);
    this.name = "WsgateError";
    this.code = code;
    if (fields.channel !== undefined) this.channel = fields.channel;
    if (fields.requestId !== undefined) this.requestId = fields.requestId;
    if (fields.closeCode !== undefined) this.closeCode = fields.closeCode;
  }
}

/** Full jitter (a uniformly random delay up to the exponential cap): clients that lost the
 * same node at the same moment do not come back in step. attempt counts from 0. */
export function backoffDelay(attempt, minDelayMs, maxDelayMs, random = Math.random) {
  const cap = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** When to ask for a new token: before exp by refreshBeforeMs, but never later than half-way
 * through the remaining lifetime, so short-lived tokens are refreshed too. */
export function refreshDelay(expSeconds, nowMs, refreshBeforeMs) {
  const remaining = expSeconds * 1000 - nowMs;
  if (remaining <= 0) return 0;
  return Math.max(0, remaining - Math.min(refreshBeforeMs, remaining / 2));
}

/** What the client does after a close code: "reconnect" (with backoff), "drain" (at once,
 * spread over the drain window), "expired" (new token, then reconnect), "stop" (terminal).
 * A backend's disconnect (POST /api/disconnect) says which with its code: 4010 and
 * 4100..4299 reconnect, 4011 and 4300..4499 stop. */
export function closePolicy(code) {
  if (code === 4011 || (code >= 4300 && code <= 4499)) return "stop";
  switch (code) {
    case 1001:
      return "drain";
    case 4003:
      return "stop";
    case 4005:
      return "expired";
    default:
      return "reconnect";
  }
}

/**
 * The position of one channel with history (offset and epoch of the last message handed to
 * the application) and the decisions that keep the application free of duplicates and of
 * silent losses. Pure: no timers, no sockets.
 */
export class ChannelPosition {
  constructor(since) {
    this.offset = since ? since.offset : null;
    this.epoch = since ? since.epoch : null;
    this.duplicates = 0;
  }

  get known() {
    return this.epoch !== null;
  }

  /** The "since" to send on subscribe, or null when nothing is known yet. */
  since() {
    return this.known ? { offset: this.offset, epoch: this.epoch } : null;
  }

  /** Judges one message. Returns { deliver, gap }: deliver false for a duplicate or older
   * message; gap, when set, is { epoch, from, to } of offsets that were skipped. */
  accept(msg) {
    if (typeof msg.offset !== "number" || typeof msg.epoch !== "string") return { deliver: true, gap: null };
    let gap = null;
    if (!this.known) {
      // First message ever seen on this channel: nothing to compare with.
    } else if (msg.epoch !== this.epoch) {
      // A new epoch restarts at 1; anything below the first offset we see is lost.
      if (msg.offset > 1) gap = { epoch: msg.epoch, from: 1, to: msg.offset - 1 };
    } else if (msg.offset <= this.offset) {
      this.duplicates++;
      return { deliver: false, gap: null };
    } else if (msg.offset > this.offset + 1) {
      gap = { epoch: msg.epoch, from: this.offset + 1, to: msg.offset - 1 };
    }
    this.offset = msg.offset;
    this.epoch = msg.epoch;
    return { deliver: true, gap };
  }

  /** A subscribe ack. Returns the gap to report ({epoch, from, to}, from/to may be null when
   * unknown) or null. sentSince is what the subscribe carried. */
  acked(ack, sentSince) {
    const hasPos = typeof ack.offset === "number" && typeof ack.epoch === "string";
    if (ack.recovered === true) {
      // The missed messages follow the ack; they move the position themselves.
      if (hasPos && !this.known) this.moveTo(ack.offset, ack.epoch);
      return null;
    }
    let gap = null;
    if (ack.recovered === false && sentSince) {
      const sameEpoch = hasPos && ack.epoch === sentSince.epoch;
      gap = {
        epoch: sentSince.epoch,
        from: sentSince.offset + 1,
        to: sameEpoch ? ack.offset : null,
        newEpoch: hasPos && !sameEpoch ? ack.epoch : undefined,
      };
    }
    if (hasPos) this.moveTo(ack.offset, ack.epoch);
    return gap;
  }

  /** A gap notice from the server: those offsets never come; the position continues after. */
  gapNotice(notice) {
    if (typeof notice.to === "number" && (notice.epoch !== this.epoch || notice.to > (this.offset ?? 0))) {
      this.moveTo(notice.to, notice.epoch);
    }
  }

  moveTo(offset, epoch) {
    this.offset = offset;
    this.epoch = epoch;
  }
}

// A minimal event emitter: browsers and Node share EventTarget, but listeners taking plain
// objects are easier for applications than CustomEvent.detail.
class Emitter {
  constructor() {
    this.listeners = new Map();
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    const set = this.listeners.get(name);
    if (set) set.delete(fn);
  }

  emit(name, arg) {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(arg);
      } catch (e) {
        // One application listener that throws must not break the protocol handling.
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}

/** One channel of a Client. Created by client.subscribe(). */
export class Subscription extends Emitter {
  constructor(client, channel, opts) {
    super();
    this.client = client;
    this.channel = channel;
    this.recover = opts.recover !== false;
    this.presence = opts.presence === true; // join/leave events (docs/PROTOCOL.md "Presence")
    this.position = new ChannelPosition(opts.since || null);
    this.state = SubState.UNSUBSCRIBED;
    this.sentSince = null;
    this.ackCount = 0;
    this.retryTimer = null;
    this.ended = false;
    this.error = null; // the server's refusal that ended the subscription
    if (opts.onMessage) this.on("message", opts.onMessage);
    if (opts.onJoin) this.on("join", opts.onJoin);
    if (opts.onLeave) this.on("leave", opts.onLeave);
  }

  /** Resolves once the server acknowledged the subscription; rejects with a WsgateError
   * when the server refuses it (forbidden, bad_channel, ...). */
  ready() {
    if (this.state === SubState.SUBSCRIBED) return Promise.resolve(this);
    if (this.ended) return Promise.reject(this.error || new WsgateError("closed", "subscription ended", { channel: this.channel }));
    return new Promise((resolve, reject) => {
      const offs = [
        this.on("subscribed", () => {
          offs.forEach((f) => f());
          resolve(this);
        }),
        this.on("error", (e) => {
          if (!this.ended) return;
          offs.forEach((f) => f());
          reject(e);
        }),
      ];
    });
  }

  /** Ends the subscription (and sends unsubscribe when connected). */
  unsubscribe() {
    if (this.ended) return;
    this.client.dropSubscription(this, true);
  }

  setState(state) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.emit("state", { state, previous });
  }
}

/**
 * A connection to a wsgate node that survives the node: it reconnects, authenticates,
 * resubscribes and recovers what it missed.
 */
export class Client extends Emitter {
  /**
   * @param url "ws://host/ws", a list of such URLs (tried in turn), or a function returning one.
   * @param opts see index.d.ts (ClientOptions).
   */
  constructor(url, opts = {}) {
    super();
    this.urls = typeof url === "function" ? url : Array.isArray(url) ? [...url] : [url];
    this.urlIndex = 0;
    this.WebSocket = opts.WebSocket || globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new TypeError("no WebSocket: pass one as the WebSocket option (Node 20 has none built in)");
    }
    this.token = opts.token || null;
    this.getToken = opts.getToken || null;
    const r = opts.reconnect === false ? { enabled: false } : opts.reconnect || {};
    this.reconnectEnabled = r.enabled !== false;
    this.minDelayMs = r.minDelayMs ?? DEFAULTS.minDelayMs;
    this.maxDelayMs = r.maxDelayMs ?? DEFAULTS.maxDelayMs;
    this.drainJitterMs = r.drainJitterMs ?? DEFAULTS.drainJitterMs;
    this.refreshBeforeMs = opts.refreshBeforeMs ?? DEFAULTS.refreshBeforeMs;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.random = opts.random || Math.random;
    const k = opts.keepalive === false ? { idleMs: 0 } : opts.keepalive || {};
    this.keepIdleMs = k.idleMs ?? DEFAULTS.keepaliveIdleMs;
    this.keepTimeoutMs = k.timeoutMs ?? DEFAULTS.keepaliveTimeoutMs;
    this.keepTimer = null;
    this.lastRx = 0;
    this.keepPinged = false;

    this.state = State.DISCONNECTED;
    this.ws = null;
    this.attempt = 0;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer, kind, sub}
    this.waiting = []; // requests made while connecting, sent once connected
    this.subs = new Map(); // channel -> Subscription
    this.timer = null;
    this.refreshTimer = null;
    this.tokenExp = null;
    this.lastError = null; // the server's error that explains the close that follows
    this.session = 0; // bumps per socket, so late callbacks of an old socket are ignored
  }

  /** Starts connecting (and keeps reconnecting). Returns this. */
  connect() {
    if (this.state === State.CONNECTING || this.state === State.CONNECTED) return this;
    this.attempt = 0;
    this.setState(State.CONNECTING);
    this.open("connect");
    return this;
  }

  /** Closes for good: no reconnect, every pending request rejects with "closed". */
  close() {
    this.stop(new WsgateError("closed", "client closed"), 1000, "client closed", false);
  }

  /** Subscribes; the subscription lives across reconnects until unsubscribe(). */
  subscribe(channel, opts = {}) {
    if (this.subs.has(channel)) throw new Error(`already subscribed to ${channel}`);
    const sub = new Subscription(this, channel, opts);
    this.subs.set(channel, sub);
    if (this.state === State.CONNECTED) this.sendSubscribe(sub);
    return sub;
  }

  /** The subscription of a channel, if any. */
  getSubscription(channel) {
    return this.subs.get(channel);
  }

  /** Publishes; resolves with {offset, epoch} (both undefined without history). */
  publish(channel, data) {
    return this.request({ type: "publish", channel, data }).then((ack) => ({ offset: ack.offset, epoch: ack.epoch }));
  }

  /** Reads stored messages of a channel (needs history on the server). */
  history(channel, opts = {}) {
    const req = { type: "history", channel };
    if (opts.limit !== undefined) req.limit = opts.limit;
    if (opts.since) req.since = { offset: opts.since.offset, epoch: opts.since.epoch };
    return this.request(req).then((r) => ({
      channel: r.channel,
      epoch: r.epoch,
      offset: r.offset,
      complete: r.complete,
      messages: r.messages || [],
    }));
  }

  /** Who is in a channel that keeps presence: resolves with {channel, connections, users,
   * cursor, members: [{client, user, info?}]}; pass {cursor} from one page for the next,
   * until cursor is "0". Needs the subscribe right, not a subscription. */
  presence(channel, opts = {}) {
    const req = { type: "presence", channel };
    if (opts.limit !== undefined) req.limit = opts.limit;
    if (opts.cursor !== undefined) req.cursor = opts.cursor;
    return this.request(req).then((r) => ({
      channel: r.channel,
      connections: r.connections,
      users: r.users,
      cursor: r.cursor,
      members: r.members || [],
    }));
  }

  /** A channel's counts: resolves with {channel, connections, users}. */
  presenceStats(channel) {
    return this.request({ type: "presence_stats", channel }).then((r) => ({
      channel: r.channel,
      connections: r.connections,
      users: r.users,
    }));
  }

  /** Application-level round trip; resolves with the milliseconds it took. */
  ping() {
    const t0 = Date.now();
    return this.request({ type: "ping" }).then(() => Date.now() - t0);
  }

  // ---- internals

  setState(state, detail = {}) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.emit("state", { state, previous, ...detail });
    this.emit(state, { previous, ...detail });
  }

  nextUrl() {
    if (typeof this.urls === "function") return this.urls();
    const u = this.urls[this.urlIndex % this.urls.length];
    this.urlIndex++;
    return u;
  }

  async open(reason) {
    const session = ++this.session;
    let token = this.token;
    // A token that outlives the refresh margin is used again, so a reconnect storm is not
    // also a storm on the application's token endpoint.
    const stale = this.tokenExp !== null && this.tokenExp * 1000 - Date.now() < this.refreshBeforeMs;
    if (this.getToken && (reason === "expired" || !token || stale)) {
      try {
        token = await this.getToken({ reason });
      } catch (e) {
        if (session !== this.session) return;
        this.emit("error", new WsgateError("token", `getToken failed: ${e && e.message ? e.message : e}`));
        this.scheduleReconnect("reconnect", reason);
        return;
      }
      if (session !== this.session) return;
      this.token = token;
    }
    let ws;
    try {
      ws = new this.WebSocket(this.nextUrl());
    } catch (e) {
      this.emit("error", new WsgateError("connect", String(e && e.message ? e.message : e)));
      this.scheduleReconnect("reconnect", "connect");
      return;
    }
    this.ws = ws;
    this.emit("attempt", { reason, attempt: this.attempt });
    ws.onopen = () => session === this.session && this.onOpen(ws, token);
    ws.onmessage = (ev) => session === this.session && this.onFrame(ev.data);
    ws.onclose = (ev) => session === this.session && this.onClose(ev.code, ev.reason);
    // Errors are always followed by a close event, which decides what happens.
    ws.onerror = () => {};
  }

  onOpen(ws, token) {
    this.lastError = null;
    if (!token) {
      this.onReady();
      return;
    }
    this.sendRequest({
      msg: { type: "auth", token },
      resolve: (ack) => {
        this.tokenAcked(ack);
        this.onReady();
      },
      // A refused token is followed by close 4003, which stops the client.
      reject: () => {},
    });
  }

  onReady() {
    this.attempt = 0;
    this.setState(State.CONNECTED);
    this.startKeepalive();
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) this.sendRequest(w);
  }

  tokenAcked(ack) {
    this.tokenExp = typeof ack.exp === "number" ? ack.exp : null;
    this.emit("token", { sub: ack.sub, exp: ack.exp });
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.getToken && this.tokenExp !== null) {
      this.refreshTimer = setTimeout(() => this.refresh(), refreshDelay(this.tokenExp, Date.now(), this.refreshBeforeMs));
    }
  }

  async refresh() {
    const session = this.session;
    let token;
    try {
      token = await this.getToken({ reason: "refresh" });
    } catch (e) {
      if (session !== this.session || this.state !== State.CONNECTED) return;
      this.emit("error", new WsgateError("token", `getToken failed: ${e && e.message ? e.message : e}`));
      // Try again while the old token lasts; at expiry the server closes with 4005.
      const left = this.tokenExp * 1000 - Date.now();
      if (left > 1000) this.refreshTimer = setTimeout(() => this.refresh(), Math.min(left / 2, 30000));
      return;
    }
    if (session !== this.session || this.state !== State.CONNECTED) return;
    this.token = token;
    this.rawRequest({ type: "auth", token }).then(
      (ack) => this.tokenAcked(ack),
      (e) => this.emit("error", e),
    );
  }

  sendSubscribe(sub) {
    clearTimeout(sub.retryTimer);
    sub.retryTimer = null;
    const req = { type: "subscribe", channel: sub.channel };
    if (sub.presence) req.presence = true;
    sub.sentSince = null;
    if (sub.recover) {
      const since = sub.position.since();
      if (since) {
        req.since = since;
        sub.sentSince = since;
      } else {
        req.recover = true;
      }
    }
    sub.setState(SubState.SUBSCRIBING);
    // Settled synchronously, not through a promise: the ack must move the position before
    // the replayed messages behind it in the same read are judged.
    this.sendRequest({
      msg: req,
      sub,
      resolve: (ack) => this.subscribeAcked(sub, ack),
      reject: (e) => this.subscribeFailed(sub, e),
    });
  }

  subscribeAcked(sub, ack) {
    if (sub.ended) return;
    const gap = sub.position.acked(ack, sub.sentSince);
    sub.ackCount++;
    sub.setState(SubState.SUBSCRIBED);
    const info = {
      first: sub.ackCount === 1,
      recovered: ack.recovered,
      offset: ack.offset,
      epoch: ack.epoch,
    };
    sub.emit("subscribed", info);
    if (gap) sub.emit("gap", { channel: sub.channel, reason: "recovery_failed", ...gap });
  }

  subscribeFailed(sub, e) {
    if (sub.ended) return;
    if (e.code === "disconnected" || e.code === "closed") return; // resubscribed on reconnect
    if (e.code === "unavailable" || e.code === "rate_limited" || e.code === "timeout") {
      // Transient on the server's side: try again on this connection.
      sub.emit("error", e);
      sub.setState(SubState.UNSUBSCRIBED);
      const delay = backoffDelay(Math.min(sub.ackCount + 3, 6), this.minDelayMs, this.maxDelayMs, this.random);
      sub.retryTimer = setTimeout(() => {
        if (!sub.ended && this.state === State.CONNECTED) this.sendSubscribe(sub);
      }, delay + this.minDelayMs);
      return;
    }
    sub.error = e;
    this.dropSubscription(sub, false);
    sub.emit("error", e);
  }

  dropSubscription(sub, sendUnsubscribe) {
    if (sub.ended) return;
    sub.ended = true;
    clearTimeout(sub.retryTimer);
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
    if (sendUnsubscribe && this.state === State.CONNECTED) {
      this.rawRequest({ type: "unsubscribe", channel: sub.channel }).catch(() => {});
    }
    sub.setState(SubState.UNSUBSCRIBED);
  }

  // A request from the application: waits for the connection while connecting.
  request(msg) {
    return new Promise((resolve, reject) => {
      const w = { msg, resolve, reject, sub: null };
      if (this.state === State.CONNECTED) {
        this.sendRequest(w);
      } else if (this.state === State.CONNECTING) {
        w.timer = setTimeout(() => {
          this.waiting = this.waiting.filter((x) => x !== w);
          reject(new WsgateError("timeout", `not connected within ${this.requestTimeoutMs} ms`));
        }, this.requestTimeoutMs);
        this.waiting.push(w);
      } else {
        reject(new WsgateError("disconnected", `client is ${this.state}`));
      }
    });
  }

  rawRequest(msg, sub = null) {
    return new Promise((resolve, reject) => this.sendRequest({ msg, resolve, reject, sub }));
  }

  sendRequest(w) {
    clearTimeout(w.timer);
    const id = this.nextId++;
    w.timer = setTimeout(() => {
      if (this.pending.delete(id)) w.reject(new WsgateError("timeout", `no reply within ${this.requestTimeoutMs} ms`, { requestId: id }));
    }, this.requestTimeoutMs);
    this.pending.set(id, w);
    try {
      this.ws.send(JSON.stringify({ ...w.msg, id }));
    } catch (e) {
      this.pending.delete(id);
      clearTimeout(w.timer);
      w.reject(new WsgateError("disconnected", String(e && e.message ? e.message : e), { requestId: id }));
    }
  }

  startKeepalive() {
    clearInterval(this.keepTimer);
    this.keepTimer = null;
    this.lastRx = Date.now();
    this.keepPinged = false;
    if (!this.keepIdleMs) return;
    const session = this.session;
    this.keepTimer = setInterval(() => {
      if (session !== this.session) return;
      const silent = Date.now() - this.lastRx;
      if (silent >= this.keepIdleMs + this.keepTimeoutMs) {
        this.abandon();
      } else if (silent >= this.keepIdleMs && !this.keepPinged && this.ws) {
        this.keepPinged = true;
        try {
          this.ws.send(JSON.stringify({ type: "ping" })); // any frame back proves the path
        } catch {
          // the close event decides
        }
      }
    }, Math.max(10, Math.min(this.keepIdleMs, this.keepTimeoutMs) / 4));
  }

  stopKeepalive() {
    clearInterval(this.keepTimer);
    this.keepTimer = null;
  }

  /** The server is silent past the keepalive: treat the socket as lost, as a close would. */
  abandon() {
    const ws = this.ws;
    this.session++; // late events of that socket are ignored
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(4000, "keepalive timeout");
      } catch {
        // already closing
      }
    }
    this.onClose(1006, "no answer from the server (keepalive)");
  }

  onFrame(text) {
    this.lastRx = Date.now();
    this.keepPinged = false;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this.emit("error", new WsgateError("bad_frame", "unparsable frame from the server"));
      return;
    }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "message":
        this.onMessage(msg);
        break;
      case "gap":
        this.onGap(msg);
        break;
      case "unsubscribe":
        this.onServerUnsubscribe(msg);
        break;
      case "ack":
      case "pong":
      case "history":
      case "presence":
      case "presence_stats":
        this.settle(msg, null);
        break;
      case "join":
      case "leave":
      case "presence_limited": {
        const sub = this.subs.get(msg.channel);
        if (sub && !sub.ended) sub.emit(msg.type, msg);
        break;
      }
      case "error":
        this.onError(msg);
        break;
      default:
        break; // unknown types are ignored, as the protocol asks
    }
  }

  onMessage(msg) {
    const sub = this.subs.get(msg.channel);
    if (!sub || sub.ended) return;
    const { deliver, gap } = sub.position.accept(msg);
    if (gap) sub.emit("gap", { channel: sub.channel, reason: "skipped", ...gap });
    if (!deliver) return;
    const out = { channel: msg.channel, data: msg.data };
    if (typeof msg.offset === "number") {
      out.offset = msg.offset;
      out.epoch = msg.epoch;
    }
    sub.emit("message", out);
  }

  onGap(msg) {
    const sub = this.subs.get(msg.channel);
    if (!sub || sub.ended) return;
    sub.position.gapNotice(msg);
    sub.emit("gap", { channel: msg.channel, reason: "server", epoch: msg.epoch, from: msg.from, to: msg.to });
  }

  // A backend took this user out of the channel (POST /api/unsubscribe): the subscription
  // ends here and is not sent again on reconnect; the application decides what follows.
  onServerUnsubscribe(msg) {
    const sub = this.subs.get(msg.channel);
    if (!sub || sub.ended) return;
    const e = { channel: msg.channel, reason: typeof msg.reason === "string" ? msg.reason : "" };
    sub.error = new WsgateError("server_unsubscribe", e.reason || "unsubscribed by the server", { channel: msg.channel });
    this.dropSubscription(sub, false);
    sub.emit("unsubscribe", e);
    this.emit("unsubscribe", e);
  }

  onError(msg) {
    const err = new WsgateError(msg.code, msg.message, { channel: msg.channel, requestId: msg.id });
    // A refused token is explained by this error and ended by close 4003 right after it.
    if (msg.code === "unauthorized") this.lastError = err;
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      this.settle(msg, err);
      return;
    }
    if (msg.code === "forbidden" && typeof msg.channel === "string") {
      // A new token that no longer grants a channel ends that subscription.
      const sub = this.subs.get(msg.channel);
      if (sub) {
        sub.error = err;
        this.dropSubscription(sub, false);
        sub.emit("error", err);
      }
      return;
    }
    this.lastError = err;
    this.emit("error", err);
  }

  settle(msg, err) {
    const w = this.pending.get(msg.id);
    if (!w) return;
    this.pending.delete(msg.id);
    clearTimeout(w.timer);
    if (err) w.reject(err);
    else w.resolve(msg);
  }

  onClose(code, reason) {
    this.ws = null;
    this.stopKeepalive();
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const lost = new WsgateError("disconnected", `connection closed (${code})`, { closeCode: code });
    // Application requests fail (a publish may or may not have reached Redis); the
    // subscriptions are sent again after the reconnect.
    for (const w of this.pending.values()) {
      clearTimeout(w.timer);
      w.reject(lost);
    }
    this.pending.clear();
    for (const sub of this.subs.values()) if (!sub.ended) sub.setState(SubState.UNSUBSCRIBED);
    const policy = closePolicy(code);
    if (policy === "stop" && code !== 4003) {
      // A backend put this user out for good (a ban): not a token problem.
      this.stop(new WsgateError("server_disconnect", reason || "disconnected by the server", { closeCode: code }), code, reason, true);
      return;
    }
    if (policy === "stop") {
      const err = this.lastError || new WsgateError("unauthorized", reason || "token refused");
      err.closeCode = code;
      this.stop(err, code, reason, true);
      return;
    }
    if (policy === "expired" && !this.getToken) {
      this.stop(new WsgateError("token_expired", "token expired and no getToken to renew it", { closeCode: code }), code, reason, true);
      return;
    }
    this.scheduleReconnect(policy, policy === "expired" ? "expired" : "reconnect", code, reason);
  }

  scheduleReconnect(policy, reason, code, closeReason) {
    if (!this.reconnectEnabled) {
      this.failWaiting(new WsgateError("disconnected", "connection lost"));
      this.setState(State.DISCONNECTED, { code, reason: closeReason });
      this.emit("disconnect", { code, reason: closeReason, delayMs: null });
      return;
    }
    const delay =
      policy === "drain"
        ? Math.floor(this.random() * this.drainJitterMs)
        : backoffDelay(this.attempt, this.minDelayMs, this.maxDelayMs, this.random);
    this.attempt++;
    this.setState(State.CONNECTING, { code, reason: closeReason });
    this.emit("disconnect", { code, reason: closeReason, delayMs: delay });
    clearTimeout(this.timer);
    const session = this.session;
    this.timer = setTimeout(() => {
      if (session === this.session && this.state === State.CONNECTING) this.open(reason);
    }, delay);
  }

  stop(err, code, reason, fromServer) {
    this.stopKeepalive();
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    this.timer = this.refreshTimer = null;
    this.session++;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    for (const w of this.pending.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.pending.clear();
    this.failWaiting(err);
    for (const sub of this.subs.values()) {
      clearTimeout(sub.retryTimer);
      sub.setState(SubState.UNSUBSCRIBED);
    }
    if (this.state === State.CLOSED) return;
    this.setState(State.CLOSED, { code, reason, error: fromServer ? err : undefined });
    if (fromServer) this.emit("error", err);
  }

  failWaiting(err) {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
