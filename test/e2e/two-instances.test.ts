import { afterAll, beforeAll, expect, test } from '@jest/globals';
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
