// A real browser: headless Chromium (Debian's /usr/bin/chromium, or $FLAGWIRE_CHROMIUM)
// driven by playwright-core, which never downloads a browser of its own. The page is one
// of the server's own (/healthz): from inside it, the browser's own EventSource opens
// /v1/stream?key=<client key> and its own WebSocket opens /v1/ws?key=<client key> (a
// browser can set no header on either, which is why a client key may travel in the URL).
// A toggle made through the management API from Node must arrive on both. The page keeps
// what it receives in window arrays; Node polls them, every wait bounded.
//
// Origins: a browser sends Origin with a WebSocket handshake. An environment without
// allowed_origins must accept any, from the server's own origin or another one
// (http://localhost:<port> against http://127.0.0.1:<port>); one with the list must refuse
// an origin not in it.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { createProjectWithEnvironment, startServer } from './helpers.js';

const PROJECT = 'browser';
const ENV = 'prod';
const FLAG = 'browser-flag';
const CHROMIUM = process.env.FLAGWIRE_CHROMIUM || '/usr/bin/chromium';
/** How long a message or a change may take to show in the page. */
const WAIT_MS = 5_000;
/** Starting Chromium can be slow on a cold machine. */
const LAUNCH_TIMEOUT_MS = 30_000;
const LIMIT = { timeout: 30_000 };

let server;
let clientKey;
let browser;
/** The page on the server's own origin, with its EventSource and WebSocket open. */
let page;
let toggled;

function toggle(key, env = ENV) {
  return server.admin.call('POST', `/v1/projects/${PROJECT}/environments/${env}/flags/${key}/toggle`);
}

/** One toggle of FLAG, shared by the tests that watch it arrive. */
function toggleOnce() {
  toggled ??= toggle(FLAG);
  return toggled;
}

/** Rejects when `promise` has not settled within `ms`. */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The WebSocket URL of /v1/ws with `key` in the URL, as a browser must send it. */
function wsUrl(key) {
  return `${server.url.replace(/^http/, 'ws')}/v1/ws?key=${encodeURIComponent(key)}`;
}

/** Opens a page on `origin` (the flagwire server under another host name when asked). */
async function openPage(origin) {
  const opened = await browser.newPage();
  const response = await opened.goto(`${origin}/healthz`, { timeout: WAIT_MS });
  assert.equal(response?.status(), 200, `the page at ${origin}/healthz`);
  return opened;
}

/** In the page: an EventSource on `url` whose events go to window.streams[name]. */
function openStream(target, name, url) {
  return target.evaluate(({ name, url }) => {
    window.streams ??= {};
    const state = window.streams[name] = { events: [], errors: 0, open: false };
    const source = new EventSource(url);
    source.onopen = () => { state.open = true; };
    source.onerror = () => { state.errors++; };
    for (const type of ['snapshot', 'flag_updated']) {
      source.addEventListener(type, (event) => {
        state.events.push({ type, id: event.lastEventId, data: JSON.parse(event.data) });
      });
    }
    window.streams[name].source = source;
  }, { name, url });
}

/** In the page: a WebSocket on `url` that subscribes to `flags` once open; its messages go
 *  to window.sockets[name]. */
function openSocket(target, name, url) {
  return target.evaluate(({ name, url }) => {
    window.sockets ??= {};
    const state = window.sockets[name] = { messages: [], errors: 0, open: false, closed: null };
    const socket = new WebSocket(url);
    socket.onopen = () => {
      state.open = true;
      socket.send(JSON.stringify({ type: 'subscribe', id: 'browser', channels: ['flags'] }));
    };
    socket.onmessage = (event) => { state.messages.push(JSON.parse(event.data)); };
    socket.onerror = () => { state.errors++; };
    socket.onclose = (event) => { state.closed = { code: event.code, reason: event.reason }; };
  }, { name, url });
}

/** What the page holds, for failure messages. */
function pageState(target) {
  return target.evaluate(() => JSON.stringify({
    streams: Object.fromEntries(Object.entries(window.streams ?? {}).map(
      ([name, { events, errors, open }]) => [name, { events, errors, open }])),
    sockets: window.sockets ?? {},
  })).catch((error) => `(unreadable: ${error.message})`);
}

/** Polls `predicate(arg)` in the page until it answers something truthy, and answers it. */
async function inPage(target, what, predicate, arg) {
  try {
    const handle = await target.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 50 });
    return await handle.jsonValue();
  } catch (error) {
    throw new Error(`${what}: ${error.message.split('\n')[0]}\npage: ${await pageState(target)}`);
  }
}

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's "chromium" package (scripts/deps.sh ` +
                    'lists it in E2E_PACKAGES) or set FLAGWIRE_CHROMIUM');
  }
  server = await startServer();
  ({ clientKey } = await createProjectWithEnvironment(server.admin, PROJECT, ENV));
  await server.admin.createFlag(PROJECT, { key: FLAG, type: 'boolean', client_visible: true });

  const args = ['--disable-dev-shm-usage', '--disable-gpu'];
  // Chromium refuses to start its sandbox as root (as in a container) without this.
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true, args, timeout: LAUNCH_TIMEOUT_MS,
  });

  page = await openPage(server.url);
  await openStream(page, 'own', `/v1/stream?key=${encodeURIComponent(clientKey)}`);
  await openSocket(page, 'own', wsUrl(clientKey));
  // The toggle must come after both have their starting state; a socket the server refuses
  // is settled too (its test then fails, the EventSource's does not).
  await inPage(page, 'the EventSource snapshot', () => window.streams.own.events.some(
    (event) => event.type === 'snapshot'));
  await inPage(page, 'the WebSocket to subscribe or close', () => {
    const socket = window.sockets.own;
    return socket.closed !== null || socket.messages.some((message) => message.type === 'snapshot');
  });
}, { timeout: 60_000 });

after(async () => {
  await within(browser?.close() ?? Promise.resolve(), 10_000, 'closing Chromium')
    .catch((error) => console.error(`browser.test.js: ${error.message}`));
  await server?.stop();
});

test('EventSource in Chromium: a client key sees the snapshot, then the toggle', LIMIT, async () => {
  const snapshot = await inPage(page, 'the snapshot', () =>
    window.streams.own.events.find((event) => event.type === 'snapshot'));
  assert.deepEqual(snapshot.data.flags[FLAG], { value: false, variant: 'off', reason: 'DISABLED' });

  const { revision } = await toggleOnce();
  const event = await inPage(page, 'flag_updated on the EventSource', (rev) =>
    window.streams.own.events.find((e) => e.type === 'flag_updated' && e.data.rev === rev), revision);
  assert.equal(event.id, String(revision));
  assert.deepEqual(event.data,
                   { rev: revision, key: FLAG, value: true, variant: 'on', reason: 'STATIC' });
});

test('WebSocket in Chromium: connected, subscribed, snapshot, then the toggle', LIMIT, async () => {
  const first = await inPage(page, 'the first message', () => window.sockets.own.messages[0]);
  assert.equal(first.type, 'connected', JSON.stringify(first));
  assert.equal(first.environment, ENV);
  assert.equal(first.audience, 'values');
  const subscribed = await inPage(page, 'subscribed', () =>
    window.sockets.own.messages.find((message) => message.type === 'subscribed'));
  assert.equal(subscribed.id, 'browser');
  assert.deepEqual(subscribed.channels, ['flags']);

  const { revision } = await toggleOnce();
  const event = await inPage(page, 'flag_updated on the WebSocket', (rev) =>
    window.sockets.own.messages.find((m) => m.type === 'flag_updated' && m.rev === rev), revision);
  assert.deepEqual(event, {
    type: 'flag_updated', rev: revision, key: FLAG, value: true, variant: 'on', reason: 'STATIC',
  });
  const state = JSON.parse(await pageState(page)).sockets.own;
  assert.equal(state.closed, null, 'the socket stays open');
  assert.equal(state.errors, 0);
});

test('another origin, no allowed_origins: the EventSource is accepted', LIMIT, async () => {
  const port = new URL(server.url).port;
  const other = await openPage(`http://localhost:${port}`);
  try {
    await openStream(other, 'cross', `${server.url}/v1/stream?key=${encodeURIComponent(clientKey)}`);
    const snapshot = await inPage(other, 'the snapshot from another origin', () =>
      window.streams.cross.events.find((event) => event.type === 'snapshot'));
    assert.equal(snapshot.data.environment, ENV);
  } finally {
    await other.close();
  }
});

test('another origin, no allowed_origins: the WebSocket is accepted', LIMIT, async () => {
  const port = new URL(server.url).port;
  const other = await openPage(`http://localhost:${port}`);
  try {
    await openSocket(other, 'cross', wsUrl(clientKey));
    const snapshot = await inPage(other, 'the snapshot from another origin', () =>
      window.sockets.cross.messages.find((message) => message.type === 'snapshot'));
    assert.equal(snapshot.environment, ENV);
  } finally {
    await other.close();
  }
});

test('allowed_origins: the listed origin is accepted, another refused', LIMIT, async () => {
  const created = await server.admin.createEnvironment(PROJECT, 'locked');
  await server.admin.call('PATCH', `/v1/projects/${PROJECT}/environments/locked`,
                          { allowed_origins: [server.url] });
  const port = new URL(server.url).port;
  const url = wsUrl(created.client_key);

  const listed = await openPage(server.url);
  const unlisted = await openPage(`http://localhost:${port}`);
  try {
    await openSocket(listed, 'locked', url);
    await openSocket(unlisted, 'locked', url);
    const connected = await inPage(listed, 'connected from the listed origin', () =>
      window.sockets.locked.messages.find((message) => message.type === 'connected'));
    assert.equal(connected.environment, 'locked');
    const closed = await inPage(unlisted, 'the refusal of another origin', () =>
      window.sockets.locked.closed);
    assert.equal(closed.code, 1006, 'a refused handshake never opens');
    const state = JSON.parse(await pageState(unlisted)).sockets.locked;
    assert.equal(state.open, false);
    assert.deepEqual(state.messages, []);
  } finally {
    await listed.close();
    await unlisted.close();
  }
});
