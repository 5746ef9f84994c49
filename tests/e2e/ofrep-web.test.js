// The OpenFeature web SDK with the OFREP web provider, unmodified, with an environment's
// client key: the provider evaluates every flag the key may see at once through the bulk
// endpoint (POST /ofrep/v1/evaluate/flags) whenever the context changes, and the SDK
// answers from that.
//
// Browser environment: the provider needs fetch, Headers, Request, AbortController and
// DOMException, which Node 18 and later have as globals, so no browser global is faked.
// It keeps its flags in the browser's localStorage by default (to start from them on the
// next page load); Node has none, so that cache is turned off with cacheMode: 'disabled'.
// It would only make the provider log that localStorage is missing, and a cache hit would
// report the reason CACHED instead of the server's.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';

import { createProjectWithEnvironment, expectedVariant, startServer } from './helpers.js';

const PROJECT = 'storefront';
const ENV = 'live';
const LAYOUT_ROLLOUT = [{ variant: 'grid', weight: 30 }, { variant: 'list', weight: 70 }];

let server;
let clientKey;
let client;

function webProvider(options = {}) {
  return new OFREPWebProvider({
    baseUrl: server.url,
    headers: [['Authorization', `Bearer ${clientKey}`]],
    cacheMode: 'disabled',
    ...options,
  });
}

before(async () => {
  server = await startServer();
  const { admin } = server;
  ({ clientKey } = await createProjectWithEnvironment(admin, PROJECT, ENV));

  // A client-visible boolean flag, on.
  await admin.createFlag(PROJECT, { key: 'new-checkout', type: 'boolean', client_visible: true });
  await admin.setFlagState(PROJECT, ENV, 'new-checkout', { enabled: true });

  // A client-visible string flag targeted on a context attribute.
  await admin.createFlag(PROJECT, {
    key: 'banner', type: 'string', client_visible: true,
    variants: [{ key: 'eu', value: 'Welcome, EU' }, { key: 'world', value: 'Welcome' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'banner', {
    enabled: true, on_variant: 'world',
    rules: [{
      conditions: [{ attribute: 'country', operator: 'in', value: ['NL', 'BE'] }],
      variant: 'eu',
    }],
  });

  // A client-visible flag targeted on a segment.
  await admin.createSegment(PROJECT, 'staff');
  await admin.setSegmentRules(PROJECT, ENV, 'staff', [{
    conditions: [{ attribute: 'email', operator: 'ends_with', value: '@shop.example' }],
  }]);
  await admin.createFlag(PROJECT, { key: 'staff-tools', type: 'boolean', client_visible: true });
  await admin.setFlagState(PROJECT, ENV, 'staff-tools', {
    enabled: true, on_variant: 'off',
    rules: [{ conditions: [{ segment: 'staff' }], variant: 'on' }],
  });

  // A client-visible rollout.
  await admin.createFlag(PROJECT, {
    key: 'product-layout', type: 'string', client_visible: true,
    variants: [{ key: 'grid', value: 'grid' }, { key: 'list', value: 'list' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'product-layout', {
    enabled: true, on_variant: 'grid', rollout: LAYOUT_ROLLOUT,
  });

  // A server-only flag, on: a client key must not see it.
  await admin.createFlag(PROJECT, { key: 'fraud-scoring', type: 'boolean' });
  await admin.setFlagState(PROJECT, ENV, 'fraud-scoring', { enabled: true });

  await OpenFeature.setContext({ targetingKey: 'ann', country: 'NL', email: 'ann@shop.example' });
  await OpenFeature.setProviderAndWait(webProvider());
  client = OpenFeature.getClient();
});

after(async () => {
  await OpenFeature.close();
  await server?.stop();
});

test('a client-visible boolean flag', () => {
  const details = client.getBooleanDetails('new-checkout', false);
  assert.equal(details.value, true);
  assert.equal(details.variant, 'on');
  assert.equal(details.reason, 'STATIC');
  assert.equal(details.errorCode, undefined);
});

test('a flag targeted on a context attribute and one on a segment', () => {
  const banner = client.getStringDetails('banner', 'none');
  assert.equal(banner.value, 'Welcome, EU');
  assert.equal(banner.variant, 'eu');
  assert.equal(banner.reason, 'TARGETING_MATCH');

  const staff = client.getBooleanDetails('staff-tools', false);
  assert.equal(staff.value, true);
  assert.equal(staff.reason, 'TARGETING_MATCH');
});

test('a server-only flag is not visible to a client key', () => {
  const details = client.getBooleanDetails('fraud-scoring', false);
  assert.equal(details.value, false);
  assert.equal(details.reason, 'ERROR');
  assert.equal(details.errorCode, 'FLAG_NOT_FOUND');
  assert.equal(client.getBooleanValue('fraud-scoring', true), true);
});

test('an unknown flag gives the default value and FLAG_NOT_FOUND', () => {
  const details = client.getStringDetails('no-such-flag', 'fallback');
  assert.equal(details.value, 'fallback');
  assert.equal(details.errorCode, 'FLAG_NOT_FOUND');
});

test('a rolled-out flag splits by targeting key', async () => {
  const seen = new Set();
  for (let i = 0; i < 12; i++) {
    const targetingKey = `visitor-${i}`;
    await OpenFeature.setContext({ targetingKey, country: 'NL' });
    const details = client.getStringDetails('product-layout', 'none');
    assert.equal(details.reason, 'SPLIT', `${targetingKey}: ${JSON.stringify(details)}`);
    assert.equal(details.value, expectedVariant('product-layout', LAYOUT_ROLLOUT, targetingKey),
                 `${targetingKey} is not in the variant its bucket gives`);
    // Reading again without a context change answers from the provider's flags: the same.
    assert.equal(client.getStringValue('product-layout', 'none'), details.value);
    seen.add(details.value);
  }
  assert.deepEqual([...seen].sort(), ['grid', 'list']);
});

test('changing the context changes the values', async () => {
  await OpenFeature.setContext({ targetingKey: 'ann', country: 'NL', email: 'ann@shop.example' });
  assert.equal(client.getStringValue('banner', 'none'), 'Welcome, EU');
  assert.equal(client.getBooleanValue('staff-tools', false), true);

  await OpenFeature.setContext({ targetingKey: 'bob', country: 'US', email: 'bob@mail.example' });
  const banner = client.getStringDetails('banner', 'none');
  assert.equal(banner.value, 'Welcome');
  assert.equal(banner.variant, 'world');
  assert.equal(banner.reason, 'DEFAULT');
  const staff = client.getBooleanDetails('staff-tools', true);
  assert.equal(staff.value, false);
  assert.equal(staff.reason, 'DEFAULT');

  await OpenFeature.setContext({ targetingKey: 'bob', country: 'BE', email: 'bob@mail.example' });
  assert.equal(client.getStringValue('banner', 'none'), 'Welcome, EU');
  assert.equal(client.getStringDetails('banner', 'none').reason, 'TARGETING_MATCH');
});

test('a polling provider sees a flag change made through the management API', async () => {
  // Polls send the ETag of the last answer in If-None-Match: unchanged flags are a 304,
  // and the change comes back as a 200 with the new flags.
  const domain = 'polling';
  // The provider's documented fetchImplementation option, to see the statuses it gets.
  const statuses = [];
  const fetchImplementation = async (...args) => {
    const response = await fetch(...args);
    statuses.push(response.status);
    return response;
  };
  await OpenFeature.setContext(domain, { targetingKey: 'cy' });
  await OpenFeature.setProviderAndWait(domain,
                                       webProvider({ pollInterval: 200, fetchImplementation }));
  const polling = OpenFeature.getClient(domain);
  assert.equal(polling.getBooleanDetails('new-checkout', false).reason, 'STATIC');

  const changed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no configuration change within 10 s')),
                             10_000);
    polling.addHandler(ProviderEvents.ConfigurationChanged, (event) => {
      clearTimeout(timer);
      resolve({ event, statusesSoFar: [...statuses] });
    });
  });
  // Let a few polls find nothing new before changing anything.
  await new Promise((resolve) => setTimeout(resolve, 700));
  await server.admin.setFlagState(PROJECT, ENV, 'new-checkout', { enabled: false });
  const { event, statusesSoFar } = await changed;
  assert.deepEqual(event.flagsChanged, ['new-checkout']);
  assert.equal(statusesSoFar[0], 200);
  assert.ok(statusesSoFar.includes(304), `statuses: ${statusesSoFar.join(' ')}`);
  assert.equal(statusesSoFar.at(-1), 200);

  const details = polling.getBooleanDetails('new-checkout', true);
  assert.equal(details.value, false);
  assert.equal(details.variant, 'off');
  assert.equal(details.reason, 'DISABLED');
});
