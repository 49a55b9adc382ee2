import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

import type { TestApp } from './app.js';

/**
 * A software-statement directory and a TPP's key host on loopback HTTP, for registration
 * tests: the directory signs SSAs and serves its JWKS (whose keys a test may rotate);
 * the TPP serves the public keys its SSA names as software_jwks_uri.
 */
export const DIRECTORY_ISSUER = 'https://directory.example';

export interface KeyPair { publicKey: CryptoKeyLike; privateKey: CryptoKeyLike; kid: string; alg: string }
type CryptoKeyLike = Awaited<ReturnType<typeof generateKeyPair>>['publicKey'];

export async function keyPair(alg: 'ES256' | 'PS256' | 'RS256' = 'ES256', kid: string = randomUUID()): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { publicKey, privateKey, kid, alg };
}

export async function publicJwk(key: KeyPair): Promise<JWK> {
  return { ...(await exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: 'sig' };
}

export interface JwksHost {
  readonly url: string;
  /** requests served so far */
  fetches(): number;
  setKeys(keys: KeyPair[]): Promise<void>;
  close(): Promise<void>;
}

export async function startJwksHost(keys: KeyPair[]): Promise<JwksHost> {
  let body = JSON.stringify({ keys: await Promise.all(keys.map(publicJwk)) });
  let count = 0;
  const server: Server = createServer((_req, res) => {
    count += 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    fetches: () => count,
    async setKeys(next) { body = JSON.stringify({ keys: await Promise.all(next.map(publicJwk)) }); },
    async close() { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())); },
  };
}

export interface SsaClaims {
  software_id: string;
  software_client_name: string;
  software_redirect_uris: string[];
  software_jwks_uri: string;
  software_roles: string[];
  org_id: string;
  org_name: string;
  [claim: string]: unknown;
}

export function ssaClaims(jwksUri: string, overrides: Partial<SsaClaims> = {}): SsaClaims {
  return {
    software_id: `sw-${randomUUID()}`,
    software_client_name: 'Budget Buddy',
    software_redirect_uris: ['https://tpp.example/callback', 'https://tpp.example/other'],
    software_jwks_uri: jwksUri,
    software_roles: ['AISP', 'PISP'],
    org_id: 'org-42',
    org_name: 'Budget Buddy Ltd',
    ...overrides,
  };
}

/** Signs an SSA; header/claim overrides let tests break one thing at a time. */
export async function signSsa(key: KeyPair, claims: Record<string, unknown>, options: { iss?: string; iatOffset?: number; expOffset?: number; jti?: string; alg?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(options.iss ?? DIRECTORY_ISSUER)
    .setIssuedAt(now + (options.iatOffset ?? 0))
    .setExpirationTime(now + (options.expOffset ?? 600))
    .setJti(options.jti ?? randomUUID())
    .sign(key.privateKey);
}

// ---------------------------------------------------------------------------------------
// RFC 7591 / 7592 requests and checks, for the registration tests.

export interface RegistrationResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

export interface RegistrationRequestOptions {
  readonly method?: 'POST' | 'GET' | 'PUT' | 'DELETE';
  /** a registration access token, sent as a Bearer token */
  readonly token?: string;
  readonly contentType?: string;
  /** sent as is instead of JSON.stringify(body) */
  readonly raw?: string;
}

/** A registration (or management) request; `body` is JSON-encoded unless `raw` is given. */
export async function registrationRequest(url: string, body?: unknown, options: RegistrationRequestOptions = {}): Promise<RegistrationResponse> {
  const method = options.method ?? 'POST';
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(url, { method, headers, ...(payload === undefined ? {} : { body: payload }) });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) parsed = value as Record<string, unknown>;
  } catch {
    // not JSON (204, HTML): the caller looks at `text`
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** Rows of the clients table. */
export async function countClients(app: TestApp): Promise<number> {
  const row = await app.container.database.db.selectFrom('clients')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** The stored row of a client (undefined when there is none). */
export async function clientRow(app: TestApp, clientId: string): Promise<{ metadata: Record<string, unknown>; softwareId: string | null } | undefined> {
  const row = await app.container.database.db.selectFrom('clients')
    .select(['metadata', 'software_id'])
    .where('client_id', '=', clientId)
    .executeTakeFirst();
  return row === undefined ? undefined : { metadata: row.metadata, softwareId: row.software_id };
}

/**
 * Polls `attempt` until it returns something other than undefined, at most `timeoutMs`:
 * waiting on a condition (the short pause between attempts only paces the polling).
 */
export async function pollUntil<T>(attempt: () => Promise<T | undefined>, timeoutMs = 5000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await attempt();
    if (result !== undefined) return result;
    if (Date.now() >= deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
