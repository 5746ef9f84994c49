// The WebSocket endpoint, /v1/ws (docs/protocol.md section 6), against the real server.
// The npm "ws" client does what a client library does; hand-built frames over node:net
// do what no well-behaved client does (unmasked frames, reserved bits, bad UTF-8,
// fragments with a ping between them), to see each close code the protocol promises.
//
// "Nothing else arrived" is checked without sleeping: after the change under test, the
// test makes one more change that the socket does select. A socket gets its changes in
// revision order, so the next message must be that one; anything unwanted would have come
// before it. Every wait is bounded by WAIT_MS (or a stated longer limit).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';

import WebSocket from 'ws';

import { createProjectWithEnvironment, request, startServer } from './helpers.js';

const PROJECT = 'ws';
const ENV = 'prod';
/** How long one message, answer or close may take before the test fails. */
const WAIT_MS = 5_000;
/** Every test gets this long in all, so that a hang fails instead of stalling the run. */
const LIMIT = { timeout: 30_000 };
/** The largest client message the protocol takes (section 6.4). */
const MAX_MESSAGE = 64 * 1024;
/** RFC 6455 section 1.3. */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const OP = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

/** Flags of the project: client-visible ones with tags, one not client-visible. */
const FLAGS = [
  { key: 'alpha', type: 'boolean', client_visible: true, tags: ['red'] },
  { key: 'beta', type: 'boolean', client_visible: true, tags: ['red', 'blue'] },
  { key: 'gamma', type: 'boolean', client_visible: true, tags: ['blue'] },
  { key: 'targeted', type: 'boolean', client_visible: true },
  { key: 'hidden', type: 'boolean', tags: ['red'] },
];
const CLIENT_FLAGS = FLAGS.filter((flag) => flag.client_visible).map((flag) => flag.key).sort();

let server;
let serverKey;
let clientKey;

function wsBase(url) {
  return url.replace(/^http/, 'ws');
}

function toggle(key, env = ENV) {
  return server.admin.call('POST', `/v1/projects/${PROJECT}/environments/${env}/flags/${key}/toggle`);
}

function putConfig(key, value) {
  return server.admin.call('PUT', `/v1/projects/${PROJECT}/environments/${ENV}/configs/${key}`, value);
}

async function environment(env = ENV) {
  return server.admin.call('GET', `/v1/projects/${PROJECT}/environments/${env}`);
}

/** What a client key is sent for a flag without rules in that state (docs/evaluation.md). */
function plainValue(enabled) {
  return enabled ? { value: true, variant: 'on', reason: 'STATIC' }
                 : { value: false, variant: 'off', reason: 'DISABLED' };
}

/**
 * Things that arrive in order (messages, frames), read one at a time, each wait bounded.
 * `ended` is set when nothing more can arrive.
 */
class Inbox {
  constructor() {
    this.items = [];
    this.read = 0;
    this.ended = false;
    this.waiters = new Set();
  }

  push(item) {
    this.items.push(item);
    this.wake();
  }

  end() {
    this.ended = true;
    this.wake();
  }

  wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves with check()'s first answer other than undefined, re-checked on every
   *  arrival; rejects after `ms`, or when the inbox ends first (unless `check` accepts the
   *  end). */
  until(what, check, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
      let timer;
      const attempt = () => {
        const value = check();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.ended) {
          finish();
          reject(new Error(`${what}: the connection ended first (${this.describe()})`));
        }
      };
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(attempt);
      };
      timer = setTimeout(() => {
        finish();
        reject(new Error(`${what}: not within ${ms} ms (${this.describe()})`));
      }, ms);
      this.waiters.add(attempt);
      attempt();
    });
  }

  /** The next item not read yet. */
  next(what = 'the next message', ms = WAIT_MS) {
    return this.until(what, () => (this.read < this.items.length ? this.items[this.read++] : undefined),
                      ms);
  }

  describe() {
    const unread = this.items.slice(this.read).map((item) => JSON.stringify(item).slice(0, 200));
    return `unread: [${unread.join(', ')}]`;
  }
}

/** A WebSocket of the npm "ws" package that keeps every message, parsed, in order. */
class Client extends Inbox {
  constructor(url, headers) {
    super();
    this.closeInfo = undefined;
    this.pings = 0;
    this.socket = new WebSocket(url, { headers, handshakeTimeout: WAIT_MS });
    this.socket.on('message', (data, isBinary) => {
      const text = data.toString();
      let message;
      try {
        message = isBinary ? { binary: text } : JSON.parse(text);
      } catch {
        message = { unparsable: text };
      }
      this.push(message);
    });
    this.socket.on('ping', () => {
      this.pings++;
      this.wake();
    });
    this.socket.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      this.end();
    });
    // Errors end in 'close'; opened() reports the ones of the handshake.
    this.socket.on('error', (error) => {
      this.error = error;
    });
  }

  /** Resolves once open; rejects with an error carrying `status` and `body` when the
   *  server answered the handshake with something else than 101. */
  opened() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.terminate();
        reject(new Error(`the handshake did not finish within ${WAIT_MS} ms`));
      }, WAIT_MS);
      this.socket.once('open', () => {
        clearTimeout(timer);
        resolve(this);
      });
      this.socket.once('unexpected-response', (req, res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => { text += chunk; });
        res.on('end', () => {
          clearTimeout(timer);
          let body = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          const error = new Error(`the handshake was answered ${res.statusCode}: ${text}`);
          error.status = res.statusCode;
          error.headers = res.headers;
          error.body = body;
          this.socket.terminate();
          reject(error);
        });
      });
      this.socket.once('close', () => {
        clearTimeout(timer);
        reject(this.error ?? new Error('the socket closed during the handshake'));
      });
    });
  }

  send(message) {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next message, which must be of `type`. */
  async expect(type) {
    const message = await this.next(`a '${type}' message`);
    assert.equal(message.type, type, `expected '${type}', got ${JSON.stringify(message)}`);
    return message;
  }

  /** Sends `subscribe` and takes its `subscribed`, which comes after the events that bring
   *  the socket up to date: those stay unread, to be read next in their order. */
  async subscribe(fields) {
    const from = this.read;
    this.send({ type: 'subscribe', ...fields });
    const at = await this.until("a 'subscribed' message", () => {
      const index = this.items.findIndex((item, i) => i >= from && item.type === 'subscribed');
      return index >= 0 ? index : undefined;
    });
    const [subscribed] = this.items.splice(at, 1);
    return subscribed;
  }

  /** Resolves with { code, reason } of the close, within `ms`. */
  closed(ms = WAIT_MS) {
    return this.until('the close', () => this.closeInfo, ms);
  }

  /** Closes (with `code` when given) and resolves with the server's close. */
  async close(...args) {
    this.socket.close(...args);
    return this.closed();
  }

  terminate() {
    if (!this.ended) this.socket.terminate();
  }
}

/** Opens /v1/ws with `key` (in Authorization, or ?key= with inUrl) and reads `connected`. */
async function connect(key, { inUrl = false, headers = {}, url = server.url } = {}) {
  const target = `${wsBase(url)}/v1/ws${inUrl ? `?key=${encodeURIComponent(key)}` : ''}`;
  const client = new Client(target, inUrl ? headers : { Authorization: `Bearer ${key}`, ...headers });
  await client.opened();
  const connected = await client.expect('connected');
  client.connected = connected;
  return client;
}

/** Runs `body(client)` with a connected socket of `key` and always ends the socket. */
async function withSocket(key, body) {
  const client = await connect(key);
  try {
    return await body(client);
  } finally {
    client.terminate();
  }
}

/** The handshake headers of RFC 6455 section 4.1, with a fresh Sec-WebSocket-Key. */
function upgradeHeaders() {
  return {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
  };
}

function acceptFor(key) {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** One HTTP request to `path` with exactly `headers`: { status, headers, body } (the body
 *  parsed when JSON). A 101 is answered with its headers and the connection dropped. */
function handshake({ method = 'GET', path = '/v1/ws', headers = {}, url = server.url } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method, headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer to the handshake within ${WAIT_MS} ms`));
    }, WAIT_MS);
    req.on('upgrade', (res, socket) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: undefined });
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        clearTimeout(timer);
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode, headers: res.headers, body });
      });
    });
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end();
  });
}

/** Asserts an ordinary JSON error answer of `status` (and `code` when given). */
function assertRefused(answer, status, code, what) {
  const shown = `${what}: ${answer.status} ${JSON.stringify(answer.body)}`;
  assert.equal(answer.status, status, shown);
  assert.match(String(answer.headers['content-type']), /^application\/json/, shown);
  assert.equal(typeof answer.body?.error?.code, 'string', shown);
  assert.equal(typeof answer.body.error.message, 'string', shown);
  if (answer.headers['x-request-id']) {
    assert.equal(answer.body.error.request_id, answer.headers['x-request-id'], shown);
  }
  if (code) assert.equal(answer.body.error.code, code, shown);
}

// ---- raw frames over node:net ----

/** A client frame: masked unless told otherwise, FIN unless told otherwise. */
function frame(opcode, payload = Buffer.alloc(0), { fin = true, rsv = 0, masked = true } = {}) {
  const body = Buffer.from(payload);
  const first = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const maskBit = masked ? 0x80 : 0;
  let header;
  if (body.length < 126) {
    header = Buffer.from([first, maskBit | body.length]);
  } else if (body.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = maskBit | 126;
    header.writeUInt16BE(body.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(BigInt(body.length), 2);
  }
  if (!masked) return Buffer.concat([header, body]);
  const mask = randomBytes(4);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([header, mask, body]);
}

/** The code of a close frame, or undefined when it carries none. */
function closeCode(closeFrame) {
  return closeFrame.payload.length >= 2 ? closeFrame.payload.readUInt16BE(0) : undefined;
}

function closePayload(code, reason = Buffer.alloc(0)) {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code, 0);
  return Buffer.concat([payload, Buffer.from(reason)]);
}

/** A WebSocket spoken by hand: the handshake, then server frames parsed as they come. */
class RawClient extends Inbox {
  constructor(socket) {
    super();
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.head = undefined;
    this.problems = [];
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
    });
    // A reset after the server's close is not a failure of the test: the frames before it
    // are what is checked.
    socket.on('error', (error) => this.problems.push(error.code ?? error.message));
    socket.on('close', () => this.end());
  }

  parse() {
    if (this.head === undefined) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.head = this.buffer.subarray(0, end).toString('latin1');
      this.buffer = this.buffer.subarray(end + 4);
      this.wake();
    }
    for (;;) {
      if (this.buffer.length < 2) return;
      const b0 = this.buffer[0];
      const b1 = this.buffer[1];
      let length = b1 & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buffer.length < 4) return;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buffer.length < 10) return;
        length = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      if (masked) offset += 4;
      if (this.buffer.length < offset + length) return;
      const payload = Buffer.from(this.buffer.subarray(offset, offset + length));
      if (masked) {
        const mask = this.buffer.subarray(offset - 4, offset);
        for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      }
      this.buffer = this.buffer.subarray(offset + length);
      this.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload });
    }
  }

  write(...buffers) {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(buffers));
  }

  /** The next frame, which must be a server frame: FIN, unmasked, no reserved bit. */
  async nextFrame(what) {
    const next = await this.next(what);
    assert.equal(next.masked, false, `${what}: server frames are not masked`);
    assert.equal(next.rsv, 0, `${what}: no reserved bit on a server frame`);
    return next;
  }

  /** The next text message, parsed, skipping the server's pings. */
  async nextMessage(what = 'the next message') {
    for (;;) {
      const next = await this.nextFrame(what);
      if (next.opcode === OP.PING) continue;
      assert.equal(next.opcode, OP.TEXT, `${what}: got opcode ${next.opcode} (${next.payload})`);
      return JSON.parse(next.payload.toString('utf8'));
    }
  }

  /** Resolves once the server has closed the TCP connection, within `ms`. */
  closedByServer(what, ms = WAIT_MS) {
    return this.until(what, () => (this.ended ? true : undefined), ms);
  }

  describe() {
    return `${super.describe()}${this.problems.length ? `; socket: ${this.problems.join(', ')}` : ''}`;
  }

  destroy() {
    this.socket.destroy();
  }
}

/** Connects over node:net (to `url`, the shared server by default), sends the handshake
 *  with `key`, checks the 101 and reads `connected`. */
async function rawConnect(key, url = server.url) {
  const { hostname, port } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port) });
  socket.setNoDelay(true);
  const raw = new RawClient(socket);
  const wsKey = randomBytes(16).toString('base64');
  socket.write([
    'GET /v1/ws HTTP/1.1',
    `Host: ${hostname}:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Key: ${wsKey}`,
    `Authorization: Bearer ${key}`,
    '', '',
  ].join('\r\n'));
  try {
    const head = await raw.until('the handshake answer', () => raw.head);
    assert.match(head, /^HTTP\/1\.1 101 /, `the handshake answer: ${head}`);
    const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
    assert.equal(accept, acceptFor(wsKey), 'Sec-WebSocket-Accept');
    const connected = await raw.nextMessage('connected');
    assert.equal(connected.type, 'connected');
  } catch (error) {
    raw.destroy();
    throw error;
  }
  return raw;
}

/**
 * Reads frames until a close (skipping pings), asserts its code, answers it as a client
 * must, and waits for the server to close the connection.
 */
async function expectRawClose(raw, code, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    assert.ok(Date.now() < deadline, `${what}: no close frame within ${WAIT_MS} ms`);
    const next = await raw.nextFrame(`${what}: the close frame`);
    if (next.opcode === OP.PING) continue;
    assert.equal(next.opcode, OP.CLOSE,
                 `${what}: expected a close frame, got opcode ${next.opcode} (${next.payload})`);
    assert.equal(closeCode(next), code, `${what}: the close code`);
    break;
  }
  raw.write(frame(OP.CLOSE, closePayload(code)));
  await raw.closedByServer(`${what}: the server to close the connection`);
}

/** Runs `body(raw)` on a raw connection with the client key and always ends it. */
async function withRaw(body) {
  const raw = await rawConnect(clientKey);
  try {
    return await body(raw);
  } finally {
    raw.destroy();
  }
}

// ---- setup ----

before(async () => {
  server = await startServer();
  ({ serverKey, clientKey } = await createProjectWithEnvironment(server.admin, PROJECT, ENV));
  for (const flag of FLAGS) await server.admin.createFlag(PROJECT, flag);
  // On, serving "off" unless a rule holds: the value tells which context was used.
  await server.admin.setFlagState(PROJECT, ENV, 'targeted', {
    enabled: true,
    on_variant: 'off',
    rules: [{ conditions: [{ attribute: 'plan', operator: 'equals', value: 'pro' }], variant: 'on' }],
  });
  await server.admin.createSegment(PROJECT, 'staff');
  await putConfig('theme', { color: 'dark' });
  await putConfig('limits', { max: 10 });
});

after(async () => {
  await server?.stop();
});

// ---- opening ----

test('handshake: failures are ordinary JSON errors, answered before any upgrade', LIMIT, async () => {
  const admin = `Bearer ${server.adminToken}`;
  const client = `Bearer ${clientKey}`;
  const unknownKey = `Bearer fw_cli_${randomBytes(32).toString('base64url').slice(0, 43)}`;
  const without = (name, headers) => {
    const copy = { ...headers };
    delete copy[name];
    return copy;
  };
  const cases = [
    { what: 'no Sec-WebSocket-Key', status: 400,
      headers: without('Sec-WebSocket-Key', { ...upgradeHeaders(), Authorization: client }) },
    { what: 'a Sec-WebSocket-Key of 15 bytes', status: 400,
      headers: { ...upgradeHeaders(), 'Sec-WebSocket-Key': randomBytes(15).toString('base64'),
                 Authorization: client } },
    { what: 'a Sec-WebSocket-Key that is not base64', status: 400,
      headers: { ...upgradeHeaders(), 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==',
                 Authorization: client } },
    { what: 'no Connection: Upgrade', status: 400,
      headers: { ...upgradeHeaders(), Connection: 'keep-alive', Authorization: client } },
    { what: 'a POST', status: 405, code: 'method_not_allowed', method: 'POST',
      headers: { ...upgradeHeaders(), Authorization: client } },
    { what: 'no key', status: 401, code: 'unauthorized', headers: upgradeHeaders() },
    { what: 'an unknown key', status: 401, code: 'unauthorized',
      headers: { ...upgradeHeaders(), Authorization: unknownKey } },
    { what: 'a server key in ?key=', status: 401, code: 'key_in_url',
      path: `/v1/ws?key=${encodeURIComponent(serverKey)}`, headers: upgradeHeaders() },
    { what: 'an admin token in ?key=', status: 401, code: 'key_in_url',
      path: `/v1/ws?key=${encodeURIComponent(server.adminToken)}`, headers: upgradeHeaders() },
    { what: 'an admin token', status: 403, code: 'forbidden',
      headers: { ...upgradeHeaders(), Authorization: admin } },
    { what: 'a plain GET without Upgrade', status: 426, headers: { Authorization: client } },
    { what: 'Sec-WebSocket-Version: 8', status: 426,
      headers: { ...upgradeHeaders(), 'Sec-WebSocket-Version': '8', Authorization: client } },
  ];
  for (const { what, status, code, method, path, headers } of cases) {
    const answer = await handshake({ method, path, headers });
    assertRefused(answer, status, code, what);
    if (status === 426) assert.equal(answer.headers['sec-websocket-version'], '13', `${what}: header`);
  }
});

test('handshake: 101 with the right Sec-WebSocket-Accept, no extension, any Origin', LIMIT, async () => {
  const headers = {
    ...upgradeHeaders(),
    // Case and list forms browsers send (Firefox: "keep-alive, Upgrade").
    Upgrade: 'WebSocket',
    Connection: 'keep-alive, Upgrade',
    'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits',
    Origin: 'https://elsewhere.example',
    Authorization: `Bearer ${clientKey}`,
  };
  const answer = await handshake({ headers });
  assert.equal(answer.status, 101, JSON.stringify(answer.body));
  assert.equal(answer.headers['sec-websocket-accept'], acceptFor(headers['Sec-WebSocket-Key']));
  assert.equal(String(answer.headers.upgrade).toLowerCase(), 'websocket');
  assert.equal(answer.headers['sec-websocket-extensions'], undefined, 'permessage-deflate is not offered back');
  assert.equal(answer.headers['sec-websocket-protocol'], undefined, 'no subprotocol');

  // The same through the ws client, which offers permessage-deflate by default.
  await withSocket(clientKey, async (client) => {
    assert.equal(client.socket.extensions, '');
  });
});

test('handshake: the ws client sees a server key in the URL refused with 401 key_in_url', LIMIT, async () => {
  const refused = new Client(`${wsBase(server.url)}/v1/ws?key=${encodeURIComponent(serverKey)}`, {});
  await assert.rejects(refused.opened(), (error) => {
    assert.equal(error.status, 401, error.message);
    assert.equal(error.body?.error?.code, 'key_in_url', error.message);
    return true;
  });
  // A client key in the URL is what browsers use, and is taken.
  const client = await connect(clientKey, { inUrl: true });
  client.terminate();
});

test('connected: the environment, its epoch and revision, and the audience of the key', LIMIT, async () => {
  const env = await environment();
  for (const [key, audience] of [[clientKey, 'values'], [serverKey, 'definitions']]) {
    await withSocket(key, async (client) => {
      assert.deepEqual(client.connected, {
        type: 'connected', environment: ENV, epoch: env.epoch, rev: env.revision, audience,
      });
    });
  }
});

test('connected: nothing else is sent until the client subscribes', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    await toggle('alpha');
    client.send({ type: 'ping', id: 'after-change' });
    assert.deepEqual(await client.next(), { type: 'pong', id: 'after-change' });
  });
});

// ---- subscriptions and events ----

test('subscribe to flags without since: subscribed, then a snapshot of values', LIMIT, async () => {
  const env = await environment();
  await withSocket(clientKey, async (client) => {
    const subscribed = await client.subscribe({ id: 's1', channels: ['flags'] });
    assert.equal(subscribed.id, 's1');
    assert.deepEqual(subscribed.channels, ['flags']);
    assert.ok(Number.isInteger(subscribed.rev) && subscribed.rev >= 0, `rev: ${subscribed.rev}`);

    const snapshot = await client.expect('snapshot');
    assert.equal(snapshot.rev, env.revision);
    assert.equal(snapshot.revision, env.revision);
    assert.equal(snapshot.environment, ENV);
    assert.equal(snapshot.epoch, env.epoch);
    assert.deepEqual(Object.keys(snapshot.flags).sort(), CLIENT_FLAGS, 'client-visible flags only');
    assert.deepEqual(snapshot.configs, {}, 'configs are not selected by "flags"');
    const states = await server.admin.call('GET', `/v1/projects/${PROJECT}/environments/${ENV}/flags`);
    for (const flag of states.items.filter((item) => item.key !== 'targeted' && item.client_visible)) {
      assert.deepEqual(snapshot.flags[flag.key], plainValue(flag.enabled), flag.key);
    }
    assert.deepEqual(snapshot.flags.targeted, { value: false, variant: 'off', reason: 'DEFAULT' },
                     'no context: the rule does not hold');
  });
});

test('a toggle arrives as flag_updated with rev, key and the new value (client key)', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['flags'] });
    await client.expect('snapshot');
    for (let i = 0; i < 2; i++) {
      const toggled = await toggle('alpha');
      assert.deepEqual(await client.expect('flag_updated'), {
        type: 'flag_updated', rev: toggled.revision, key: 'alpha', ...plainValue(toggled.enabled),
      });
    }
  });
});

test('a server key gets definitions: flag_updated with the flag, segment_updated', LIMIT, async () => {
  await withSocket(serverKey, async (client) => {
    await client.subscribe({ channels: ['flags'] });
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(snapshot.flags.map((flag) => flag.key).sort(),
                     FLAGS.map((flag) => flag.key).sort(), 'every flag, client-visible or not');
    assert.ok(snapshot.segments.some((segment) => segment.key === 'staff'), 'segments too');

    const toggled = await toggle('hidden');
    const event = await client.expect('flag_updated');
    assert.equal(event.rev, toggled.revision);
    assert.equal(event.key, 'hidden');
    assert.deepEqual(event.flag, toggled, 'the flag as the management API answers it');

    const rules = [{ conditions: [{ attribute: 'email', operator: 'ends_with', value: '@example.com' }] }];
    const segment = await server.admin.setSegmentRules(PROJECT, ENV, 'staff', rules);
    const updated = await client.expect('segment_updated');
    assert.equal(updated.rev, segment.revision);
    assert.equal(updated.key, 'staff');
    assert.deepEqual(updated.segment.rules, rules);
  });
});

test('segments go with flag channels, and stop with the last of them', LIMIT, async () => {
  await withSocket(serverKey, async (client) => {
    await client.subscribe({ channels: ['flags.alpha', 'configs.theme'] });
    await client.expect('snapshot');
    const rules = [{ conditions: [{ attribute: 'plan', operator: 'equals', value: 'team' }] }];
    const first = await server.admin.setSegmentRules(PROJECT, ENV, 'staff', rules);
    assert.equal((await client.expect('segment_updated')).rev, first.revision);

    client.send({ type: 'unsubscribe', channels: ['flags.alpha'] });
    assert.deepEqual((await client.expect('subscribed')).channels, ['configs.theme']);
    await server.admin.setSegmentRules(PROJECT, ENV, 'staff', []);
    const put = await putConfig('theme', { color: 'green' });
    const next = await client.next();
    assert.equal(next.type, 'config_updated', `no segment_updated without a flag channel: ${JSON.stringify(next)}`);
    assert.equal(next.rev, put.revision);
  });
});

test('flags.<key> selects that flag only', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['flags.beta'] });
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(Object.keys(snapshot.flags), ['beta']);
    assert.deepEqual(snapshot.configs, {});
    await toggle('alpha');
    await putConfig('theme', { color: 'light' });
    const toggled = await toggle('beta');
    const event = await client.next();
    assert.deepEqual(event, { type: 'flag_updated', rev: toggled.revision, key: 'beta', ...plainValue(toggled.enabled) },
                     'nothing about alpha or the config came first');
  });
});

test('tags.<tag> selects the flags carrying that tag', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['tags.blue'] });
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(Object.keys(snapshot.flags).sort(), ['beta', 'gamma']);
    await toggle('alpha');
    const toggled = await toggle('gamma');
    assert.deepEqual(await client.next(),
                     { type: 'flag_updated', rev: toggled.revision, key: 'gamma', ...plainValue(toggled.enabled) });
  });
});

test('configs selects every config, configs.<key> one, flags none', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['configs'] });
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(snapshot.flags, {});
    assert.deepEqual(Object.keys(snapshot.configs).sort(), ['limits', 'theme']);
    assert.deepEqual(snapshot.configs.limits, { value: { max: 10 }, content_type: 'application/json' });
    await toggle('alpha');
    const put = await putConfig('limits', { max: 11 });
    assert.deepEqual(await client.next(), {
      type: 'config_updated', rev: put.revision, key: 'limits', value: { max: 11 },
      content_type: 'application/json',
    });
  });
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['configs.theme'] });
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(Object.keys(snapshot.configs), ['theme']);
    await putConfig('limits', { max: 12 });
    const put = await putConfig('theme', { color: 'blue' });
    assert.deepEqual(await client.next(), {
      type: 'config_updated', rev: put.revision, key: 'theme', value: { color: 'blue' },
      content_type: 'application/json',
    });
  });
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['flags'] });
    await client.expect('snapshot');
    await putConfig('theme', { color: 'green' });
    const toggled = await toggle('gamma');
    assert.deepEqual(await client.next(),
                     { type: 'flag_updated', rev: toggled.revision, key: 'gamma', ...plainValue(toggled.enabled) },
                     'no config_updated on "flags"');
  });
});

test('an event that two channels select is sent once', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    const subscribed = await client.subscribe({ channels: ['flags.alpha', 'tags.red'] });
    assert.deepEqual([...subscribed.channels].sort(), ['flags.alpha', 'tags.red']);
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(Object.keys(snapshot.flags).sort(), ['alpha', 'beta'],
                     '"hidden" carries the tag but is not client-visible');
    await toggle('hidden');
    const alpha = await toggle('alpha');
    assert.deepEqual(await client.next(),
                     { type: 'flag_updated', rev: alpha.revision, key: 'alpha', ...plainValue(alpha.enabled) });
    const beta = await toggle('beta');
    assert.deepEqual(await client.next(),
                     { type: 'flag_updated', rev: beta.revision, key: 'beta', ...plainValue(beta.enabled) },
                     'alpha came once');
  });
  await withSocket(serverKey, async (client) => {
    await client.subscribe({ channels: ['flags.alpha', 'tags.red'] });
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(snapshot.flags.map((flag) => flag.key).sort(), ['alpha', 'beta', 'hidden'],
                     'each flag once in the snapshot');
  });
});

test('subscriptions change on the open socket; unsubscribe stops events', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    let subscribed = await client.subscribe({ id: 'a', channels: ['flags.alpha'] });
    assert.deepEqual(subscribed.channels, ['flags.alpha']);
    await client.expect('snapshot');

    subscribed = await client.subscribe({ id: 'b', channels: ['configs.theme'] });
    assert.equal(subscribed.id, 'b');
    assert.deepEqual([...subscribed.channels].sort(), ['configs.theme', 'flags.alpha'],
                     'subscribed lists every channel of the socket');
    const snapshot = await client.expect('snapshot');
    assert.deepEqual(Object.keys(snapshot.flags), ['alpha'], 'a snapshot of the whole new selection');
    assert.deepEqual(Object.keys(snapshot.configs), ['theme']);

    const alpha = await toggle('alpha');
    assert.equal((await client.expect('flag_updated')).rev, alpha.revision);

    client.send({ type: 'unsubscribe', id: 'c', channels: ['flags.alpha'] });
    subscribed = await client.expect('subscribed');
    assert.equal(subscribed.id, 'c');
    assert.deepEqual(subscribed.channels, ['configs.theme']);

    await toggle('alpha');
    const put = await putConfig('theme', { color: 'red' });
    assert.deepEqual(await client.next(), {
      type: 'config_updated', rev: put.revision, key: 'theme', value: { color: 'red' },
      content_type: 'application/json',
    }, 'no snapshot after unsubscribe, no event of alpha after it');
  });
});

test('subscribe with a context: values for that context; a new context replaces it', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['flags.targeted'], context: { plan: 'pro' } });
    let snapshot = await client.expect('snapshot');
    assert.deepEqual(snapshot.flags.targeted, { value: true, variant: 'on', reason: 'TARGETING_MATCH' });

    const subscribed = await client.subscribe({ channels: ['flags.targeted'], context: { plan: 'free' } });
    assert.deepEqual(subscribed.channels, ['flags.targeted'], 'the same channel is listed once');
    snapshot = await client.expect('snapshot');
    assert.deepEqual(snapshot.flags.targeted, { value: false, variant: 'off', reason: 'DEFAULT' });

    // Live values follow the new context: off, then on again without the rule holding.
    const off = await toggle('targeted');
    assert.deepEqual(await client.next(), {
      type: 'flag_updated', rev: off.revision, key: 'targeted', value: false, variant: 'off',
      reason: 'DISABLED',
    });
    const on = await toggle('targeted');
    assert.deepEqual(await client.next(), {
      type: 'flag_updated', rev: on.revision, key: 'targeted', value: false, variant: 'off',
      reason: 'DEFAULT',
    });
  });
});

// ---- requests ----

test('evaluate: evaluation_result with the id, as POST /v1/evaluate answers', LIMIT, async () => {
  const context = { targetingKey: 'user-1', plan: 'pro' };
  await withSocket(clientKey, async (client) => {
    const expected = await request('POST', `${server.url}/v1/evaluate`, {
      headers: { Authorization: `Bearer ${clientKey}` }, body: { context },
    });
    assert.equal(expected.status, 200, JSON.stringify(expected.body));

    client.send({ type: 'evaluate', id: 'e1', context });
    const all = await client.expect('evaluation_result');
    assert.equal(all.id, 'e1');
    assert.equal(all.rev, expected.body.revision);
    assert.equal(all.rev, client.connected.rev);
    assert.deepEqual(all.flags, expected.body.flags);
    assert.deepEqual(all.configs, expected.body.configs);

    client.send({ type: 'evaluate', id: 7, context, flags: ['targeted', 'alpha'] });
    const some = await client.expect('evaluation_result');
    assert.equal(some.id, 7);
    assert.deepEqual(Object.keys(some.flags).sort(), ['alpha', 'targeted']);
    assert.deepEqual(some.flags.targeted, { value: true, variant: 'on', reason: 'TARGETING_MATCH' });
    assert.deepEqual(some.flags.alpha, expected.body.flags.alpha);

    client.send({ type: 'evaluate', id: 'e3', flags: ['targeted'] });
    const empty = await client.expect('evaluation_result');
    assert.deepEqual(empty.flags.targeted, { value: false, variant: 'off', reason: 'DEFAULT' },
                     'no context: an empty one');
  });
});

test('ping is answered with pong, repeating the id', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    client.send({ type: 'ping', id: 'p1' });
    assert.deepEqual(await client.next(), { type: 'pong', id: 'p1' });
    client.send({ type: 'ping', id: 42 });
    assert.deepEqual(await client.next(), { type: 'pong', id: 42 });
    client.send({ type: 'ping' });
    assert.deepEqual(await client.next(), { type: 'pong' });
  });
});

test('errors answer what the server cannot act on, and the socket stays open', LIMIT, async () => {
  const cases = [
    { send: 'not json', code: 'bad_message' },
    { send: '[1,2]', code: 'bad_message' },
    { send: '{}', code: 'bad_message' },
    { send: { type: 'nope', id: 'u1' }, code: 'unknown_type' },
    { send: { type: 'subscribe', id: 'c1', channels: ['nope'] }, code: 'bad_channel' },
    { send: { type: 'subscribe', id: 'c2', channels: ['flags.'] }, code: 'bad_channel' },
    { send: { type: 'subscribe', id: 'c3', channels: Array.from({ length: 257 }, (_, i) => `flags.f${i}`) },
      code: 'bad_channel' },
    { send: { type: 'subscribe', id: 'r1', channels: ['flags'], since: -1 }, code: 'bad_cursor' },
    { send: { type: 'subscribe', id: 'r2', channels: ['flags'], since: 'abc' }, code: 'bad_cursor' },
    { send: { type: 'subscribe', id: 'r3', channels: ['flags'], since: 1, epoch: 5 }, code: 'bad_cursor' },
    { send: { type: 'subscribe', id: 'x1', channels: ['flags'], context: [1] }, code: 'bad_context' },
    { send: { type: 'subscribe', id: 'x2', channels: ['flags'], context: { big: 'x'.repeat(33 * 1024) } },
      code: 'bad_context' },
    { send: { type: 'evaluate', id: 'v1', flags: 'alpha' }, code: 'bad_request' },
  ];
  await withSocket(clientKey, async (client) => {
    for (const { send, code } of cases) {
      client.send(send);
      const shown = typeof send === 'string' ? send : JSON.stringify(send).slice(0, 80);
      const error = await client.next(`the error for ${shown}`);
      assert.equal(error.type, 'error', `${shown}: ${JSON.stringify(error)}`);
      assert.equal(error.code, code, `${shown}: ${JSON.stringify(error)}`);
      assert.equal(typeof error.message, 'string');
      if (typeof send === 'object' && send.id !== undefined) assert.equal(error.id, send.id, shown);
    }
    client.send({ type: 'ping', id: 'still-open' });
    assert.deepEqual(await client.next(), { type: 'pong', id: 'still-open' });
    assert.equal(client.socket.readyState, WebSocket.OPEN);
  });
  await withSocket(serverKey, async (client) => {
    client.send({ type: 'subscribe', id: 'ctx', channels: ['flags'], context: { plan: 'pro' } });
    const error = await client.expect('error');
    assert.equal(error.code, 'context_not_allowed');
    assert.equal(error.id, 'ctx');
    client.send({ type: 'ping', id: 'still-open' });
    assert.deepEqual(await client.next(), { type: 'pong', id: 'still-open' });
  });
});

// ---- resuming ----

/** Subscribes `channels` on a new socket, reads the snapshot, closes: { epoch, rev }. */
async function lastSeen(key, channels) {
  return withSocket(key, async (client) => {
    await client.subscribe({ channels });
    const snapshot = await client.expect('snapshot');
    const closed = await client.close(1000);
    assert.equal(closed.code, 1000);
    return { epoch: client.connected.epoch, rev: snapshot.rev };
  });
}

test('resume (server key): exactly the missed changes, no snapshot, no duplicates', LIMIT, async () => {
  const seen = await lastSeen(serverKey, ['flags.alpha']);
  const missed = [];
  for (let i = 0; i < 3; i++) missed.push(await toggle('alpha'));

  await withSocket(serverKey, async (client) => {
    await client.subscribe({ channels: ['flags.alpha'], since: seen.rev, epoch: seen.epoch });
    for (const change of missed) {
      const event = await client.next();
      assert.equal(event.type, 'flag_updated', `a missed change, not ${JSON.stringify(event).slice(0, 200)}`);
      assert.equal(event.rev, change.revision);
      assert.equal(event.key, 'alpha');
      assert.equal(event.flag.enabled, change.enabled);
    }
    const live = await toggle('alpha');
    const event = await client.next();
    assert.equal(event.type, 'flag_updated');
    assert.equal(event.rev, live.revision, 'the live change follows, nothing repeated before it');
  });
});

test('resume (client key): the missed values at their revisions', LIMIT, async () => {
  const seen = await lastSeen(clientKey, ['flags']);
  const missed = [await toggle('alpha'), await toggle('beta'), await toggle('gamma')];

  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['flags'], since: seen.rev, epoch: seen.epoch });
    for (const change of missed) {
      assert.deepEqual(await client.next(), {
        type: 'flag_updated', rev: change.revision, key: change.key, ...plainValue(change.enabled),
      });
    }
    const live = await toggle('alpha');
    assert.deepEqual(await client.next(), {
      type: 'flag_updated', rev: live.revision, key: 'alpha', ...plainValue(live.enabled),
    });
  });
});

test('resume at the current revision sends nothing until the next change', LIMIT, async () => {
  const seen = await lastSeen(clientKey, ['flags']);
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['flags'], since: seen.rev, epoch: seen.epoch });
    const live = await toggle('beta');
    assert.deepEqual(await client.next(), {
      type: 'flag_updated', rev: live.revision, key: 'beta', ...plainValue(live.enabled),
    });
  });
});

test('a since from another epoch gets a snapshot', LIMIT, async () => {
  const seen = await lastSeen(clientKey, ['flags']);
  await toggle('gamma');
  const other = seen.epoch.replace(/^./, (digit) => (digit === '0' ? '1' : '0'));
  await withSocket(clientKey, async (client) => {
    await client.subscribe({ channels: ['flags'], since: seen.rev, epoch: other });
    const snapshot = await client.expect('snapshot');
    assert.equal(snapshot.epoch, seen.epoch);
    assert.equal(snapshot.rev, (await environment()).revision);
    assert.deepEqual(Object.keys(snapshot.flags).sort(), CLIENT_FLAGS);
  });
});

// ---- closing (the ws client) ----

test('close: 1000 is echoed, a close without code answered with 1000, 4001 echoed', LIMIT, async () => {
  for (const [args, expected] of [[[1000], 1000], [[], 1000], [[4001, 'bye'], 4001]]) {
    const client = await connect(clientKey);
    try {
      const closed = await client.close(...args);
      assert.equal(closed.code, expected, `close(${args.join(', ')})`);
    } finally {
      client.terminate();
    }
  }
});

test('close: a binary message is closed with 1003', LIMIT, async () => {
  await withSocket(clientKey, async (client) => {
    client.socket.send(Buffer.from('{"type":"ping"}'), { binary: true });
    assert.equal((await client.closed()).code, 1003);
  });
});

test('close: a message of 64 KiB is taken, one byte more is closed with 1009', LIMIT, async () => {
  const message = JSON.stringify({ type: 'ping', id: 'big' });
  await withSocket(clientKey, async (client) => {
    client.send(message + ' '.repeat(MAX_MESSAGE - message.length));
    assert.deepEqual(await client.next(), { type: 'pong', id: 'big' });
    client.send(message + ' '.repeat(MAX_MESSAGE + 1 - message.length));
    assert.equal((await client.closed()).code, 1009);
  });
});

// ---- frames (by hand) ----

test('frames: protocol errors are closed with 1002', LIMIT, async () => {
  const text = Buffer.from('{"type":"ping"}');
  const cases = [
    { what: 'an unmasked frame', bytes: [frame(OP.TEXT, text, { masked: false })] },
    { what: 'RSV1 set', bytes: [frame(OP.TEXT, text, { rsv: 4 })] },
    { what: 'RSV3 set', bytes: [frame(OP.TEXT, text, { rsv: 1 })] },
    { what: 'a reserved data opcode', bytes: [frame(0x3, text)] },
    { what: 'a reserved control opcode', bytes: [frame(0xb, Buffer.alloc(0))] },
    { what: 'a control frame of 126 bytes', bytes: [frame(OP.PING, Buffer.alloc(126, 0x61))] },
    { what: 'a fragmented ping', bytes: [frame(OP.PING, Buffer.from('a'), { fin: false })] },
    { what: 'a continuation without a message', bytes: [frame(OP.CONTINUATION, text)] },
    { what: 'a new message inside a fragmented one',
      bytes: [frame(OP.TEXT, Buffer.from('{"type":'), { fin: false }), frame(OP.TEXT, text)] },
  ];
  for (const { what, bytes } of cases) {
    await withRaw(async (raw) => {
      raw.write(...bytes);
      await expectRawClose(raw, 1002, what);
    });
  }
});

test('frames: text or a close reason that is not UTF-8 is closed with 1007', LIMIT, async () => {
  const cases = [
    { what: 'invalid UTF-8 text', bytes: [frame(OP.TEXT, Buffer.from([0x7b, 0xc3, 0x28, 0x7d]))] },
    { what: 'a surrogate in text', bytes: [frame(OP.TEXT, Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]))] },
    { what: 'invalid UTF-8 across fragments',
      bytes: [frame(OP.TEXT, Buffer.from([0x22, 0xe2, 0x82]), { fin: false }),
              frame(OP.CONTINUATION, Buffer.from([0x41, 0x22]))] },
    { what: 'a close reason that is not UTF-8',
      bytes: [frame(OP.CLOSE, closePayload(1000, Buffer.from([0xff, 0xfe])))] },
  ];
  for (const { what, bytes } of cases) {
    await withRaw(async (raw) => {
      raw.write(...bytes);
      await expectRawClose(raw, 1007, what);
    });
  }
});

test('frames: a message not finished within --body-timeout is closed with 1008', LIMIT, async () => {
  const { own, clientKey: key } = await serverWithEnvironment(['--heartbeat', '1s',
                                                               '--body-timeout', '1s']);
  try {
    const raw = await rawConnect(key, own.url);
    try {
      const whole = frame(OP.TEXT, Buffer.from(JSON.stringify({ type: 'ping', id: 'late' })));
      raw.write(whole.subarray(0, whole.length - 3));
      await expectRawClose(raw, 1008, 'an unfinished message');
    } finally {
      raw.destroy();
    }
  } finally {
    await own.stop();
  }
});

test('handshake: HEAD is 405 and an HTTP/1.0 upgrade is 400', LIMIT, async () => {
  const head = await handshake({ method: 'HEAD', headers: { ...upgradeHeaders(),
                                                             Authorization: `Bearer ${clientKey}` } });
  assert.equal(head.status, 405);
  assert.equal(head.headers.allow, 'GET');

  const { hostname, port } = new URL(server.url);
  const answer = await new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${WAIT_MS} ms: ${text}`));
    }, WAIT_MS);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on('error', () => {});
    const headers = upgradeHeaders();
    socket.write([`GET /v1/ws?key=${clientKey} HTTP/1.0`, `Host: ${hostname}:${port}`,
                  ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`), '', '']
      .join('\r\n'));
  });
  assert.match(answer, /^HTTP\/1\.1 400 /, answer.slice(0, 200));
  assert.match(answer, /"invalid_handshake"/);
});

test('frames: a fragmented message past 64 KiB is closed with 1009', LIMIT, async () => {
  await withRaw(async (raw) => {
    raw.write(frame(OP.TEXT, Buffer.alloc(40 * 1024, 0x20), { fin: false }),
              frame(OP.CONTINUATION, Buffer.alloc(MAX_MESSAGE - 40 * 1024 + 1, 0x20)));
    await expectRawClose(raw, 1009, 'a fragmented message of 64 KiB + 1');
  });
});

test('frames: a fragmented message with a ping between fragments is reassembled', LIMIT, async () => {
  await withRaw(async (raw) => {
    // "é" (0xc3 0xa9) is split between two fragments: UTF-8 is checked across them.
    const message = Buffer.from('{"type":"ping","id":"frag-é"}');
    const split = message.indexOf(0xa9);
    raw.write(
      frame(OP.TEXT, message.subarray(0, 10), { fin: false }),
      frame(OP.PING, Buffer.from('between')),
      frame(OP.CONTINUATION, message.subarray(10, split), { fin: false }),
      frame(OP.CONTINUATION, message.subarray(split, split + 1), { fin: false }),
      frame(OP.CONTINUATION, message.subarray(split + 1)),
    );
    let pong;
    let answer;
    const deadline = Date.now() + WAIT_MS;
    while (!answer) {
      assert.ok(Date.now() < deadline, `no answer within ${WAIT_MS} ms`);
      const next = await raw.nextFrame('the pong frame and the answer');
      if (next.opcode === OP.PONG) pong = next.payload.toString();
      else if (next.opcode === OP.TEXT) answer = JSON.parse(next.payload.toString('utf8'));
      else assert.equal(next.opcode, OP.PING, `unexpected opcode ${next.opcode} (${next.payload})`);
    }
    assert.equal(pong, 'between', 'the ping between fragments is answered, before the message');
    assert.deepEqual(answer, { type: 'pong', id: 'frag-é' });
  });
});

test('frames: a frame split over several writes is read', LIMIT, async () => {
  await withRaw(async (raw) => {
    const bytes = frame(OP.TEXT, Buffer.from('{"type":"ping","id":"slow"}'));
    for (const [start, end] of [[0, 1], [1, 5], [5, 9], [9, bytes.length]]) {
      raw.write(bytes.subarray(start, end));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(await raw.nextMessage(), { type: 'pong', id: 'slow' });
  });
});

test('frames: a burst in one write is served a turn at a time: all of it, in order, the close last', LIMIT, async () => {
  // One loop, so that both sockets share it.
  const { own, clientKey: key } = await serverWithEnvironment(['--threads', '1']);
  const burst = await rawConnect(key, own.url);
  const other = await rawConnect(key, own.url);
  try {
    const count = 1500; // about 48 KB: one read, 24 turns of 64 frames
    const frames = [];
    for (let i = 0; i < count; i++) frames.push(frame(OP.TEXT, Buffer.from(`{"type":"ping","id":"${i}"}`)));
    burst.write(...frames, frame(OP.CLOSE, closePayload(1000)));
    other.write(frame(OP.TEXT, Buffer.from('{"type":"ping","id":"other"}')));
    assert.deepEqual(await other.nextMessage('the other socket\'s pong'), { type: 'pong', id: 'other' });
    for (let i = 0; i < count; i++) {
      assert.deepEqual(await burst.nextMessage(`pong ${i}`), { type: 'pong', id: String(i) });
    }
    const close = await burst.nextFrame('the close answer after the burst');
    assert.equal(close.opcode, OP.CLOSE);
    assert.equal(closeCode(close), 1000);
    await burst.closedByServer('the server to close the burst\'s connection');
    // The other socket is still served.
    other.write(frame(OP.TEXT, Buffer.from('{"type":"ping","id":"again"}')));
    assert.deepEqual(await other.nextMessage('the second pong'), { type: 'pong', id: 'again' });
  } finally {
    burst.destroy();
    other.destroy();
    await own.stop();
  }
});

test('frames: the close handshake; the server closes the connection after it', LIMIT, async () => {
  await withRaw(async (raw) => {
    raw.write(frame(OP.CLOSE, closePayload(1000, 'done')));
    const answer = await raw.nextFrame('the close answer');
    assert.equal(answer.opcode, OP.CLOSE);
    assert.equal(closeCode(answer), 1000);
    await raw.closedByServer('the server to close the connection');
  });
  await withRaw(async (raw) => {
    raw.write(frame(OP.CLOSE));
    const answer = await raw.nextFrame('the close answer');
    assert.equal(answer.opcode, OP.CLOSE);
    assert.equal(closeCode(answer), 1000, 'a close without code is answered with 1000');
    await raw.closedByServer('the server to close the connection');
  });
});

test('frames: when the client never answers the close, the server closes after about 5 s', LIMIT, async () => {
  await withRaw(async (raw) => {
    raw.write(frame(OP.BINARY, Buffer.from('x')));
    const answer = await raw.nextFrame('the close frame');
    assert.equal(answer.opcode, OP.CLOSE);
    assert.equal(closeCode(answer), 1003);
    await raw.closedByServer('the server to give up waiting for the close', 8_000);
  });
});

// ---- origins ----

test('allowed_origins: another Origin is 403 origin_not_allowed; no Origin is not checked', LIMIT, async () => {
  const created = await server.admin.createEnvironment(PROJECT, 'web');
  await server.admin.call('PATCH', `/v1/projects/${PROJECT}/environments/web`,
                          { allowed_origins: ['https://app.example.com'] });
  const withOrigin = (origin) => ({
    ...upgradeHeaders(),
    Authorization: `Bearer ${created.client_key}`,
    ...(origin ? { Origin: origin } : {}),
  });
  assertRefused(await handshake({ headers: withOrigin('https://evil.example.com') }), 403,
                'origin_not_allowed', 'an Origin not in allowed_origins');
  assert.equal((await handshake({ headers: withOrigin('https://app.example.com') })).status, 101);
  assert.equal((await handshake({ headers: withOrigin(undefined) })).status, 101);
});

// ---- servers of their own: heartbeats, the stream cap, shutdown ----

async function serverWithEnvironment(args) {
  const own = await startServer(args);
  try {
    const keys = await createProjectWithEnvironment(own.admin, PROJECT, ENV);
    return { own, ...keys };
  } catch (error) {
    await own.stop();
    throw error;
  }
}

test('liveness: the server pings every --heartbeat, and the ws client answers', LIMIT, async () => {
  const { own, clientKey: key } = await serverWithEnvironment(['--heartbeat', '1s']);
  try {
    const client = await connect(key, { url: own.url });
    try {
      await client.subscribe({ channels: ['flags'] });
      await client.expect('snapshot');
      await client.until('two ping frames', () => (client.pings >= 2 ? true : undefined), 5_000);
      client.send({ type: 'ping', id: 'alive' });
      assert.deepEqual(await client.next(), { type: 'pong', id: 'alive' });
    } finally {
      client.terminate();
    }
  } finally {
    await own.stop();
  }
});

test('the stream cap: past --max-streams the handshake is 503 with Retry-After', LIMIT, async () => {
  const { own, clientKey: key } = await serverWithEnvironment(['--max-streams', '1']);
  try {
    const first = await connect(key, { url: own.url });
    try {
      await first.subscribe({ channels: ['flags'] });
      await first.expect('snapshot');
      const answer = await handshake({
        url: own.url, headers: { ...upgradeHeaders(), Authorization: `Bearer ${key}` },
      });
      assertRefused(answer, 503, undefined, 'a second socket past the cap');
      assert.match(String(answer.headers['retry-after']), /^\d+$/, 'Retry-After in seconds');
    } finally {
      first.terminate();
    }
  } finally {
    await own.stop();
  }
});

test('shutdown: goodbye with reason shutdown, then close 1001', LIMIT, async () => {
  const { own, clientKey: key } = await serverWithEnvironment([]);
  let stopping;
  try {
    const client = await connect(key, { url: own.url });
    try {
      await client.subscribe({ channels: ['flags'] });
      await client.expect('snapshot');
      stopping = own.stop();
      const goodbye = await client.expect('goodbye');
      assert.equal(goodbye.reason, 'shutdown');
      assert.ok(Number.isInteger(goodbye.reconnect_after_ms) && goodbye.reconnect_after_ms >= 0,
                `reconnect_after_ms: ${goodbye.reconnect_after_ms}`);
      assert.equal((await client.closed()).code, 1001);
    } finally {
      client.terminate();
    }
  } finally {
    await (stopping ?? own.stop());
  }
});
