'use strict';
// The comparison point for wsgate: a pub/sub WebSocket hub written the way most teams
// write one. ws for the sockets, ioredis for Redis, one SUBSCRIBE per channel per
// process, JSON.stringify once per message, ws.send to each subscriber. It speaks the
// subset of wsgate protocol v1 that the benchmark uses (subscribe, unsubscribe,
// publish, ping), so wsbench drives it exactly like wsgate.
//
//   PORT=8090 REDIS_URL=redis://127.0.0.1:6379 CHANNEL_PREFIX=gw: node hub.js

const http = require('http');
const { WebSocketServer } = require('ws');
const Redis = require('ioredis');

const port = Number(process.env.PORT || 8090);
const host = process.env.HOST || '127.0.0.1';
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const prefix = process.env.CHANNEL_PREFIX || 'gw:';

const pub = new Redis(redisUrl);
const sub = new Redis(redisUrl);

// channel name -> { clients: Set<ws>, ready: Promise }
const channels = new Map();

sub.on('message', (redisChannel, payload) => {
  const name = redisChannel.slice(prefix.length);
  const entry = channels.get(name);
  if (!entry) return;
  let data;
  try {
    data = JSON.parse(payload);
  } catch {
    data = payload;
  }
  const frame = JSON.stringify({ type: 'message', channel: name, data });
  for (const ws of entry.clients) {
    if (ws.readyState === ws.OPEN) ws.send(frame);
  }
});

function reply(ws, obj) {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(obj));
}

function fail(ws, id, code, message) {
  const obj = { type: 'error', code, message };
  if (id !== undefined) obj.id = id;
  reply(ws, obj);
}

function ack(ws, id) {
  if (id !== undefined) reply(ws, { type: 'ack', id });
}

function join(ws, name) {
  let entry = channels.get(name);
  if (!entry) {
    entry = { clients: new Set(), ready: sub.subscribe(prefix + name) };
    channels.set(name, entry);
  }
  entry.clients.add(ws);
  ws.channels.add(name);
  return entry.ready;
}

function leave(ws, name) {
  const entry = channels.get(name);
  ws.channels.delete(name);
  if (!entry) return;
  entry.clients.delete(ws);
  if (entry.clients.size === 0) {
    channels.delete(name);
    sub.unsubscribe(prefix + name).catch(() => {});
  }
}

function onMessage(ws, raw) {
  let req;
  try {
    req = JSON.parse(raw);
  } catch {
    return fail(ws, undefined, 'bad_json', 'message is not valid JSON');
  }
  if (!req || typeof req !== 'object' || typeof req.type !== 'string') {
    return fail(ws, undefined, 'bad_request', 'not a request object');
  }
  const id = Number.isSafeInteger(req.id) ? req.id : undefined;
  switch (req.type) {
    case 'subscribe':
      if (typeof req.channel !== 'string') return fail(ws, id, 'bad_request', 'channel missing');
      join(ws, req.channel).then(
        () => ack(ws, id),
        () => fail(ws, id, 'unavailable', 'Redis is unreachable'));
      return;
    case 'unsubscribe':
      if (typeof req.channel !== 'string') return fail(ws, id, 'bad_request', 'channel missing');
      leave(ws, req.channel);
      return ack(ws, id);
    case 'publish':
      if (typeof req.channel !== 'string') return fail(ws, id, 'bad_request', 'channel missing');
      pub.publish(prefix + req.channel, JSON.stringify(req.data)).then(
        () => ack(ws, id),
        () => fail(ws, id, 'unavailable', 'Redis is unreachable'));
      return;
    case 'ping':
      return reply(ws, id === undefined ? { type: 'pong' } : { type: 'pong', id });
    default:
      return fail(ws, id, 'unknown_type', 'unknown request type');
  }
}

const server = http.createServer((req, res) => {
  const ok = req.url === '/healthz' || (req.url === '/readyz' && sub.status === 'ready');
  res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
  res.end(ok ? 'ok\n' : 'not ready\n');
});

const wss = new WebSocketServer({ server, path: '/ws' });
wss.on('connection', (ws) => {
  ws.channels = new Set();
  ws.on('message', (raw) => onMessage(ws, raw));
  ws.on('close', () => {
    for (const name of [...ws.channels]) leave(ws, name);
  });
  ws.on('error', () => {});
});

server.listen(port, host, () => {
  console.log(`node-hub listening on ${host}:${port}, redis ${redisUrl}`);
});

function shutdown() {
  wss.clients.forEach((ws) => ws.terminate());
  server.close();
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
