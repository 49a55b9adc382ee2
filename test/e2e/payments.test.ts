import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';
import { generate } from 'otplib';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage, type Page } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createCustomer, pushAuthorization, registerTpp, resourceServer, type Customer, type Tpp } from '../support/tpp.js';

/**
 * Payments under PSD2 dynamic linking: the one-time code is entered on a page that shows
 * the amount and payee, recorded against exactly those, and spent on one consent.
 */
let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let rs: client.Configuration;
let alice: Customer;
let secret: string;
let step = 0;
let customers = 0;

const payment = (amount = '125.50', creditorName = 'Corner Shop Ltd') => JSON.stringify([{
  type: 'payment_initiation',
  instructedAmount: { currency: 'GBP', amount },
  creditorName,
  creditorAccount: { iban: 'GB33BUKB20201555555555' },
  remittanceInformationUnstructured: 'Invoice 42',
}]);

/**
 * A code for a step no earlier one used (each step is accepted once, ± 1 step of drift):
 * at most three per customer and 30 s, so each test signs in a customer of its own.
 */
async function nextCode(): Promise<string> {
  step = Math.max(step + 1, Math.floor(Date.now() / 30_000) - 1);
  return generate({ secret, epoch: step * 30 });
}

async function useFreshCustomer(): Promise<void> {
  customers += 1;
  alice = await createCustomer(app, `payer${customers}`, 'payer has a long password');
  secret = (await app.container.totp.enrol(alice.id, alice.username, { actor: 'test' })).secret;
  step = 0;
}

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  rs = await resourceServer(app);
});

beforeEach(useFreshCustomer);

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

async function signInForPayment(browser: FormBrowser, details: string): Promise<{ page: Page; started: Awaited<ReturnType<typeof pushAuthorization>> }> {
  const started = await pushAuthorization(tpp, { scope: 'openid payments', authorization_details: details }).catch((e: unknown) => { throw new Error(JSON.stringify((e as { cause?: unknown }).cause)); });
  const login = requirePage(await browser.navigate(started.url.toString()));
  return { page: login, started };
}

describe('payment initiation', () => {
  test('the sign-in page shows amount and payee; code + consent → a token carrying the approved payment', async () => {
    const browser = new FormBrowser();
    const { page: login, started } = await signInForPayment(browser, payment());
    expect(login.document.querySelector('.amount')?.text).toBe('GBP 125.50');
    expect(login.document.querySelector('.payee')?.text).toBe('Corner Shop Ltd');
    expect(login.document.querySelector('form[action$="/login"] input[name=otp]')).not.toBeNull();

    const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: alice.username, password: alice.password, otp: await nextCode() }));
    expect(consent.document.querySelector('.amount')?.text).toBe('GBP 125.50');
    const debtors = consent.document.querySelectorAll('input[name=debtor_account]').map((i) => i.getAttribute('value'));
    expect(debtors[0]).toBe(`${alice.username}-current`); // the GBP account first
    const result = await browser.submit(consent, 'form[action$="/consent"]', { debtor_account: `${alice.username}-current` }, { name: 'decision', value: 'allow' });
    const tokens = await client.authorizationCodeGrant(tpp.config, new URL(result.leftTo!), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
    expect(tokens.authorization_details).toEqual([expect.objectContaining({
      type: 'payment_initiation', instructedAmount: { currency: 'GBP', amount: '125.50' }, debtorAccount: { iban: 'GB82WEST12345698765432', id: `${alice.username}-current` },
    })]);
    const introspected = await client.tokenIntrospection(rs, tokens.access_token);
    expect(introspected).toMatchObject({ active: true, acr: 'urn:openbanking:psd2:sca', amr: ['pwd', 'otp'], grant_id: tokens.grant_id });
    const stored = await app.container.consents.get(String(tokens.grant_id));
    expect(stored).toMatchObject({ status: 'authorised', type: 'payment_initiation', userId: alice.id, clientId: tpp.clientId });
    expect(stored.scaHash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The payment API uses it once: the consent is consumed and its token dies at once.
    expect(await app.container.consents.consume(stored.grantId, { actor: 'test' })).toMatchObject({ status: 'consumed' });
    expect(await app.container.consents.consume(stored.grantId, { actor: 'test' })).toBeUndefined();
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(false);
    expect(introspected.authorization_details).toEqual(tokens.authorization_details);
  });

  test('an earlier SCA does not authorise a new payment: the same session is asked for a code again, on a page showing the new payment', async () => {
    const browser = new FormBrowser();
    const first = await signInForPayment(browser, payment('10.00'));
    const consent = requirePage(await browser.submit(first.page, 'form[action$="/login"]', { username: alice.username, password: alice.password, otp: await nextCode() }));
    await browser.submit(consent, 'form[action$="/consent"]', { debtor_account: `${alice.username}-current` }, { name: 'decision', value: 'allow' });

    const second = await signInForPayment(browser, payment('999.00', 'Someone Else'));
    expect(second.page.document.querySelector('input[name=username]')).toBeNull(); // session known: code only
    expect(second.page.document.querySelector('form[action$="/otp"] input[name=otp]')).not.toBeNull();
    expect(second.page.document.querySelector('.amount')?.text).toBe('GBP 999.00');
    expect(second.page.document.querySelector('.payee')?.text).toBe('Someone Else');
  });

  test('a payment whose linked SCA is for other details is refused at consent and grants nothing', async () => {
    const browser = new FormBrowser();
    const { page: login } = await signInForPayment(browser, payment('50.00'));
    const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: alice.username, password: alice.password, otp: await nextCode() }));
    // The SCA on record now covers different details than this request (as if amount or payee changed).
    await app.container.database.db.updateTable('payment_sca').set({ details_hash: 'hash-of-other-details' }).where('user_id', '=', alice.id).where('grant_id', 'is', null).execute();
    const grantsBefore = await app.container.database.db.selectFrom('oidc_models').select('key').where('model', '=', 'Grant').execute();
    const refused = await browser.submit(consent, 'form[action$="/consent"]', { debtor_account: `${alice.username}-current` }, { name: 'decision', value: 'allow' });
    expect(refused.page?.status).toBe(400);
    expect(refused.page?.html).toContain('not confirmed with a one-time code for these details');
    expect(await app.container.database.db.selectFrom('oidc_models').select('key').where('model', '=', 'Grant').execute()).toHaveLength(grantsBefore.length);
  });

  test('invalid payment details are refused at PAR with invalid_authorization_details', async () => {
    const bad = [
      payment('-5.00'), payment('0'), payment('1.234'), payment('100000.01'),
      JSON.stringify([{ type: 'payment_initiation', instructedAmount: { currency: 'XXX', amount: '1.00' }, creditorName: 'A', creditorAccount: { iban: 'GB33BUKB20201555555555' } }]),
      JSON.stringify([{ type: 'payment_initiation', instructedAmount: { currency: 'GBP', amount: '1.00' }, creditorName: 'A', creditorAccount: { iban: 'GB33BUKB20201555555556' } }]),
      JSON.stringify([{ type: 'payment_initiation', instructedAmount: { currency: 'GBP', amount: '1.00' }, creditorName: 'A', creditorAccount: { iban: 'GB33BUKB20201555555555' }, extra: 1 }]),
      JSON.stringify([{ type: 'account_information', actions: ['transfer_money'] }]),
      JSON.stringify([{ type: 'account_information', actions: ['read_balances'], expires_at: '2000-01-01T00:00:00Z' }]),
      JSON.stringify([{ type: 'unknown_type' }]),
    ];
    for (const details of bad) {
      await expect(pushAuthorization(tpp, { scope: 'openid payments accounts', authorization_details: details })).rejects.toMatchObject({ error: 'invalid_authorization_details' });
    }
  });
});

describe('account information', () => {
  test('the customer picks accounts; the approved details carry them; SCA is required', async () => {
    const browser = new FormBrowser();
    const details = JSON.stringify([{ type: 'account_information', actions: ['list_accounts', 'read_balances'] }]);
    const started = await pushAuthorization(tpp, { scope: 'openid accounts', authorization_details: details });
    const login = requirePage(await browser.navigate(started.url.toString()));
    expect(login.document.querySelector('form[action$="/login"] input[name=otp]')).not.toBeNull();
    const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: alice.username, password: alice.password, otp: await nextCode() }));
    expect(consent.document.querySelector('.permissions')?.text).toContain('see their balances');
    const none = await browser.submit(consent, 'form[action$="/consent"]', {}, { name: 'decision', value: 'allow' });
    expect(none.page?.status).toBe(400);
    const result = await browser.submit(consent, 'form[action$="/consent"]', { accounts: [`${alice.username}-savings`] }, { name: 'decision', value: 'allow' });
    const tokens = await client.authorizationCodeGrant(tpp.config, new URL(result.leftTo!), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
    expect(tokens.authorization_details).toEqual([{ type: 'account_information', actions: ['list_accounts', 'read_balances'], accounts: [`${alice.username}-savings`] }]);
  });
});
