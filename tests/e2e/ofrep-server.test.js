// The OpenFeature server SDK with the OFREP provider, unmodified, evaluating flags one by
// one through POST /ofrep/v1/evaluate/flags/{key} with an environment's server key.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature } from '@openfeature/server-sdk';

import { createProjectWithEnvironment, expectedVariant, startServer } from './helpers.js';

const PROJECT = 'shop';
const ENV = 'prod';
const LAYOUT_ROLLOUT = [{ variant: 'classic', weight: 50 }, { variant: 'compact', weight: 50 }];

let server;
let client;

before(async () => {
  server = await startServer();
  const { admin } = server;
  const { serverKey } = await createProjectWithEnvironment(admin, PROJECT, ENV);

  // A boolean flag, simply on.
  await admin.createFlag(PROJECT, { key: 'new-checkout', type: 'boolean', client_visible: true });
  await admin.setFlagState(PROJECT, ENV, 'new-checkout', { enabled: true, on_variant: 'on' });

  // A server-only string flag targeted on a context attribute.
  await admin.createFlag(PROJECT, {
    key: 'banner', type: 'string',
    variants: [{ key: 'eu', value: 'Welcome, EU' }, { key: 'world', value: 'Welcome' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'banner', {
    enabled: true, on_variant: 'world',
    rules: [{
      conditions: [{ attribute: 'country', operator: 'in', value: ['NL', 'BE'] }],
      variant: 'eu',
    }],
  });

  // A boolean flag targeted on a segment.
  await admin.createSegment(PROJECT, 'staff');
  await admin.setSegmentRules(PROJECT, ENV, 'staff', [{
    conditions: [{ attribute: 'email', operator: 'ends_with', value: '@shop.example' }],
  }]);
  await admin.createFlag(PROJECT, { key: 'staff-tools', type: 'boolean' });
  await admin.setFlagState(PROJECT, ENV, 'staff-tools', {
    enabled: true, on_variant: 'off',
    rules: [{ conditions: [{ segment: 'staff' }], variant: 'on' }],
  });

  // A string flag rolled out 50/50 by targeting key.
  await admin.createFlag(PROJECT, {
    key: 'checkout-layout', type: 'string',
    variants: [{ key: 'classic', value: 'classic' }, { key: 'compact', value: 'compact' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'checkout-layout', {
    enabled: true, on_variant: 'classic', rollout: LAYOUT_ROLLOUT,
  });

  // A disabled flag whose off variant differs from its on variant.
  await admin.createFlag(PROJECT, {
    key: 'search-engine', type: 'string',
    variants: [{ key: 'legacy', value: 'legacy' }, { key: 'vector', value: 'vector' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'search-engine', {
    enabled: false, on_variant: 'vector', off_variant: 'legacy',
  });

  // A number and a JSON flag, to see those types through the SDK.
  await admin.createFlag(PROJECT, {
    key: 'max-items', type: 'number',
    variants: [{ key: 'few', value: 5 }, { key: 'many', value: 50 }],
  });
  await admin.setFlagState(PROJECT, ENV, 'max-items', { enabled: true, on_variant: 'many' });
  await admin.createFlag(PROJECT, {
    key: 'theme', type: 'json',
    variants: [{ key: 'dark', value: { background: '#000', accent: 'teal' } },
               { key: 'light', value: { background: '#fff', accent: 'navy' } }],
  });
  await admin.setFlagState(PROJECT, ENV, 'theme', { enabled: true, on_variant: 'dark' });

  await OpenFeature.setProviderAndWait(new OFREPProvider({
    baseUrl: server.url,
    headers: [['Authorization', `Bearer ${serverKey}`]],
  }));
  client = OpenFeature.getClient();
});

after(async () => {
  await OpenFeature.close();
  await server?.stop();
});

test('a boolean flag that is on', async () => {
  const details = await client.getBooleanDetails('new-checkout', false, { targetingKey: 'ann' });
  assert.equal(details.value, true);
  assert.equal(details.variant, 'on');
  assert.equal(details.reason, 'STATIC');
  assert.equal(details.errorCode, undefined);
  assert.equal(await client.getBooleanValue('new-checkout', false), true);
});

test('a string flag with a rule on a context attribute', async () => {
  const matched = await client.getStringDetails('banner', 'none',
                                                { targetingKey: 'ann', country: 'NL' });
  assert.equal(matched.value, 'Welcome, EU');
  assert.equal(matched.variant, 'eu');
  assert.equal(matched.reason, 'TARGETING_MATCH');
  assert.equal(matched.errorCode, undefined);

  const other = await client.getStringDetails('banner', 'none',
                                              { targetingKey: 'bob', country: 'US' });
  assert.equal(other.value, 'Welcome');
  assert.equal(other.variant, 'world');
  assert.equal(other.reason, 'DEFAULT');

  const noAttribute = await client.getStringDetails('banner', 'none', { targetingKey: 'cy' });
  assert.equal(noAttribute.value, 'Welcome');
  assert.equal(noAttribute.reason, 'DEFAULT');
});

test('a boolean flag targeted on a segment', async () => {
  const staff = await client.getBooleanDetails('staff-tools', false,
                                               { targetingKey: 'ann', email: 'ann@shop.example' });
  assert.equal(staff.value, true);
  assert.equal(staff.variant, 'on');
  assert.equal(staff.reason, 'TARGETING_MATCH');

  const customer = await client.getBooleanDetails('staff-tools', true,
                                                  { targetingKey: 'bob', email: 'bob@mail.example' });
  assert.equal(customer.value, false);
  assert.equal(customer.variant, 'off');
  assert.equal(customer.reason, 'DEFAULT');
});

test('a rolled-out flag splits by targeting key, stably', async () => {
  const seen = new Map();
  for (let i = 0; i < 200; i++) {
    const targetingKey = `user-${i}`;
    const details = await client.getStringDetails('checkout-layout', 'none', { targetingKey });
    assert.equal(details.reason, 'SPLIT', `${targetingKey}: ${JSON.stringify(details)}`);
    assert.equal(details.value, details.variant, targetingKey);
    assert.equal(details.variant, expectedVariant('checkout-layout', LAYOUT_ROLLOUT, targetingKey),
                 `${targetingKey} is not in the variant its bucket gives`);
    seen.set(targetingKey, details.value);
  }
  const counts = { classic: 0, compact: 0 };
  for (const value of seen.values()) counts[value]++;
  assert.ok(counts.classic > 0 && counts.compact > 0, `both variants: ${JSON.stringify(counts)}`);

  // The same key lands in the same variant every time, whatever else the context holds.
  for (let i = 0; i < 20; i++) {
    const targetingKey = `user-${i}`;
    const again = await client.getStringValue('checkout-layout', 'none',
                                              { targetingKey, country: 'NL' });
    assert.equal(again, seen.get(targetingKey), targetingKey);
  }
});

test('a rollout without a targeting key is an error, and the default is served', async () => {
  const details = await client.getStringDetails('checkout-layout', 'fallback', { country: 'NL' });
  assert.equal(details.value, 'fallback');
  assert.equal(details.reason, 'ERROR');
  assert.equal(details.errorCode, 'TARGETING_KEY_MISSING');
});

test('a disabled flag serves its off variant', async () => {
  const details = await client.getStringDetails('search-engine', 'none', { targetingKey: 'ann' });
  assert.equal(details.value, 'legacy');
  assert.equal(details.variant, 'legacy');
  assert.equal(details.reason, 'DISABLED');
  assert.equal(details.errorCode, undefined);
});

test('number and JSON flags', async () => {
  const number = await client.getNumberDetails('max-items', 1, { targetingKey: 'ann' });
  assert.equal(number.value, 50);
  assert.equal(number.variant, 'many');
  assert.equal(number.reason, 'STATIC');

  const object = await client.getObjectDetails('theme', {}, { targetingKey: 'ann' });
  assert.deepEqual(object.value, { background: '#000', accent: 'teal' });
  assert.equal(object.variant, 'dark');
  assert.equal(object.reason, 'STATIC');
});

test('an unknown flag gives the default value and FLAG_NOT_FOUND', async () => {
  const details = await client.getBooleanDetails('no-such-flag', true, { targetingKey: 'ann' });
  assert.equal(details.value, true);
  assert.equal(details.reason, 'ERROR');
  assert.equal(details.errorCode, 'FLAG_NOT_FOUND');
});

test('asking for the wrong type gives the default value and TYPE_MISMATCH', async () => {
  const details = await client.getBooleanDetails('banner', false, { targetingKey: 'ann' });
  assert.equal(details.value, false);
  assert.equal(details.reason, 'ERROR');
  assert.equal(details.errorCode, 'TYPE_MISMATCH');
});

test('a wrong key is refused: the default value is served', async () => {
  const provider = new OFREPProvider({
    baseUrl: server.url,
    headers: [['Authorization', 'Bearer fw_srv_not-a-real-key']],
  });
  await OpenFeature.setProviderAndWait('wrong-key', provider);
  const details = await OpenFeature.getClient('wrong-key')
    .getBooleanDetails('new-checkout', false, { targetingKey: 'ann' });
  assert.equal(details.value, false);
  assert.equal(details.reason, 'ERROR');
});
