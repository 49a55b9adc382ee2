import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';
import pg from 'pg';

import { createAdminApp } from '../../src/admin/app.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import {
  envelopeUnavailable, json, judge, LoadLoops, now, oauthUnavailable, pageUnavailable, recorded, request, seconds,
  type Endpoint, type Reply, type Sample,
} from '../support/load-loops.js';
import { postgresBinDir, startPostgresCluster, type PostgresCluster, type StopMode } from '../support/postgres-cluster.js';
import { pushAuthorization, registerTpp, resourceServer } from '../support/tpp.js';

/**
 * Database faults under load, on a PostgreSQL cluster this file owns (its own data
 * directory and port), so it runs whether or not TEST_DATABASE_URL is set — wherever the
 * PostgreSQL server binaries are installed. The real app serves (in process); concurrent
 * loops call introspection (of a live token), the token endpoint (client credentials),
 * PAR, the sign-in page, /readyz, /healthz and the admin API while the test
 *   1. stops the database (`pg_ctl stop -m immediate`: a crash, SIGQUIT; and `-m fast`:
 *      sessions terminated, SIGINT) and starts it again;
 *   2. makes it slow (holds an ACCESS EXCLUSIVE lock) with a two-connection pool.
 * DESIGN §4: database down → 503 in each endpoint's error form, fail closed (introspection
 * never `active: true`), recovery without a restart. Figures are printed and, with
 * RELIABILITY_JSON_DIR, written to database-faults.json.
 */
const describeWithPostgres = postgresBinDir() === undefined ? describe.skip : describe;

const figures: Record<string, unknown> = {};

interface Running {
  readonly app: TestApp;
  readonly admin: Server;
  readonly adminUrl: string;
  readonly endpoints: Endpoint[];
  close(): Promise<void>;
}

/** The app, its admin API, and one Endpoint per loop (each worker with its own client). */
async function serve(cluster: PostgresCluster, overrides: Record<string, string> = {}): Promise<Running> {
  const app = await startTestApp(await cluster.createDatabase(), overrides);
  const admin = createServer(createAdminApp(app.container).callback());
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  const adminUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
  const apiKey = (await app.container.apiKeys.create('faults', ['admin:read'], { actor: 'test' })).key;

  // A live DPoP-bound token and a resource server that introspects it.
  const holder = await registerTpp(app, { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
  const { access_token: liveToken } = await client.clientCredentialsGrant(holder.config, { scope: 'accounts' }, { DPoP: holder.dpop });
  const rs = (await resourceServer(app)).clientMetadata();
  const basic = `Basic ${Buffer.from(`${rs.client_id}:${String(rs.client_secret)}`).toString('base64')}`;

  const workers = 2;
  const tokenClients = await Promise.all(Array.from({ length: workers }, async () => {
    const tpp = await registerTpp(app, { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
    return { tpp, http: recorded(tpp.config) };
  }));
  const parClients = await Promise.all(Array.from({ length: workers }, async () => {
    const tpp = await registerTpp(app);
    return { tpp, http: recorded(tpp.config) };
  }));
  // Each sign-in worker keeps one open sign-in page (its interaction and cookies) and reloads it.
  const signIns = await Promise.all(Array.from({ length: workers }, async () => {
    const tpp = await registerTpp(app);
    const browser = new FormBrowser();
    const page = requirePage(await browser.navigate((await pushAuthorization(tpp)).url.toString()));
    expect(page.status).toBe(200);
    return { browser, url: page.url };
  }));

  const ok200 = (reply: Reply) => reply.status === 200;
  const endpoints: Endpoint[] = [
    {
      name: 'introspection', databaseBacked: true, workers,
      call: () => request(`${app.url}/token/introspection`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${liveToken}` }),
      ok: (reply) => reply.status === 200 && json(reply)?.active === true,
      unavailable: oauthUnavailable,
    },
    {
      name: 'token', databaseBacked: true, workers,
      call: (i) => tokenClients[i]!.http.call(() => client.clientCredentialsGrant(tokenClients[i]!.tpp.config, { scope: 'accounts' }, { DPoP: tokenClients[i]!.tpp.dpop })),
      ok: (reply) => reply.status === 200 && typeof json(reply)?.access_token === 'string',
      unavailable: oauthUnavailable,
    },
    {
      name: 'par', databaseBacked: true, workers,
      call: (i) => parClients[i]!.http.call(() => pushAuthorization(parClients[i]!.tpp)),
      ok: (reply) => reply.status === 201 && typeof json(reply)?.request_uri === 'string',
      unavailable: oauthUnavailable,
    },
    {
      name: 'sign-in page', databaseBacked: true, workers,
      call: async (i) => {
        try {
          const response = await signIns[i]!.browser.request(signIns[i]!.url);
          return { status: response.status, headers: response.headers, body: await response.text() };
        } catch (error) {
          return { status: 0, headers: new Headers(), body: String(error) };
        }
      },
      ok: (reply) => reply.status === 200 && reply.body.includes('name="username"'),
      unavailable: pageUnavailable,
    },
    {
      name: 'admin api', databaseBacked: true, workers: 1,
      call: () => request(`${adminUrl}/admin/v1/clients?limit=5`, { headers: { authorization: `Bearer ${apiKey}` } }),
      ok: (reply) => reply.status === 200 && Array.isArray(json(reply)?.clients),
      unavailable: envelopeUnavailable,
    },
    {
      name: 'readyz', databaseBacked: true, workers: 1,
      call: () => request(`${app.url}/readyz`),
      ok: ok200,
      unavailable: (reply) => reply.status === 503,
    },
    {
      name: 'healthz', databaseBacked: false, workers: 1,
      call: () => request(`${app.url}/healthz`),
      ok: ok200,
      unavailable: () => false,
    },
  ];
  return {
    app, admin, adminUrl, endpoints,
    async close() {
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      await app.close();
    },
  };
}

const databaseBacked = (loops: LoadLoops) => loops.endpoints.filter((e) => e.databaseBacked).map((e) => e.name);
const names = (loops: LoadLoops) => loops.endpoints.map((e) => e.name);
const wrong = (samples: Sample[]) => samples.filter((s) => s.verdict === 'wrong').map((s) => `${s.endpoint} ${s.status} ${s.detail ?? ''}`);
const latency = (s: Sample) => s.end - s.start;
const maxLatency = (samples: Sample[]) => samples.reduce((max, s) => Math.max(max, latency(s)), 0);

/** Waits until every endpoint has answered `ok` to a request started at or after `from`. */
async function allRecovered(loops: LoadLoops, from: number, timeoutMs: number): Promise<number> {
  await loops.waitFor('every loop succeeds again', () => names(loops).every((name) => loops.first(name, 'ok', from) !== undefined), timeoutMs);
  return Math.max(...names(loops).map((name) => loops.first(name, 'ok', from)!.end)) - from;
}

/** Every loop only succeeds for `ms`: full service, not one lucky request. */
async function steady(loops: LoadLoops, ms: number): Promise<void> {
  const from = now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const window = loops.samples.filter((s) => s.start >= from && s.end <= now());
  expect(window.filter((s) => s.verdict !== 'ok').map((s) => `${s.endpoint} ${s.status} ${s.detail ?? ''}`)).toEqual([]);
  for (const name of names(loops)) expect(window.some((s) => s.endpoint === name)).toBe(true);
}

describeWithPostgres('database faults under load (private PostgreSQL cluster)', () => {
  let cluster: PostgresCluster;

  beforeAll(async () => {
    cluster = await startPostgresCluster();
  }, 60_000);

  afterAll(async () => {
    await cluster?.destroy();
    const dir = process.env.RELIABILITY_JSON_DIR;
    if (dir && Object.keys(figures).length > 0) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'database-faults.json'), `${JSON.stringify(figures, null, 2)}\n`);
    }
  });

  test.each<StopMode>(['immediate', 'fast'])('database stopped (%s) under load: 503 in every form within 5 s, fail closed, full service within 10 s of its return', async (mode) => {
    const running = await serve(cluster);
    const loops = new LoadLoops(running.endpoints);
    try {
      loops.start();
      // Baseline: every loop works.
      await allRecovered(loops, now(), 10_000);
      await steady(loops, 1_000);

      const stopIssued = now();
      await cluster.stop(mode);
      const stopped = now();
      // Every database-backed endpoint answers 503 in its form, /readyz 503, /healthz 200.
      await loops.waitFor('a 503 from every database-backed endpoint',
        () => databaseBacked(loops).every((name) => loops.first(name, 'unavailable', stopped) !== undefined), 5_000);
      const firstUnavailable = Object.fromEntries(databaseBacked(loops).map((name) => [name, seconds(loops.first(name, 'unavailable', stopped)!.end - stopIssued)]));
      // Stay down a while under load: every answer must stay a prompt 503.
      await new Promise((resolve) => setTimeout(resolve, 3_000));

      const startIssued = now();
      await cluster.start();
      const accepting = now();
      const recoveryMs = await allRecovered(loops, accepting, 10_000);
      await steady(loops, 1_500);
      await loops.stop();

      const down = loops.samples.filter((s) => s.start >= stopped && s.end <= startIssued);
      const figure = {
        stop_mode: mode,
        requests_total: loops.samples.length,
        requests_while_down: down.length,
        time_to_first_503_s: firstUnavailable,
        max_time_to_first_503_s: Math.max(...Object.values(firstUnavailable)),
        max_latency_while_down_s: seconds(maxLatency(down.filter((s) => s.endpoint !== 'healthz'))),
        healthz_max_latency_while_down_s: seconds(maxLatency(down.filter((s) => s.endpoint === 'healthz'))),
        database_restart_s: seconds(accepting - startIssued),
        recovery_s: seconds(recoveryMs),
        wrong_answers: wrong(loops.samples).length,
      };
      figures[`database_stopped_${mode}`] = figure;
      console.log(`database stopped (${mode}) under load: ${JSON.stringify(figure, null, 2)}`);

      // Never a wrong answer: no 500, no dropped connection, no 2xx that needed the database.
      expect(wrong(loops.samples)).toEqual([]);
      for (const name of databaseBacked(loops)) {
        expect({ name, answers: loops.of(name, stopped, startIssued).filter((s) => s.verdict !== 'unavailable').map((s) => s.status) }).toEqual({ name, answers: [] });
        expect(loops.of(name, stopped, startIssued).length).toBeGreaterThan(0);
      }
      expect(loops.of('healthz', stopped, startIssued).every((s) => s.status === 200)).toBe(true);
      // Fail closed: while down, no introspection answer was active:true (nor 200 at all).
      expect(loops.of('introspection', stopped, startIssued).filter((s) => s.status === 200)).toEqual([]);
      expect(figure.max_time_to_first_503_s).toBeLessThan(5);
      expect(figure.max_latency_while_down_s).toBeLessThan(5);
      expect(figure.recovery_s).toBeLessThan(10);
    } finally {
      await loops.stop();
      if (!cluster.running) await cluster.start();
      await running.close();
    }
  }, 120_000);

  test('slow database with a two-connection pool: bounded 503s, bounded queue, no hung sockets, recovery', async () => {
    const running = await serve(cluster, { DATABASE_POOL_MAX: '2' });
    const { app } = running;
    const loops = new LoadLoops(running.endpoints);
    const lock = new pg.Client({ connectionString: new URL(app.container.config.databaseUrl!).toString() });
    await lock.connect();
    let maxWaiting = 0;
    let maxTotal = 0;
    const watchPool = setInterval(() => {
      const stats = app.container.database.poolStats()!;
      maxWaiting = Math.max(maxWaiting, stats.waiting);
      maxTotal = Math.max(maxTotal, stats.total);
    }, 10);
    try {
      loops.start();
      await allRecovered(loops, now(), 10_000);
      await steady(loops, 1_000);

      // Every statement touching tokens, interactions and pushed requests now blocks.
      await lock.query('begin');
      await lock.query('lock table oidc_models in access exclusive mode');
      const stalled = now();
      // A burst far beyond the pool on top of the loops: the queue must stay bounded.
      const burstOf = ['introspection', 'readyz'].map((name) => running.endpoints.find((e) => e.name === name)!);
      const burst = await Promise.all(Array.from({ length: 150 }, async (_, i) => {
        const endpoint = burstOf[i % burstOf.length]!;
        const start = now();
        return judge(endpoint, await endpoint.call(0), start, now());
      }));
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      await lock.query('commit');
      const released = now();
      const recoveryMs = await allRecovered(loops, released, 10_000);
      await steady(loops, 1_500);
      await loops.stop();

      const during = loops.samples.filter((s) => s.start >= stalled && s.end <= released);
      const answeredAfterStall = loops.samples.filter((s) => s.start >= stalled - 100);
      const figure = {
        pool_max: 2,
        lock_held_s: seconds(released - stalled),
        requests_while_slow: during.length,
        unavailable_while_slow: during.filter((s) => s.verdict === 'unavailable').length,
        ok_while_slow: during.filter((s) => s.verdict === 'ok').length,
        max_latency_while_slow_s: seconds(maxLatency(answeredAfterStall.filter((s) => s.start <= released))),
        burst_requests: burst.length,
        burst_max_latency_s: seconds(maxLatency(burst)),
        burst_503: burst.filter((b) => b.status === 503).length,
        pool_max_waiting: maxWaiting,
        pool_max_total: maxTotal,
        recovery_s: seconds(recoveryMs),
        wrong_answers: wrong(loops.samples).length,
      };
      figures.slow_database = figure;
      console.log(`slow database, pool of 2: ${JSON.stringify(figure, null, 2)}`);

      expect(wrong(loops.samples)).toEqual([]);
      expect(wrong(burst)).toEqual([]);
      // Fast, bounded failures: nothing waits on the database longer than its bounds
      // (1.5 s for a pool connection + 1 s for a lock, plus scheduling on a busy machine).
      expect(figure.max_latency_while_slow_s).toBeLessThan(3.5);
      expect(figure.burst_max_latency_s).toBeLessThan(3.5);
      // The tables under lock answered 503 (not hung, not 500).
      for (const name of ['introspection', 'token', 'par', 'sign-in page']) {
        expect(loops.of(name, stalled, released).some((s) => s.verdict === 'unavailable')).toBe(true);
      }
      expect(maxTotal).toBeLessThanOrEqual(2);
      expect(maxWaiting).toBeLessThanOrEqual(100);
      expect(figure.recovery_s).toBeLessThan(10);
      expect(app.container.database.poolStats()!.waiting).toBe(0);

      // No hung sockets: once idle keep-alive connections are closed, none is left open
      // (a request still stuck inside the app would keep its connection).
      app.server.closeIdleConnections();
      const connections = () => new Promise<number>((resolve, reject) => app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
      const deadline = now() + 2_000;
      while ((await connections()) > 0 && now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await connections()).toBe(0);
    } finally {
      clearInterval(watchPool);
      await loops.stop();
      await lock.end().catch(() => undefined);
      await running.close();
    }
  }, 120_000);
});
