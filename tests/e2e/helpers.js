// Starts a real flagwire server for one test file and talks to its management API.
//
// Each test file runs in its own process (node --test) and starts its own server on a
// free port with its own data directory, so files may run in any order, or at once.
// Every wait here is bounded: a server that does not start, answer or stop fails the test
// with what it printed instead of hanging it.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** How long the server may take to print its URL. */
const START_TIMEOUT_MS = 20_000;
/** How long SIGTERM may take before SIGKILL; the server is started with a shorter drain. */
const STOP_TIMEOUT_MS = 10_000;
/** How long one management API request may take. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How much of the server's output is kept for failure messages. */
const OUTPUT_KEEP = 16 * 1024;

/** The binary: $FLAGWIRE_BINARY (relative to the working directory), else build/flagwire. */
export function binaryPath() {
  const configured = process.env.FLAGWIRE_BINARY;
  return configured ? path.resolve(process.cwd(), configured)
                    : path.resolve(here, '..', '..', 'build', 'flagwire');
}

/** Servers still running, killed if the process exits without stopping them. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Resolves when `child` exits (at once if it already has), or after `ms` with false. */
function waitForExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    function onExit() {
      clearTimeout(timer);
      resolve(true);
    }
    child.once('exit', onExit);
  });
}

/**
 * Starts `flagwire serve` on 127.0.0.1, port 0, in a new temporary data directory, and
 * waits for its "flagwire listening on http://..." line.
 *
 * Returns { url, adminToken, admin, output(), stop() }: `url` has no trailing slash,
 * `admin` is a management API client (see adminClient), `output()` what the server
 * printed so far (the tail), `stop()` stops it and removes the data directory.
 * `extraArgs` are more `serve` options, for a test that needs other limits (a short
 * `--heartbeat`, a `--max-streams` cap).
 */
export async function startServer(extraArgs = []) {
  const binary = binaryPath();
  if (!existsSync(binary)) {
    throw new Error(`no flagwire binary at ${binary}: build it first (./scripts/test builds ` +
                    'build/flagwire) or set FLAGWIRE_BINARY');
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flagwire-e2e-'));
  const adminToken = `e2e-admin-${randomBytes(16).toString('hex')}`;
  const child = spawn(binary, [
    'serve', '--host', '127.0.0.1', '--port', '0', '--data', dataDir,
    '--log-format', 'json', '--shutdown-timeout', '3s', ...extraArgs,
  ], {
    env: { ...process.env, FLAGWIRE_ADMIN_TOKEN: adminToken },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));

  // Both streams are read to the end, so the server never blocks on a full pipe.
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-OUTPUT_KEEP);
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', keep);

  let stdoutLine = '';
  let url;
  try {
    url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`flagwire did not print its URL within ${START_TIMEOUT_MS} ms`));
      }, START_TIMEOUT_MS);
      child.stdout.on('data', (chunk) => {
        keep(chunk);
        stdoutLine += chunk;
        const match = /flagwire listening on (http:\/\/\S+)/.exec(stdoutLine);
        if (match) {
          clearTimeout(timer);
          resolve(match[1].replace(/\/+$/, ''));
        }
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`flagwire exited before listening (code ${code}, signal ${signal})`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    await waitForExit(child, STOP_TIMEOUT_MS);
    rmSync(dataDir, { recursive: true, force: true });
    error.message += `\n--- flagwire output ---\n${output}`;
    throw error;
  }

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    child.kill('SIGTERM');
    if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
      child.kill('SIGKILL');
      await waitForExit(child, STOP_TIMEOUT_MS);
    }
    rmSync(dataDir, { recursive: true, force: true });
  }

  return {
    url,
    adminToken,
    admin: adminClient(url, adminToken),
    output: () => output,
    stop,
  };
}

/** An HTTP error from the management API, with its status and body. */
export class HttpError extends Error {
  constructor(method, url, status, body) {
    super(`${method} ${url}: ${status} ${typeof body === 'string' ? body : JSON.stringify(body)}`);
    this.status = status;
    this.body = body;
  }
}

/** fetch with a time limit; answers { status, headers, body } with the body parsed as JSON
 *  when it is JSON. */
export async function request(method, url, { headers = {}, body } = {}) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** A tiny management API client. Every method throws an HttpError on a non-2xx answer. */
export function adminClient(baseUrl, token) {
  async function call(method, pathname, body) {
    const url = `${baseUrl}${pathname}`;
    const res = await request(method, url, {
      headers: { Authorization: `Bearer ${token}` },
      body,
    });
    if (res.status < 200 || res.status > 299) throw new HttpError(method, url, res.status, res.body);
    return res.body;
  }
  const enc = encodeURIComponent;
  return {
    call,
    createProject: (key) => call('POST', '/v1/projects', { key }),
    /** Answers the environment, with its "server_key" and "client_key". */
    createEnvironment: (project, key) =>
      call('POST', `/v1/projects/${enc(project)}/environments`, { key }),
    /** definition: {key, type, variants?, client_visible?} */
    createFlag: (project, definition) =>
      call('POST', `/v1/projects/${enc(project)}/flags`, definition),
    /** state: {enabled?, on_variant?, off_variant?, rules?, rollout?} */
    setFlagState: (project, env, key, state) =>
      call('PATCH', `/v1/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(key)}`,
           state),
    createSegment: (project, key) => call('POST', `/v1/projects/${enc(project)}/segments`, { key }),
    setSegmentRules: (project, env, key, rules) =>
      call('PUT', `/v1/projects/${enc(project)}/environments/${enc(env)}/segments/${enc(key)}`,
           { rules }),
  };
}

/**
 * Creates a project with one environment and answers { project, env, serverKey, clientKey }.
 */
export async function createProjectWithEnvironment(admin, project, env) {
  await admin.createProject(project);
  const created = await admin.createEnvironment(project, env);
  if (!/^fw_srv_/.test(created.server_key) || !/^fw_cli_/.test(created.client_key)) {
    throw new Error(`unexpected environment keys: ${JSON.stringify(created)}`);
  }
  return { project, env, serverKey: created.server_key, clientKey: created.client_key };
}

/**
 * MurmurHash3 x86_32 of a string's UTF-8 bytes (Austin Appleby's reference, seed `seed`),
 * the hash flagwire's rollout bucketing is defined by.
 */
export function murmur3(text, seed = 0) {
  const bytes = new TextEncoder().encode(text);
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = bytes.length & ~3;
  const scramble = (k) => {
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    return Math.imul(k, c2);
  };
  for (let i = 0; i < blocks; i += 4) {
    const k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    h ^= scramble(k);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  switch (bytes.length & 3) {
    case 3: k ^= bytes[blocks + 2] << 16; // falls through
    case 2: k ^= bytes[blocks + 1] << 8; // falls through
    case 1:
      k ^= bytes[blocks];
      h ^= scramble(k);
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The variant flagwire's documented bucketing gives `value` in a rollout
 * ([{variant, weight}], weights in percent adding up to 100): bucket =
 * murmur3(flagKey + "." + salt + "." + value) mod 100000, the variants owning consecutive
 * ranges of buckets in their listed order, each weight * 1000 wide.
 */
export function expectedVariant(flagKey, rollout, value, salt = '') {
  const bucket = murmur3(`${flagKey}.${salt}.${value}`) % 100000;
  let end = 0;
  for (const { variant, weight } of rollout) {
    end += Math.round(weight * 1000);
    if (bucket < end) return variant;
  }
  return rollout[rollout.length - 1].variant;
}
