import { createHash, randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { CookieJar } from 'tough-cookie';

import { createAdminApp } from '../../src/admin/app.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage, type Page } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  authorizeCode, clientAssertion, CLIENT_ASSERTION_TYPE, dpopKeyPair, dpopProof, epoch, publicJwk, pushValid, redeemCode,
  registerResourceServer, type CraftedClient, type KeyPair, type ResourceServerCredentials,
} from '../support/fapi-crafting.js';
import {
  databaseChanges, databaseState, describeExchange, inspect, Recorder, summaryTable, target, type ChangeRules, type Exchange, type FetchOptions, type Target,
} from '../support/hostile.js';
import { enrolTotp, type Authenticator } from '../support/sca.js';
import { createCustomer, REDIRECT_URI, type Customer } from '../support/tpp.js';

/**
 * A hostile-input corpus against every endpoint and page: injection strings, NUL and
 * malformed UTF-8, 1 MB values, 100,000-deep JSON, parameter pollution, prototype keys,
 * path-traversal kids, confusable usernames, CR/LF in header-like values, huge and duplicate
 * headers, wrong content types and methods. Every response must be < 500, leak nothing
 * (stack traces, SQL errors, file paths, library names), carry no X-Powered-By and carry an
 * X-Request-Id; and a family of rejected requests must leave the database as it found it.
 */

let database: TestDatabase;
let app: TestApp;
let regApp: TestApp;
let admin: Server;
let pub: Target;
let reg: Target;
let adm: Target;
let tpp: CraftedClient;
let rs: ResourceServerCredentials;
let alice: Customer;
/** enrolled for SCA: signs in to the consent step of an authorization_details request */
let carol: Customer;
let carolAuthenticator: Authenticator;
let dpopKeys: KeyPair;
let otherKeys: KeyPair;
let accessToken: string;
let refreshToken: string;
let grantId: string;
let writeKey: string;
let readKey: string;

const rec = new Recorder();

const SQLI = ["' OR 1=1 --", "'; drop table users; --"] as const;
const MEGABYTE = 'A'.repeat(1024 * 1024);
const DEEP_JSON = '['.repeat(100_000);
const CRLF = '%0D%0AX-Injected:%201%0D%0ASet-Cookie:%20injected=1';
const TRAVERSAL = '../../../../etc/passwd';
const CYRILLIC_ALICE = '\u0430lice'; // Cyrillic а + "lice"
const GRANT_SCOPE = 'openid offline_access accounts grant_management_query grant_management_revoke';
const enc = encodeURIComponent;
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const b64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

function form(body: string, headers: Record<string, string> = {}): FetchOptions {
  return { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } };
}

function json(body: string, headers: Record<string, string> = {}): FetchOptions {
  return { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } };
}

/** A crafted FAPI client that may also manage its grants. */
async function registerClient(): Promise<CraftedClient> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const key = { kid: 'tpp-key-1', alg: 'ES256', privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid: 'tpp-key-1', alg: 'ES256', use: 'sig' } };
  const created = await app.container.clients.createClient({
    client_name: 'Hostile Corpus TPP',
    redirect_uris: [REDIRECT_URI],
    jwks: { keys: [key.publicJwk] },
    scope: GRANT_SCOPE,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  });
  return { clientId: created.client_id, key, rsaKey: undefined };
}

/** A JWS with exactly this (possibly hostile) protected header JSON, ES256-signed. */
async function signRaw(headerJson: string, claims: Record<string, unknown>, privateKey: CryptoKey): Promise<string> {
  const input = `${b64url(headerJson)}.${b64url(JSON.stringify(claims))}`;
  const signature = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey as webcrypto.CryptoKey, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

/** A DPoP proof whose header carries extra (hostile) members or raw JSON. */
async function hostileProof(keys: KeyPair, htu: string, options: { htm?: string; accessToken?: string; headerExtra?: string; jwkExtra?: string } = {}): Promise<string> {
  const jwk = JSON.stringify(await publicJwk(keys.publicKey)).slice(0, -1) + (options.jwkExtra ?? '') + '}';
  const header = `{"alg":"ES256","typ":"dpop+jwt","jwk":${jwk}${options.headerExtra ?? ''}}`;
  return signRaw(header, {
    htm: options.htm ?? 'POST', htu, iat: epoch(), jti: randomUUID(),
    ...(options.accessToken === undefined ? {} : { ath: createHash('sha256').update(options.accessToken).digest('base64url') }),
  }, keys.privateKey);
}

/** Client authentication fields for tpp (a fresh, valid private_key_jwt assertion). */
async function tppAuth(): Promise<string> {
  return `client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp)}`;
}

/** The failures a sign-in family audits (and no other event). */
const SIGN_IN_FAILURES: ChangeRules = { auditTypes: ['signin.failure', 'security.credential_stuffing'] };

/**
 * Runs one family: database fingerprint (row counts and checksums of the security-relevant
 * tables and token models, hostile.ts), requests, fingerprint again. Fails with every
 * problem response listed (method, path, what was sent, status, body excerpt), with any
 * expectation it broke, and with every database change or audit event beyond `rules`.
 */
async function family(name: string, run: (expectations: string[]) => Promise<void>, rules: ChangeRules = {}): Promise<void> {
  rec.family = name;
  const first = rec.exchanges.length;
  const { db } = app.container.database;
  const before = await databaseState(db);
  const expectations: string[] = [];
  await run(expectations);
  // `rules.mayChange` names what the family's accepted requests change (and says why).
  const changes = await databaseChanges(db, before, rules);
  const mine = rec.exchanges.slice(first);
  const problems = mine.flatMap((exchange) => inspect(exchange).map((problem) => `${describeExchange(exchange)}\n   ⇒ ${problem}`));
  expect(mine.length).toBeGreaterThan(0);
  // One assertion, so a failing family reports its bad responses and its database changes together.
  expect({ problems: [...problems, ...expectations], databaseChanges: changes }).toEqual({ problems: [], databaseChanges: [] });
}

/** Records a broken expectation about one exchange instead of throwing at the first one. */
function expectStatus(expectations: string[], exchange: Exchange, allowed: number[]): void {
  if (!allowed.includes(exchange.status)) expectations.push(`${describeExchange(exchange)}\n   ⇒ expected status ${allowed.join(' or ')}`);
}

function expectNoRedirectTo(expectations: string[], exchange: Exchange, host: string): void {
  if ((exchange.headers.location ?? '').includes(host) || exchange.body.includes(host)) expectations.push(`${describeExchange(exchange)}\n   ⇒ must not send the browser to or mention ${host}: ${exchange.headers.location ?? ''}`);
}

beforeAll(async () => {
  database = await createTestDatabase();
  // A high per-IP failure budget, so every hostile sign-in reaches the credential code instead of the throttle.
  app = await startTestApp(database, { SIGNIN_IP_MAX_FAILURES: '10000' });
  regApp = await startTestApp(database, { SSA_ISSUER: 'https://directory.example', SSA_JWKS_URI: 'http://127.0.0.1:1/jwks' });
  admin = createServer(createAdminApp(app.container).callback());
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  pub = target(app.url);
  reg = target(regApp.url);
  adm = target(`http://127.0.0.1:${(admin.address() as AddressInfo).port}`);

  tpp = await registerClient();
  rs = await registerResourceServer(app);
  alice = await createCustomer(app);
  await createCustomer(app, 'bob', 'bob has another long password');
  carol = await createCustomer(app, 'carol', 'carol has a long password too');
  carolAuthenticator = (await enrolTotp(app, carol)).authenticator;
  dpopKeys = await dpopKeyPair();
  otherKeys = await dpopKeyPair();
  const authorized = await authorizeCode(app, tpp, alice, { scope: GRANT_SCOPE });
  const redeemed = await redeemCode(app, tpp, authorized, dpopKeys);
  if (redeemed.status !== 200) throw new Error(`setup: code redemption failed ${redeemed.status} ${redeemed.text}`);
  accessToken = String(redeemed.body.access_token);
  refreshToken = String(redeemed.body.refresh_token);
  grantId = String(redeemed.body.grant_id);
  writeKey = (await app.container.apiKeys.create('hostile write', ['admin:read', 'admin:write'], { actor: 'test' })).key;
  readKey = (await app.container.apiKeys.create('hostile read', ['admin:read'], { actor: 'test' })).key;
}, 60_000);

afterAll(async () => {
  console.info(summaryTable(rec.exchanges));
  // HOSTILE_DUMP=<file>: every exchange (status, headers, body excerpt) as JSON lines, for a report.
  if (process.env.HOSTILE_DUMP) {
    writeFileSync(process.env.HOSTILE_DUMP, rec.exchanges.map((e) => JSON.stringify({ ...e, body: e.body.slice(0, 400), problems: inspect(e) })).join('\n'));
  }
  admin?.closeAllConnections();
  await new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve()));
  await regApp?.close();
  await app?.close();
  await database?.drop();
});

describe('hostile input', () => {
  test('discovery, JWKS, static, health and unknown paths', () => family('discovery/static/health', async (expectations) => {
    await rec.fetch(pub, 'discovery with SQL in the query', `/.well-known/openid-configuration?x=${enc(SQLI[0])}`);
    await rec.fetch(pub, 'discovery with %00 in the path', '/.well-known/openid-configuration%00');
    await rec.fetch(pub, 'discovery POSTed 100,000-deep JSON', '/.well-known/openid-configuration', json(DEEP_JSON));
    await rec.fetch(pub, 'discovery PUT', '/.well-known/openid-configuration', { method: 'PUT', body: 'x' });
    await rec.fetch(pub, 'discovery DELETE', '/.well-known/openid-configuration', { method: 'DELETE' });
    const jwks = await rec.fetch(pub, 'jwks with traversal kid in the query', `/jwks?kid=${enc(TRAVERSAL)}`);
    expectStatus(expectations, jwks, [200]);
    await rec.fetch(pub, 'jwks with %2e%2e traversal', '/jwks/%2e%2e/%2e%2e/etc/passwd');
    await rec.fetch(pub, 'jwks DELETE', '/jwks', { method: 'DELETE' });
    await rec.fetch(pub, 'jwks POSTed 1 MB form', '/jwks', form(`a=${MEGABYTE}`));
    await rec.fetch(pub, 'healthz with NUL and surrogate in the query', '/healthz?%00=%ED%A0%80&x=%C0%AF');
    await rec.fetch(pub, 'healthz POST', '/healthz', form('a=b'));
    await rec.fetch(pub, 'healthz HEAD', '/healthz', { method: 'HEAD' });
    await rec.fetch(pub, 'readyz with a CR/LF-shaped request id', '/readyz', { headers: { 'x-request-id': `abcdefgh${CRLF}` } });
    await rec.fetch(pub, 'readyz with a 64-char-plus request id', '/readyz', { headers: { 'x-request-id': 'a'.repeat(65) } });
    await rec.fetch(pub, 'readyz with an SQL request id', '/readyz', { headers: { 'x-request-id': SQLI[1] } });
    await rec.fetch(pub, 'stylesheet with SQL in the query', `/static/portcullis.css?${enc(SQLI[1])}`);
    for (const path of ['/static/%2e%2e%2f%2e%2e%2fpackage.json', '/static/..%2f..%2f..%2f..%2fetc%2fpasswd', '/static/....//....//etc/passwd', '/static/portcullis.css%00.js', '/static/%C0%AE%C0%AE/%C0%AE%C0%AE/etc/passwd']) {
      const response = await rec.fetch(pub, `static traversal ${path}`, path);
      expectStatus(expectations, response, [400, 404]);
    }
    for (const path of ['/%00', '/%ED%A0%80', '/%C0%AF', '/%FF', `/${enc(SQLI[0])}`, '/..%2f..%2f..%2fetc%2fpasswd', '/.env', '/.git/config', '/package.json', '/dist/src/main.js', `/${'x'.repeat(8000)}`]) {
      const response = await rec.fetch(pub, `unknown path ${path.slice(0, 40)}`, path);
      expectStatus(expectations, response, [400, 404]);
    }
    await rec.fetch(pub, 'OPTIONS /token (CORS preflight from evil origin)', '/token', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    await rec.fetch(pub, 'PATCH /', '/', { method: 'PATCH', body: '{}' });
    await rec.fetch(pub, 'session end with hostile id_token_hint and CR/LF redirect', `/session/end?id_token_hint=${enc(SQLI[0])}&post_logout_redirect_uri=https://evil.example/${CRLF}&state=${CRLF}`, { headers: { accept: 'text/html' } });
    await rec.fetch(pub, 'session end confirm with junk xsrf', '/session/end/confirm', form(`xsrf=${enc(SQLI[1])}&logout=yes`, { accept: 'text/html' }));
  }));

  test('pushed authorization requests (/request)', () => family('PAR /request', async (expectations) => {
    const refused = async (label: string, options: FetchOptions) => expectStatus(expectations, await rec.fetch(pub, label, '/request', options), [400, 401, 413, 415]);
    await refused('no body, no content type', { method: 'POST' });
    await refused('empty form', form(''));
    await refused('SQL client_id', form(`client_id=${enc(SQLI[0])}&response_type=code`));
    await refused('SQL client_id (drop table)', form(`client_id=${enc(SQLI[1])}&response_type=code&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${enc(SQLI[1])}`));
    await refused('duplicate client_id', form('client_id=a&client_id=b&response_type=code'));
    await refused('array parameters client_id[] / scope[]', form('client_id[]=x&scope[]=openid&response_type[]=code'));
    await refused('NUL in client_id', form(`client_id=${enc(tpp.clientId)}%00&response_type=code`));
    await refused('lone surrogate client_id', form('client_id=%ED%A0%80&response_type=code'));
    await refused('overlong UTF-8 client_id', form('client_id=%C0%AF&response_type=code'));
    await refused('invalid UTF-8 client_id', form('client_id=%FF%FE&response_type=code'));
    await refused('1 MB field', form(`client_id=${enc(tpp.clientId)}&state=${MEGABYTE}`));
    await refused('100,000-deep JSON', json(DEEP_JSON));
    await refused('JSON with __proto__', json(`{"client_id":${JSON.stringify(tpp.clientId)},"__proto__":{"admin":true},"constructor":{"prototype":{"polluted":1}}}`));
    await refused('text/plain', { method: 'POST', body: `client_id=${tpp.clientId}`, headers: { 'content-type': 'text/plain' } });
    await refused('multipart', { method: 'POST', body: '--x\r\nContent-Disposition: form-data; name="client_id"\r\n\r\nx\r\n--x--\r\n', headers: { 'content-type': 'multipart/form-data; boundary=x' } });
    await rec.fetch(pub, 'GET /request', `/request?client_id=${enc(SQLI[0])}`);
    await rec.fetch(pub, 'PUT /request', '/request', { method: 'PUT', body: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });

    const base = (extra: string) => `response_type=code&redirect_uri=${enc(REDIRECT_URI)}&scope=openid%20accounts&code_challenge=${'E'.repeat(43)}&code_challenge_method=S256&state=s&${extra}`;
    const details = (value: string) => base(`authorization_details=${enc(value)}`);
    for (const [label, value] of [
      ['authorization_details with __proto__', '[{"type":"account_information","actions":["list_accounts"],"__proto__":{"admin":true}},{"__proto__":{"type":"payment_initiation"}}]'],
      ['authorization_details with constructor.prototype', '[{"type":"account_information","actions":["list_accounts"],"constructor":{"prototype":{"polluted":true}}}]'],
      ['authorization_details type __proto__', '[{"type":"__proto__","actions":["list_accounts"]}]'],
      ['authorization_details as an object with __proto__', '{"__proto__":null,"type":"account_information"}'],
      ['authorization_details 30,000-deep array', '['.repeat(30_000)],
      ['authorization_details with SQL', `[{"type":"account_information","actions":["${SQLI[1]}"],"accounts":["${SQLI[0]}"]}]`],
      ['authorization_details with NUL and surrogate', '[{"type":"account_information\\u0000","actions":["\\ud800"]}]'],
      ['authorization_details payment with hostile amount', '[{"type":"payment_initiation","instructedAmount":{"currency":"GBP\\u0000","amount":"1e999"},"creditorName":"\' OR 1=1 --","creditorAccount":{"iban":"../../etc/passwd"}}]'],
    ] as const) {
      await rec.fetch(pub, label, '/request', form(`${await tppAuth()}&${details(value)}`));
    }
    await refused('authorization_details 1 MB', form(`${await tppAuth()}&${details(`[{"type":"account_information","actions":["${MEGABYTE}"]}]`)}`));
    await refused('client_assertion with a traversal kid', form(`client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp, { header: { kid: TRAVERSAL } })}&${base('')}`));
    await refused('client_assertion with file: jku and x5u', form(`client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp, { header: { kid: '/dev/zero', jku: 'file:///etc/passwd', x5u: 'file:///etc/passwd' } })}&${base('')}`));
    await refused('client_assertion alg none', form(`client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp, { unsigned: true })}&${base('')}`));
    await rec.fetch(pub, 'client_assertion with a __proto__ member in its (validly signed) header', '/request', form(`client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await signRaw('{"alg":"ES256","kid":"tpp-key-1","__proto__":{"alg":"none"}}', { iss: tpp.clientId, sub: tpp.clientId, aud: app.url, jti: randomUUID(), iat: epoch(), exp: epoch() + 60 }, tpp.key.privateKey)}&${base('')}`));
    await refused('duplicate client_assertion', form(`${await tppAuth()}&client_assertion=${enc(SQLI[0])}&${base('')}`));
    const requestObject = await new SignJWT({ iss: tpp.clientId, aud: app.url, client_id: tpp.clientId, response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'openid', exp: epoch() + 60, nbf: epoch(), jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: TRAVERSAL, typ: 'oauth-authz-req+jwt' }).sign(tpp.key.privateKey);
    await refused('request object with a traversal kid', form(`${await tppAuth()}&request=${requestObject}`));
    await refused('request object that is SQL', form(`${await tppAuth()}&request=${enc(SQLI[1])}`));
    await refused('redirect_uri with CR/LF', form(`${await tppAuth()}&response_type=code&redirect_uri=${enc(REDIRECT_URI)}${CRLF}&scope=openid&code_challenge=${'E'.repeat(43)}&code_challenge_method=S256`));
    await refused('Basic auth of SQL', form(base(''), { authorization: `Basic ${b64(`${SQLI[1]}:${SQLI[0]}`)}` }));
    await refused('Basic auth with malformed percent-encoding', form(base(''), { authorization: `Basic ${b64('%E0%A4%A:%ZZ')}` }));
    await refused('Basic auth with NUL', form(base(''), { authorization: `Basic ${b64('a\u0000b:c\u0000d')}` }));
    await refused('DPoP header of SQL', form(`${await tppAuth()}&${base('')}`, { dpop: SQLI[0] }));
    await rec.fetch(pub, 'DPoP proof (validly signed) with a traversal kid and __proto__ in the jwk', '/request', form(`${await tppAuth()}&${base('')}`, { dpop: await hostileProof(dpopKeys, `${app.url}/request`, { headerExtra: `,"kid":${JSON.stringify(TRAVERSAL)}`, jwkExtra: ',"__proto__":{"kty":"oct"}' }) }));
    // Accepted-shape requests with hostile values (no tokens, grants or users can come of a PAR).
    await rec.fetch(pub, 'valid client, state with NUL, surrogate and CR/LF', '/request', form(`${await tppAuth()}&response_type=code&redirect_uri=${enc(REDIRECT_URI)}&scope=openid&code_challenge=${'E'.repeat(43)}&code_challenge_method=S256&state=%00%ED%A0%80${CRLF}`));
    await rec.fetch(pub, 'valid client, SQL scope and code_challenge', '/request', form(`${await tppAuth()}&response_type=code&redirect_uri=${enc(REDIRECT_URI)}&scope=${enc(SQLI[1])}&code_challenge=${enc(SQLI[0])}&code_challenge_method=S256`));
    await rec.fetch(pub, 'valid client, 2,000 scopes', '/request', form(`${await tppAuth()}&response_type=code&redirect_uri=${enc(REDIRECT_URI)}&scope=${Array.from({ length: 2000 }, (_, i) => `s${i}`).join('%20')}&code_challenge=${'E'.repeat(43)}&code_challenge_method=S256`));
    // The accepted-shape requests above are stored as pushed requests (nothing else).
  }, { mayChange: ['oidc_models:PushedAuthorizationRequest'] }));

  test('authorization endpoint (/auth) and CR/LF in the echoed state', () => family('authorization /auth', async (expectations) => {
    const page = { headers: { accept: 'text/html' } };
    for (const [label, query] of [
      ['no parameters', ''],
      ['SQL client_id', `client_id=${enc(SQLI[0])}`],
      ['SQL request_uri', `client_id=${enc(tpp.clientId)}&request_uri=${enc(`urn:ietf:params:oauth:request_uri:${SQLI[1]}`)}`],
      ['NUL request_uri', `client_id=${enc(tpp.clientId)}&request_uri=urn:ietf:params:oauth:request_uri:%00`],
      ['NUL client_id, no request_uri', `client_id=${enc(tpp.clientId)}%00&response_type=code`],
      ['NUL client_id with a request_uri', `client_id=abc%00def&request_uri=urn:ietf:params:oauth:request_uri:abc`],
      ['duplicate client_id', `client_id=a&client_id=b&request_uri=x`],
      ['array parameters', 'client_id[]=x&request_uri[]=y&scope[]=openid'],
      ['traversal request_uri', `client_id=${enc(tpp.clientId)}&request_uri=${enc(TRAVERSAL)}`],
      ['surrogate / overlong UTF-8', 'client_id=%ED%A0%80&request_uri=%C0%AF'],
      ['invalid UTF-8', 'client_id=%FF&request_uri=%FE'],
      ['unpushed request with CR/LF state to an evil redirect_uri', `client_id=${enc(tpp.clientId)}&response_type=code&redirect_uri=https://evil.example/cb&state=${CRLF}&scope=openid`],
      ['12 KB state (unpushed)', `client_id=${enc(tpp.clientId)}&state=${'A'.repeat(12_000)}`],
    ] as const) {
      const response = await rec.fetch(pub, label, `/auth?${query}`, page);
      expectNoRedirectTo(expectations, response, 'evil.example');
      expectStatus(expectations, response, [400, 414, 431]);
    }
    await rec.fetch(pub, 'POST /auth', '/auth', form(`client_id=${enc(tpp.clientId)}&request_uri=x`, page.headers));
    await rec.fetch(pub, 'POST /auth 1 MB', '/auth', form(`client_id=${MEGABYTE}`, page.headers));
    await rec.fetch(pub, 'POST /auth 100,000-deep JSON', '/auth', json(DEEP_JSON, page.headers));
    await rec.fetch(pub, 'PUT /auth', '/auth', { method: 'PUT' });

    // A real pushed request whose state carries CR/LF: the error redirect must keep it encoded.
    const pushed = await pushValid(app, tpp, { state: `x\r\nX-Injected: 1\r\nSet-Cookie: injected=1`, scope: 'openid accounts' });
    const jar = new CookieJar();
    const start = await rec.fetch(pub, 'pushed request with CR/LF state, extra hostile query', `${pushed.url.pathname}${pushed.url.search}&redirect_uri=https://evil.example/cb&state=${CRLF}`, { ...page, jar });
    expectNoRedirectTo(expectations, start, 'evil.example');
    const local = (location: string | undefined) => (location === undefined ? undefined : location.startsWith(app.url) ? location.slice(app.url.length) : location.startsWith('/') ? location : undefined);
    let current: Exchange = start;
    for (let hops = 0; local(current.headers.location) !== undefined && hops < 5; hops += 1) {
      current = await rec.fetch(pub, 'follow redirect', local(current.headers.location)!, { ...page, jar });
    }
    const abortCsrf = /action="[^"]*\/abort"[\s\S]*?name="csrf" value="([^"]+)"/.exec(current.body)?.[1];
    const uid = /\/interaction\/([^/"]+)\/abort/.exec(current.body)?.[1];
    if (abortCsrf === undefined || uid === undefined) {
      expectations.push(`could not reach the sign-in page for the CR/LF-state request: ${describeExchange(current)}`);
    } else {
      let step = await rec.fetch(pub, 'abort the CR/LF-state request', `/interaction/${uid}/abort`, { ...form(`csrf=${abortCsrf}`, page.headers), jar });
      for (let hops = 0; local(step.headers.location) !== undefined && hops < 5; hops += 1) {
        step = await rec.fetch(pub, 'follow the abort redirect', local(step.headers.location)!, { ...page, jar });
      }
      const callback = step.headers.location ?? '';
      if (!callback.startsWith(REDIRECT_URI)) expectations.push(`the abort did not redirect to the client: ${describeExchange(step)}`);
      if (/[\r\n]/.test(callback)) expectations.push(`raw CR/LF in Location: ${JSON.stringify(callback)}`);
      const state = callback.startsWith(REDIRECT_URI) ? new URL(callback).searchParams.get('state') : null;
      if (state !== null && state !== 'x\r\nX-Injected: 1\r\nSet-Cookie: injected=1') expectations.push(`state was not echoed verbatim (encoded): ${JSON.stringify(state)}`);
    }
    // oidc-provider consumes a request_uri when it issues a code; after a cancelled authorization
    // the same request_uri may start a new sign-in within its lifetime (not a hostile-input failure).
    const replay = await rec.fetch(pub, 'the request_uri again after the cancelled authorization', `${pushed.url.pathname}${pushed.url.search}`, page);
    expectStatus(expectations, replay, [400, 302, 303]);
    expectNoRedirectTo(expectations, replay, 'evil.example');
    // The pushed request of the CR/LF-state flow is stored (it is refused only at the client's callback).
  }, { mayChange: ['oidc_models:PushedAuthorizationRequest'] }));

  test('token endpoint (/token)', () => family('token /token', async (expectations) => {
    const htu = `${app.url}/token`;
    const refused = async (label: string, options: FetchOptions) => {
      const response = await rec.fetch(pub, label, '/token', options);
      expectStatus(expectations, response, [400, 401, 413, 415]);
      if (/access_token/.test(response.body)) expectations.push(`${describeExchange(response)}\n   ⇒ issued a token`);
    };
    await refused('no body', { method: 'POST' });
    await refused('empty form', form(''));
    for (const value of SQLI) await refused(`grant_type ${value}`, form(`grant_type=${enc(value)}`));
    const proof = () => dpopProof(dpopKeys, { htu });
    for (const [label, code] of [['SQL code', enc(SQLI[0])], ['drop-table code', enc(SQLI[1])], ['NUL code', 'abc%00def'], ['surrogate code', '%ED%A0%80'], ['overlong code', '%C0%AF'], ['invalid UTF-8 code', '%FF%FE'], ['traversal code', enc(TRAVERSAL)]] as const) {
      await refused(label, form(`${await tppAuth()}&grant_type=authorization_code&code=${code}&code_verifier=${'v'.repeat(43)}&redirect_uri=${enc(REDIRECT_URI)}`, { dpop: await proof() }));
    }
    await refused('duplicate grant_type', form(`${await tppAuth()}&grant_type=client_credentials&grant_type=authorization_code`, { dpop: await proof() }));
    await refused('array grant_type[]', form(`${await tppAuth()}&grant_type[]=client_credentials&scope[]=accounts`, { dpop: await proof() }));
    await refused('1 MB code', form(`grant_type=authorization_code&code=${MEGABYTE}`));
    await refused('100,000-deep JSON', json(DEEP_JSON));
    await refused('JSON with __proto__', json(`{"grant_type":"client_credentials","client_id":${JSON.stringify(tpp.clientId)},"__proto__":{"scope":"accounts"}}`));
    await refused('text/plain', { method: 'POST', body: 'grant_type=client_credentials', headers: { 'content-type': 'text/plain' } });
    await refused('content type with a hostile charset', { method: 'POST', body: 'grant_type=client_credentials', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=../../etc/passwd' } });
    await rec.fetch(pub, 'GET /token', `/token?grant_type=client_credentials&client_id=${enc(SQLI[0])}`);
    await rec.fetch(pub, 'PUT /token', '/token', { method: 'PUT', body: 'a=b' });
    await rec.fetch(pub, 'DELETE /token', '/token', { method: 'DELETE' });
    const cc = async () => `${await tppAuth()}&grant_type=client_credentials&scope=accounts`;
    await refused('client credentials, DPoP header of SQL', form(await cc(), { dpop: SQLI[1] }));
    await refused('client credentials, 8 KB DPoP header', form(await cc(), { dpop: `${'A'.repeat(8000)}.${'B'.repeat(100)}.C` }));
    // Validly signed proofs whose headers carry extra hostile members: RFC 9449 lets a server ignore
    // them, so a token may be issued (ClientCredentials may grow); what matters is no 5xx and no leak.
    await rec.fetch(pub, 'client credentials, valid DPoP proof with a traversal kid and file: jku', '/token', form(await cc(), { dpop: await hostileProof(dpopKeys, htu, { htm: 'POST', headerExtra: `,"kid":${JSON.stringify(TRAVERSAL)},"jku":"file:///etc/passwd"`, jwkExtra: `,"kid":${JSON.stringify(TRAVERSAL)}` }) }));
    await rec.fetch(pub, 'client credentials, valid DPoP proof with __proto__ in header and jwk', '/token', form(await cc(), { dpop: await hostileProof(dpopKeys, htu, { headerExtra: ',"__proto__":{"alg":"none"}', jwkExtra: ',"__proto__":{"kty":"oct","k":"AAAA"}' }) }));
    await refused('client credentials, traversal-kid proof for the wrong method', form(await cc(), { dpop: await hostileProof(dpopKeys, htu, { htm: 'GET', headerExtra: `,"kid":${JSON.stringify(TRAVERSAL)}` }) }));
    await refused('client credentials, proof whose signature is not the embedded key\'s', form(await cc(), { dpop: await dpopProof(dpopKeys, { htu, signingKey: otherKeys.privateKey }) }));
    await refused('client credentials, proof with alg none', form(await cc(), { dpop: await dpopProof(dpopKeys, { htu, alg: 'none' }) }));
    await refused('NUL client_id', form(`client_id=${enc(tpp.clientId)}%00&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp)}&grant_type=client_credentials&scope=accounts`, { dpop: await proof() }));
    await refused('NUL client_id in Basic auth', form('grant_type=client_credentials', { authorization: `Basic ${b64('abc%00:secret')}` }));
    await refused('client credentials, DPoP proof with htu containing SQL', form(await cc(), { dpop: await dpopProof(dpopKeys, { htu: `${htu}?${enc(SQLI[0])}`, extraClaims: { htm: SQLI[1] } }) }));
    await refused('client assertion with a traversal kid', form(`client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp, { header: { kid: TRAVERSAL } })}&grant_type=client_credentials&scope=accounts`, { dpop: await proof() }));
    await refused('client assertion alg none', form(`client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp, { unsigned: true })}&grant_type=client_credentials&scope=accounts`, { dpop: await proof() }));
    await refused('client assertion type of SQL', form(`client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(SQLI[0])}&client_assertion=x&grant_type=client_credentials`));
    await refused('refresh_token of SQL', form(`${await tppAuth()}&grant_type=refresh_token&refresh_token=${enc(SQLI[1])}`, { dpop: await proof() }));
    await refused('the real refresh token with a proof for another URL', form(`${await tppAuth()}&grant_type=refresh_token&refresh_token=${enc(refreshToken)}`, { dpop: await dpopProof(dpopKeys, { htu: `${app.url}/token/${enc(SQLI[0])}` }) }));
    await refused('the real refresh token with a traversal-kid proof for the wrong method', form(`${await tppAuth()}&grant_type=refresh_token&refresh_token=${enc(refreshToken)}`, { dpop: await hostileProof(otherKeys, htu, { htm: 'PUT', headerExtra: `,"kid":${JSON.stringify(TRAVERSAL)}` }) }));
    await refused('the real refresh token with a badly signed proof', form(`${await tppAuth()}&grant_type=refresh_token&refresh_token=${enc(refreshToken)}`, { dpop: await dpopProof(dpopKeys, { htu, signingKey: otherKeys.privateKey }) }));
    await refused('the real refresh token with NUL appended', form(`${await tppAuth()}&grant_type=refresh_token&refresh_token=${enc(refreshToken)}%00`, { dpop: await proof() }));
    await refused('the real refresh token, no client authentication', form(`client_id=${enc(tpp.clientId)}&grant_type=refresh_token&refresh_token=${enc(refreshToken)}`, { dpop: await proof() }));
    await refused('Basic auth of SQL', form('grant_type=client_credentials', { authorization: `Basic ${b64(`${SQLI[0]}:${SQLI[1]}`)}` }));
    await refused('Basic auth with malformed percent-encoding', form('grant_type=client_credentials', { authorization: `Basic ${b64('%E0%A4%A:%')}` }));
    await refused('Basic auth that is not base64', form('grant_type=client_credentials', { authorization: 'Basic %%%' }));
    await refused('Bearer auth of SQL', form('grant_type=client_credentials', { authorization: `Bearer ${SQLI[0]}` }));
    await refused('Authorization with a CR/LF-shaped value', form('grant_type=client_credentials', { authorization: `Basic abc${CRLF}` }));
    // Validly signed DPoP proofs with extra header members may be honoured (a token issued).
  }, { mayChange: ['oidc_models:ClientCredentials'], auditTypes: ['token.issued'] }));

  test('introspection and revocation', () => family('introspection/revocation', async (expectations) => {
    const rsAuth = { authorization: rs.authorization };
    for (const path of ['/token/introspection', '/token/revocation']) {
      const call = (label: string, options: FetchOptions) => rec.fetch(pub, `${path}: ${label}`, path, options);
      await call('no authentication, SQL token', form(`token=${enc(SQLI[0])}`));
      for (const [label, token] of [['SQL token', enc(SQLI[0])], ['drop-table token', enc(SQLI[1])], ['NUL token', 'a%00b'], ['surrogate token', '%ED%A0%80'], ['overlong token', '%C0%AF'], ['invalid UTF-8 token', '%FF'], ['traversal token', enc(TRAVERSAL)]] as const) {
        const response = await call(label, form(`token=${token}&token_type_hint=${enc(SQLI[0])}`, rsAuth));
        expectStatus(expectations, response, [200, 400]);
        if (/"active"\s*:\s*true/.test(response.body)) expectations.push(`${describeExchange(response)}\n   ⇒ reported a hostile token active`);
      }
      await call('duplicate token', form(`token=${enc(accessToken)}&token=${enc(accessToken)}`, rsAuth));
      await call('array token[]', form(`token[]=${enc(accessToken)}`, rsAuth));
      expectStatus(expectations, await call('1 MB token', form(`token=${MEGABYTE}`, rsAuth)), [400, 413]);
      expectStatus(expectations, await call('100,000-deep JSON', json(DEEP_JSON, rsAuth)), [400, 401, 413, 415]);
      await call('JSON with __proto__', json(`{"token":${JSON.stringify(accessToken)},"__proto__":{"active":true}}`, rsAuth));
      await call('text/plain', { method: 'POST', body: `token=${accessToken}`, headers: { 'content-type': 'text/plain', ...rsAuth } });
      await call('empty body', { method: 'POST', headers: rsAuth });
      await rec.fetch(pub, `${path}: GET with the token in the query`, `${path}?token=${enc(accessToken)}`);
      await call('Basic auth of SQL with the real token', form(`token=${enc(accessToken)}`, { authorization: `Basic ${b64(`${SQLI[1]}:x`)}` }));
      await call('Basic auth with malformed percent-encoding', form(`token=${enc(accessToken)}`, { authorization: `Basic ${b64(`${rs.clientId}:%E0%A4%A`)}` }));
      await call('NUL client_id with a client assertion', form(`token=${enc(accessToken)}&client_id=${enc(tpp.clientId)}%00&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp)}`));
      await call('NUL client id in Basic auth', form(`token=${enc(accessToken)}`, { authorization: `Basic ${b64(`${rs.clientId}%00:${rs.secret}`)}` }));
      await call('client assertion with a traversal kid', form(`token=${enc(refreshToken)}&client_id=${enc(tpp.clientId)}&client_assertion_type=${enc(CLIENT_ASSERTION_TYPE)}&client_assertion=${await clientAssertion(app, tpp, { header: { kid: TRAVERSAL } })}`));
    }
    const unauthenticatedRevoke = await rec.fetch(pub, 'revoke the real refresh token without authentication', '/token/revocation', form(`token=${enc(refreshToken)}&client_id=${enc(tpp.clientId)}`));
    expectStatus(expectations, unauthenticatedRevoke, [400, 401]);
    const introspection = await rec.fetch(pub, 'introspect the real token with a SQL hint', '/token/introspection', form(`token=${enc(accessToken)}&token_type_hint=${enc(SQLI[1])}`, rsAuth));
    expectStatus(expectations, introspection, [200, 400]);
  }));

  test('userinfo (/me)', () => family('userinfo /me', async (expectations) => {
    const htu = `${app.url}/me`;
    const me = async (label: string, options: FetchOptions = {}, validProof = false) => {
      const response = await rec.fetch(pub, label, '/me', options);
      if (!validProof && /"sub"/.test(response.body)) expectations.push(`${describeExchange(response)}\n   ⇒ returned claims`);
      return response;
    };
    await me('no token');
    await me('Bearer of SQL', { headers: { authorization: `Bearer ${SQLI[0]}` } });
    await me('DPoP of SQL', { headers: { authorization: `DPoP ${SQLI[1]}`, dpop: SQLI[1] } });
    await me('8 KB Authorization', { headers: { authorization: `DPoP ${'A'.repeat(8000)}` } });
    await me('Authorization with a CR/LF-shaped value', { headers: { authorization: `DPoP abc${CRLF}` } });
    await me('real token downgraded to Bearer', { headers: { authorization: `Bearer ${accessToken}` } });
    await me('real token, proof of SQL', { headers: { authorization: `DPoP ${accessToken}`, dpop: SQLI[0] } });
    await me('real token, proof with a traversal kid', { headers: { authorization: `DPoP ${accessToken}`, dpop: await hostileProof(otherKeys, htu, { htm: 'GET', accessToken, headerExtra: `,"kid":${JSON.stringify(TRAVERSAL)}` }) } });
    // The bound key, validly signed, with an extra __proto__ member in the jwk: may be honoured.
    await me('real token, valid proof with __proto__ in the jwk', { headers: { authorization: `DPoP ${accessToken}`, dpop: await hostileProof(dpopKeys, htu, { htm: 'GET', accessToken, jwkExtra: ',"__proto__":{"kty":"oct","k":"AAAA"}' }) } }, true);
    await me('real token, proof whose jwk __proto__ smuggles another key', { headers: { authorization: `DPoP ${accessToken}`, dpop: await hostileProof(otherKeys, htu, { htm: 'GET', accessToken, jwkExtra: `,"__proto__":${JSON.stringify(await publicJwk(dpopKeys.publicKey))}` }) } });
    await me('real token, proof with htm of SQL', { headers: { authorization: `DPoP ${accessToken}`, dpop: await dpopProof(dpopKeys, { htu, htm: SQLI[1], accessToken }) } });
    await me('real token, proof of another key', { headers: { authorization: `DPoP ${accessToken}`, dpop: await dpopProof(otherKeys, { htu, htm: 'GET', accessToken }) } });
    await me('token with NUL', { headers: { authorization: 'DPoP abc%00def' } });
    await me('POST text/plain', { method: 'POST', body: `access_token=${enc(SQLI[0])}`, headers: { 'content-type': 'text/plain' } });
    await me('POST form access_token of SQL', form(`access_token=${enc(SQLI[0])}`));
    await me('POST 1 MB form', form(`access_token=${MEGABYTE}`));
    await me('POST 100,000-deep JSON', json(DEEP_JSON));
    await me('PUT', { method: 'PUT', body: '{}' });
    await me('DELETE', { method: 'DELETE' });
    await rec.fetch(pub, 'token in the query', `/me?access_token=${enc(SQLI[0])}&access_token=x`);
  }));

  test('dynamic client registration (/reg)', () => family('registration /reg', async (expectations) => {
    const directoryKey = await generateKeyPair('ES256');
    const ssa = (header: Record<string, unknown>) => new SignJWT({ iss: 'https://directory.example', software_id: SQLI[1], software_client_name: SQLI[0], software_redirect_uris: [`https://tpp.example/cb${CRLF}`], software_jwks_uri: 'file:///etc/passwd', software_roles: ['AISP'], org_id: '../../', org_name: '\u0000' })
      .setProtectedHeader({ alg: 'ES256', ...header }).setIssuedAt().setExpirationTime('5m').setJti(randomUUID()).sign(directoryKey.privateKey);
    const refused = async (label: string, options: FetchOptions, path = '/reg') => {
      const response = await rec.fetch(reg, label, path, options);
      expectStatus(expectations, response, [400, 401, 403, 404, 405, 413, 415]);
      if (/registration_access_token|"client_id"\s*:/.test(response.body)) expectations.push(`${describeExchange(response)}\n   ⇒ registered a client`);
    };
    await refused('no body', { method: 'POST' });
    await refused('text/plain', { method: 'POST', body: '{}', headers: { 'content-type': 'text/plain' } });
    await refused('form', form('software_statement=x'));
    await refused('empty JSON object', json('{}'));
    for (const body of ['[]', 'null', '"x"', '1e999', 'true', '{', '{"a":1}garbage']) await refused(`JSON ${body}`, json(body));
    await refused('SQL software statement', json(JSON.stringify({ software_statement: SQLI[1], client_name: SQLI[0] })));
    await refused('software statement with a traversal kid and file: jku', json(JSON.stringify({ software_statement: await ssa({ kid: TRAVERSAL, jku: 'file:///etc/passwd', x5u: 'file:///etc/passwd' }) })));
    await refused('software statement with alg none', json(JSON.stringify({ software_statement: `${b64url('{"alg":"none","kid":"../../etc/passwd"}')}.${b64url('{"iss":"https://directory.example"}')}.` })));
    await refused('1 MB member', json(JSON.stringify({ software_statement: 'x', client_name: MEGABYTE })));
    await refused('100,000-deep JSON', json(DEEP_JSON));
    await refused('30,000-deep JSON under the size limit', json(`{"software_statement":${'['.repeat(30_000)}${']'.repeat(30_000)}}`));
    await refused('__proto__ and constructor members', json(`{"__proto__":{"admin":true,"software_statement":"x"},"constructor":{"prototype":{"polluted":true}},"software_statement":${JSON.stringify(await ssa({ kid: 'k' }))}}`));
    await refused('duplicate members', json('{"software_statement":"a","software_statement":"b","redirect_uris":["https://a"],"redirect_uris":"b"}'));
    await refused('NUL and lone surrogate members', json('{"software_statement":"a\\u0000b","client_name":"\\ud800","redirect_uris":["https://x\\u0000.example"]}'));
    await rec.http(reg, 'invalid UTF-8 bytes in the JSON body', { method: 'POST', path: '/reg', headers: { 'content-type': 'application/json' }, body: Buffer.from([0x7b, 0x22, 0x73, 0x22, 0x3a, 0x22, 0xff, 0xc0, 0xaf, 0x22, 0x7d]) });
    await refused('GET /reg', {}, '/reg');
    await refused('DELETE /reg', { method: 'DELETE' }, '/reg');
    for (const id of [enc(SQLI[0]), '%00', '%ED%A0%80', '%C0%AF', '%FF', enc(TRAVERSAL)]) {
      await refused(`GET /reg/${id}`, { headers: { authorization: `Bearer ${SQLI[0]}` } }, `/reg/${id}`);
      await refused(`PUT /reg/${id}`, { ...json(JSON.stringify({ software_statement: 'x' })), method: 'PUT', headers: { 'content-type': 'application/json', authorization: 'Bearer abc' } }, `/reg/${id}`);
      await refused(`DELETE /reg/${id}`, { method: 'DELETE', headers: { authorization: 'Bearer abc' } }, `/reg/${id}`);
    }
    // Registration is off on the main app: nothing there either.
    const off = await rec.fetch(pub, 'POST /reg where registration is disabled', '/reg', json(JSON.stringify({ software_statement: 'x', redirect_uris: [REDIRECT_URI] })));
    expectStatus(expectations, off, [400, 404]);
  }));

  test('grant management (/grants/:id)', () => family('grant management', async (expectations) => {
    const call = async (label: string, method: string, id: string, auth: 'none' | 'sql' | 'token' | 'bearer' | 'other-key' | 'traversal-kid') => {
      const path = `/grants/${id}`;
      const headers: Record<string, string> = {};
      if (auth === 'sql') headers.authorization = `DPoP ${SQLI[0]}`;
      if (auth === 'bearer') headers.authorization = `Bearer ${accessToken}`;
      if (auth === 'token' || auth === 'other-key' || auth === 'traversal-kid') {
        headers.authorization = `DPoP ${accessToken}`;
        const htu = `${app.url}${path}`;
        headers.dpop = auth === 'token'
          ? await dpopProof(dpopKeys, { htu, htm: method, accessToken })
          : auth === 'other-key'
            ? await dpopProof(otherKeys, { htu, htm: method, accessToken })
            : await hostileProof(otherKeys, htu, { htm: method, accessToken, headerExtra: `,"kid":${JSON.stringify(TRAVERSAL)}` });
      }
      return rec.fetch(pub, label, path, { method, headers });
    };
    await call('no token', 'GET', 'x', 'none');
    await call('SQL token, SQL id', 'GET', enc(SQLI[0]), 'sql');
    for (const id of [enc(SQLI[0]), enc(SQLI[1]), '%00', '%ED%A0%80', '%C0%AF', '%FF', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', 'x'.repeat(8000)]) {
      const response = await call(`real token, id ${id.slice(0, 30)}`, 'GET', id, 'token');
      expectStatus(expectations, response, [400, 404, 414, 431]);
    }
    expectStatus(expectations, await call('DELETE a drop-table id with the real token', 'DELETE', enc(SQLI[1]), 'token'), [400, 404]);
    expectStatus(expectations, await call('DELETE the real grant with a proof of another key', 'DELETE', grantId, 'other-key'), [401]);
    expectStatus(expectations, await call('DELETE the real grant with the token as Bearer', 'DELETE', grantId, 'bearer'), [401]);
    expectStatus(expectations, await call('DELETE the real grant with a traversal-kid proof', 'DELETE', grantId, 'traversal-kid'), [401]);
    await rec.fetch(pub, 'POST /grants/x', '/grants/x', form('a=b'));
    await rec.fetch(pub, 'GET /grants', '/grants');
    await rec.fetch(pub, 'PUT /grants/<real>', `/grants/${grantId}`, { method: 'PUT', body: MEGABYTE });
  }));

  test('interaction pages with unknown uids', () => family('interaction (random uid)', async (expectations) => {
    const html = { accept: 'text/html' };
    for (const uid of [enc(SQLI[0]), enc(SQLI[1]), '%00', '%ED%A0%80', '%C0%AF', '%FF', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', randomBytes(16).toString('base64url')]) {
      expectStatus(expectations, await rec.fetch(pub, `GET /interaction/${uid.slice(0, 30)}`, `/interaction/${uid}`, { headers: html }), [400, 404]);
    }
    const uid = randomBytes(16).toString('base64url');
    for (const step of ['login', 'otp', 'enrol', 'enrolled', 'consent', 'abort']) {
      const response = await rec.fetch(pub, `POST ${step} on an unknown uid with SQL fields`, `/interaction/${uid}/${step}`, form(`csrf=${enc(SQLI[0])}&username=${enc(SQLI[1])}&password=x&otp=${enc(SQLI[0])}&decision=allow&accounts=${enc(SQLI[1])}`, html));
      expectStatus(expectations, response, [400, 403]);
    }
    await rec.fetch(pub, 'POST login, SQL uid', `/interaction/${enc(SQLI[1])}/login`, form('csrf=x&username=a&password=b'));
    await rec.fetch(pub, 'POST login, NUL uid', '/interaction/%00/login', form('csrf=x'));
    await rec.fetch(pub, 'POST consent, invalid UTF-8 uid', '/interaction/%FF%FE/consent', form('csrf=x'));
    expectStatus(expectations, await rec.fetch(pub, 'POST login 1 MB', `/interaction/${uid}/login`, form(`username=${MEGABYTE}`)), [413]);
    await rec.fetch(pub, 'POST login 100,000-deep JSON', `/interaction/${uid}/login`, json(DEEP_JSON));
    await rec.fetch(pub, 'POST login JSON with __proto__', `/interaction/${uid}/login`, json('{"__proto__":{"csrf":"x"},"username":"alice"}'));
    await rec.fetch(pub, 'POST login text/plain', `/interaction/${uid}/login`, { method: 'POST', body: 'username=alice', headers: { 'content-type': 'text/plain' } });
    await rec.fetch(pub, 'POST login empty body', `/interaction/${uid}/login`, { method: 'POST' });
    await rec.fetch(pub, 'POST abort with a hostile _interaction cookie', `/interaction/${uid}/abort`, form('csrf=x', { cookie: `_interaction=${enc(SQLI[0])}; _interaction.sig=${enc(SQLI[1])}` }));
    await rec.fetch(pub, 'GET /interaction/x/login (method)', `/interaction/${uid}/login`);
    await rec.fetch(pub, 'PUT /interaction/x', `/interaction/${uid}`, { method: 'PUT', body: 'x' });
    await rec.fetch(pub, 'DELETE /interaction/x/consent', `/interaction/${uid}/consent`, { method: 'DELETE' });
  }));

  test('the sign-in step of a real interaction', async () => {
    const pushed = await pushValid(app, tpp, { scope: 'openid accounts' });
    const browser = new FormBrowser();
    const login = requirePage(await browser.navigate(pushed.url.toString()));
    const { jar } = browser;
    const path = new URL(login.url).pathname;
    const csrfOf = (page: Page, action: string) => page.document.querySelector(`form[action$="/${action}"] input[name=csrf]`)?.getAttribute('value') ?? '';
    const csrf = csrfOf(login, 'login');
    const abortCsrf = csrfOf(login, 'abort');
    await family('interaction (real, sign-in)', async (expectations) => {
      const post = (label: string, step: string, body: string, extra: Record<string, string> = {}) => rec.fetch(pub, label, `${path}/${step}`, { ...form(body, { accept: 'text/html', ...extra }), jar });
      const signIn = (label: string, fields: string) => post(label, 'login', `csrf=${csrf}&${fields}`);

      for (const value of SQLI) expectStatus(expectations, await signIn(`username ${value}`, `username=${enc(value)}&password=${enc(value)}`), [401]);
      for (const [label, username] of [['NUL username', 'al%00ice'], ['surrogate username', '%ED%A0%80'], ['overlong UTF-8 username', '%C0%AF'], ['invalid UTF-8 username', '%FF%FE']] as const) {
        expectStatus(expectations, await signIn(label, `username=${username}&password=${enc(alice.password)}`), [400]);
      }
      for (const [label, username] of [['Cyrillic а confusable', CYRILLIC_ALICE], ['zero-width joiner', 'alice\u200d'], ['fullwidth letters', '\uff41\uff4c\uff49\uff43\uff45'], ['Kelvin-sign style case fold', 'ALİCE'], ['padded with tabs', '\talice\u00a0']] as const) {
        const response = await signIn(`${label} with the real password`, `username=${enc(username)}&password=${enc(alice.password)}`);
        expectStatus(expectations, response, [400, 401]);
      }
      expectStatus(expectations, await signIn('duplicate username', `username=alice&username=bob&password=x`), [400]);
      expectStatus(expectations, await signIn('array username[]', `username[]=alice&password=x`), [400]);
      expectStatus(expectations, await signIn('__proto__ field', `__proto__[username]=alice&constructor[prototype][x]=1&password=x`), [400, 401]);
      expectStatus(expectations, await signIn('1 MB password', `username=alice&password=${MEGABYTE}`), [413]);
      expectStatus(expectations, await signIn('10 KB password', `username=alice&password=${'p'.repeat(10_000)}`), [400]);
      expectStatus(expectations, await signIn('NUL password', `username=alice&password=${enc(alice.password)}%00`), [400]);
      expectStatus(expectations, await signIn('SQL otp', `username=${enc(SQLI[0])}&password=x&otp=${enc(SQLI[1])}`), [400, 401]);
      expectStatus(expectations, await post('duplicate csrf', 'login', `csrf=${csrf}&csrf=${csrf}&username=alice&password=x`), [400]);
      expectStatus(expectations, await post('SQL csrf', 'login', `csrf=${enc(SQLI[0])}&username=alice&password=${enc(alice.password)}`), [403]);
      expectStatus(expectations, await post('the abort form\'s csrf on login', 'login', `csrf=${abortCsrf}&username=alice&password=${enc(alice.password)}`), [403]);
      expectStatus(expectations, await post('JSON credentials', 'login', '', { 'content-type': 'application/json' }), [400, 403, 415]);
      for (const step of ['otp', 'enrol', 'enrolled', 'consent']) {
        expectStatus(expectations, await post(`out-of-step ${step} with SQL`, step, `csrf=${csrf}&otp=${enc(SQLI[0])}&enrolment=${enc(SQLI[1])}&confirmation=${enc(TRAVERSAL)}&decision=allow`), [400, 403]);
      }
      expectStatus(expectations, await post('abort with the login form\'s csrf', 'abort', `csrf=${csrf}`), [403]);
      await rec.fetch(pub, 'the page with hostile query', `${path}?x=%00&y=%ED%A0%80&${CRLF}`, { headers: { accept: 'text/html' }, jar });
      await rec.fetch(pub, 'the page with a tampered interaction cookie', path, { headers: { accept: 'text/html', cookie: `_interaction=${enc(SQLI[0])}` } });
    }, SIGN_IN_FAILURES);
  });

  test('the consent step of a real interaction', async () => {
    // Account access by authorization_details: allowing needs at least one of the customer's accounts.
    const pushed = await pushValid(app, tpp, { scope: 'openid accounts', authorization_details: JSON.stringify([{ type: 'account_information', actions: ['list_accounts', 'read_balances'] }]) });
    const browser = new FormBrowser();
    const login = requirePage(await browser.navigate(pushed.url.toString()));
    const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: carol.username, password: carol.password, otp: await carolAuthenticator.code() }));
    const { jar } = browser;
    const path = new URL(consent.url).pathname;
    const csrf = consent.document.querySelector('form[action$="/consent"] input[name=csrf]')?.getAttribute('value') ?? '';
    if (!csrf) throw new Error(`setup: no consent form: ${consent.html.slice(0, 300)}`);
    await family('interaction (real, consent)', async (expectations) => {
      const decide = (label: string, fields: string) => rec.fetch(pub, label, `${path}/consent`, { ...form(`csrf=${csrf}&${fields}`, { accept: 'text/html' }), jar });
      for (const value of SQLI) expectStatus(expectations, await decide(`account ${value}`, `decision=allow&accounts=${enc(value)}`), [400]);
      expectStatus(expectations, await decide('NUL account', 'decision=allow&accounts=carol-current%00'), [400]);
      expectStatus(expectations, await decide('surrogate account', 'decision=allow&accounts=%ED%A0%80'), [400]);
      expectStatus(expectations, await decide('another customer\'s account', 'decision=allow&accounts=bob-current'), [400]);
      expectStatus(expectations, await decide('a confusable of an own account', `decision=allow&accounts=${enc('c\u0430rol-current')}`), [400]);
      expectStatus(expectations, await decide('101 accounts', `decision=allow&${Array.from({ length: 101 }, () => 'accounts=carol-current').join('&')}`), [400]);
      expectStatus(expectations, await decide('array accounts[] of SQL', `decision=allow&accounts[]=${enc(SQLI[0])}`), [400]);
      expectStatus(expectations, await decide('accounts[__proto__]', 'decision=allow&accounts[__proto__][admin]=1'), [400]);
      expectStatus(expectations, await decide('constructor[prototype] accounts', 'decision=allow&constructor[prototype][accounts]=carol-current&__proto__[accounts]=carol-current'), [400]);
      expectStatus(expectations, await decide('no accounts at all', 'decision=allow'), [400]);
      expectStatus(expectations, await decide('duplicate decision', 'decision=allow&decision=deny&accounts=carol-current'), [400]);
      expectStatus(expectations, await decide('array decision[]', 'decision[]=allow&accounts=bob-current'), [400]);
      expectStatus(expectations, await decide('SQL decision', `decision=${enc(SQLI[0])}&accounts=carol-current`), [400]);
      expectStatus(expectations, await decide('1 MB accounts', `decision=allow&accounts=${MEGABYTE}`), [413]);
      expectStatus(expectations, await decide('payment debtor of SQL without a payment, with a foreign account', `decision=allow&accounts=alice-savings&debtor_account=${enc(SQLI[1])}`), [400]);
      expectStatus(expectations, await rec.fetch(pub, 'consent with no csrf', `${path}/consent`, { ...form('decision=allow&accounts=carol-current', { accept: 'text/html' }), jar }), [403]);
      expectStatus(expectations, await rec.fetch(pub, 'consent from a browser without the cookies', `${path}/consent`, form(`csrf=${csrf}&decision=allow&accounts=carol-current`, { accept: 'text/html' })), [400, 403]);
      expectStatus(expectations, await rec.fetch(pub, 'login again at the consent step', `${path}/login`, { ...form(`csrf=${csrf}&username=bob&password=x`, { accept: 'text/html' }), jar }), [400, 403]);
    });
  });

  test('the account dashboard', () => family('account dashboard', async (expectations) => {
    const browser = new FormBrowser();
    const page = requirePage(await browser.navigate(`${app.url}/account`));
    const { jar } = browser;
    const csrf = page.document.querySelector('form[action$="/account/login"] input[name=csrf]')?.getAttribute('value') ?? page.document.querySelector('input[name=csrf]')?.getAttribute('value') ?? '';
    if (!csrf) throw new Error(`setup: no dashboard sign-in form: ${page.html.slice(0, 300)}`);
    const html = { accept: 'text/html' };
    const signIn = (label: string, fields: string) => rec.fetch(pub, label, '/account/login', { ...form(`csrf=${csrf}&${fields}`, html), jar });

    await rec.fetch(pub, 'GET /account with an SQL session cookie', '/account', { headers: { ...html, cookie: `portcullis.account=${enc(SQLI[0])}; portcullis.account.sig=${enc(SQLI[1])}` } });
    await rec.fetch(pub, 'GET /account with a NUL-ish cookie', '/account', { headers: { ...html, cookie: 'portcullis.account=%00; portcullis.csrf=%ED%A0%80' } });
    await rec.fetch(pub, 'GET /account with hostile query', `/account?%00=%FF&x=${CRLF}`, { headers: html });
    expectStatus(expectations, await rec.fetch(pub, 'login without csrf', '/account/login', { ...form(`username=alice&password=${enc(alice.password)}`, html), jar }), [403]);
    for (const value of SQLI) expectStatus(expectations, await signIn(`username ${value}`, `username=${enc(value)}&password=${enc(value)}&otp=${enc(value)}`), [401]);
    expectStatus(expectations, await signIn('NUL username', 'username=alice%00&password=x'), [400]);
    expectStatus(expectations, await signIn('surrogate username', 'username=%ED%A0%80&password=x'), [400]);
    expectStatus(expectations, await signIn('invalid UTF-8 username', 'username=%C0%AF%FF&password=x'), [400]);
    expectStatus(expectations, await signIn('Cyrillic а confusable with the real password', `username=${enc(CYRILLIC_ALICE)}&password=${enc(alice.password)}&otp=123456`), [401]);
    expectStatus(expectations, await signIn('duplicate username', 'username=alice&username=bob&password=x'), [400]);
    expectStatus(expectations, await signIn('array username[]', 'username[]=alice&password=x'), [400]);
    expectStatus(expectations, await signIn('1 MB password', `username=alice&password=${MEGABYTE}`), [413]);
    expectStatus(expectations, await signIn('100 char otp', `username=${enc(SQLI[0])}&password=x&otp=${'1'.repeat(100)}`), [400]);
    expectStatus(expectations, await rec.fetch(pub, 'login JSON', '/account/login', { ...json(`{"csrf":${JSON.stringify(csrf)},"username":"alice","__proto__":{"password":"x"}}`, html), jar }), [400, 403, 415]);
    expectStatus(expectations, await rec.fetch(pub, 'login 100,000-deep JSON', '/account/login', { ...json(DEEP_JSON, html), jar }), [400, 403, 413, 415]);
    for (const id of [enc(SQLI[0]), enc(SQLI[1]), '%00', '%ED%A0%80', '%FF', grantId]) {
      expectStatus(expectations, await rec.fetch(pub, `revoke ${id.slice(0, 30)} without a session`, `/account/consents/${id}/revoke`, { ...form(`csrf=${csrf}`, html), jar }), [400, 401, 403, 404]);
    }
    await rec.fetch(pub, 'GET a revoke URL', `/account/consents/${grantId}/revoke`, { headers: html, jar });
    await rec.fetch(pub, 'logout with SQL csrf', '/account/logout', { ...form(`csrf=${enc(SQLI[0])}`, html), jar });
    await rec.fetch(pub, 'authenticator page without a session', '/account/authenticator', { headers: html, jar });
    await rec.fetch(pub, 'authenticator POST without a session', '/account/authenticator', { ...form(`csrf=${csrf}&enrolment=${enc(SQLI[1])}&otp=${enc(SQLI[0])}`, html), jar });
    await rec.fetch(pub, 'DELETE /account', '/account', { method: 'DELETE', headers: html });
  }, SIGN_IN_FAILURES));

  test('the admin API, with and without a key', () => family('admin API', async (expectations) => {
    const call = (label: string, method: string, path: string, key?: string, options: FetchOptions = {}) => rec.fetch(adm, label, `/admin/v1${path}`, {
      ...options, method, headers: { ...(key === undefined ? {} : { authorization: `Bearer ${key}` }), ...(options.headers as Record<string, string> | undefined) },
    });
    for (const [label, authorization] of [
      ['no key', undefined], ['Bearer of SQL', `Bearer ${SQLI[0]}`], ['Bearer of drop-table', `Bearer ${SQLI[1]}`], ['prefixed SQL key', "Bearer pcak_'OR'1'='1"],
      ['8 KB key', `Bearer ${'k'.repeat(8000)}`], ['Basic', `Basic ${b64('admin:admin')}`], ['NUL-ish key', 'Bearer %00'], ['CR/LF-shaped key', `Bearer x${CRLF}`],
    ] as const) {
      const response = await rec.fetch(adm, `consents with ${label}`, '/admin/v1/consents', authorization === undefined ? {} : { headers: { authorization } });
      expectStatus(expectations, response, [401]);
    }
    expectStatus(expectations, await call('unlock with an SQL key', 'POST', `/users/${enc(SQLI[1])}/unlock`, SQLI[0]), [401]);
    expectStatus(expectations, await call('rotate keys with no key', 'POST', '/keys/rotate'), [401]);
    await call('openapi with hostile query', 'GET', `/openapi.json?x=${enc(SQLI[0])}&%00=%FF`);
    expectStatus(expectations, await call('user_id of SQL', 'GET', `/consents?user_id=${enc(SQLI[0])}`, readKey), [400]);
    for (const [label, query] of [
      ['client_id of SQL', `client_id=${enc(SQLI[0])}`], ['client_id drop-table', `client_id=${enc(SQLI[1])}`], ['client_id NUL', 'client_id=abc%00'],
      ['client_id surrogate', 'client_id=%ED%A0%80'], ['client_id overlong', 'client_id=%C0%AF'], ['client_id invalid UTF-8', 'client_id=%FF'],
      ['duplicate client_id', 'client_id=a&client_id=b'], ['client_id[]', 'client_id[]=a'], ['user_id NUL', 'user_id=%00'], ['1,000-char client_id', `client_id=${'c'.repeat(1000)}`],
    ] as const) {
      expectStatus(expectations, await call(label, 'GET', `/consents?${query}`, readKey), [200, 400]);
    }
    for (const id of [enc(SQLI[0]), enc(SQLI[1]), '%00', 'abc%00def', '%ED%A0%80', '%C0%AF', '%FF', '%2e%2e%2f%2e%2e%2fetc%2fpasswd']) {
      expectStatus(expectations, await call(`get consent ${id}`, 'GET', `/consents/${id}`, readKey), [400, 404]);
      expectStatus(expectations, await call(`consume consent ${id}`, 'POST', `/consents/${id}/consume`, writeKey), [400, 404]);
      expectStatus(expectations, await call(`revoke consent ${id}`, 'POST', `/consents/${id}/revoke`, writeKey), [400, 404]);
    }
    for (const name of [enc(SQLI[0]), enc(SQLI[1]), enc(CYRILLIC_ALICE), '%00', '%ED%A0%80', '%FF', 'x'.repeat(300)]) {
      expectStatus(expectations, await call(`unlock ${name.slice(0, 30)}`, 'POST', `/users/${name}/unlock`, writeKey), [400, 404]);
    }
    expectStatus(expectations, await call('rotate with a read key', 'POST', '/keys/rotate', readKey), [403]);
    expectStatus(expectations, await call('PUT /keys', 'PUT', '/keys', writeKey), [404, 405]);
    expectStatus(expectations, await call('DELETE a consent', 'DELETE', `/consents/${grantId}`, writeKey), [404, 405]);
    expectStatus(expectations, await call('revoke with a 1 MB JSON body', 'POST', `/consents/${enc(SQLI[0])}/revoke`, writeKey, json(JSON.stringify({ reason: MEGABYTE }))), [400, 404, 413]);
    expectStatus(expectations, await call('revoke with 100,000-deep JSON', 'POST', `/consents/${enc(SQLI[1])}/revoke`, writeKey, json(DEEP_JSON)), [400, 404, 413]);
    await call('unknown route', 'GET', `/${enc(SQLI[0])}`, writeKey);
    await rec.fetch(adm, 'unknown version prefix', '/admin/v2/consents', { headers: { authorization: `Bearer ${writeKey}` } });
    await rec.fetch(adm, 'traversal outside the prefix', '/admin/v1/%2e%2e/%2e%2e/etc/passwd', { headers: { authorization: `Bearer ${writeKey}` } });
  }));

  test('raw transport: invalid bytes, CR/LF, NUL, huge and duplicate headers, smuggling, bogus methods', () => family('raw transport', async (expectations) => {
    // node:http sends header and path characters 0x80–0xFF as single bytes (latin1): invalid UTF-8 on the wire.
    await rec.http(pub, 'invalid UTF-8 bytes in the /auth query', { path: '/auth?client_id=\xff\xfe&request_uri=\xc0\xaf' });
    await rec.http(pub, 'invalid UTF-8 bytes in an interaction path', { path: '/interaction/\xc0\xaf\xed\xa0\x80' });
    await rec.http(pub, 'invalid UTF-8 bytes in an admin-like path on the public app', { path: '/grants/\xff' });
    await rec.http(pub, 'invalid UTF-8 X-Request-Id', { path: '/healthz', headers: { 'x-request-id': 'abcdefgh\xff\xfe' } });
    await rec.http(pub, 'invalid UTF-8 Authorization on /me', { path: '/me', headers: { authorization: 'DPoP \xff\xfe\xfd' } });
    await rec.http(pub, 'invalid UTF-8 DPoP on /token', { method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: '\xff.\xfe.\xfd' }, body: 'grant_type=client_credentials' });
    await rec.http(pub, 'invalid UTF-8 cookies on /account', { path: '/account', headers: { accept: 'text/html', cookie: 'portcullis.csrf=\xff\xfe; portcullis.account=\xc0\xaf' } });
    await rec.http(pub, 'invalid UTF-8 bytes in a form body', { method: 'POST', path: '/account/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from([0x75, 0x3d, 0xff, 0xfe, 0x26, 0x70, 0x3d, 0xc0, 0xaf]) });
    await rec.http(pub, 'invalid UTF-8 bytes in the content type', { method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=\xff' }, body: 'grant_type=x' });
    await rec.http(pub, 'a 64 KB cookie', { path: '/healthz', headers: { cookie: `a=${'c'.repeat(64 * 1024)}` }, note: 'Cookie: a=<64 KB>', oversizedHeaders: true });
    await rec.http(pub, 'a 64 KB session cookie on /account', { path: '/account', headers: { accept: 'text/html', cookie: `portcullis.account=${'c'.repeat(64 * 1024)}` }, note: 'Cookie: portcullis.account=<64 KB>', oversizedHeaders: true });
    await rec.http(pub, 'a 17 KB cookie', { path: '/healthz', headers: { cookie: `a=${'c'.repeat(17 * 1024)}` }, note: 'Cookie: a=<17 KB>', oversizedHeaders: true });
    await rec.http(pub, 'a 15 KB cookie (under the limit)', { path: '/account', headers: { accept: 'text/html', cookie: `portcullis.csrf=${'c'.repeat(15 * 1024)}` }, note: 'Cookie: portcullis.csrf=<15 KB>' });
    await rec.http(pub, '300 headers of 200 bytes', { path: '/healthz', headers: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v'.repeat(200)])), note: '300 × X-Hn: <200 bytes>', oversizedHeaders: true });
    await rec.http(pub, 'an 8 KB query string on /auth', { path: `/auth?state=${'s'.repeat(8 * 1024)}`, note: 'state=<8 KB>' });
    const twoIds = await rec.http(pub, 'duplicate X-Request-Id', { path: '/healthz', headers: ['Host', `127.0.0.1:${pub.port}`, 'X-Request-Id', 'aaaaaaaa-1', 'X-Request-Id', 'bbbbbbbb-2'] });
    if (twoIds.headers['x-request-id'] === 'aaaaaaaa-1, bbbbbbbb-2') expectations.push('a joined duplicate X-Request-Id was echoed');
    await rec.http(pub, 'duplicate Authorization on /me', { path: '/me', headers: ['Host', `127.0.0.1:${pub.port}`, 'Authorization', `DPoP ${accessToken}`, 'Authorization', `Bearer ${SQLI[0]}`] });
    const proof = await dpopProof(dpopKeys, { htu: `${app.url}/token` });
    await rec.http(pub, 'duplicate DPoP on /token', { method: 'POST', path: '/token', headers: ['Host', `127.0.0.1:${pub.port}`, 'Content-Type', 'application/x-www-form-urlencoded', 'DPoP', proof, 'DPoP', proof], body: `${await tppAuth()}&grant_type=client_credentials&scope=accounts` });
    await rec.http(pub, 'duplicate Content-Type on /request', { method: 'POST', path: '/request', headers: ['Host', `127.0.0.1:${pub.port}`, 'Content-Type', 'application/x-www-form-urlencoded', 'Content-Type', 'application/json'], body: 'client_id=x' });
    await rec.http(pub, 'duplicate Cookie on /account', { path: '/account', headers: ['Host', `127.0.0.1:${pub.port}`, 'Cookie', `portcullis.account=${enc(SQLI[0])}`, 'Cookie', 'portcullis.account=x', 'Accept', 'text/html'] });
    await rec.http(pub, 'duplicate Host', { path: '/.well-known/openid-configuration', headers: ['Host', 'evil.example', 'Host', `127.0.0.1:${pub.port}`] });
    await rec.http(pub, 'TRACE', { method: 'TRACE', path: '/', headers: { cookie: 'secret=1' } });
    await rec.http(pub, 'PROPFIND', { method: 'PROPFIND', path: '/account' });

    const host = `Host: 127.0.0.1:${pub.port}\r\n`;
    const rawGet = (path: string, headers: string) => `GET ${path} HTTP/1.1\r\n${host}${headers}Connection: close\r\n\r\n`;
    await rec.raw(pub, 'X-Request-Id with CR/LF (header injection on the wire)', rawGet('/healthz', 'X-Request-Id: abcdefgh\r\nX-Injected: 1\r\n'));
    await rec.raw(pub, 'X-Request-Id with a bare CR', rawGet('/healthz', 'X-Request-Id: abcdefgh\rX-Injected: 1\r\n'));
    await rec.raw(pub, 'X-Request-Id with a bare LF', rawGet('/healthz', 'X-Request-Id: abcdefgh\nX-Injected: 1\r\n'));
    await rec.raw(pub, 'X-Request-Id with NUL', rawGet('/healthz', 'X-Request-Id: abcd\0efgh\r\n'));
    await rec.raw(pub, 'DPoP with a bare CR on /me', rawGet('/me', `Authorization: DPoP ${accessToken}\r\nDPoP: abc\rSet-Cookie: injected=1\r\n`));
    await rec.raw(pub, 'Authorization with a bare LF on /me', rawGet('/me', 'Authorization: DPoP abc\nX-Injected: 1\r\n'));
    await rec.raw(pub, 'Authorization with NUL on /token/introspection', `POST /token/introspection HTTP/1.1\r\n${host}Authorization: Basic \0${rs.authorization.slice(6)}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoken=x`);
    await rec.raw(pub, 'Cookie with a CR on /account', rawGet('/account', 'Accept: text/html\r\nCookie: portcullis.csrf=abc\rX-Injected: 1\r\n'));
    await rec.raw(pub, 'NUL in the request target', rawGet('/interaction/ab\0cd', ''));
    await rec.raw(pub, 'a space in the request target', `GET /auth?x=a b HTTP/1.1\r\n${host}Connection: close\r\n\r\n`);
    await rec.raw(pub, 'an invalid header name', rawGet('/healthz', 'X Bad Name: 1\r\n'));
    await rec.raw(pub, 'two different Content-Lengths', `POST /token HTTP/1.1\r\n${host}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\nContent-Length: 30\r\nConnection: close\r\n\r\nhello`);
    await rec.raw(pub, 'Content-Length with Transfer-Encoding (smuggling)', `POST /token HTTP/1.1\r\n${host}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n`);
    await rec.raw(pub, 'an obfuscated Transfer-Encoding', `POST /request HTTP/1.1\r\n${host}Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: xchunked\r\nConnection: close\r\n\r\n0\r\n\r\n`);
    await rec.raw(pub, 'a Content-Length smaller than the body (pipelined garbage)', `POST /token/revocation HTTP/1.1\r\n${host}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\ntoken=xGARBAGE / HTTP/1.1\r\nX-Injected: 1\r\n\r\n`);
    await rec.raw(pub, 'a bogus method', `FOO /healthz HTTP/1.1\r\n${host}Connection: close\r\n\r\n`);
    await rec.raw(pub, 'HTTP/1.0 without Host', 'GET /.well-known/openid-configuration HTTP/1.0\r\n\r\n');
    await rec.raw(pub, 'HTTP/9.9', `GET /healthz HTTP/9.9\r\n${host}Connection: close\r\n\r\n`);
    const absolute = await rec.raw(pub, 'absolute-form target to another host', `GET http://evil.example/.well-known/openid-configuration HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`);
    expectNoRedirectTo(expectations, absolute, 'evil.example');
    const forwarded = await rec.raw(pub, 'X-Forwarded-Host / Proto on discovery', rawGet('/.well-known/openid-configuration', 'X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: gopher\r\nForwarded: host=evil.example\r\n'));
    expectNoRedirectTo(expectations, forwarded, 'evil.example');
    const hostHeader = await rec.raw(pub, 'Host: evil.example on discovery', `GET /.well-known/openid-configuration HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`);
    expectNoRedirectTo(expectations, hostHeader, 'evil.example');
    await rec.raw(pub, 'obsolete line folding in Authorization', rawGet('/me', 'Authorization: DPoP abc\r\n def\r\n'));

    // The admin listener gets the same treatment.
    await rec.http(adm, 'admin: invalid UTF-8 key', { path: '/admin/v1/keys', headers: { authorization: 'Bearer pcak_\xff\xfe' } });
    await rec.http(adm, 'admin: invalid UTF-8 path', { path: '/admin/v1/consents/\xff\xc0\xaf', headers: { authorization: `Bearer ${readKey}` } });
    await rec.http(adm, 'admin: duplicate Authorization (read + write)', { method: 'POST', path: '/admin/v1/keys/rotate', headers: ['Host', `127.0.0.1:${adm.port}`, 'Authorization', `Bearer ${readKey}`, 'Authorization', `Bearer ${writeKey}`] });
    await rec.http(adm, 'admin: 64 KB Authorization', { path: '/admin/v1/keys', headers: { authorization: `Bearer ${'k'.repeat(64 * 1024)}` }, note: 'Authorization: Bearer <64 KB>', oversizedHeaders: true });
    await rec.http(adm, 'admin: TRACE', { method: 'TRACE', path: '/admin/v1/keys', headers: { authorization: `Bearer ${readKey}` } });
    await rec.http(adm, 'admin: PROPFIND', { method: 'PROPFIND', path: '/admin/v1/consents' });
    const adminHost = `Host: 127.0.0.1:${adm.port}\r\n`;
    await rec.raw(adm, 'admin: Authorization with CR/LF injection', `GET /admin/v1/keys HTTP/1.1\r\n${adminHost}Authorization: Bearer x\r\nX-Injected: 1\r\nConnection: close\r\n\r\n`);
    await rec.raw(adm, 'admin: Authorization with a bare CR', `GET /admin/v1/keys HTTP/1.1\r\n${adminHost}Authorization: Bearer ${readKey}\rX: 1\r\nConnection: close\r\n\r\n`);
    await rec.raw(adm, 'admin: Authorization with NUL', `GET /admin/v1/keys HTTP/1.1\r\n${adminHost}Authorization: Bearer ${readKey}\0\r\nConnection: close\r\n\r\n`);
  }), 60_000);

  test('the corpus is large enough', () => {
    expect(rec.exchanges.filter((exchange) => exchange.family !== 'setup').length).toBeGreaterThanOrEqual(300);
  });
});
