import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { authorizeAndRedeem, createCustomer, registerTpp, resourceServer, type Customer, type Tpp } from '../support/tpp.js';

let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let rs: client.Configuration;
let alice: Customer;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  rs = await resourceServer(app);
  alice = await createCustomer(app);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

describe('authorization code flow: PAR + private_key_jwt + DPoP + PKCE (openid-client)', () => {
  test('sign in and consent on our pages, redeem, userinfo, introspect, revoke', async () => {
    const tokens = await authorizeAndRedeem(tpp, alice);
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    expect(typeof tokens.access_token).toBe('string');
    expect(typeof tokens.refresh_token).toBe('string');
    const idClaims = tokens.claims();
    expect(idClaims?.sub).toBe(alice.id);
    expect(idClaims?.acr).toBe('urn:openbanking:psd2:ca');
    expect(idClaims?.amr).toEqual(['pwd']);

    const userinfo = await client.fetchUserInfo(tpp.config, tokens.access_token, alice.id, { DPoP: tpp.dpop });
    expect(userinfo).toMatchObject({ sub: alice.id, name: 'Alice Example', acr: 'urn:openbanking:psd2:ca', amr: ['pwd'] });

    const introspected = await client.tokenIntrospection(rs, tokens.access_token);
    const jkt = await calculateJwkThumbprint(await exportJWK(tpp.dpopKeys.publicKey));
    expect(introspected).toMatchObject({
      active: true,
      client_id: tpp.clientId,
      sub: alice.id,
      token_type: 'DPoP',
      acr: 'urn:openbanking:psd2:ca',
      amr: ['pwd'],
    });
    expect(introspected.scope?.split(' ').sort()).toEqual(['accounts', 'offline_access', 'openid', 'profile']);
    expect(typeof introspected.grant_id).toBe('string');
    expect(typeof introspected.exp).toBe('number');
    expect(typeof introspected.iat).toBe('number');
    expect(introspected.cnf?.jkt).toBe(jkt);

    // A resource server never sees a refresh token as active; its client does.
    expect((await client.tokenIntrospection(rs, tokens.refresh_token!)).active).toBe(false);
    expect((await client.tokenIntrospection(tpp.config, tokens.refresh_token!)).active).toBe(true);

    // Revoking the refresh token revokes the grant: the access token dies with it.
    await client.tokenRevocation(rs, tokens.refresh_token!);
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(false);
    expect((await client.tokenIntrospection(tpp.config, tokens.refresh_token!)).active).toBe(false);
  });

  test('revoking an access token makes it inactive at once', async () => {
    const tokens = await authorizeAndRedeem(tpp, alice);
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(true);
    await client.tokenRevocation(rs, tokens.access_token);
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(false);
  });

  test('a code is redeemed once; a second redemption fails and kills the first tokens', async () => {
    const { pushAuthorization, signInAndConsent } = await import('../support/tpp.js');
    const started = await pushAuthorization(tpp);
    const callback = await signInAndConsent(started, alice);
    const first = await client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
    await expect(client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop }))
      .rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await client.tokenIntrospection(rs, first.access_token)).active).toBe(false);
  });

  test('refresh grants a new DPoP-bound access token without rotating the refresh token', async () => {
    const tokens = await authorizeAndRedeem(tpp, alice);
    const refreshed = await client.refreshTokenGrant(tpp.config, tokens.refresh_token!, undefined, { DPoP: tpp.dpop });
    expect(refreshed.refresh_token === undefined || refreshed.refresh_token === tokens.refresh_token).toBe(true);
    const introspected = await client.tokenIntrospection(rs, refreshed.access_token);
    expect(introspected).toMatchObject({ active: true, sub: alice.id, acr: 'urn:openbanking:psd2:ca' });
  });

  test('the customer denies: the TPP receives access_denied', async () => {
    const { pushAuthorization, signInAndConsent } = await import('../support/tpp.js');
    const started = await pushAuthorization(tpp);
    const callback = await signInAndConsent(started, alice, { decision: 'deny' });
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('iss')).toBe(app.url);
    expect(callback.searchParams.get('code')).toBeNull();
  });
});
