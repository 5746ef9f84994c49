// Flagsmith's JavaScript SDK (npm "flagsmith"), unmodified, pointed at flagwire's
// Flagsmith-compatible endpoints with an environment's client key as its environment ID:
// GET /api/v1/flags/ for the environment's flags, GET and POST /api/v1/identities/ for an
// identity's (the identifier is the targeting key, traits are context attributes).
//
// "flagsmith/isomorphic" is the SDK's entry for Node and server-side rendering: it uses the
// global fetch, which Node 18 and later have.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createFlagsmithInstance } from 'flagsmith/isomorphic';

import { createProjectWithEnvironment, expectedVariant, startServer } from './helpers.js';

const PROJECT = 'mobile';
const ENV = 'production';
const ONBOARDING_ROLLOUT = [{ variant: 'short', weight: 50 }, { variant: 'long', weight: 50 }];

let server;
let clientKey;

/** A fresh SDK instance, initialised against the server (init fetches the flags). */
async function flagsmithClient(options = {}) {
  const flagsmith = createFlagsmithInstance();
  await flagsmith.init({ environmentID: clientKey, api: `${server.url}/api/v1/`, ...options });
  return flagsmith;
}

before(async () => {
  server = await startServer();
  const { admin } = server;
  ({ clientKey } = await createProjectWithEnvironment(admin, PROJECT, ENV));

  await admin.createFlag(PROJECT, { key: 'new-checkout', type: 'boolean', client_visible: true });
  await admin.setFlagState(PROJECT, ENV, 'new-checkout', { enabled: true });

  await admin.createFlag(PROJECT, { key: 'dark-mode', type: 'boolean', client_visible: true });
  await admin.setFlagState(PROJECT, ENV, 'dark-mode', { enabled: false });

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

  await admin.createSegment(PROJECT, 'staff');
  await admin.setSegmentRules(PROJECT, ENV, 'staff', [{
    conditions: [{ attribute: 'email', operator: 'ends_with', value: '@shop.example' }],
  }]);
  await admin.createFlag(PROJECT, { key: 'staff-tools', type: 'boolean', client_visible: true });
  await admin.setFlagState(PROJECT, ENV, 'staff-tools', {
    enabled: true, on_variant: 'off',
    rules: [{ conditions: [{ segment: 'staff' }], variant: 'on' }],
  });
  await admin.createFlag(PROJECT, {
    key: 'support-channel', type: 'string', client_visible: true,
    variants: [{ key: 'email', value: 'email' }, { key: 'slack', value: '#support-internal' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'support-channel', {
    enabled: true, on_variant: 'email',
    rules: [{ conditions: [{ segment: 'staff' }], variant: 'slack' }],
  });

  await admin.createFlag(PROJECT, {
    key: 'onboarding', type: 'string', client_visible: true,
    variants: [{ key: 'short', value: 'short' }, { key: 'long', value: 'long' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'onboarding', {
    enabled: true, on_variant: 'short', rollout: ONBOARDING_ROLLOUT,
  });

  await admin.createFlag(PROJECT, {
    key: 'search-engine', type: 'string', client_visible: true,
    variants: [{ key: 'legacy', value: 'legacy' }, { key: 'vector', value: 'vector' }],
  });
  await admin.setFlagState(PROJECT, ENV, 'search-engine', {
    enabled: false, on_variant: 'vector', off_variant: 'legacy',
  });

  await admin.createFlag(PROJECT, {
    key: 'max-items', type: 'number', client_visible: true,
    variants: [{ key: 'few', value: 5 }, { key: 'many', value: 50 }],
  });
  await admin.setFlagState(PROJECT, ENV, 'max-items', { enabled: true, on_variant: 'many' });

  await admin.createFlag(PROJECT, {
    key: 'theme', type: 'json', client_visible: true,
    variants: [{ key: 'dark', value: { background: '#000', accent: 'teal' } },
               { key: 'light', value: { background: '#fff', accent: 'navy' } }],
  });
  await admin.setFlagState(PROJECT, ENV, 'theme', { enabled: true, on_variant: 'dark' });

  // Server-only: a client key must not see it.
  await admin.createFlag(PROJECT, { key: 'fraud-scoring', type: 'boolean' });
  await admin.setFlagState(PROJECT, ENV, 'fraud-scoring', { enabled: true });
});

after(async () => {
  await server?.stop();
});

test('the environment flags', async () => {
  const flagsmith = await flagsmithClient();
  assert.equal(flagsmith.hasFeature('new-checkout'), true);
  assert.equal(flagsmith.hasFeature('dark-mode'), false);
  assert.equal(flagsmith.hasFeature('banner'), true);
  assert.equal(flagsmith.getValue('banner'), 'Welcome');
  assert.equal(flagsmith.getValue('support-channel'), 'email');
  assert.equal(flagsmith.hasFeature('staff-tools'), false);
  assert.equal(flagsmith.getValue('max-items'), 50);
  assert.deepEqual(flagsmith.getValue('theme', { json: true }),
                   { background: '#000', accent: 'teal' });
  // A disabled flag is not enabled and carries its off variant's value.
  assert.equal(flagsmith.hasFeature('search-engine'), false);
  assert.equal(flagsmith.getValue('search-engine'), 'legacy');
  // A boolean flag's value is its enabled state; it has no other value.
  assert.equal(flagsmith.getValue('new-checkout'), null);
});

test('a server-only or unknown flag is not there', async () => {
  const flagsmith = await flagsmithClient();
  assert.equal(flagsmith.hasFeature('fraud-scoring'), false);
  assert.equal(flagsmith.getValue('fraud-scoring'), null);
  assert.equal(flagsmith.getValue('fraud-scoring', { fallback: 'none' }), 'none');
  assert.equal(flagsmith.hasFeature('no-such-flag', { fallback: true }), true);
  assert.equal(Object.keys(flagsmith.getAllFlags()).includes('fraud-scoring'), false);
});

test('an identity in a segment by its traits', async () => {
  const flagsmith = await flagsmithClient();
  await flagsmith.identify('ann', { email: 'ann@shop.example' });
  assert.equal(flagsmith.hasFeature('staff-tools'), true);
  assert.equal(flagsmith.getValue('support-channel'), '#support-internal');
  assert.equal(flagsmith.getTrait('email'), 'ann@shop.example');

  await flagsmith.identify('bob', { email: 'bob@mail.example' });
  assert.equal(flagsmith.hasFeature('staff-tools'), false);
  assert.equal(flagsmith.getValue('support-channel'), 'email');
});

test('traits for a rule on a country', async () => {
  const flagsmith = await flagsmithClient();
  await flagsmith.identify('cy', { country: 'NL' });
  assert.equal(flagsmith.getValue('banner'), 'Welcome, EU');

  await flagsmith.setTraits({ country: 'US' });
  assert.equal(flagsmith.getValue('banner'), 'Welcome');

  await flagsmith.setTrait('country', 'BE');
  assert.equal(flagsmith.getValue('banner'), 'Welcome, EU');
});

test('an identity given at init, without traits', async () => {
  // No traits: the SDK reads GET /api/v1/identities/?identifier=...
  const flagsmith = await flagsmithClient({ identity: 'dave' });
  assert.equal(flagsmith.getValue('onboarding'),
               expectedVariant('onboarding', ONBOARDING_ROLLOUT, 'dave'));
  assert.equal(flagsmith.hasFeature('new-checkout'), true);

  await flagsmith.logout();
  assert.equal(flagsmith.getValue('banner'), 'Welcome');
});

test('a rolled-out flag splits identities by identifier', async () => {
  const flagsmith = await flagsmithClient();
  const seen = new Set();
  for (let i = 0; i < 16; i++) {
    const identifier = `member-${i}`;
    await flagsmith.identify(identifier, { plan: 'free' });
    const value = flagsmith.getValue('onboarding');
    assert.equal(value, expectedVariant('onboarding', ONBOARDING_ROLLOUT, identifier),
                 `${identifier} is not in the variant its bucket gives`);
    assert.equal(flagsmith.hasFeature('onboarding'), true);
    seen.add(value);
  }
  assert.deepEqual([...seen].sort(), ['long', 'short']);
});

test('a wrong environment key fails init', async () => {
  const flagsmith = createFlagsmithInstance();
  await assert.rejects(
    flagsmith.init({ environmentID: 'fw_cli_not-a-real-key', api: `${server.url}/api/v1/` }));
});
