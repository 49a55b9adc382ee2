import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import Koa from 'koa';
import pino from 'pino';

import {
  addressKey, basicClientId, classify, CLIENT_IP_CEILING_FACTOR, createRateLimiter, DEFAULT_LIMITS, parseRateLimits,
  RATE_LIMIT_CLASSES, type RateLimitClass, type RateLimiter, type RateLimits,
} from '../../src/http/rate-limit.js';
import { requestId } from '../../src/http/request-id.js';
import { createViews } from '../../src/http/views.js';

describe('classify', () => {
  const table: Array<[string, string, RateLimitClass | undefined]> = [
    ['POST', '/interaction/abc123/login', 'signin'],
    ['POST', '/interaction/abc123/otp', 'signin'],
    ['POST', '/interaction/abc123/enrol', 'signin'],
    ['POST', '/account/login', 'signin'],
    ['POST', '/account/authenticator', 'signin'],
    ['POST', '/INTERACTION/abc123/Login/', 'signin'],
    ['POST', '/interaction/abc123/%6cogin', 'signin'],
    ['GET', '/interaction/abc123/login', 'pages'],
    ['GET', '/interaction/abc123', 'pages'],
    ['POST', '/interaction/abc123/consent', 'pages'],
    ['POST', '/interaction/abc123/enrolled', 'pages'],
    ['POST', '/interaction/abc123/abort', 'pages'],
    ['GET', '/account', 'pages'],
    ['GET', '/account/', 'pages'],
    ['GET', '/account/authenticator', 'pages'],
    ['POST', '/account/consents/g1/revoke', 'pages'],
    ['GET', '/auth', 'pages'],
    ['POST', '/auth', 'pages'],
    ['GET', '/auth/xyz', 'pages'],
    ['GET', '/session/end', 'pages'],
    ['POST', '/session/end/confirm', 'pages'],
    ['POST', '/request', 'par'],
    ['POST', '/token', 'token'],
    ['GET', '/token', 'token'],
    ['POST', '/token/introspection', 'introspection'],
    ['POST', '/token/revocation', 'revocation'],
    ['POST', '/reg', 'registration'],
    ['GET', '/reg/client-1', 'registration'],
    ['DELETE', '/reg/client-1', 'registration'],
    ['GET', '/me', 'userinfo'],
    ['POST', '/me', 'userinfo'],
    ['GET', '/grants/g1', 'grants'],
    ['DELETE', '/grants/g1', 'grants'],
    ['GET', '/healthz', undefined],
    ['GET', '/readyz', undefined],
    ['GET', '/.well-known/openid-configuration', undefined],
    ['GET', '/jwks', undefined],
    ['GET', '/static/portcullis.css', undefined],
    ['GET', '/', undefined],
    ['GET', '/accounts', undefined],
    ['GET', '/authorize-nothing', undefined],
    ['GET', '/registration', undefined],
    ['GET', '/tokens', undefined],
  ];
  test.each(table)('%s %s → %s', (method, path, expected) => {
    expect(classify(method, path)).toBe(expected);
  });
});

describe('addressKey', () => {
  test.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:db8:aa:bb:1:2:3:4', '2001:db8:aa:bb::/64'],
    ['2001:db8:aa:bb::99', '2001:db8:aa:bb::/64'],
    ['2001:DB8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['', 'unknown'],
  ])('%s → %s', (ip, key) => {
    expect(addressKey(ip)).toBe(key);
  });
});

describe('basicClientId', () => {
  const basic = (value: string) => ({ get: (name: string) => (name.toLowerCase() === 'authorization' ? value : '') });
  const encode = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  test('the form-decoded username', () => {
    expect(basicClientId(basic(encode('rs-1', 'secret')))).toBe('rs-1');
    expect(basicClientId(basic(encode('my%3Aclient', 's')))).toBe('my:client');
  });
  test('nothing for other schemes, malformed or unusable ids', () => {
    expect(basicClientId(basic(''))).toBeUndefined();
    expect(basicClientId(basic('Bearer abc'))).toBeUndefined();
    expect(basicClientId(basic('Basic !!!'))).toBeUndefined();
    expect(basicClientId(basic(`Basic ${Buffer.from('no-colon').toString('base64')}`))).toBeUndefined();
    expect(basicClientId(basic(encode('', 'secret')))).toBeUndefined();
    expect(basicClientId(basic(encode('x'.repeat(129), 's')))).toBeUndefined();
    expect(basicClientId(basic(encode('with space', 's')))).toBeUndefined();
  });
});

describe('parseRateLimits', () => {
  test('defaults without variables', () => {
    expect(parseRateLimits({})).toEqual(DEFAULT_LIMITS);
    expect(Object.keys(DEFAULT_LIMITS).sort()).toEqual([...RATE_LIMIT_CLASSES].sort());
  });
  test('RATE_LIMIT_<CLASS>=points/seconds overrides one class', () => {
    const limits = parseRateLimits({ RATE_LIMIT_TOKEN: '1000/30', RATE_LIMIT_SIGNIN: ' 10 / 60 ', RATE_LIMIT_PAGES: '' });
    expect(limits.token).toEqual({ points: 1000, duration: 30 });
    expect(limits.signin).toEqual({ points: 10, duration: 60 });
    expect(limits.pages).toEqual(DEFAULT_LIMITS.pages);
    expect(limits.par).toEqual(DEFAULT_LIMITS.par);
  });
  test.each(['600', '600/', '/60', '0/60', '600/0', '600/86401', '1000001/60', '1.5/60', 'abc/60', '600/60/10', '-1/60'])('refuses %p', (value) => {
    expect(() => parseRateLimits({ RATE_LIMIT_TOKEN: value })).toThrow(/^RATE_LIMIT_TOKEN: expected points\/seconds/);
  });
  test('refuses an unknown class name (a typo would keep the default)', () => {
    expect(() => parseRateLimits({ RATE_LIMIT_TOKENS: '1/1' })).toThrow(/^RATE_LIMIT_TOKENS: expected one of RATE_LIMIT_SIGNIN/);
  });
  test('reports through the given fail()', () => {
    class Refused extends Error {}
    expect(() => parseRateLimits({ RATE_LIMIT_PAR: 'x' }, (name, expected) => { throw new Refused(`${name}|${expected}`); })).toThrow(Refused);
  });
});

const TEST_LIMITS: RateLimits = {
  ...DEFAULT_LIMITS,
  signin: { points: 3, duration: 60 },
  token: { points: 3, duration: 60 },
  introspection: { points: 2, duration: 60 },
  pages: { points: 2, duration: 60 },
  userinfo: { points: 1, duration: 60 },
};

interface Running { url: string; server: Server; limiter: RateLimiter; bodies: string[] }

async function start(options: { views?: boolean } = {}): Promise<Running> {
  const limiter = createRateLimiter({
    limits: TEST_LIMITS,
    log: pino({ level: 'silent' }),
    ...(options.views ? { views: createViews() } : {}),
  });
  const bodies: string[] = [];
  const app = new Koa();
  app.use(requestId);
  app.use(limiter.middleware);
  app.use(async (ctx) => {
    // The dummy handler reads the raw stream, as oidc-provider does: the limiter must not have.
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
    bodies.push(Buffer.concat(chunks).toString('utf8'));
    ctx.body = { ok: true };
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, limiter, bodies };
}

async function stop(running: Running): Promise<void> {
  running.server.closeAllConnections();
  await new Promise<void>((resolve) => running.server.close(() => resolve()));
  await running.limiter.close();
}

const basicAuth = (clientId: string) => `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:secret`).toString('base64')}`;

function post(url: string, headers: Record<string, string> = {}, body = 'grant_type=client_credentials'): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
}

describe('middleware (memory store)', () => {
  let running: Running;
  beforeAll(async () => { running = await start(); });
  afterAll(async () => { await stop(running); });

  test('limited responses carry decreasing X-RateLimit-* headers, then 429 with Retry-After', async () => {
    const seen: Array<[number, string | null, string | null, string | null]> = [];
    for (let i = 0; i < 3; i += 1) {
      const res = await post(`${running.url}/interaction/uid-1/login`, {}, 'username=a&password=b');
      seen.push([res.status, res.headers.get('x-ratelimit-limit'), res.headers.get('x-ratelimit-remaining'), res.headers.get('x-ratelimit-reset')]);
    }
    expect(seen.map(([status, limit, remaining]) => [status, limit, remaining])).toEqual([[200, '3', '2'], [200, '3', '1'], [200, '3', '0']]);
    for (const [, , , reset] of seen) {
      expect(Number(reset)).toBeGreaterThanOrEqual(1);
      expect(Number(reset)).toBeLessThanOrEqual(60);
    }
    const refused = await post(`${running.url}/interaction/uid-1/login`, { accept: 'application/json' }, 'username=a&password=b');
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(refused.headers.get('cache-control')).toBe('no-store');
    const body = await refused.json() as { error: { code: string; message: string; request_id: string } };
    expect(body.error.code).toBe('RATE_LIMITED');
    expect(body.error.message).toMatch(/Too many requests/);
    expect(body.error.request_id).toBe(refused.headers.get('x-request-id'));
    // Another sign-in route of the same class shares the budget; a page has its own.
    expect((await post(`${running.url}/account/login`)).status).toBe(429);
    expect((await fetch(`${running.url}/account`)).status).toBe(200);
  });

  test('OAuth endpoints answer slow_down in RFC 6749 form', async () => {
    const responses = [];
    for (let i = 0; i < 4; i += 1) responses.push(await fetch(`${running.url}/me`));
    expect(responses.map((r) => r.status)).toEqual([200, 429, 429, 429]);
    const refused = responses[1]!;
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    const body = await refused.json() as Record<string, unknown>;
    expect(body.error).toBe('slow_down');
    expect(body.error_description).toMatch(/retry after \d+ s/);
  });

  test('token: each claimed client has its own budget; unclaimed requests count per IP', async () => {
    const statuses = async (headers: Record<string, string>, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i += 1) out.push((await post(`${running.url}/token`, headers)).status);
      return out;
    };
    expect(await statuses({ authorization: basicAuth('client-a') }, 4)).toEqual([200, 200, 200, 429]);
    // client-b is unaffected by client-a's exhaustion, although both come from 127.0.0.1.
    const first = await post(`${running.url}/token`, { authorization: basicAuth('client-b') });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit')).toBe('3');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('2');
    expect(await statuses({ authorization: basicAuth('client-b') }, 3)).toEqual([200, 200, 429]);
    expect(await statuses({}, 4)).toEqual([200, 200, 200, 429]);
  });

  test('the per-IP ceiling bounds what invented client ids can buy', async () => {
    const ceiling = TEST_LIMITS.introspection.points * CLIENT_IP_CEILING_FACTOR;
    const statuses: number[] = [];
    for (let i = 0; i < ceiling + 2; i += 1) {
      statuses.push((await post(`${running.url}/token/introspection`, { authorization: basicAuth(`invented-${i}`) }, 'token=x')).status);
    }
    expect(statuses.slice(0, ceiling).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(ceiling)).toEqual([429, 429]);
    const refused = await post(`${running.url}/token/introspection`, { authorization: basicAuth('one-more') }, 'token=x');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-ratelimit-limit')).toBe(String(ceiling));
    expect((await refused.json() as { error: string }).error).toBe('slow_down');
  });

  test('the request body reaches the handler untouched', async () => {
    const before = running.bodies.length;
    const res = await post(`${running.url}/token/revocation`, { authorization: basicAuth('body-check') }, 'token=abc&token_type_hint=refresh_token');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-limit')).toBe(String(DEFAULT_LIMITS.revocation.points));
    expect(running.bodies.slice(before)).toEqual(['token=abc&token_type_hint=refresh_token']);
  });

  test('unlimited paths carry no rate-limit headers and are never refused', async () => {
    for (const path of ['/healthz', '/readyz', '/.well-known/openid-configuration', '/jwks', '/static/portcullis.css']) {
      for (let i = 0; i < 5; i += 1) {
        const res = await fetch(`${running.url}${path}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('x-ratelimit-limit')).toBeNull();
        expect(res.headers.get('retry-after')).toBeNull();
      }
    }
  });
});

describe('middleware with views', () => {
  let running: Running;
  beforeAll(async () => { running = await start({ views: true }); });
  afterAll(async () => { await stop(running); });

  test('browsers get the error page, API callers the envelope', async () => {
    await fetch(`${running.url}/account`);
    await fetch(`${running.url}/account`);
    const page = await fetch(`${running.url}/account`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    expect(page.status).toBe(429);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('retry-after')).toMatch(/^\d+$/);
    const html = await page.text();
    expect(html).toMatch(/<h1>Too many requests<\/h1>/);
    expect(html).toMatch(/Too many requests\. Try again in \d+ seconds?\./);
    expect(html).toContain(`<code>${page.headers.get('x-request-id')}</code>`);
    const json = await fetch(`${running.url}/account`, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(429);
    expect((await json.json() as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
  });
});
