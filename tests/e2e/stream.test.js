// Real-time, through unmodified clients: the npm "eventsource" package (a WHATWG
// EventSource for Node) on GET /v1/stream, the Flagsmith SDK with realtime: true on
// /sse/environments/{key}/stream, and the OpenFeature OFREP web provider following the
// eventStreams its bulk answer advertises. Each sees a toggle made through the management
// API, pushed, without polling.
//
// Browser environment: Node has no EventSource, so the one from npm "eventsource" is made
// the global EventSource before the SDKs load (they look for it there, as in a browser).
// The Flagsmith SDK only starts realtime when it runs in a browser ("window" is defined):
// the test defines window as the global object, which is what it is in a browser.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { EventSource } from 'eventsource';

import { createProjectWithEnvironment, startServer } from './helpers.js';

globalThis.EventSource = EventSource;
globalThis.window = globalThis;
const { createFlagsmithInstance } = await import('flagsmith/isomorphic');
const { OFREPWebProvider } = await import('@openfeature/ofrep-web-provider');
const { OpenFeature, ProviderEvents } = await import('@openfeature/web-sdk');

const PROJECT = 'live';
const ENV = 'prod';
/** How long a pushed change may take to arrive before the test fails. */
const PUSH_TIMEOUT_MS = 5_000;

let server;
let serverKey;
let clientKey;

/** Resolves with the first `type` event of `source` that `accept` takes, or rejects. */
function nextEvent(source, type, accept = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      source.removeEventListener(type, onEvent);
      reject(new Error(`no '${type}' event within ${PUSH_TIMEOUT_MS} ms`));
    }, PUSH_TIMEOUT_MS);
    function onEvent(event) {
      if (!accept(event)) return;
      clearTimeout(timer);
      source.removeEventListener(type, onEvent);
      resolve(event);
    }
    source.addEventListener(type, onEvent);
  });
}

/** Resolves when `check()` is true, polling every 20 ms, or rejects after the timeout. */
async function until(what, check) {
  const deadline = Date.now() + PUSH_TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${PUSH_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function toggle(key) {
  return server.admin.call('POST', `/v1/projects/${PROJECT}/environments/${ENV}/flags/${key}/toggle`);
}

before(async () => {
  server = await startServer();
  ({ serverKey, clientKey } = await createProjectWithEnvironment(server.admin, PROJECT, ENV));
  for (const key of ['kill-switch', 'sse-flag', 'flagsmith-flag', 'ofrep-flag']) {
    await server.admin.createFlag(PROJECT, { key, type: 'boolean', client_visible: true });
  }
  await server.admin.createFlag(PROJECT, { key: 'server-only', type: 'boolean' });
});

after(async () => {
  await OpenFeature.close();
  await server?.stop();
  // Every stream is closed and the server is gone, yet on Node 18 something the client
  // libraries leave behind kept this process alive after the tests had all passed (seen on
  // a fresh Debian machine; not on Node 20). End the file then, saying what was left, with
  // the exit status node:test has set.
  setTimeout(() => {
    const left = process._getActiveHandles().map((handle) => handle.constructor.name);
    console.error(`stream.test.js: ending with handles still open: ${left.join(', ')}`);
    process.exit();
  }, 2_000).unref();
});

test('eventsource: a client key sees the snapshot, then a toggle as the new value', async () => {
  const source = new EventSource(`${server.url}/v1/stream?key=${clientKey}`);
  try {
    const snapshot = JSON.parse((await nextEvent(source, 'snapshot')).data);
    assert.equal(snapshot.flags['sse-flag'].value, false);
    assert.equal(snapshot.flags['server-only'], undefined, 'a client key sees client-visible flags only');

    const changed = nextEvent(source, 'flag_updated', (e) => JSON.parse(e.data).key === 'sse-flag');
    const toggled = await toggle('sse-flag');
    const event = await changed;
    const data = JSON.parse(event.data);
    assert.deepEqual(
      { key: data.key, value: data.value, variant: data.variant, reason: data.reason },
      { key: 'sse-flag', value: true, variant: 'on', reason: 'STATIC' });
    assert.equal(event.lastEventId, String(toggled.revision));
    assert.equal(data.rev, toggled.revision);
  } finally {
    source.close();
  }
});

test('eventsource: a server key (in a header) resumes from lastEventId with exactly what it missed', async () => {
  const withKey = (input, init) =>
    fetch(input, { ...init, headers: { ...init.headers, Authorization: `Bearer ${serverKey}` } });
  const first = new EventSource(`${server.url}/v1/stream`, { fetch: withKey });
  const snapshot = await nextEvent(first, 'snapshot');
  first.close();

  const missed = [];
  for (let i = 0; i < 3; i++) missed.push((await toggle('kill-switch')).revision);

  const resumed = new EventSource(`${server.url}/v1/stream?lastEventId=${snapshot.lastEventId}`,
                                  { fetch: withKey });
  // Events of one read are dispatched together: collect them as they come.
  const seen = [];
  resumed.addEventListener('snapshot', () => seen.push('snapshot'));
  resumed.addEventListener('flag_updated', (event) => {
    const data = JSON.parse(event.data);
    seen.push({ revision: Number(event.lastEventId), key: data.key, enabled: data.flag.enabled });
  });
  try {
    await until('the missed revisions', () => seen.length >= missed.length);
    await new Promise((resolve) => setTimeout(resolve, 200)); // nothing more may follow
    assert.deepEqual(seen, missed.map((revision, i) =>
      ({ revision, key: 'kill-switch', enabled: i % 2 === 0 })), 'each missed revision once, in order');
  } finally {
    resumed.close();
  }
});

test('flagsmith: realtime refetches the flags after a toggle', async () => {
  const flagsmith = createFlagsmithInstance();
  let changes = 0;
  await flagsmith.init({
    environmentID: clientKey,
    api: `${server.url}/api/v1/`,
    realtime: true,
    eventSourceUrl: `${server.url}/`,
    onChange: () => { changes++; },
  });
  try {
    assert.equal(flagsmith.hasFeature('flagsmith-flag'), false);
    // The SDK's stream is open once it has heard the environment's current time.
    await until('the realtime stream to open', () => flagsmith.eventSource?.readyState === 1);
    const before = changes;
    await toggle('flagsmith-flag');
    await until('the SDK to refetch', () => changes > before && flagsmith.hasFeature('flagsmith-flag'));
  } finally {
    flagsmith.eventSource?.close();
  }
});

test('ofrep-web-provider: follows eventStreams and re-evaluates after a toggle', async () => {
  const provider = new OFREPWebProvider({
    baseUrl: server.url,
    headers: [['Authorization', `Bearer ${clientKey}`]],
    cacheMode: 'disabled',
  });
  await OpenFeature.setProviderAndWait(provider);
  const client = OpenFeature.getClient();
  assert.equal(client.getBooleanValue('ofrep-flag', true), false);
  const changed = new Promise((resolve) =>
    client.addHandler(ProviderEvents.ConfigurationChanged, resolve));
  // The provider connects its stream after the first bulk answer; give it the moment.
  await until('the provider to open its stream', () => provider._sseManager?.isConnected);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await toggle('ofrep-flag');
  await Promise.race([
    changed,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no ConfigurationChanged')), PUSH_TIMEOUT_MS)),
  ]);
  assert.equal(client.getBooleanValue('ofrep-flag', false), true);
});
