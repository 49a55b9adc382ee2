import { afterAll, beforeAll, expect, test } from '@jest/globals';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { ACR_SCA } from '../support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, type Tpp } from '../support/tpp.js';

/**
 * Self-service enrolment is for a customer without an authenticator. Once one exists,
 * a password alone can never replace it: the enrolment form is refused, the secret
 * stays, and the customer is asked for a code instead.
 */
let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('an enrolment page opened before the customer got an authenticator cannot replace it', async () => {
  const carol = await createCustomer(app, 'carol', 'carol has a long password');
  const browser = new FormBrowser();
  const started = await pushAuthorization(tpp, { acr_values: ACR_SCA });
  const login = requirePage(await browser.navigate(started.url.toString()));
  const enrolment = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: carol.username, password: carol.password, otp: '' }));
  expect(enrolment.document.querySelector('form[action$="/enrol"]')).not.toBeNull();

  // Meanwhile the customer gets an authenticator (e.g. from the bank's operator).
  const enrolled = await app.container.totp.enrol(carol.id, carol.username, { actor: 'test' });
  const before = await app.container.database.db.selectFrom('users').select('totp_secret_enc').where('id', '=', carol.id).executeTakeFirstOrThrow();

  const refused = await browser.submit(enrolment, 'form[action$="/enrol"]', { otp: '123456' });
  expect(refused.page?.status).toBe(400);
  const after = await app.container.database.db.selectFrom('users').select('totp_secret_enc').where('id', '=', carol.id).executeTakeFirstOrThrow();
  expect(after).toEqual(before);

  // The same request now asks for a code from the existing authenticator.
  const codePage = requirePage(await browser.navigate(enrolment.url));
  expect(codePage.document.querySelector('form[action$="/otp"] input[name=otp]')).not.toBeNull();
  expect(codePage.document.querySelector('form[action$="/enrol"]')).toBeNull();
  expect(enrolled.recoveryCodes).toHaveLength(10);
});
