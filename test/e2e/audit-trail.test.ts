import { afterAll, beforeAll, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { enrolTotp } from '../support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, resourceServer } from '../support/tpp.js';

/** One full flow leaves a complete, verifiable trail: who did what, from where. */
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

async function eventTypes(): Promise<string[]> {
  return (await app.container.database.db.selectFrom('audit_events').select('type').orderBy('seq').execute()).map((e) => e.type);
}

/** Token events are written just after oidc-provider's own writes: wait for them (bounded). */
async function until(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('sign-in failure and success, SCA, consent, token issued and revoked, consent revoked: all audited, chain intact', async () => {
  const customer = await createCustomer(app, 'audited', 'audited customer password');
  const { authenticator } = await enrolTotp(app, customer);
  const tpp = await registerTpp(app);
  const rs = await resourceServer(app);
  const started = await pushAuthorization(tpp, { scope: 'openid offline_access accounts', authorization_details: JSON.stringify([{ type: 'account_information', actions: ['list_accounts'] }]) });
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(started.url.toString()));
  const retry = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: 'audited', password: 'wrong password here', otp: '000000' }));
  const consent = requirePage(await browser.submit(retry, 'form[action$="/login"]', { username: 'audited', password: customer.password, otp: await authenticator.code() }));
  const result = await browser.submit(consent, 'form[action$="/consent"]', { accounts: ['audited-current'] }, { name: 'decision', value: 'allow' });
  const tokens = await client.authorizationCodeGrant(tpp.config, new URL(result.leftTo!), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
  await client.tokenRevocation(rs, tokens.access_token);
  await app.container.consents.transition(String(tokens.grant_id), 'revoked', { userId: customer.id }, { actor: 'customer', userId: customer.id });

  await until(async () => (await eventTypes()).includes('token.revoked'));
  const types = await eventTypes();
  for (const type of ['totp.enrolled', 'signin.failure', 'sca.success', 'consent.granted', 'token.issued', 'token.revoked', 'consent.revoked']) {
    expect({ type, present: types.includes(type) }).toEqual({ type, present: true });
  }
  const issued = await app.container.database.db.selectFrom('audit_events').select(['client_id', 'user_id', 'ip', 'data']).where('type', '=', 'token.issued').executeTakeFirstOrThrow();
  expect(issued).toMatchObject({ client_id: tpp.clientId, user_id: customer.id, ip: expect.stringMatching(/127\.0\.0\.1/), data: { grant_type: 'authorization_code', grant_id: tokens.grant_id } });
  const failure = await app.container.database.db.selectFrom('audit_events').select(['user_id', 'ip', 'request_id', 'client_id']).where('type', '=', 'signin.failure').executeTakeFirstOrThrow();
  expect(failure).toMatchObject({ user_id: customer.id, client_id: tpp.clientId, request_id: expect.stringMatching(/.+/) });
  expect(await app.container.audit.verify()).toMatchObject({ ok: true, events: types.length });
});
