import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

import type { Container } from '../../src/container.js';
import { FormBrowser, requirePage, type Page } from '../../test/support/browser.js';
import type { BenchRequest } from './load.js';

/**
 * What the benchmark needs in the database and the one-time material it sends: set up
 * through the services (as the CLI does) and through the real pages and endpoints of the
 * server under measurement. Nothing here is timed.
 */

export const REDIRECT_URI = 'https://tpp.example/callback';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

export interface SigningClient {
  readonly clientId: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export interface DpopKeys {
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export interface BenchFixtures {
  readonly url: string;
  /** a TPP using the authorization code flow (PAR, pages, code redemption) */
  readonly tpp: SigningClient;
  /** a TPP using client credentials */
  readonly machine: SigningClient;
  /** Authorization header of a resource server (client_secret_basic) */
  readonly resourceServerAuth: string;
  readonly dpop: DpopKeys;
  /**
   * Customers to sign in. Sign-in reserves a failure slot per attempt (at most 5 in flight
   * per customer, so that parallel guesses cannot exceed the lockout threshold): parallel
   * sign-ins use different customers, as they do in real life.
   */
  readonly customers: readonly Customer[];
}

export interface Customer { readonly id: string; readonly username: string; readonly password: string }

const CUSTOMERS = 64;

async function signingClient(container: Container, metadata: Record<string, unknown>): Promise<SigningClient> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' };
  const created = await container.clients.createClient({ ...metadata, jwks: { keys: [publicJwk] } });
  return { clientId: created.client_id, privateKey, publicJwk };
}

export async function dpopKeys(): Promise<DpopKeys> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  return { privateKey, publicJwk: { kty, crv, x, y } };
}

export async function createFixtures(container: Container, url: string, password: string): Promise<BenchFixtures> {
  const tag = randomBytes(4).toString('hex');
  const tpp = await signingClient(container, {
    client_name: 'Bench TPP', redirect_uris: [REDIRECT_URI], scope: 'openid offline_access accounts',
  });
  const machine = await signingClient(container, {
    client_name: 'Bench machine TPP', redirect_uris: [], response_types: [], grant_types: ['client_credentials'], scope: 'accounts',
  });
  const rs = await container.clients.createResourceServer('Bench API');
  const customers = await inParallel(CUSTOMERS, 4, async (index) => {
    const username = `bench-${tag}-${index}`;
    const created = await container.customers.create({ username, password, name: 'Bench Customer' });
    await container.customers.addBankAccount(username, { id: `${username}-current`, name: 'Current account', iban: 'GB82WEST12345698765432', currency: 'GBP', balance: '100.00' });
    return { id: created.id, username, password };
  });
  return {
    url,
    tpp,
    machine,
    resourceServerAuth: `Basic ${Buffer.from(`${encodeURIComponent(rs.client_id)}:${encodeURIComponent(rs.client_secret)}`).toString('base64')}`,
    dpop: await dpopKeys(),
    customers,
  };
}

const epoch = (): number => Math.floor(Date.now() / 1000);

export function clientAssertion(url: string, client: SigningClient): Promise<string> {
  const now = epoch();
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench-1' })
    .setIssuer(client.clientId).setSubject(client.clientId).setAudience(url)
    .setIssuedAt(now).setExpirationTime(now + 60)
    .sign(client.privateKey);
}

export function dpopProof(keys: DpopKeys, htu: string): Promise<string> {
  return new SignJWT({ htm: 'POST', htu, jti: randomUUID(), iat: epoch() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: keys.publicJwk })
    .sign(keys.privateKey);
}

function clientAuth(client: SigningClient, assertion: string): Record<string, string> {
  return { client_id: client.clientId, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion };
}

/** Runs `task` for indices 0..count-1 with at most `parallel` in flight. */
export async function inParallel<T>(count: number, parallel: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) {
      const index = next;
      next += 1;
      results[index] = await task(index);
    }
  }));
  return results;
}

/** Client-credentials token requests, each with its own assertion and DPoP proof. */
export async function clientCredentialsRequests(f: BenchFixtures, count: number): Promise<BenchRequest[]> {
  return inParallel(count, 16, async () => ({
    method: 'POST',
    path: '/token',
    headers: { ...FORM, dpop: await dpopProof(f.dpop, `${f.url}/token`) },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'accounts', ...clientAuth(f.machine, await clientAssertion(f.url, f.machine)) }).toString(),
  }));
}

/** Issues `count` DPoP-bound client-credentials access tokens through the token endpoint. */
export async function issueMachineTokens(f: BenchFixtures, count: number): Promise<string[]> {
  const requests = await clientCredentialsRequests(f, count);
  return inParallel(count, 8, async (index) => {
    const request = requests[index]!;
    const response = await fetch(`${f.url}${request.path}`, { method: 'POST', headers: request.headers, body: request.body });
    const body = await response.json() as { access_token?: string };
    if (body.access_token === undefined) throw new Error(`token request failed: ${response.status} ${JSON.stringify(body)}`);
    return body.access_token;
  });
}

export function introspectionRequest(f: BenchFixtures, token: string): BenchRequest {
  return { method: 'POST', path: '/token/introspection', headers: { ...FORM, authorization: f.resourceServerAuth }, body: new URLSearchParams({ token }).toString() };
}

export function revocationRequest(f: BenchFixtures, token: string): BenchRequest {
  return { method: 'POST', path: '/token/revocation', headers: { ...FORM, authorization: f.resourceServerAuth }, body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString() };
}

interface PreparedCode { readonly code: string; readonly verifier: string }

/** Pushes an authorization request (PAR, private_key_jwt) and returns the URL of /auth. */
async function push(f: BenchFixtures): Promise<{ authUrl: string; verifier: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const response = await fetch(`${f.url}/request`, {
    method: 'POST',
    headers: FORM,
    body: new URLSearchParams({
      ...clientAuth(f.tpp, await clientAssertion(f.url, f.tpp)),
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid offline_access accounts',
      prompt: 'consent',
      state: randomBytes(8).toString('base64url'),
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }),
  });
  const body = await response.json() as { request_uri?: string };
  if (body.request_uri === undefined) throw new Error(`PAR failed: ${response.status} ${JSON.stringify(body)}`);
  const authUrl = new URL('/auth', f.url);
  authUrl.search = new URLSearchParams({ client_id: f.tpp.clientId, request_uri: body.request_uri }).toString();
  return { authUrl: authUrl.toString(), verifier };
}

/**
 * Real authorization codes, through PAR and the real pages: each of a few browsers signs the
 * customer in once (password; `openid accounts` needs no SCA) and then consents to one
 * request after another in its session (one session does not run flows in parallel).
 * Codes live 60 s: redeem them promptly.
 */
export async function prepareCodes(f: BenchFixtures, count: number, browsers = 8): Promise<PreparedCode[]> {
  const perBrowser = Math.ceil(count / browsers);
  const batches = await inParallel(browsers, browsers, async (index) => {
    const browser = new FormBrowser();
    const customer = f.customers[index % f.customers.length]!;
    const codes: PreparedCode[] = [];
    while (codes.length < perBrowser) codes.push(await authorizeInSession(f, browser, customer));
    return codes;
  });
  return batches.flat().slice(0, count);
}

async function authorizeInSession(f: BenchFixtures, browser: FormBrowser, customer: Customer): Promise<PreparedCode> {
  const { authUrl, verifier } = await push(f);
  let page: Page = requirePage(await browser.navigate(authUrl));
  if (page.document.querySelector('form[action$="/login"]') !== null) {
    page = requirePage(await browser.submit(page, 'form[action$="/login"]', { username: customer.username, password: customer.password }));
  }
  const accounts = page.document.querySelectorAll('input[name=accounts]').map((input) => input.getAttribute('value') ?? '');
  const result = await browser.submit(page, 'form[action$="/consent"]', { accounts }, { name: 'decision', value: 'allow' });
  const code = result.leftTo === undefined ? null : new URL(result.leftTo).searchParams.get('code');
  if (code === null) throw new Error(`no code: ${result.leftTo ?? result.page?.document.querySelector('main')?.text.trim().slice(0, 300)}`);
  return { code, verifier };
}

/** Code redemption requests (private_key_jwt + DPoP), one per prepared code. */
export async function redemptionRequests(f: BenchFixtures, codes: readonly PreparedCode[]): Promise<BenchRequest[]> {
  return inParallel(codes.length, 16, async (index) => {
    const { code, verifier } = codes[index]!;
    return {
      method: 'POST',
      path: '/token',
      headers: { ...FORM, dpop: await dpopProof(f.dpop, `${f.url}/token`) },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI,
        ...clientAuth(f.tpp, await clientAssertion(f.url, f.tpp)),
      }).toString(),
    };
  });
}

/** One DPoP-bound customer access token (code flow with a refresh token), for introspection. */
export async function customerAccessToken(f: BenchFixtures): Promise<string> {
  const [request] = await redemptionRequests(f, await prepareCodes(f, 1, 1));
  const response = await fetch(`${f.url}/token`, { method: 'POST', headers: request!.headers, body: request!.body });
  const body = await response.json() as { access_token?: string; token_type?: string };
  if (body.access_token === undefined || body.token_type !== 'DPoP') throw new Error(`redemption failed: ${JSON.stringify(body)}`);
  return body.access_token;
}

/**
 * Sign-in form posts, each on its own fresh interaction (PAR → /auth → sign-in page):
 * the password POST with the page's anti-CSRF fields and interaction cookie. A correct
 * password answers 303 (on to consent).
 */
export async function signInRequests(f: BenchFixtures, count: number): Promise<BenchRequest[]> {
  return inParallel(count, 8, async (index) => {
    const customer = f.customers[index % f.customers.length]!;
    const browser = new FormBrowser();
    const { authUrl } = await push(f);
    const page = requirePage(await browser.navigate(authUrl));
    const form = page.document.querySelector('form[action$="/login"]');
    if (form === null) throw new Error(`no sign-in form: ${page.html.slice(0, 300)}`);
    const action = new URL(form.getAttribute('action') ?? '', page.url);
    const body = new URLSearchParams();
    for (const input of form.querySelectorAll('input[type=hidden]')) body.append(input.getAttribute('name') ?? '', input.getAttribute('value') ?? '');
    body.append('username', customer.username);
    body.append('password', customer.password);
    return {
      method: 'POST',
      path: action.pathname,
      headers: { ...FORM, accept: 'text/html', cookie: await browser.jar.getCookieString(action.toString()) },
      body: body.toString(),
    };
  });
}
