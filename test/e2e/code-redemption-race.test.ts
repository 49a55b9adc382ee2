import { afterAll, beforeAll, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createCustomer, pushAuthorization, registerTpp, resourceServer, signInAndConsent } from '../support/tpp.js';

/**
 * oidc-provider checks a code with find → check → save; only the adapter's conditional
 * UPDATE can stop racing redemptions. On PostgreSQL (TEST_DATABASE_URL) the 50 requests
 * really run concurrently over a connection pool.
 */
let database: TestDatabase;
let app: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database, { DATABASE_POOL_MAX: '20' });
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('50 parallel redemptions of one code: exactly one token response, then every token of the grant is inactive', async () => {
  const tpp = await registerTpp(app);
  const rs = await resourceServer(app);
  const alice = await createCustomer(app);
  const started = await pushAuthorization(tpp);
  const callback = await signInAndConsent(started, alice);

  const attempts = await Promise.allSettled(Array.from({ length: 50 }, () => client.authorizationCodeGrant(
    tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop },
  )));

  const won = attempts.filter((a) => a.status === 'fulfilled');
  const lost = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected');
  expect({ won: won.length, lost: lost.length }).toEqual({ won: 1, lost: 49 });
  expect(new Set(lost.map((loss) => (loss.reason as { error?: string }).error))).toEqual(new Set(['invalid_grant']));

  const winner = (won[0] as PromiseFulfilledResult<client.TokenEndpointResponse>).value;
  expect((await client.tokenIntrospection(rs, winner.access_token)).active).toBe(false);
  expect((await client.tokenIntrospection(tpp.config, winner.refresh_token!)).active).toBe(false);

  const { count } = await app.container.database.db.selectFrom('oidc_models')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('model', 'in', ['AccessToken', 'RefreshToken'])
    .executeTakeFirstOrThrow();
  // The winner may have saved its tokens after a loser revoked the grant; those rows are
  // harmless (the grant is gone, so introspection and userinfo refuse them) and expire.
  expect(Number(count)).toBeLessThanOrEqual(2);
  const grants = await app.container.database.db.selectFrom('oidc_models').select('key').where('model', '=', 'Grant').execute();
  expect(grants).toHaveLength(0);
});
