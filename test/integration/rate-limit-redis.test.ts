/**
 * The rate limiter against a real Redis (REDIS_TEST_URL, default redis://127.0.0.1:6379;
 * CI starts one: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no).
 * Every run uses its own key prefix; keys expire with their window.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createServer, connect, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';

import { afterAll, afterEach, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import Koa from 'koa';
import pino from 'pino';

import { createRateLimiter, DEFAULT_LIMITS, STORE_TIMEOUT_MS, type RateLimiter, type RateLimits } from '../../src/http/rate-limit.js';
import { requestId } from '../../src/http/request-id.js';

const REDIS_URL = process.env.REDIS_TEST_URL ?? 'redis://127.0.0.1:6379';
const RUN_PREFIX = `portcullis-test:${randomUUID()}`;

const LIMITS: RateLimits = {
  ...DEFAULT_LIMITS,
  token: { points: 4, duration: 60 },
  signin: { points: 4, duration: 60 },
  introspection: { points: 4, duration: 60 },
};

interface Instance { url: string; server: Server; limiter: RateLimiter; logs: Array<Record<string, unknown>> }
const started: Instance[] = [];

async function instance(redisUrl: string, keyPrefix: string): Promise<Instance> {
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>); } });
  const limiter = createRateLimiter({ limits: LIMITS, redisUrl, log, keyPrefix });
  const app = new Koa();
  app.use(requestId);
  app.use(limiter.middleware);
  app.use((ctx) => { ctx.body = { ok: true }; });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const running = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, limiter, logs };
  started.push(running);
  return running;
}

afterEach(async () => {
  for (const running of started.splice(0)) {
    running.server.closeAllConnections();
    await new Promise<void>((resolve) => running.server.close(() => resolve()));
    await running.limiter.close();
  }
});

afterAll(async () => {
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${RUN_PREFIX}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const basicAuth = (clientId: string) => `Basic ${Buffer.from(`${clientId}:secret`).toString('base64')}`;

function post(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers }, body: 'x=1' });
}

async function timed(request: () => Promise<Response>): Promise<{ res: Response; ms: number }> {
  const t0 = performance.now();
  const res = await request();
  return { res, ms: performance.now() - t0 };
}

/**
 * A TCP relay in front of Redis that can stall: bytes are held back (as a partitioned
 * network does, TCP neither loses nor reorders them) until it forwards again.
 */
class Relay {
  readonly #server: NetServer;
  readonly #sockets = new Set<Socket>();
  readonly #held: Array<() => void> = [];
  #stalled = false;

  constructor(target: URL) {
    this.#server = createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      this.#sockets.add(client).add(upstream);
      const relay = (to: Socket) => (chunk: Buffer) => {
        if (this.#stalled) this.#held.push(() => { if (!to.destroyed) to.write(chunk); });
        else to.write(chunk);
      };
      client.on('data', relay(upstream));
      upstream.on('data', relay(client));
      const end = () => { client.destroy(); upstream.destroy(); this.#sockets.delete(client); this.#sockets.delete(upstream); };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  stall(): void {
    this.#stalled = true;
  }

  resume(): void {
    this.#stalled = false;
    for (const write of this.#held.splice(0)) write();
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `redis://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe('rate limits in Redis', () => {
  test('two instances sharing one Redis spend one budget', async () => {
    const keyPrefix = `${RUN_PREFIX}:shared`;
    const [a, b] = [await instance(REDIS_URL, keyPrefix), await instance(REDIS_URL, keyPrefix)];
    // No wait for the connection: the first request right after start-up is served.
    const statuses: Array<[string, number, string | null]> = [];
    for (let i = 0; i < 6; i += 1) {
      const target = i % 2 === 0 ? a : b;
      const res = await post(`${target.url}/token`, { authorization: basicAuth('shared-client') });
      statuses.push([target === a ? 'a' : 'b', res.status, res.headers.get('x-ratelimit-remaining')]);
    }
    expect(statuses).toEqual([['a', 200, '3'], ['b', 200, '2'], ['a', 200, '1'], ['b', 200, '0'], ['a', 429, '0'], ['b', 429, '0']]);
    // Another client has its own budget on both instances.
    expect((await post(`${b.url}/token`, { authorization: basicAuth('other-client') })).status).toBe(200);
    // The counters are in Redis, under the prefix.
    const redis = new Redis(REDIS_URL);
    try {
      expect(await redis.get(`${keyPrefix}:token:client:shared-client`)).toBe('6');
      expect(Number(await redis.pttl(`${keyPrefix}:token:client:shared-client`))).toBeGreaterThan(50_000);
    } finally {
      await redis.quit();
    }
    expect(a.logs.filter((l) => l.level === 40)).toEqual([]);
  });

  test('Redis unreachable: signin, PAR and token fail closed (503) quickly; introspection passes', async () => {
    const down = await instance('redis://127.0.0.1:1', `${RUN_PREFIX}:down`);
    for (const path of ['/token', '/request']) {
      const { res, ms } = await timed(() => post(`${down.url}${path}`, { authorization: basicAuth('c') }));
      expect(res.status).toBe(503);
      expect(ms).toBeLessThan(2000);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(res.headers.get('x-ratelimit-limit')).toBeNull();
      expect(await res.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/retry after \d+ s/) });
    }
    const signin = await timed(() => post(`${down.url}/interaction/uid/login`));
    expect(signin.res.status).toBe(503);
    expect(signin.ms).toBeLessThan(2000);
    const body = await signin.res.json() as { error: { code: string; request_id: string } };
    expect(body.error.code).toBe('TEMPORARILY_UNAVAILABLE');
    expect(body.error.request_id).toBe(signin.res.headers.get('x-request-id'));

    for (let i = 0; i < 6; i += 1) {
      const { res, ms } = await timed(() => post(`${down.url}/token/introspection`, { authorization: basicAuth('rs') }));
      expect(res.status).toBe(200);
      expect(ms).toBeLessThan(2000);
      expect(res.headers.get('x-ratelimit-limit')).toBeNull();
    }
    expect((await fetch(`${down.url}/account`)).status).toBe(200);
    // One warning for the whole outage (at most one a minute).
    const warnings = down.logs.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(/rate-limit store unavailable/);
  });

  test('Redis stops answering mid-run: fail-closed classes get 503 within the store timeout, then recover', async () => {
    const relay = new Relay(new URL(REDIS_URL));
    const url = await relay.listen();
    try {
      const running = await instance(url, `${RUN_PREFIX}:hang`);
      expect((await post(`${running.url}/token`)).status).toBe(200);

      relay.stall(); // connected, but no replies: only the command timeout helps
      const token = await timed(() => post(`${running.url}/token`));
      expect(token.res.status).toBe(503);
      expect(token.ms).toBeGreaterThanOrEqual(STORE_TIMEOUT_MS - 50);
      expect(token.ms).toBeLessThan(2000);
      const introspection = await timed(() => post(`${running.url}/token/introspection`));
      expect(introspection.res.status).toBe(200);
      expect(introspection.ms).toBeLessThan(2000);

      // The stalled connection was dropped: later requests are refused without waiting.
      const fast = await timed(() => post(`${running.url}/token`));
      expect(fast.res.status).toBe(503);
      expect(fast.ms).toBeLessThan(STORE_TIMEOUT_MS);

      relay.resume();
      const deadline = Date.now() + 5000;
      let status = 0;
      while (Date.now() < deadline) {
        status = (await post(`${running.url}/token`)).status;
        if (status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(status).toBe(200);
    } finally {
      await relay.close();
    }
  });
});
