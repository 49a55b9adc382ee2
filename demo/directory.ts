import { randomUUID } from 'node:crypto';
import { join } from 'node:path';

import Router from '@koa/router';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import Koa from 'koa';

import { DIRECTORY_ISSUER } from './settings.js';
import { readJson, writeJson } from './store.js';

/**
 * The demo's software-statement directory (the role an open-banking directory such as a
 * national register plays): one ES256 key, generated once and kept in DATA_DIR, its public
 * half at GET /jwks (Portcullis's SSA_JWKS_URI), and software statements (SSAs) it signs
 * for the TPPs it knows — here the one demo TPP, by function call.
 */
export interface SoftwareStatementRequest {
  readonly softwareId: string;
  readonly clientName: string;
  readonly redirectUris: readonly string[];
  readonly jwksUri: string;
  readonly roles: readonly ('AISP' | 'PISP')[];
  readonly orgId: string;
  readonly orgName: string;
}

export interface Directory {
  readonly issuer: string;
  /** the Koa app serving GET /jwks */
  readonly app: Koa;
  /** a fresh SSA (new jti, valid ten minutes) */
  issueSoftwareStatement(request: SoftwareStatementRequest): Promise<string>;
}

interface StoredKey {
  readonly kid: string;
  readonly privateJwk: JWK;
}

async function loadOrCreateKey(dataDir: string): Promise<{ kid: string; privateKey: CryptoKey; publicJwk: JWK }> {
  const path = join(dataDir, 'directory-key.json');
  let stored = readJson<StoredKey>(path);
  if (stored === undefined) {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    stored = { kid: `directory-${randomUUID().slice(0, 8)}`, privateJwk: await exportJWK(privateKey) };
    writeJson(path, stored);
  }
  const privateKey = await importJWK(stored.privateJwk, 'ES256') as CryptoKey;
  const { d: _private, ...publicPart } = stored.privateJwk;
  return { kid: stored.kid, privateKey, publicJwk: { ...publicPart, kid: stored.kid, alg: 'ES256', use: 'sig' } };
}

export async function createDirectory(dataDir: string): Promise<Directory> {
  const key = await loadOrCreateKey(dataDir);
  const jwks = { keys: [key.publicJwk] };

  const router = new Router();
  router.get('/jwks', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.type = 'application/jwk-set+json';
    ctx.body = JSON.stringify(jwks);
  });
  router.get('/', (ctx) => {
    ctx.body = { issuer: DIRECTORY_ISSUER, jwks_uri: '/jwks', note: 'demo software-statement directory' };
  });
  const app = new Koa({ proxy: false });
  app.silent = true;
  app.use(router.routes());
  app.use(router.allowedMethods());

  return {
    issuer: DIRECTORY_ISSUER,
    app,
    async issueSoftwareStatement(request) {
      return new SignJWT({
        software_id: request.softwareId,
        software_client_name: request.clientName,
        software_redirect_uris: [...request.redirectUris],
        software_jwks_uri: request.jwksUri,
        software_roles: [...request.roles],
        org_id: request.orgId,
        org_name: request.orgName,
      })
        .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
        .setIssuer(DIRECTORY_ISSUER)
        .setIssuedAt()
        .setExpirationTime('10m')
        .setJti(randomUUID())
        .sign(key.privateKey);
    },
  };
}
