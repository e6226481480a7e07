// Types of @wsgate/client (src/wsgate.js). The protocol is docs/PROTOCOL.md of wsgate.

export type ConnectionState = "disconnected" | "connecting" | "connected" | "closed";
export type SubscriptionState = "unsubscribed" | "subscribing" | "subscribed";

export declare const State: {
  readonly DISCONNECTED: "disconnected";
  readonly CONNECTING: "connecting";
  readonly CONNECTED: "connected";
  readonly CLOSED: "closed";
};
export declare const SubState: {
  readonly UNSUBSCRIBED: "unsubscribed";
  readonly SUBSCRIBING: "subscribing";
  readonly SUBSCRIBED: "subscribed";
};

/** A channel's place in its history: the last offset seen in an epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

export interface TokenRequest {
  /** "connect": first connection; "reconnect": the cached token is near expiry;
   *  "refresh": extend the open session; "expired": the server closed with 4005. */
  reason: "connect" | "reconnect" | "refresh" | "expired";
}

export interface ReconnectOptions {
  /** Default true. */
  enabled?: boolean;
  /** First backoff cap (full jitter: the delay is uniform in [0, cap)). Default 500. */
  minDelayMs?: number;
  /** Largest backoff cap. Default 15000. */
  maxDelayMs?: number;
  /** After a drain (close 1001) the delay is uniform in [0, drainJitterMs). Default 5000. */
  drainJitterMs?: number;
}

export interface ClientOptions {
  /** A fixed JWT, sent in an auth frame after each connect. */
  token?: string;
  /** Application pings when the server is silent (defaults 30000 / 10000 ms); false: off.
   *  Past idleMs + timeoutMs of silence the socket is given up and the client reconnects. */
  keepalive?: false | { idleMs?: number; timeoutMs?: number };
  /** Called for a token when there is none, before expiry, and after a 4005 close. */
  getToken?: (req: TokenRequest) => Promise<string> | string;
  reconnect?: ReconnectOptions | false;
  /** Ask getToken this long before the token's exp (at most half its remaining life). Default 30000. */
  refreshBeforeMs?: number;
  /** A request without a reply after this long rejects with code "timeout". Default 10000. */
  requestTimeoutMs?: number;
  /** A WebSocket constructor; default globalThis.WebSocket (Node 20 needs one passed, or --experimental-websocket). */
  WebSocket?: new (url: string) => WebSocket;
  /** Source of randomness for the jitter (tests). */
  random?: () => number;
}

/** A server error (code is the protocol's slug: forbidden, rate_limited, unavailable, ...) or
 *  an SDK one: timeout, disconnected, closed, token, unauthorized, token_expired. */
export declare class WsgateError extends Error {
  constructor(code: string, message?: string, fields?: { channel?: string; requestId?: number; closeCode?: number });
  readonly code: string;
  readonly channel?: string;
  readonly requestId?: number;
  /** The WebSocket close code when the error is about a close. */
  closeCode?: number;
}

export interface Message<T = unknown> {
  channel: string;
  data: T;
  /** Present on channels with history. */
  offset?: number;
  epoch?: string;
}

export interface SubscribedEvent {
  /** true for the first ack of this subscription, false after a reconnect. */
  first: boolean;
  /** true: every missed message follows; false: some are lost (a "gap" event says which);
   *  undefined: no recovery was asked or the node has no history. */
  recovered?: boolean;
  offset?: number;
  epoch?: string;
}

export interface GapEvent {
  channel: string;
  /** "recovery_failed": the resubscribe could not replay; "server": the node lost them;
   *  "skipped": offsets were missing between two messages. */
  reason: "recovery_failed" | "server" | "skipped";
  epoch: string;
  from: number;
  /** null when the loss ran into a new epoch whose start is unknown. */
  to: number | null;
  newEpoch?: string;
}

export interface SubscribeOptions<T = unknown> {
  onMessage?: (msg: Message<T>) => void;
  /** Keep the position and resubscribe with "since" after reconnects. Default true. */
  recover?: boolean;
  /** Start from a stored position (e.g. saved by an earlier page load). */
  since?: Position;
  /** Receive the channel's join/leave events (a channel that keeps presence). */
  presence?: boolean;
  onJoin?: (e: PresenceEvent) => void;
  onLeave?: (e: PresenceEvent) => void;
}

/** A user's first connection joined ("join") or its last one left ("leave"), cluster-wide. */
export interface PresenceEvent {
  type: "join" | "leave";
  channel: string;
  user: string;
  /** The token's "info" claim (joins only). */
  info?: Record<string, unknown>;
}

/** The channel crossed --presence-max-members: join/leave stop (limited) or resume. */
export interface PresenceLimitedEvent {
  type: "presence_limited";
  channel: string;
  limited: boolean;
  max: number;
}

export interface PresenceStats {
  channel: string;
  connections: number;
  /** Distinct users (token subjects); anonymous connections are not users. */
  users: number;
}

export interface PresenceMember {
  /** Opaque id of one connection. */
  client: string;
  /** The token's sub; null for an anonymous connection. */
  user: string | null;
  info?: Record<string, unknown>;
}

export interface PresencePage extends PresenceStats {
  /** Pass it back for the next page; "0" after the last. */
  cursor: string;
  members: PresenceMember[];
}

/** The server's {"type":"unsubscribe"} push: the channel and the backend's reason. */
export interface ServerUnsubscribeEvent {
  channel: string;
  reason: string;
}

export declare class Subscription<T = unknown> {
  readonly channel: string;
  readonly state: SubscriptionState;
  readonly position: { readonly offset: number | null; readonly epoch: string | null; since(): Position | null };
  /** Resolves at the first ack; rejects with the server's refusal (forbidden, bad_channel, ...). */
  ready(): Promise<this>;
  unsubscribe(): void;
  on(event: "message", fn: (msg: Message<T>) => void): () => void;
  on(event: "subscribed", fn: (e: SubscribedEvent) => void): () => void;
  on(event: "gap", fn: (e: GapEvent) => void): () => void;
  on(event: "join" | "leave", fn: (e: PresenceEvent) => void): () => void;
  on(event: "presence_limited", fn: (e: PresenceLimitedEvent) => void): () => void;
  on(event: "error", fn: (e: WsgateError) => void): () => void;
  on(event: "state", fn: (e: { state: SubscriptionState; previous: SubscriptionState }) => void): () => void;
  /** A backend took this user out of the channel (POST /api/unsubscribe): the subscription
   * has ended (state "unsubscribed", ready() rejects with code "server_unsubscribe") and is
   * not sent again on reconnect. */
  on(event: "unsubscribe", fn: (e: ServerUnsubscribeEvent) => void): () => void;
  off(event: string, fn: (...args: any[]) => void): void;
}

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  code?: number;
  reason?: string;
  error?: WsgateError;
}

export interface HistoryResult {
  channel: string;
  epoch: string;
  offset: number;
  complete?: boolean;
  messages: { offset: number; data: unknown }[];
}

export declare class Client {
  /** url: one endpoint, a list tried in turn, or a function called for every attempt. */
  constructor(url: string | string[] | (() => string), opts?: ClientOptions);
  readonly state: ConnectionState;
  connect(): this;
  close(): void;
  subscribe<T = unknown>(channel: string, opts?: SubscribeOptions<T>): Subscription<T>;
  getSubscription(channel: string): Subscription | undefined;
  publish(channel: string, data: unknown): Promise<{ offset?: number; epoch?: string }>;
  history(channel: string, opts?: { limit?: number; since?: Position }): Promise<HistoryResult>;
  /** One page of who is in a channel that keeps presence. */
  presence(channel: string, opts?: { limit?: number; cursor?: string }): Promise<PresencePage>;
  presenceStats(channel: string): Promise<PresenceStats>;
  /** Resolves with the round trip in milliseconds. */
  ping(): Promise<number>;
  on(event: "state", fn: (e: StateEvent) => void): () => void;
  on(event: ConnectionState, fn: (e: Omit<StateEvent, "state">) => void): () => void;
  on(event: "disconnect", fn: (e: { code?: number; reason?: string; delayMs: number | null }) => void): () => void;
  on(event: "attempt", fn: (e: { reason: string; attempt: number }) => void): () => void;
  on(event: "token", fn: (e: { sub?: string; exp?: number }) => void): () => void;
  /** A backend took this user out of a channel (also emitted on that Subscription). */
  on(event: "unsubscribe", fn: (e: ServerUnsubscribeEvent) => void): () => void;
  on(event: "error", fn: (e: WsgateError) => void): () => void;
  off(event: string, fn: (...args: any[]) => void): void;
}

export declare function backoffDelay(attempt: number, minDelayMs: number, maxDelayMs: number, random?: () => number): number;
export declare function refreshDelay(expSeconds: number, nowMs: number, refreshBeforeMs: number): number;
/** "stop" for 4003, 4011 and 4300..4499 (a backend's disconnect without reconnect: the
 * client stops with a WsgateError of code "server_disconnect"); "reconnect" for 4010 and
 * 4100..4299 as for any other code. */
export declare function closePolicy(code: number): "reconnect" | "drain" | "expired" | "stop";

export declare class ChannelPosition {
  constructor(since: Position | null);
  offset: number | null;
  epoch: string | null;
  readonly duplicates: number;
  readonly known: boolean;
  since(): Position | null;
  accept(msg: { offset?: number; epoch?: string }): { deliver: boolean; gap: { epoch: string; from: number; to: number } | null };
  acked(ack: { offset?: number; epoch?: string; recovered?: boolean }, sentSince: Position | null): Omit<GapEvent, "channel" | "reason"> | null;
  gapNotice(notice: { epoch: string; from: number; to: number }): void;
}
