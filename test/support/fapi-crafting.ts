import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK } from 'jose';

import type { TestApp } from './app.js';
import type { Customer } from './tpp.js';
import { REDIRECT_URI, signInAndConsent } from './tpp.js';

/**
 * Hand-crafted FAPI 2.0 requests for negative tests: a client whose private keys the test
 * holds (to sign client assertions and request objects however it likes), DPoP proofs with
 * any header or claim, and plain form POSTs whose every parameter the test chooses.
 */

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const DEFAULT_SCOPE = 'openid offline_access accounts';

/** An injectable clock for startTestApp: the database adapter hides rows expired before now(). */
export class TestClock {
  #offsetMs = 0;

  readonly now = (): Date => new Date(Date.now() + this.#offsetMs);

  advance(seconds: number): void {
    this.#offsetMs += seconds * 1000;
  }

  reset(): void {
    this.#offsetMs = 0;
  }
}

export const epoch = (): number => Math.floor(Date.now() / 1000);

export interface KeyPair {
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
}

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export interface CraftedClient {
  readonly clientId: string;
  /** the ES256 key every valid request is signed with */
  readonly key: SigningKey;
  /** an RSA key registered for RS256 (present when asked for) */
  readonly rsaKey: SigningKey | undefined;
}

async function signingKey(alg: string, kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface RegisterOptions {
  readonly grantTypes?: string[];
  /** also register an RSA key (alg RS256, kid tpp-rsa-1) */
  readonly rsa?: boolean;
  readonly name?: string;
}

/** Registers a FAPI 2.0 TPP (private_key_jwt ES256, DPoP, PAR) and keeps its private key. */
export async function registerCraftedClient(app: TestApp, options: RegisterOptions = {}): Promise<CraftedClient> {
  const key = await signingKey('ES256', 'tpp-key-1');
  const rsaKey = options.rsa === true ? await signingKey('RS256', 'tpp-rsa-1') : undefined;
  const created = await app.container.clients.createClient({
    client_name: options.name ?? 'Crafted TPP',
    redirect_uris: [REDIRECT_URI],
    jwks: { keys: rsaKey === undefined ? [key.publicJwk] : [key.publicJwk, rsaKey.publicJwk] },
    scope: DEFAULT_SCOPE,
    grant_types: options.grantTypes ?? ['authorization_code', 'refresh_token'],
  });
  return { clientId: created.client_id, key, rsaKey };
}

export interface ResourceServerCredentials {
  readonly clientId: string;
  readonly secret: string;
  readonly authorization: string;
}

export async function registerResourceServer(app: TestApp): Promise<ResourceServerCredentials> {
  const rs = await app.container.clients.createResourceServer('Bank API');
  const basic = Buffer.from(`${encodeURIComponent(rs.client_id)}:${encodeURIComponent(rs.client_secret)}`).toString('base64');
  return { clientId: rs.client_id, secret: rs.client_secret, authorization: `Basic ${basic}` };
}

export interface JwtOptions {
  /** claims merged over the defaults; `undefined` removes a default claim */
  readonly claims?: Record<string, unknown>;
  /** header members merged over { alg, kid } */
  readonly header?: Record<string, unknown>;
  /** sign with this key instead of the client's ES256 key */
  readonly key?: SigningKey;
  /** produce an unsecured JWT (alg none) */
  readonly unsigned?: boolean;
}

async function signJwt(payload: Record<string, unknown>, key: SigningKey, options: JwtOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  for (const [name, value] of Object.entries({ ...payload, ...options.claims })) {
    if (value !== undefined) claims[name] = value;
  }
  if (options.unsigned === true) return new UnsecuredJWT(claims).encode();
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...options.header } as { alg: string })
    .sign(key.privateKey);
}

/** A private_key_jwt client assertion: iss = sub = client_id, aud = the issuer string. */
export async function clientAssertion(app: TestApp, client: CraftedClient, options: JwtOptions = {}): Promise<string> {
  const now = epoch();
  return signJwt({
    iss: client.clientId,
    sub: client.clientId,
    aud: app.url,
    jti: randomUUID(),
    iat: now,
    exp: now + 60,
  }, options.key ?? client.key, options);
}

export interface ProofOptions {
  readonly htm?: string;
  readonly htu: string;
  readonly accessToken?: string;
  readonly iat?: number;
  readonly jti?: string;
  readonly typ?: string;
  readonly alg?: string;
  readonly nonce?: string;
  /** overrides the embedded public JWK */
  readonly jwk?: JWK;
  /** signs with this instead of the key pair's private key */
  readonly signingKey?: CryptoKey | Uint8Array;
  readonly extraClaims?: Record<string, unknown>;
}

/** A DPoP proof (RFC 9449) with every member under the test's control. */
export async function dpopProof(keys: KeyPair, options: ProofOptions): Promise<string> {
  const alg = options.alg ?? 'ES256';
  const claims: Record<string, unknown> = {
    htm: options.htm ?? 'POST',
    htu: options.htu,
    iat: options.iat ?? epoch(),
    jti: options.jti ?? randomUUID(),
    ...(options.accessToken === undefined ? {} : { ath: accessTokenHash(options.accessToken) }),
    ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
    ...options.extraClaims,
  };
  const jwk = options.jwk ?? (await publicJwk(keys.publicKey));
  const header = { alg, typ: options.typ ?? 'dpop+jwt', jwk };
  if (alg === 'none') return new UnsecuredJWT(claims).encode().replace(/^[^.]+/, Buffer.from(JSON.stringify(header)).toString('base64url'));
  return new SignJWT(claims).setProtectedHeader(header).sign(options.signingKey ?? keys.privateKey);
}

export async function publicJwk(key: CryptoKey): Promise<JWK> {
  const { kty, crv, x, y, n, e } = await exportJWK(key);
  const jwk: JWK = { kty };
  for (const [name, value] of Object.entries({ crv, x, y, n, e })) {
    if (value !== undefined) (jwk as Record<string, string>)[name] = value;
  }
  return jwk;
}

export async function dpopKeyPair(alg = 'ES256'): Promise<KeyPair> {
  return generateKeyPair(alg, { extractable: true });
}

export async function thumbprint(keys: KeyPair): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(keys.publicKey));
}

export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('base64url');
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export interface HttpResult {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

export async function postForm(url: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<HttpResult> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
    body: new URLSearchParams(params).toString(),
    redirect: 'manual',
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
  } catch {
    // not JSON: the caller looks at `text`
  }
  return { status: response.status, headers: response.headers, body, text };
}

export interface ClientAuthOptions {
  /** a ready client assertion; by default a fresh valid one */
  readonly assertion?: string;
  /** a DPoP proof for the DPoP header */
  readonly dpop?: string;
  /** leave client_id out of the body (the assertion alone names the client) */
  readonly omitClientId?: boolean;
}

async function authenticated(app: TestApp, client: CraftedClient, params: Record<string, string>, options: ClientAuthOptions): Promise<{ form: Record<string, string>; headers: Record<string, string> }> {
  return {
    form: {
      ...(options.omitClientId === true ? {} : { client_id: client.clientId }),
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: options.assertion ?? await clientAssertion(app, client),
      ...params,
    },
    headers: options.dpop === undefined ? {} : { dpop: options.dpop },
  };
}

/** POST /token with private_key_jwt. */
export async function tokenRequest(app: TestApp, client: CraftedClient, params: Record<string, string>, options: ClientAuthOptions = {}): Promise<HttpResult> {
  const { form, headers } = await authenticated(app, client, params, options);
  return postForm(`${app.url}/token`, form, headers);
}

/** POST /request (PAR) with private_key_jwt. */
export async function parRequest(app: TestApp, client: CraftedClient, params: Record<string, string>, options: ClientAuthOptions = {}): Promise<HttpResult> {
  const { form, headers } = await authenticated(app, client, params, options);
  return postForm(`${app.url}/request`, form, headers);
}

export interface Pushed {
  readonly requestUri: string;
  /** the front-channel URL: /auth?client_id=…&request_uri=… */
  readonly url: URL;
  readonly codeVerifier: string;
  readonly state: string;
}

export function authorizationUrl(app: TestApp, clientId: string, requestUri: string): URL {
  const url = new URL('/auth', app.url);
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('request_uri', requestUri);
  return url;
}

/** Default, valid PAR parameters (PKCE S256, consent prompt for offline_access). */
export function authorizationParams(overrides: Record<string, string | undefined> = {}): { params: Record<string, string>; codeVerifier: string; state: string } {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(12).toString('base64url');
  const merged: Record<string, string | undefined> = {
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: DEFAULT_SCOPE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    prompt: 'consent',
    ...overrides,
  };
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(merged)) {
    if (value !== undefined) params[name] = value;
  }
  return { params, codeVerifier: verifier, state };
}

/** A successful PAR; throws when the server refuses it. */
export async function pushValid(app: TestApp, client: CraftedClient, overrides: Record<string, string | undefined> = {}, options: ClientAuthOptions = {}): Promise<Pushed> {
  const { params, codeVerifier, state } = authorizationParams(overrides);
  const response = await parRequest(app, client, params, options);
  if (response.status !== 201 || typeof response.body.request_uri !== 'string') {
    throw new Error(`PAR failed: ${response.status} ${response.text}`);
  }
  return { requestUri: response.body.request_uri, url: authorizationUrl(app, client.clientId, response.body.request_uri), codeVerifier, state };
}

export interface Authorized extends Pushed {
  readonly callback: URL;
  readonly code: string;
}

/** PAR, then sign-in and consent on the real pages; returns the code from the callback. */
export async function authorizeCode(app: TestApp, client: CraftedClient, customer: Customer, overrides: Record<string, string | undefined> = {}): Promise<Authorized> {
  const pushed = await pushValid(app, client, overrides);
  const callback = await signInAndConsent(pushed, customer);
  const code = callback.searchParams.get('code');
  if (code === null) throw new Error(`no code in the callback: ${callback.toString()}`);
  return { ...pushed, callback, code };
}

/** Redeems a code with a fresh DPoP proof from `keys`. */
export async function redeemCode(app: TestApp, client: CraftedClient, authorized: { code: string; codeVerifier: string }, keys: KeyPair, extra: Record<string, string> = {}): Promise<HttpResult> {
  return tokenRequest(app, client, {
    grant_type: 'authorization_code',
    code: authorized.code,
    code_verifier: authorized.codeVerifier,
    redirect_uri: REDIRECT_URI,
    ...extra,
  }, { dpop: await dpopProof(keys, { htu: `${app.url}/token` }) });
}

export interface UserinfoResult {
  readonly status: number;
  readonly wwwAuthenticate: string;
  /** the `error` of the WWW-Authenticate challenge */
  readonly error: string | undefined;
  /** the DPoP-Nonce response header */
  readonly dpopNonce: string | undefined;
  readonly body: Record<string, unknown>;
}

export async function userinfo(app: TestApp, accessToken: string, options: { scheme?: string; dpop?: string; method?: string } = {}): Promise<UserinfoResult> {
  const headers: Record<string, string> = { authorization: `${options.scheme ?? 'DPoP'} ${accessToken}`, accept: 'application/json' };
  if (options.dpop !== undefined) headers.dpop = options.dpop;
  const response = await fetch(`${app.url}/me`, { method: options.method ?? 'GET', headers });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // empty or not JSON
  }
  const wwwAuthenticate = response.headers.get('www-authenticate') ?? '';
  return {
    status: response.status,
    wwwAuthenticate,
    error: /error="([^"]*)"/.exec(wwwAuthenticate)?.[1],
    dpopNonce: response.headers.get('dpop-nonce') ?? undefined,
    body,
  };
}

export async function introspect(app: TestApp, rs: ResourceServerCredentials, token: string): Promise<Record<string, unknown>> {
  const result = await postForm(`${app.url}/token/introspection`, { token }, { authorization: rs.authorization });
  if (result.status !== 200) throw new Error(`introspection failed: ${result.status} ${result.text}`);
  return result.body;
}

export const ISSUED_MODELS = ['AccessToken', 'RefreshToken', 'ClientCredentials', 'AuthorizationCode'] as const;

/** Rows per model in oidc_models (every model, or the listed ones). */
export async function countModels(app: TestApp, models: readonly string[] = ISSUED_MODELS): Promise<Record<string, number>> {
  const rows = await app.container.database.db.selectFrom('oidc_models')
    .select(['model', (eb) => eb.fn.countAll<number>().as('count')])
    .where('model', 'in', [...models])
    .groupBy('model')
    .execute();
  const counts: Record<string, number> = {};
  for (const model of models) counts[model] = 0;
  for (const row of rows) counts[row.model] = Number(row.count);
  return counts;
}

/** Tokens (access, refresh, client credentials) in the database. */
export async function countTokens(app: TestApp): Promise<number> {
  const counts = await countModels(app, ['AccessToken', 'RefreshToken', 'ClientCredentials']);
  return Object.values(counts).reduce((sum, count) => sum + count, 0);
}

/** What the front channel did with a request: a page on our origin, or a redirect away. */
export interface FrontChannel {
  readonly status: number;
  readonly location: string | null;
  readonly html: string;
}

/** GET without following redirects (a fresh user agent: no cookies). */
export async function frontChannel(url: URL | string): Promise<FrontChannel> {
  const response = await fetch(url, { redirect: 'manual', headers: { accept: 'text/html' } });
  return { status: response.status, location: response.headers.get('location'), html: await response.text() };
}
