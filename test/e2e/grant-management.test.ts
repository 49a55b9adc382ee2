import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { enrolTotp } from '../support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, resourceServer, type Tpp } from '../support/tpp.js';

/** FAPI Grant Management: the owning client queries and revokes its grant; nobody else learns it exists. */
let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let other: Tpp;
let rs: client.Configuration;
let customers = 0;

const details = JSON.stringify([{ type: 'account_information', actions: ['list_accounts', 'read_balances'] }]);

async function consentTokens(owner: Tpp, scope = 'openid offline_access accounts grant_management_query grant_management_revoke') {
  customers += 1;
  const customer = await createCustomer(app, `grantee${customers}`, 'grantee has a long password');
  const { authenticator } = await enrolTotp(app, customer);
  const started = await pushAuthorization(owner, { scope, authorization_details: details });
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(started.url.toString()));
  const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() }));
  const result = await browser.submit(consent, 'form[action$="/consent"]', { accounts: [`${customer.username}-current`] }, { name: 'decision', value: 'allow' });
  return client.authorizationCodeGrant(owner.config, new URL(result.leftTo!), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: owner.dpop });
}

function grantUrl(grantId: string): URL {
  return new URL(`${app.url}/grants/${encodeURIComponent(grantId)}`);
}

async function call(who: Tpp, token: string, grantId: string, method: 'GET' | 'DELETE') {
  try {
    const response = await client.fetchProtectedResource(who.config, token, grantUrl(grantId), method, undefined, undefined, { DPoP: who.dpop });
    return { status: response.status, body: response.status === 204 ? undefined : await response.json() as Record<string, unknown> };
  } catch (error) {
    // openid-client raises on a WWW-Authenticate challenge (401, 403): report its status.
    if (error instanceof client.WWWAuthenticateChallengeError) return { status: error.status, body: undefined };
    throw error;
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  other = await registerTpp(app);
  rs = await resourceServer(app);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

describe('Grant Management API', () => {
  test('discovery advertises it', async () => {
    const metadata = await (await fetch(`${app.url}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
    expect(metadata).toMatchObject({ grant_management_endpoint: `${app.url}/grants`, grant_management_actions_supported: ['query', 'revoke'] });
  });

  test('query: scopes, approved authorization_details and status for the owning client', async () => {
    const tokens = await consentTokens(tpp);
    expect(typeof tokens.grant_id).toBe('string');
    const { status, body } = await call(tpp, tokens.access_token, String(tokens.grant_id), 'GET');
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'authorised', authorization_details: [{ type: 'account_information', actions: ['list_accounts', 'read_balances'], accounts: [expect.stringMatching(/-current$/)] }] });
    expect((body!.scopes as { scope: string }[])[0]!.scope.split(' ')).toEqual(expect.arrayContaining(['accounts', 'grant_management_query']));
  });

  test('another client gets 404, exactly as for an unknown grant id; the grant is untouched', async () => {
    const tokens = await consentTokens(tpp);
    const theirs = await consentTokens(other);
    const foreign = await call(other, theirs.access_token, String(tokens.grant_id), 'GET');
    const unknown = await call(other, theirs.access_token, 'no-such-grant', 'GET');
    expect(foreign.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect({ ...foreign.body, error: { ...(foreign.body!.error as object), request_id: '' } }).toEqual({ ...unknown.body, error: { ...(unknown.body!.error as object), request_id: '' } });
    expect((await call(other, theirs.access_token, String(tokens.grant_id), 'DELETE')).status).toBe(404);
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(true);
  });

  test('revoke: 204, every token of the grant inactive at once, the consent revoked and audited', async () => {
    const tokens = await consentTokens(tpp);
    const grantId = String(tokens.grant_id);
    expect((await call(tpp, tokens.access_token, grantId, 'DELETE')).status).toBe(204);
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(false);
    await expect(client.refreshTokenGrant(tpp.config, tokens.refresh_token!, undefined, { DPoP: tpp.dpop })).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await app.container.consents.get(grantId)).status).toBe('revoked');
    const events = await app.container.database.db.selectFrom('audit_events').select(['type', 'client_id']).where('type', '=', 'consent.revoked').execute();
    expect(events).toContainEqual({ type: 'consent.revoked', client_id: tpp.clientId });
  });

  test('without the scope: 403; as a bearer token or with a broken proof: 401', async () => {
    const tokens = await consentTokens(tpp, 'openid accounts');
    expect((await call(tpp, tokens.access_token, String(tokens.grant_id), 'GET')).status).toBe(403);
    const bearer = await fetch(grantUrl(String(tokens.grant_id)), { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(bearer.status).toBe(401);
    expect(bearer.headers.get('www-authenticate')).toMatch(/invalid_token/);
    const noProof = await fetch(grantUrl(String(tokens.grant_id)), { headers: { authorization: `DPoP ${tokens.access_token}` } });
    expect(noProof.status).toBe(401);
    expect((await fetch(grantUrl(String(tokens.grant_id)))).status).toBe(401);
  });
});
