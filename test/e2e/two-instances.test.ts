import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort } from '../support/processes.js';
import { startRoundRobinProxy, type RoundRobinProxy } from '../support/round-robin-proxy.js';
import { authorizeAndRedeem, createCustomer, registerTpp, resourceServer } from '../support/tpp.js';

/**
 * Instances are stateless: cookie keys, the DPoP nonce secret and signing keys come from
 * the database. Behind a round-robin load balancer, consecutive requests of one flow
 * (PAR, pages, token, userinfo, introspection, revocation) land on different instances.
 */
let database: TestDatabase;
let a: TestApp;
let b: TestApp;
let proxy: RoundRobinProxy;

beforeAll(async () => {
  database = await createTestDatabase();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  a = await startTestApp(database, { ISSUER: issuer });
  b = await startTestApp(database, { ISSUER: issuer });
  proxy = await startRoundRobinProxy(port, () => [a.url, b.url]);
});

afterAll(async () => {
  await proxy?.close();
  await b?.close();
  await a?.close();
  await database?.drop();
});

test('a whole flow alternating between two instances', async () => {
  const behindProxy = { ...a, url: proxy.url };
  const tpp = await registerTpp(behindProxy);
  const rs = await resourceServer(behindProxy);
  const alice = await createCustomer(behindProxy);

  const tokens = await authorizeAndRedeem(tpp, alice);
  expect(await client.fetchUserInfo(tpp.config, tokens.access_token, alice.id, { DPoP: tpp.dpop })).toMatchObject({ sub: alice.id });
  for (let i = 0; i < 4; i += 1) expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(true);

  await client.tokenRevocation(rs, tokens.refresh_token!);
  for (let i = 0; i < 4; i += 1) expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(false);

  expect(proxy.served[0]).toBeGreaterThan(5);
  expect(proxy.served[1]).toBeGreaterThan(5);
});

describe('DPoP across instances', () => {
  async function setUp() {
    const { generateKeyPair, exportJWK, SignJWT } = await import('jose');
    const clientKeys = await generateKeyPair('ES256', { extractable: true });
    const created = await a.container.clients.createClient({
      client_name: 'Nonce TPP', redirect_uris: [], response_types: [], grant_types: ['client_credentials'],
      jwks: { keys: [{ ...(await exportJWK(clientKeys.publicKey)), kid: 'c1', alg: 'ES256' }] },
    });
    const proofKeys = await generateKeyPair('ES256', { extractable: true });
    const proofJwk = await exportJWK(proofKeys.publicKey);
    const now = () => Math.floor(Date.now() / 1000);
    const assertion = () => new SignJWT({ jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'c1' }).setIssuer(created.client_id).setSubject(created.client_id)
      .setAudience(proxy.url).setIssuedAt().setExpirationTime('1m').sign(clientKeys.privateKey);
    const proof = (claims: Record<string, unknown>) => new SignJWT({ htm: 'POST', htu: `${proxy.url}/token`, jti: crypto.randomUUID(), iat: now(), ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: proofJwk }).sign(proofKeys.privateKey);
    const tokenRequest = async (dpop: string) => fetch(`${proxy.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop },
      body: new URLSearchParams({
        grant_type: 'client_credentials', scope: 'accounts', client_id: created.client_id,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion(),
      }),
    });
    return { proof, tokenRequest, now };
  }

  test('a DPoP nonce issued by one instance is accepted by the other', async () => {
    const { proof, tokenRequest, now } = await setUp();
    const servedBefore = [...proxy.served];
    // A stale proof (iat 400 s ago) makes the server hand out a nonce.
    const challenged = await tokenRequest(await proof({ iat: now() - 400 }));
    expect(challenged.status).toBe(400);
    expect(await challenged.json()).toMatchObject({ error: 'use_dpop_nonce' });
    const nonce = challenged.headers.get('dpop-nonce');
    expect(nonce).toBeTruthy();
    // The next request goes to the other instance (round robin) and carries that nonce.
    const accepted = await tokenRequest(await proof({ iat: now() - 400, nonce }));
    expect(accepted.status).toBe(200);
    expect(await accepted.json()).toMatchObject({ token_type: 'DPoP' });
    expect(proxy.served[0]! - (servedBefore[0] ?? 0)).toBe(1);
    expect(proxy.served[1]! - (servedBefore[1] ?? 0)).toBe(1);
  });

  test('a proof dated more than 60 s ahead is refused, with or without a nonce; 10 s ahead is accepted', async () => {
    const { proof, tokenRequest, now } = await setUp();
    const ahead = await tokenRequest(await proof({ iat: now() + 120 }));
    expect(ahead.status).toBe(400);
    expect(await ahead.json()).toMatchObject({ error: 'invalid_dpop_proof' });
    expect((await tokenRequest(await proof({ iat: now() + 10 }))).status).toBe(200);
  });
});
