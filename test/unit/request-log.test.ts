import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa from 'koa';

import { normalisePath, requestLog } from '../../src/http/request-log.js';
import { requestId } from '../../src/http/request-id.js';
import { createLogger, sanitiseString } from '../../src/logger.js';

/**
 * The request log and the logger's redaction: one line per request with the documented
 * fields, and none of the secrets a request carries (body, Authorization, cookie, query,
 * tokens in the path, card numbers, forged lines) reaches the output, even when a handler
 * carelessly logs the whole request.
 */

const CANARY_PASSWORD = 'CANARY-PASSWORD-123';
const CANARY_TOKEN = 'CANARY-TOKEN-456';
const CANARY_COOKIE = 'CANARY-COOKIE-321';
const CANARY_CODE = 'CANARY-CODE-789';
const CANARY_DPOP = 'CANARY-DPOP-654';
const CARD_SPACED = '4111 1111 1111 1111';
const CARD_PLAIN = '4111111111111111';
const FORGED = '\r\n{"level":30,"time":1,"msg":"FORGED-LINE","admin":true}\n';
const PATH_TOKEN = randomBytes(32).toString('base64url'); // 43 characters
const PATH_UUID = randomUUID();

interface Captured { readonly raw: string[]; lines(): Record<string, unknown>[] }

function capture(): Captured & { write(line: string): void } {
  const raw: string[] = [];
  return {
    raw,
    write(line: string) { raw.push(line); },
    lines: () => raw.join('').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function send(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function allStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((item) => allStrings(item, out));
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) { out.push(key); allStrings(item, out); }
  }
  return out;
}

describe('request log', () => {
  const output = capture();
  const log = createLogger('info', output);
  let server: Server;
  let port: number;

  beforeAll(async () => {
    const app = new Koa({ proxy: false });
    app.silent = true;
    const router = new Router();
    router.post('/interaction/:uid/login', (ctx) => {
      const body = ctx.request.body as Record<string, string>;
      // A careless handler: the whole request goes to the log. Redaction must still hold.
      log.info({ body, headers: ctx.headers, url: ctx.url, query: ctx.query, querystring: ctx.querystring }, 'careless handler');
      log.warn({ username: body.username }, 'sign-in failed for %s', body.username);
      ctx.state.clientId = 'client-from-state';
      ctx.status = 303;
      ctx.redirect('/done');
    });
    router.get('/cb', (ctx) => {
      log.info({ href: ctx.href }, `callback ${ctx.url}`);
      ctx.body = 'ok';
    });
    router.get('/pay', (ctx) => {
      log.info(`paid with card ${CARD_SPACED}`);
      log.info({ note: `pan ${CARD_PLAIN}` }, 'card %s', CARD_PLAIN);
      ctx.body = 'paid';
    });
    router.get('/boom', () => { throw new Error(`database exploded near ${CANARY_PASSWORD}`); });
    app.use(requestId);
    app.use(requestLog(log));
    app.use(bodyParser({ enableTypes: ['form', 'json'] }));
    app.use(router.routes());
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('secrets carried by requests never reach the output; one line per request with the documented fields', async () => {
    const secretHeaders = {
      authorization: `Bearer ${CANARY_TOKEN}`,
      cookie: `_session=${CANARY_COOKIE}; other=1`,
      dpop: CANARY_DPOP,
    };
    const replies: Reply[] = [];
    replies.push(await send(port, 'POST', `/interaction/${PATH_TOKEN}/login?code=${CANARY_CODE}`,
      { ...secretHeaders, 'content-type': 'application/x-www-form-urlencoded' },
      new URLSearchParams({ username: `mallory${FORGED}`, password: CANARY_PASSWORD }).toString()));
    replies.push(await send(port, 'GET', `/cb?code=${CANARY_CODE}&state=xyz&request_uri=urn:ietf:params:oauth:request_uri:${PATH_TOKEN}`, secretHeaders));
    replies.push(await send(port, 'GET', '/pay', secretHeaders));
    replies.push(await send(port, 'GET', `/files/${PATH_TOKEN}/${PATH_UUID}/4242424242?code=${CANARY_CODE}`, secretHeaders));
    replies.push(await send(port, 'GET', '/boom', secretHeaders));
    expect(replies.map((r) => r.status)).toEqual([303, 200, 200, 404, 500]);

    const raw = output.raw.join('');
    for (const canary of [CANARY_PASSWORD, CANARY_TOKEN, CANARY_COOKIE, CANARY_CODE, CANARY_DPOP, CARD_SPACED, CARD_PLAIN, PATH_TOKEN, PATH_UUID, '4242424242']) {
      expect(raw).not.toContain(canary);
    }
    // Every line is one JSON object; no value holds a raw line break or other control character.
    expect(raw).not.toContain('\r');
    const lines = output.lines();
    expect(raw.split('\n').filter((line) => line !== '')).toHaveLength(lines.length);
    for (const line of lines) {
      for (const text of allStrings(line)) expect(text).not.toMatch(/[\u0000-\u001f\u007f]/);
      // The forged object never became a line of its own.
      expect(line.admin).toBeUndefined();
      expect(line.msg).not.toBe('FORGED-LINE');
    }
    // The forged text is still there, visibly escaped, inside the one legitimate value.
    const failed = lines.find((line) => line.msg !== undefined && String(line.msg).startsWith('sign-in failed'));
    expect(failed?.username).toContain('\\r\\n');
    expect(String(failed?.msg)).toContain('\\r\\n');
    // The careless handler's line: secret fields censored, harmless ones kept.
    const careless = lines.find((line) => line.msg === 'careless handler') as { body: Record<string, unknown>; headers: Record<string, unknown>; url: string };
    expect(careless.body.password).toBe('[redacted]');
    expect(careless.headers.authorization).toBe('[redacted]');
    expect(careless.headers.cookie).toBe('[redacted]');
    expect(careless.headers.dpop).toBe('[redacted]');
    expect(careless.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(careless.url).toContain('code=[redacted]');
    expect(lines.some((line) => String(line.msg).includes('[card]'))).toBe(true);

    // Exactly one request line per request, carrying its response's X-Request-Id.
    const requestLines = lines.filter((line) => line.msg === 'request');
    expect(requestLines).toHaveLength(replies.length);
    // (Koa's own error response, for the uncaught error of /boom, drops every header.)
    const ids = replies.map((r) => r.headers['x-request-id'] ?? expect.stringMatching(/^[0-9a-f-]{36}$/));
    expect(requestLines.map((line) => line.requestId)).toEqual(ids);
    expect(new Set(requestLines.map((line) => line.requestId)).size).toBe(replies.length);
    for (const line of requestLines) {
      expect(Object.keys(line).sort()).toEqual(expect.arrayContaining(['ip', 'latencyMs', 'level', 'method', 'msg', 'requestId', 'route', 'status', 'time']));
      expect(typeof line.latencyMs).toBe('number');
      expect(line.latencyMs as number).toBeGreaterThanOrEqual(0);
      expect(line.ip).toMatch(/127\.0\.0\.1$/);
      // Nothing else: no headers, query, body, cookies.
      expect(Object.keys(line).filter((key) => !['ip', 'latencyMs', 'level', 'method', 'msg', 'requestId', 'route', 'status', 'time', 'clientId'].includes(key))).toEqual([]);
    }
    expect(requestLines.map((line) => [line.method, line.route, line.status, line.level])).toEqual([
      ['POST', '/interaction/:uid/login', 303, 30],
      ['GET', '/cb', 200, 30],
      ['GET', '/pay', 200, 30],
      ['GET', '/files/:id/:id/:id', 404, 30],
      ['GET', '/boom', 500, 50],
    ]);
    expect(requestLines[0]?.clientId).toBe('client-from-state');
    expect(requestLines[1]?.clientId).toBeUndefined();
  });
});

describe('normalisePath', () => {
  test('identifiers become :id; plain words stay', () => {
    expect(normalisePath(`/interaction/${PATH_TOKEN}`)).toBe('/interaction/:id');
    expect(normalisePath(`/admin/v1/consents/${PATH_UUID}/revoke`)).toBe('/admin/v1/consents/:id/revoke');
    expect(normalisePath('/users/12345/unlock')).toBe('/users/:id/unlock');
    expect(normalisePath('/abcdefghijklmnopqrsT')).toBe('/:id'); // 20 characters, a capital
    expect(normalisePath('/abcdefghijklmnopqr1_')).toBe('/:id'); // 20 characters, a digit
    expect(normalisePath('/abcdefghijklmnopqrS')).toBe('/abcdefghijklmnopqrS'); // 19
    expect(normalisePath('/backchannel_authentication')).toBe('/backchannel_authentication'); // words
    expect(normalisePath('/.well-known/openid-configuration')).toBe('/.well-known/openid-configuration');
    expect(normalisePath('/')).toBe('/');
    expect(normalisePath(`/x/${encodeURIComponent(`a.${PATH_TOKEN}`)}`)).toBe('/x/:id');
    expect(normalisePath(`/x/${'%41'.repeat(30)}`)).toBe('/x/:id');
    expect(normalisePath(`/${'a/'.repeat(200)}`).length).toBeLessThanOrEqual(201);
  });
});

describe('logger', () => {
  test('secret fields are censored at any depth, in children too; errors keep their code and lose their secrets', () => {
    const output = capture();
    const log = createLogger('debug', output);
    log.info({ a: { b: { c: { d2: { e: { access_token: 'deep-secret-1', client_secret: 'deep-secret-2', refreshToken: 'deep-secret-3', x: 'visible' } } } } } }, 'deep');
    log.info({ jwk: { kty: 'EC', crv: 'P-256', x: 'pub', d: 'private-d-value' }, otp: '918273', totp: 'totp-secret', code_verifier: 'verifier-secret', request_uri: 'urn:x:secret-ru' }, 'keys');
    log.child({ session: 'ok', password: 'child-secret', note: 'two\nlines' }).child({ token: 'grandchild-secret' }).info('child');
    log.error(Object.assign(new Error(`failed with pcak_${PATH_TOKEN}`), { code: 'ECONNREFUSED', password: 'err-secret' }));
    log.info('token %s and %j', `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.${PATH_TOKEN}`, { api_key: 'fmt-secret', id_token: 'fmt-secret-2' });
    const raw = output.raw.join('');
    for (const secret of ['deep-secret', 'private-d-value', '918273', 'totp-secret', 'verifier-secret', 'secret-ru', 'child-secret', 'grandchild-secret', 'err-secret', 'fmt-secret', PATH_TOKEN, 'eyJ']) {
      expect(raw).not.toContain(secret);
    }
    const lines = output.lines();
    expect(lines).toHaveLength(5);
    expect(JSON.stringify(lines[0])).toContain('"x":"visible"');
    expect(lines[1]?.jwk).toEqual({ kty: 'EC', crv: 'P-256', x: 'pub', d: '[redacted]' });
    expect(lines[2]).toMatchObject({ session: 'ok', password: '[redacted]', token: '[redacted]', note: 'two\\nlines', msg: 'child' });
    expect(lines[3]?.err).toMatchObject({ type: 'Error', errorCode: 'ECONNREFUSED', password: '[redacted]', message: 'failed with [api key]' });
    expect(lines[3]?.msg).toBe('failed with [api key]');
  });

  test('sanitiseString masks cards, tokens and keys and escapes control characters', () => {
    expect(sanitiseString(`card ${CARD_SPACED}.`)).toBe('card [card].');
    expect(sanitiseString('card 4111-1111-1111-1111 and 378282246310005')).toBe('card [card] and [card]');
    expect(sanitiseString('order 123456789012 of 2024-01-01')).toBe('order 123456789012 of 2024-01-01'); // 12 digits: not a card
    // Digits of UUIDs and hex digests are not cards, even when 13+ of them run across dashes.
    expect(sanitiseString('c1322c71-2345-4678-9012-3c7455397d08')).toBe('c1322c71-2345-4678-9012-3c7455397d08');
    expect(sanitiseString('12345678-1234-4234-8234-123456789012')).toBe('12345678-1234-4234-8234-123456789012');
    expect(sanitiseString('sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')).toBe('sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08');
    // Identifiers in URL paths, as in the request log's route.
    expect(sanitiseString(`/interaction/${PATH_TOKEN}/login?x=1`)).toBe('/interaction/:id/login?x=1');
    expect(sanitiseString(`see https://as.example/reg/${PATH_UUID} now`)).toBe('see https://as.example/reg/:id now');
    expect(sanitiseString('a\u0000b\u001bc\u007fd\u2028e')).toBe('a\\u0000b\\u001bc\\u007fd\\u2028e');
    expect(sanitiseString('x\r\ny')).toBe('x\\r\\ny');
    expect(sanitiseString(`Authorization: Bearer ${CANARY_TOKEN}`)).toBe('Authorization: Bearer [redacted]');
    expect(sanitiseString(`DPoP ${'a'.repeat(40)}`)).toBe('DPoP [redacted]');
    expect(sanitiseString(`https://rp.example/cb?state=s&code=${CANARY_CODE}&iss=x`)).toBe('https://rp.example/cb?state=s&code=[redacted]&iss=x');
    expect(sanitiseString(`{"password": "${CANARY_PASSWORD}", "user": "u"}`)).toBe('{"password": "[redacted]", "user": "u"}');
    expect(sanitiseString(`${'A'.repeat(20)}.${'B'.repeat(20)}.${'C'.repeat(20)}`)).toBe('[jwt]');
    expect(sanitiseString('portcullis.example.com')).toBe('portcullis.example.com');
    expect(sanitiseString(`pcak_${PATH_TOKEN}`)).toBe('[api key]');
  });
});
