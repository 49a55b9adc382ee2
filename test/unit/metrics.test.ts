import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterEach, describe, expect, test } from '@jest/globals';
import Router from '@koa/router';
import Koa from 'koa';

import { createMetrics, type Metrics, type PoolStats } from '../../src/http/metrics.js';

/**
 * Prometheus metrics: the HTTP middleware counts requests by route template (bounded:
 * random tokens in paths never mint new series), the domain counters and the pool gauge
 * show up in /metrics in the text exposition format, and every createMetrics() is
 * independent of every other.
 */

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function send(port: number, method: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface Sample { name: string; labels: Record<string, string>; value: number }

// (values as Go's ParseFloat reads them: NaN and Inf in any case; prom-client writes "Nan")
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|[Nn][Aa][Nn]|[+-][Ii][Nn][Ff]))$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const COMMENT = /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/;

/** The text exposition format, line by line: every line a comment or a sample. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      expect(line).toMatch(COMMENT);
      continue;
    }
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = find(samples, name, labels);
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value;
}

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

async function serve(metrics: Metrics): Promise<number> {
  const app = new Koa({ proxy: false });
  app.silent = true;
  const router = new Router();
  router.get('/things/:id', (ctx) => { ctx.body = { id: ctx.params.id }; });
  router.post('/things', (ctx) => { ctx.status = 201; ctx.body = {}; });
  router.get('/fail', () => { throw Object.assign(new Error('nope'), { status: 503, expose: false }); });
  app.use(metrics.endpoint());
  app.use(metrics.middleware);
  app.use(router.routes());
  // A filter answering before any route matched (like the FAPI filters in front of oidc-provider).
  app.use(async (ctx, next) => {
    if (ctx.path.startsWith('/reject/')) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request' };
      return;
    }
    await next();
  });
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return (server.address() as AddressInfo).port;
}

async function scrape(port: number): Promise<{ reply: Reply; samples: Sample[] }> {
  const reply = await send(port, 'GET', '/metrics');
  expect(reply.status).toBe(200);
  return { reply, samples: parse(reply.body) };
}

const token = () => randomBytes(32).toString('base64url');

describe('createMetrics', () => {
  test('the middleware counts requests by route template, method and status; /metrics serves the text format', async () => {
    let pool: PoolStats | undefined = { total: 7, idle: 4, waiting: 2 };
    const metrics = createMetrics({ poolStats: () => pool });
    const port = await serve(metrics);

    for (let i = 0; i < 3; i += 1) expect((await send(port, 'GET', `/things/${i}`)).status).toBe(200);
    expect((await send(port, 'POST', '/things')).status).toBe(201);
    expect((await send(port, 'GET', '/fail')).status).toBe(503);
    metrics.counters.signIns.inc({ outcome: 'success' });
    metrics.counters.signIns.inc({ outcome: 'success' });
    metrics.counters.signIns.inc({ outcome: 'throttled' });
    metrics.counters.tokensIssued.inc({ grant_type: 'authorization_code' });
    metrics.counters.tokensIssued.inc({ grant_type: 'made-up-grant' });
    metrics.counters.locks.inc({ permanent: 'true' });
    metrics.counters.sca.inc({ outcome: 'failure' });
    metrics.counters.consents.inc({ status: 'authorised' });
    metrics.counters.consents.inc({ status: 'not-a-status' as 'authorised' });
    metrics.counters.rateLimited.inc({ class: 'token' });
    metrics.counters.credentialStuffing.inc({ kind: 'distinct_usernames_per_ip' });

    const { reply, samples } = await scrape(port);
    expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(reply.body).toMatch(/^# HELP http_requests_total /m);
    expect(reply.body).toMatch(/^# TYPE http_requests_total counter$/m);
    expect(reply.body).toMatch(/^# TYPE http_request_duration_seconds histogram$/m);
    expect(reply.body).toMatch(/^http_requests_total\{route="\/things\/:id",method="GET",status="200"\} 3$/m);

    expect(value(samples, 'http_requests_total', { route: '/things/:id', method: 'GET', status: '200' })).toBe(3);
    expect(value(samples, 'http_requests_total', { route: '/things', method: 'POST', status: '201' })).toBe(1);
    expect(value(samples, 'http_requests_total', { route: '/fail', method: 'GET', status: '503' })).toBe(1);
    expect(value(samples, 'http_request_duration_seconds_count', { route: '/things/:id', method: 'GET' })).toBe(3);
    expect(value(samples, 'http_request_duration_seconds_bucket', { route: '/things/:id', method: 'GET', le: '+Inf' })).toBe(3);
    expect(value(samples, 'http_request_duration_seconds_sum', { route: '/things/:id', method: 'GET' })).toBeGreaterThan(0);

    expect(value(samples, 'portcullis_sign_ins_total', { outcome: 'success' })).toBe(2);
    expect(value(samples, 'portcullis_sign_ins_total', { outcome: 'throttled' })).toBe(1);
    expect(value(samples, 'portcullis_sign_ins_total', { outcome: 'failure' })).toBe(0); // present from the start
    expect(value(samples, 'portcullis_tokens_issued_total', { grant_type: 'authorization_code' })).toBe(1);
    expect(value(samples, 'portcullis_tokens_issued_total', { grant_type: 'other' })).toBe(1);
    expect(find(samples, 'portcullis_tokens_issued_total', { grant_type: 'made-up-grant' })).toEqual([]);
    expect(value(samples, 'portcullis_account_locks_total', { permanent: 'true' })).toBe(1);
    expect(value(samples, 'portcullis_account_locks_total', { permanent: 'false' })).toBe(0);
    expect(value(samples, 'portcullis_sca_total', { outcome: 'failure' })).toBe(1);
    expect(value(samples, 'portcullis_consents_total', { status: 'authorised' })).toBe(1);
    expect(value(samples, 'portcullis_consents_total', { status: 'other' })).toBe(1);
    expect(value(samples, 'portcullis_rate_limited_total', { class: 'token' })).toBe(1);
    expect(value(samples, 'portcullis_credential_stuffing_total', { kind: 'distinct_usernames_per_ip' })).toBe(1);

    expect(value(samples, 'portcullis_db_pool_connections', { state: 'total' })).toBe(7);
    expect(value(samples, 'portcullis_db_pool_connections', { state: 'idle' })).toBe(4);
    expect(value(samples, 'portcullis_db_pool_connections', { state: 'waiting' })).toBe(2);
    // Read at every scrape; no pool (PGlite) → no samples.
    pool = { total: 9, idle: 0, waiting: 5 };
    expect(value((await scrape(port)).samples, 'portcullis_db_pool_connections', { state: 'waiting' })).toBe(5);
    pool = undefined;
    expect(find((await scrape(port)).samples, 'portcullis_db_pool_connections')).toEqual([]);

    // /metrics answers GET and HEAD only.
    expect((await send(port, 'POST', '/metrics')).status).toBe(405);
  });

  test('random tokens in paths do not create new label values', async () => {
    const metrics = createMetrics({ maxUnmatchedRoutes: 3 });
    const port = await serve(metrics);
    for (let i = 0; i < 10; i += 1) {
      await send(port, 'GET', `/things/${token()}`); // a route: its template
      await send(port, 'GET', `/nowhere/${token()}/${randomUUID()}?code=${token()}`); // no route, 404
      await send(port, 'GET', `/reject/${token()}`); // no route, answered by a filter: the normalised path
    }
    // Distinct unmatched paths beyond the bound collapse into (other).
    for (const word of ['alpha', 'beta', 'gamma', 'delta', 'epsilon']) await send(port, 'POST', `/reject/${word}`);

    const { samples } = await scrape(port);
    const routes = new Set(find(samples, 'http_requests_total').map((s) => s.labels.route));
    expect([...routes].sort()).toEqual(['(other)', '(unmatched)', '/reject/:id', '/reject/alpha', '/reject/beta', '/things/:id']);
    expect(value(samples, 'http_requests_total', { route: '/things/:id', method: 'GET', status: '200' })).toBe(10);
    expect(value(samples, 'http_requests_total', { route: '(unmatched)', method: 'GET', status: '404' })).toBe(10);
    expect(value(samples, 'http_requests_total', { route: '/reject/:id', method: 'GET', status: '400' })).toBe(10);
    expect(value(samples, 'http_requests_total', { route: '(other)', method: 'POST', status: '400' })).toBe(3);
    const text = find(samples, 'http_requests_total').map((s) => JSON.stringify(s.labels)).join('\n');
    expect(text).not.toMatch(/[A-Za-z0-9_-]{40,}/);
    expect(text).not.toContain('code');

    // Free-form counter labels are bounded too.
    for (let i = 0; i < 100; i += 1) metrics.counters.rateLimited.inc({ class: `class-${i}` });
    const limited = find(parse(await metrics.registry.metrics()), 'portcullis_rate_limited_total');
    expect(limited.length).toBeLessThanOrEqual(33);
    expect(value(limited, 'portcullis_rate_limited_total', { class: 'other' })).toBe(68);
  });

  test('two instances are independent', async () => {
    const first = createMetrics();
    const second = createMetrics();
    expect(first.registry).not.toBe(second.registry);
    first.counters.signIns.inc({ outcome: 'failure' });
    first.counters.signIns.inc({ outcome: 'failure' });
    second.counters.signIns.inc({ outcome: 'failure' });
    const firstPort = await serve(first);
    await send(firstPort, 'GET', '/things/1');
    const a = parse(await first.registry.metrics());
    const b = parse(await second.registry.metrics());
    expect(value(a, 'portcullis_sign_ins_total', { outcome: 'failure' })).toBe(2);
    expect(value(b, 'portcullis_sign_ins_total', { outcome: 'failure' })).toBe(1);
    expect(value(a, 'http_requests_total', { route: '/things/:id', method: 'GET', status: '200' })).toBe(1);
    expect(find(b, 'http_requests_total')).toEqual([]);
    // With process metrics too, still no clash between registries.
    const withDefaults = createMetrics({ defaultMetrics: true });
    const c = parse(await withDefaults.registry.metrics());
    expect(find(c, 'process_cpu_user_seconds_total').length).toBe(1);
    expect(find(b, 'process_cpu_user_seconds_total')).toEqual([]);
  });
});
