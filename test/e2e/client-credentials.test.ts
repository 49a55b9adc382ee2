import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { registerTpp, resourceServer } from '../support/tpp.js';

let database: TestDatabase;
let app: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('client credentials with private_key_jwt and DPoP: a bound token the resource server can introspect and revoke', async () => {
  const tpp = await registerTpp(app, { grant_types: ['authorization_code', 'refresh_token', 'client_credentials'] });
  const rs = await resourceServer(app);
  const tokens = await client.clientCredentialsGrant(tpp.config, { scope: 'accounts' }, { DPoP: tpp.dpop });
  expect(tokens.token_type.toLowerCase()).toBe('dpop');

  const introspected = await client.tokenIntrospection(rs, tokens.access_token);
  expect(introspected).toMatchObject({ active: true, client_id: tpp.clientId, token_type: 'DPoP', scope: 'accounts' });
  expect(introspected.sub).toBeUndefined();
  expect(introspected.cnf?.jkt).toBe(await calculateJwkThumbprint(await exportJWK(tpp.dpopKeys.publicKey)));

  await client.tokenRevocation(rs, tokens.access_token);
  expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(false);
});

test('a client without the client_credentials grant is refused', async () => {
  const tpp = await registerTpp(app);
  await expect(client.clientCredentialsGrant(tpp.config, { scope: 'accounts' }, { DPoP: tpp.dpop })).rejects.toMatchObject({ error: 'invalid_request', error_description: 'requested grant type is not allowed for this client' });
});

test('a TPP cannot introspect or revoke another client\'s token', async () => {
  const owner = await registerTpp(app, { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
  const other = await registerTpp(app, { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
  const rs = await resourceServer(app);
  const tokens = await client.clientCredentialsGrant(owner.config, { scope: 'accounts' }, { DPoP: owner.dpop });
  expect((await client.tokenIntrospection(other.config, tokens.access_token)).active).toBe(false);
  await client.tokenRevocation(other.config, tokens.access_token);
  expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(true);
  expect((await client.tokenIntrospection(owner.config, tokens.access_token)).active).toBe(true);
});
