import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

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
