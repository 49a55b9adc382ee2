import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import Koa, { type Middleware } from 'koa';
import mount from 'koa-mount';
import * as client from 'openid-client';
import { generate } from 'otplib';

import { IntrospectionClient, protect, type ProtectOptions, type ProtectedState } from '../../src/resource-server/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { dpopKeyPair, dpopProof, postForm, type KeyPair, type ProofOptions } from '../support/fapi-crafting.js';
import { createCustomer, pushAuthorization, registerTpp, type Customer, type Tpp } from '../support/tpp.js';

/**
 * The resource-server kit in front of a small bank API, against a real Portcullis: a TPP
 * with a DPoP-bound token for an account_information consent reads exactly the consented
 * accounts; every token or proof that is missing, misdirected, replayed, from another key,
 * revoked, short of scope or consent is refused before the handler runs, and an unreachable
 * authorization server refuses everything (503).
 */
let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let alice: Customer;
let secret: string;
let step = 0;
let introspection: IntrospectionClient;
let rsCredentials: { client_id: string; client_secret: string };
let bank: Server;
let apiUrl: string;
let tokens: client.TokenEndpointResponse;
/** how often each handler ran: a refusal must never reach one */
const handled: Record<string, number> = {};

const AIS_DETAILS = JSON.stringify([{ type: 'account_information', actions: ['list_accounts', 'read_balances'] }]);

/** A one-time code for a step no earlier sign-in used (each step is accepted once). */
async function nextCode(): Promise<string> {
  step = Math.max(step + 1, Math.floor(Date.now() / 30_000) - 1);
  return generate({ secret, epoch: step * 30 });
}

/** PAR with an account_information consent, sign-in with password + TOTP, consent to `accounts`, code redemption. */
async function consentTo(accounts: string[]): Promise<client.TokenEndpointResponse> {
  const browser = new FormBrowser();
  const started = await pushAuthorization(tpp, { scope: 'openid accounts offline_access', authorization_details: AIS_DETAILS });
  const login = requirePage(await browser.navigate(started.url.toString()));
  const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: alice.username, password: alice.password, otp: await nextCode() }));
  const result = await browser.submit(consent, 'form[action$="/consent"]', { accounts }, { name: 'decision', value: 'allow' });
  if (result.leftTo === undefined) throw new Error(`consent did not complete: ${result.page?.html.slice(0, 300)}`);
  return client.authorizationCodeGrant(tpp.config, new URL(result.leftTo), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
}

/** A route of the bank API: `guard`, then a handler answering with the consent it was given. */
function route(path: string, guard: Middleware<ProtectedState>): Middleware<ProtectedState> {
  return async (ctx, next) => {
    if (ctx.path !== path) return next();
    await guard(ctx, async () => {
      handled[path] = (handled[path] ?? 0) + 1;
      ctx.body = { accounts: ctx.state.consent.accounts, consent: ctx.state.consent };
    });
  };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  alice = await createCustomer(app, 'kit-alice', 'kit alice has a long password');
  secret = (await app.container.totp.enrol(alice.id, alice.username, { actor: 'test' })).secret;
  rsCredentials = await app.container.clients.createResourceServer('Accounts API');
  introspection = new IntrospectionClient({
    introspectionEndpoint: `${app.url}/token/introspection`, clientId: rsCredentials.client_id, clientSecret: rsCredentials.client_secret,
  });
  const unreachable = new IntrospectionClient({
    introspectionEndpoint: `http://127.0.0.1:${await closedPort()}/token/introspection`, clientId: rsCredentials.client_id, clientSecret: rsCredentials.client_secret,
  });

  const accounts: ProtectOptions = { introspection, requiredScopes: ['accounts'], consentType: 'account_information', audience: app.container.config.apiResource };
  const api = new Koa<ProtectedState>();
  api.use(route('/accounts', protect(accounts)));
  api.use(route('/payments-scope', protect({ introspection, requiredScopes: ['payments'] })));
  api.use(route('/payment', protect({ introspection, requiredScopes: ['accounts'], consentType: 'payment_initiation' })));
  api.use(route('/other-audience', protect({ ...accounts, audience: 'https://other-api.example' })));
  api.use(route('/down', protect({ ...accounts, introspection: unreachable })));
  api.use(route('/public', protect({ ...accounts, publicOrigin: 'https://api.bank.example' })));
  // Mounted: the proof names the path the client used (/v1/accounts), not the path after the mount.
  const v1 = new Koa<ProtectedState>();
  v1.use(route('/accounts', protect(accounts)));
  api.use(mount('/v1', v1));

  bank = createServer(api.callback());
  await new Promise<void>((resolve) => bank.listen(0, '127.0.0.1', resolve));
  apiUrl = `http://127.0.0.1:${(bank.address() as AddressInfo).port}`;

  tokens = await consentTo([`${alice.username}-current`]);
});

afterAll(async () => {
  bank?.closeAllConnections();
  await new Promise<void>((resolve) => (bank === undefined ? resolve() : bank.close(() => resolve())));
  await app?.close();
  await database?.drop();
});

interface ApiResult {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly wwwAuthenticate: string;
  readonly error: string | undefined;
}

/** A raw call to the bank API with the caller's own Authorization and DPoP headers. */
async function call(path: string, { method = 'GET', authorization, dpop }: { method?: string; authorization?: string; dpop?: string } = {}): Promise<ApiResult> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (authorization !== undefined) headers.authorization = authorization;
  if (dpop !== undefined) headers.dpop = dpop;
  const response = await fetch(`${apiUrl}${path}`, { method, headers });
  const text = await response.text();
  const wwwAuthenticate = response.headers.get('www-authenticate') ?? '';
  return {
    status: response.status,
    body: text === '' ? {} : JSON.parse(text) as Record<string, unknown>,
    wwwAuthenticate,
    error: /error="([^"]*)"/.exec(wwwAuthenticate)?.[1],
  };
}

const keys = (): KeyPair => tpp.dpopKeys as KeyPair;

/** A DPoP proof from the TPP's key for GET `path` with the access token, unless the options say otherwise. */
function proof(path: string, options: Partial<ProofOptions> = {}, holder: KeyPair = keys()): Promise<string> {
  return dpopProof(holder, { htm: 'GET', htu: `${apiUrl}${path}`, accessToken: tokens.access_token, ...options });
}

async function dpopCall(path: string, options: Partial<ProofOptions> = {}, token = tokens.access_token): Promise<ApiResult> {
  return call(path, { authorization: `DPoP ${token}`, dpop: await proof(path, { accessToken: token, ...options }) });
}

describe('a valid DPoP-bound token', () => {
  test('openid-client reads exactly the consented accounts, with the consent in ctx.state', async () => {
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    const before = handled['/accounts'] ?? 0;
    const response = await client.fetchProtectedResource(tpp.config, tokens.access_token, new URL(`${apiUrl}/accounts`), 'GET', undefined, undefined, { DPoP: tpp.dpop });
    expect(response.status).toBe(200);
    const body = await response.json() as { accounts: string[]; consent: Record<string, unknown> };
    expect(body.accounts).toEqual([`${alice.username}-current`]);
    expect(body.consent).toMatchObject({
      clientId: tpp.clientId,
      subject: alice.id,
      scopes: ['accounts'],
      acr: 'urn:openbanking:psd2:sca',
      amr: ['pwd', 'otp'],
      authorizationDetails: [{ type: 'account_information', actions: ['list_accounts', 'read_balances'], accounts: [`${alice.username}-current`] }],
    });
    expect(typeof body.consent.grantId).toBe('string');
    expect(body.consent.payment).toBeUndefined();
    expect(handled['/accounts']).toBe(before + 1);
  });

  test('a hand-made proof works too, on a mounted sub-app and ignoring the query', async () => {
    expect((await dpopCall('/accounts')).status).toBe(200);
    expect((await dpopCall('/v1/accounts')).status).toBe(200);
    const query = await call('/accounts?page=2', { authorization: `DPoP ${tokens.access_token}`, dpop: await proof('/accounts') });
    expect(query.status).toBe(200);
  });

  test('behind a proxy, proofs name the public origin, not the address the API listens on', async () => {
    const local = await dpopCall('/public');
    expect({ status: local.status, error: local.error }).toEqual({ status: 401, error: 'invalid_dpop_proof' });
    const publicProof = await proof('/public', { htu: 'https://api.bank.example/public' });
    expect((await call('/public', { authorization: `DPoP ${tokens.access_token}`, dpop: publicProof })).status).toBe(200);
  });
});

describe('refused with 401 before the handler runs', () => {
  let before: number;
  beforeAll(() => {
    before = handled['/accounts'] ?? 0;
  });
  afterAll(() => {
    expect(handled['/accounts'] ?? 0).toBe(before);
  });

  test('no token: a DPoP challenge listing the algorithms, without an error code', async () => {
    const result = await call('/accounts');
    expect(result.status).toBe(401);
    expect(result.wwwAuthenticate).toBe('DPoP algs="ES256 PS256 EdDSA"');
    expect(result.body).toEqual({ error: { code: 'MISSING_TOKEN', message: expect.any(String) } });
  });

  test('another scheme counts as no token; a malformed or repeated Authorization header is a bad request', async () => {
    const basic = await call('/accounts', { authorization: 'Basic dXNlcjpwYXNz' });
    expect({ status: basic.status, challenge: basic.wwwAuthenticate }).toEqual({ status: 401, challenge: 'DPoP algs="ES256 PS256 EdDSA"' });
    const spaced = await call('/accounts', { authorization: `DPoP ${tokens.access_token} extra`, dpop: await proof('/accounts') });
    expect({ status: spaced.status, error: spaced.error }).toEqual({ status: 400, error: 'invalid_request' });
    // Node keeps only the first of several Authorization headers in req.headers; the kit looks at all.
    const twice = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(`${apiUrl}/accounts`, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.setHeader('authorization', [`DPoP ${tokens.access_token}`, 'DPoP another']);
      request.on('error', reject);
      request.end();
    });
    expect(twice).toBe(400);
  });

  test('an unknown token', async () => {
    const result = await dpopCall('/accounts', {}, 'not-a-token-portcullis-issued');
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_token' });
    expect(result.wwwAuthenticate).toMatch(/^DPoP error="invalid_token", error_description="[^"]+", algs="ES256 PS256 EdDSA"$/);
  });

  test('a DPoP-bound token downgraded to Bearer (even with a valid proof)', async () => {
    const result = await call('/accounts', { authorization: `Bearer ${tokens.access_token}`, dpop: await proof('/accounts') });
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_token' });
    expect(result.wwwAuthenticate).toMatch(/^Bearer error="invalid_token"/);
    expect(result.body).toMatchObject({ error: { code: 'INVALID_TOKEN' } });
  });

  test('the DPoP scheme without a proof', async () => {
    const result = await call('/accounts', { authorization: `DPoP ${tokens.access_token}` });
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_dpop_proof' });
  });

  test('a proof for another URL or another method', async () => {
    for (const options of [{ htu: `${apiUrl}/payments` }, { htu: `http://localhost:${new URL(apiUrl).port}/accounts` }, { htm: 'POST' }]) {
      const result = await call('/accounts', { authorization: `DPoP ${tokens.access_token}`, dpop: await proof('/accounts', options) });
      expect({ status: result.status, error: result.error, code: (result.body.error as { code?: string }).code })
        .toEqual({ status: 401, error: 'invalid_dpop_proof', code: 'INVALID_DPOP_PROOF' });
    }
  });

  test('a replayed proof', async () => {
    const once = await proof('/accounts');
    const headers = { authorization: `DPoP ${tokens.access_token}`, dpop: once };
    expect((await call('/accounts', headers)).status).toBe(200);
    before += 1;
    const replayed = await call('/accounts', headers);
    expect({ status: replayed.status, error: replayed.error }).toEqual({ status: 401, error: 'invalid_dpop_proof' });
    expect(replayed.wwwAuthenticate).toContain('used before');
  });

  test('a proof from another key', async () => {
    const result = await call('/accounts', { authorization: `DPoP ${tokens.access_token}`, dpop: await proof('/accounts', {}, await dpopKeyPair()) });
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_dpop_proof' });
  });

  test('a proof with the wrong ath', async () => {
    const result = await call('/accounts', { authorization: `DPoP ${tokens.access_token}`, dpop: await proof('/accounts', { accessToken: `${tokens.access_token}x` }) });
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_dpop_proof' });
  });

  test('a stale proof', async () => {
    const result = await dpopCall('/accounts', { iat: Math.floor(Date.now() / 1000) - 3600 });
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_dpop_proof' });
  });

  test('a refresh token presented as an access token', async () => {
    expect(tokens.refresh_token).toBeDefined();
    const result = await dpopCall('/accounts', {}, tokens.refresh_token!);
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_token' });
    // The server itself reports refresh tokens inactive to resource servers (the kit would refuse them too).
    expect(result.wwwAuthenticate).toContain('not active');
  });

  test('a token for another API (audience)', async () => {
    const result = await dpopCall('/other-audience');
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_token' });
    expect(handled['/other-audience']).toBeUndefined();
  });

  test('a token the resource server revoked is refused at once', async () => {
    const own = await consentTo([`${alice.username}-savings`]);
    expect((await dpopCall('/accounts', {}, own.access_token)).status).toBe(200);
    before += 1;
    const basic = `Basic ${Buffer.from(`${encodeURIComponent(rsCredentials.client_id)}:${encodeURIComponent(rsCredentials.client_secret)}`).toString('base64')}`;
    const revoked = await postForm(`${app.url}/token/revocation`, { token: own.access_token, token_type_hint: 'access_token' }, { authorization: basic });
    expect(revoked.status).toBe(200);
    const result = await dpopCall('/accounts', {}, own.access_token);
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_token' });
  });
});

describe('refused with 403: scope and consent', () => {
  test('a token without a required scope: insufficient_scope naming the scope', async () => {
    const result = await dpopCall('/payments-scope');
    expect({ status: result.status, error: result.error }).toEqual({ status: 403, error: 'insufficient_scope' });
    expect(result.wwwAuthenticate).toContain('scope="payments"');
    expect(result.body).toMatchObject({ error: { code: 'INSUFFICIENT_SCOPE' } });
    expect(handled['/payments-scope']).toBeUndefined();
  });

  test('an account-information consent at a payment API', async () => {
    const result = await dpopCall('/payment');
    expect({ status: result.status, error: result.error }).toEqual({ status: 403, error: 'insufficient_scope' });
    expect(result.body).toMatchObject({ error: { code: 'INSUFFICIENT_CONSENT' } });
    expect(handled['/payment']).toBeUndefined();
  });
});

describe('fail closed', () => {
  test('introspection unavailable: 503 and the handler never runs', async () => {
    const result = await dpopCall('/down');
    expect(result.status).toBe(503);
    expect(result.body).toEqual({ error: { code: 'INTROSPECTION_UNAVAILABLE', message: expect.any(String) } });
    expect(handled['/down']).toBeUndefined();
  });
});

/**
 * Answers Portcullis does not give (unbound or certificate-bound tokens, several payments,
 * broken responses): the same kit with an injected fetch standing in for the authorization
 * server, in front of a second bank API.
 */
describe('with a stubbed authorization server', () => {
  let stubServer: Server;
  let stubUrl: string;
  let answer: () => Promise<Response>;
  let seen: { url: string; init: RequestInit } | undefined;
  const stubRuns: Record<string, number> = {};
  const CERT = 'b64urlSha256OfTheTppCertificate0000000000000';

  const json = (body: unknown, status = 200, type = 'application/json; charset=utf-8') => async () =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'content-type': type } });
  const active = (extra: Record<string, unknown>) => json({ active: true, client_id: 'tpp-1', sub: 'cust-1', scope: 'accounts payments', token_type: 'Bearer', exp: Math.floor(Date.now() / 1000) + 300, ...extra });

  beforeAll(async () => {
    const stubFetch: typeof fetch = async (input, init) => {
      seen = { url: String(input), init: init ?? {} };
      return answer();
    };
    const stub = new IntrospectionClient({
      introspectionEndpoint: 'https://as.example/token/introspection', clientId: 'rs id+1', clientSecret: 'sécret:/&', fetch: stubFetch, timeoutMs: 100,
    });
    const thumbprint = (ctx: { get(name: string): string }) => ctx.get('x-test-client-cert') || undefined;
    const guarded = (path: string, options: Partial<ProtectOptions>): Middleware<ProtectedState> => async (ctx, next) => {
      if (ctx.path !== path) return next();
      await protect({ introspection: stub, clientCertificateThumbprint: thumbprint, ...options })(ctx, async () => {
        stubRuns[path] = (stubRuns[path] ?? 0) + 1;
        ctx.body = { consent: ctx.state.consent };
      });
    };
    const api = new Koa<ProtectedState>();
    api.use(guarded('/any', { requiredScopes: ['accounts'] }));
    api.use(guarded('/pay', { consentType: 'payment_initiation' }));
    api.use(guarded('/ais', { consentType: 'account_information' }));
    stubServer = createServer(api.callback());
    await new Promise<void>((resolve) => stubServer.listen(0, '127.0.0.1', resolve));
    stubUrl = `http://127.0.0.1:${(stubServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    stubServer?.closeAllConnections();
    await new Promise<void>((resolve) => (stubServer === undefined ? resolve() : stubServer.close(() => resolve())));
  });

  async function stubCall(path: string, headers: Record<string, string>): Promise<ApiResult> {
    const response = await fetch(`${stubUrl}${path}`, { headers: { accept: 'application/json', ...headers } });
    const wwwAuthenticate = response.headers.get('www-authenticate') ?? '';
    return { status: response.status, body: await response.json() as Record<string, unknown>, wwwAuthenticate, error: /error="([^"]*)"/.exec(wwwAuthenticate)?.[1] };
  }

  test('the introspection request: POST token=…, HTTP Basic with form-urlencoded credentials, Accept JSON', async () => {
    answer = active({ cnf: { 'x5t#S256': CERT } });
    expect((await stubCall('/any', { authorization: 'Bearer tok.en-1', 'x-test-client-cert': CERT })).status).toBe(200);
    const headers = new Headers(seen?.init.headers);
    expect(seen?.url).toBe('https://as.example/token/introspection');
    expect(seen?.init.method).toBe('POST');
    expect(seen?.init.redirect).toBe('error'); // a redirect is a failure, never followed
    expect(headers.get('accept')).toBe('application/json');
    expect(headers.get('content-type')).toBe('application/x-www-form-urlencoded');
    expect(headers.get('authorization')).toBe(`Basic ${Buffer.from('rs+id%2B1:s%C3%A9cret%3A%2F%26').toString('base64')}`);
    expect(new URLSearchParams(String(seen?.init.body)).get('token')).toBe('tok.en-1');
  });

  test('an unbound (bearer) token is refused: FAPI tokens are sender-constrained', async () => {
    answer = active({});
    const result = await stubCall('/any', { authorization: 'Bearer unbound' });
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_token' });
    expect(result.wwwAuthenticate).toMatch(/^Bearer error="invalid_token", error_description="the access token is not sender-constrained"$/);
  });

  test('a certificate-bound token works only with its certificate, and only as Bearer', async () => {
    answer = active({ cnf: { 'x5t#S256': CERT } });
    expect((await stubCall('/any', { authorization: 'Bearer bound', 'x-test-client-cert': CERT })).status).toBe(200);
    const wrongOrNoCertificate: Array<Record<string, string>> = [{ 'x-test-client-cert': `${CERT}x` }, {}];
    for (const headers of wrongOrNoCertificate) {
      const result = await stubCall('/any', { authorization: 'Bearer bound', ...headers });
      expect({ status: result.status, error: result.error }).toEqual({ status: 401, error: 'invalid_token' });
    }
    const asDpop = await stubCall('/any', { authorization: 'DPoP bound', dpop: await proof('/any', { htu: `${stubUrl}/any`, accessToken: 'bound' }), 'x-test-client-cert': CERT });
    expect({ status: asDpop.status, error: asDpop.error }).toEqual({ status: 401, error: 'invalid_token' });
  });

  test('no token: both challenges when certificate-bound tokens are possible', async () => {
    const response = await fetch(`${stubUrl}/any`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('DPoP algs="ES256 PS256 EdDSA", Bearer');
  });

  test('a payment consent: exactly one payment_initiation detail', async () => {
    const payment = { type: 'payment_initiation', instructedAmount: { currency: 'GBP', amount: '1.00' }, creditorName: 'A', creditorAccount: { iban: 'GB33BUKB20201555555555' } };
    const headers = { authorization: 'Bearer p', 'x-test-client-cert': CERT };
    answer = active({ cnf: { 'x5t#S256': CERT }, grant_id: 'g-1', authorization_details: [payment] });
    const one = await stubCall('/pay', headers);
    expect(one.status).toBe(200);
    expect(one.body.consent).toMatchObject({ grantId: 'g-1', payment, accounts: [] });
    answer = active({ cnf: { 'x5t#S256': CERT }, authorization_details: [payment, { ...payment, creditorName: 'B' }] });
    const two = await stubCall('/pay', headers);
    expect({ status: two.status, error: two.error, code: (two.body.error as { code: string }).code }).toEqual({ status: 403, error: 'insufficient_scope', code: 'INSUFFICIENT_CONSENT' });
  });

  test('account access: the union of accounts; an expired account_information detail grants nothing', async () => {
    const headers = { authorization: 'Bearer a', 'x-test-client-cert': CERT };
    const future = new Date(Date.now() + 86_400_000).toISOString();
    const past = new Date(Date.now() - 1000).toISOString();
    answer = active({ cnf: { 'x5t#S256': CERT }, authorization_details: [
      { type: 'account_information', actions: ['list_accounts'], accounts: ['a1', 'a2'], expires_at: future },
      { type: 'account_information', actions: ['read_balances'], accounts: ['a2', 'a3'] },
      { type: 'account_information', actions: ['read_transactions'], accounts: ['a4'], expires_at: past },
    ] });
    const ok = await stubCall('/ais', headers);
    expect(ok.status).toBe(200);
    expect((ok.body.consent as { accounts: string[] }).accounts).toEqual(['a1', 'a2', 'a3']);
    answer = active({ cnf: { 'x5t#S256': CERT }, authorization_details: [{ type: 'account_information', actions: ['list_accounts'], accounts: ['a4'], expires_at: past }] });
    expect((await stubCall('/ais', headers)).status).toBe(403);
  });

  test('an expired exp is refused even if the server says active', async () => {
    answer = active({ cnf: { 'x5t#S256': CERT }, exp: Math.floor(Date.now() / 1000) - 1 });
    expect((await stubCall('/any', { authorization: 'Bearer old', 'x-test-client-cert': CERT })).error).toBe('invalid_token');
  });

  test('every untrustworthy answer is 503 and never reaches the handler', async () => {
    const before = stubRuns['/any'] ?? 0;
    const answers: Array<[string, () => Promise<Response>]> = [
      ['no active', json({ scope: 'accounts' })],
      ['active as a string', json({ active: 'true' })],
      ['a malformed cnf', active({ cnf: 'x5t' })],
      ['a malformed scope', active({ cnf: { 'x5t#S256': CERT }, scope: ['accounts'] })],
      ['malformed authorization_details', active({ cnf: { 'x5t#S256': CERT }, authorization_details: [{ accounts: ['a1'] }] })],
      ['not JSON', json('<html>maintenance</html>', 200, 'application/json')],
      ['another media type', json({ active: true }, 200, 'text/plain')],
      ['401 (wrong credentials)', json({ error: 'invalid_client' }, 401)],
      ['500', json({ error: 'server_error' }, 500)],
      ['a network error', async () => { throw new TypeError('fetch failed'); }],
      ['no answer within the timeout', () => new Promise<Response>((_resolve, reject) => {
        const signal = seen?.init.signal;
        signal?.addEventListener('abort', () => reject(signal.reason as Error));
      })],
    ];
    for (const [name, respond] of answers) {
      answer = respond;
      const result = await stubCall('/any', { authorization: 'Bearer t', 'x-test-client-cert': CERT });
      expect({ name, status: result.status, body: result.body }).toEqual({ name, status: 503, body: { error: { code: 'INTROSPECTION_UNAVAILABLE', message: expect.any(String) } } });
    }
    expect(stubRuns['/any'] ?? 0).toBe(before);
  });
});
