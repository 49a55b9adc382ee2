import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort } from '../support/processes.js';
import { PIN_HEADER, startRoundRobinProxy, type RoundRobinProxy } from '../support/round-robin-proxy.js';
import { clientAssertion, CLIENT_ASSERTION_TYPE, dpopKeyPair, dpopProof, postForm, registerCraftedClient, registerResourceServer } from '../support/fapi-crafting.js';
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

describe('state is shared, never stale', () => {
  const PAIRS = 1000;

  test(`${PAIRS} random pairs: issued on one instance, introspected on either; revoked on one → inactive on the other at its next request`, async () => {
    const behindProxy = { ...a, url: proxy.url };
    const machine = await registerCraftedClient(behindProxy, { grantTypes: ['client_credentials'], name: 'Pairs TPP' });
    const rs = await registerResourceServer(behindProxy);
    const keys = await dpopKeyPair();
    const on = (instance: number) => ({ [PIN_HEADER]: String(instance) });
    const random = () => Math.floor(Math.random() * 2);
    const introspect = async (token: string, instance: number) => {
      const response = await postForm(`${proxy.url}/token/introspection`, { token }, { authorization: rs.authorization, ...on(instance) });
      expect(response.status).toBe(200);
      return response.body.active === true;
    };
    const served = [...proxy.served];
    const outcomes = { issued: 0, activeBefore: 0, staleAfterRevoke: 0, crossInstanceRevocations: 0 };

    const pair = async () => {
      const issuer = random();
      const issued = await postForm(`${proxy.url}/token`, {
        grant_type: 'client_credentials', scope: 'accounts', client_id: machine.clientId,
        client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: await clientAssertion(behindProxy, machine),
      }, { dpop: await dpopProof(keys, { htu: `${proxy.url}/token` }), ...on(issuer) });
      expect(issued.status).toBe(200);
      outcomes.issued += 1;
      const token = String(issued.body.access_token);
      if (await introspect(token, random())) outcomes.activeBefore += 1;
      const revoker = random();
      const revoked = await postForm(`${proxy.url}/token/revocation`, { token, token_type_hint: 'access_token' }, { authorization: rs.authorization, ...on(revoker) });
      expect(revoked.status).toBe(200);
      const checker = random();
      if (checker !== revoker) outcomes.crossInstanceRevocations += 1;
      if (await introspect(token, checker)) outcomes.staleAfterRevoke += 1;
    };
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => { while (next < PAIRS) { next += 1; await pair(); } }));

    expect(outcomes).toEqual({ issued: PAIRS, activeBefore: PAIRS, staleAfterRevoke: 0, crossInstanceRevocations: expect.any(Number) });
    expect(outcomes.crossInstanceRevocations).toBeGreaterThan(PAIRS / 4);
    for (const instance of [0, 1]) expect(proxy.served[instance]! - (served[instance] ?? 0)).toBeGreaterThan(PAIRS);
  }, 180_000);

  test('a client disabled on one instance is refused by the other (client metadata cache evicted through LISTEN/NOTIFY)', async () => {
    const behindProxy = { ...a, url: proxy.url };
    const machine = await registerCraftedClient(behindProxy, { grantTypes: ['client_credentials'], name: 'Disabled TPP' });
    const keys = await dpopKeyPair();
    const tokenOn = async (instance: number) => postForm(`${proxy.url}/token`, {
      grant_type: 'client_credentials', scope: 'accounts', client_id: machine.clientId,
      client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: await clientAssertion(behindProxy, machine),
    }, { dpop: await dpopProof(keys, { htu: `${proxy.url}/token` }), [PIN_HEADER]: String(instance) });
    // B has the client cached now (so the test proves the eviction, not a database read).
    expect((await tokenOn(1)).status).toBe(200);
    expect((await tokenOn(1)).status).toBe(200);
    const cachedOnB = b.container.clientCache.size;
    expect(cachedOnB).toBeGreaterThan(0);
    await a.container.clients.setDisabled(machine.clientId, true, async () => undefined);
    // The notification reaches B when the change commits; its next requests are refused.
    const started = Date.now();
    let status = (await tokenOn(1)).status;
    while (status === 200 && Date.now() - started < 2000) status = (await tokenOn(1)).status;
    expect(status).toBe(401);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(b.container.clientCache.size).toBeLessThan(cachedOnB);
  });
});
