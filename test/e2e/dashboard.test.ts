import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';
import { generate } from 'otplib';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage, type Page } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { enrolTotp, TestClock, type Authenticator } from '../support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, resourceServer, type Customer, type Tpp } from '../support/tpp.js';

/** The customer dashboard at /account: consents listed in words, revocable at once. */
let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let rs: client.Configuration;
const clock = new TestClock();
let customers = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database, {}, clock.now);
  tpp = await registerTpp(app);
  rs = await resourceServer(app);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

async function customerWithConsent(): Promise<{ customer: Customer; authenticator: Authenticator; accessToken: string; grantId: string }> {
  customers += 1;
  const customer = await createCustomer(app, `owner${customers}`, 'owner has a long password');
  const { authenticator } = await enrolTotp(app, customer);
  const started = await pushAuthorization(tpp, { scope: 'openid accounts', authorization_details: JSON.stringify([{ type: 'account_information', actions: ['list_accounts', 'read_balances'] }]) });
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(started.url.toString()));
  const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() }));
  const result = await browser.submit(consent, 'form[action$="/consent"]', { accounts: [`${customer.username}-current`] }, { name: 'decision', value: 'allow' });
  const tokens = await client.authorizationCodeGrant(tpp.config, new URL(result.leftTo!), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
  return { customer, authenticator, accessToken: tokens.access_token, grantId: String(tokens.grant_id) };
}

async function signIn(customer: Customer, authenticator: Authenticator): Promise<{ browser: FormBrowser; page: Page }> {
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(`${app.url}/account`));
  expect(login.document.querySelector('form[action="/account/login"] input[name=otp]')).not.toBeNull();
  const page = requirePage(await browser.submit(login, 'form[action="/account/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() }));
  return { browser, page };
}

describe('customer dashboard', () => {
  test('lists the consent with client, what it grants, since, until, status; Revoke makes its token inactive at once', async () => {
    const { customer, authenticator, accessToken, grantId } = await customerWithConsent();
    const { browser, page } = await signIn(customer, authenticator);
    const item = page.document.querySelector(`#consent-${grantId}`)!;
    expect(item.querySelector('h2')?.text).toBe('Budget Buddy');
    expect(item.text).toContain(`Read list, balances of accounts ${customer.username}-current`);
    expect(item.text).toMatch(/Since .* · until .*/);
    expect(item.querySelector('.status')?.text).toBe('authorised');

    const after = requirePage(await browser.submit(page, `#consent-${grantId} form`, {}));
    expect(after.document.querySelector(`#consent-${grantId} .status`)?.text).toBe('revoked');
    expect(after.document.querySelector(`#consent-${grantId} form`)).toBeNull();
    expect((await client.tokenIntrospection(rs, accessToken)).active).toBe(false);
  });

  test('another customer\'s consent id is a 404 and stays authorised; no CSRF token is a 403', async () => {
    const victim = await customerWithConsent();
    const attacker = await customerWithConsent();
    const { browser, page } = await signIn(attacker.customer, attacker.authenticator);
    const ownForm = page.document.querySelector(`#consent-${attacker.grantId} form input[name=csrf]`)!.getAttribute('value')!;
    // With a valid CSRF token from the attacker's own page, the victim's id reads as unknown.
    const foreign = await browser.request(`${app.url}/account/consents/${victim.grantId}/revoke`, { method: 'POST', body: `csrf=${ownForm}`, headers: { 'content-type': 'application/x-www-form-urlencoded'} });
    const unknown = await browser.request(`${app.url}/account/consents/no-such-consent/revoke`, { method: 'POST', body: `csrf=${ownForm}`, headers: { 'content-type': 'application/x-www-form-urlencoded'} });
    expect(foreign.status).toBe(404);
    expect(unknown.status).toBe(404);
    const withoutRequestId = (html: string) => html.replace(/<code>[^<]*<\/code>/g, '');
    expect(withoutRequestId(await foreign.text())).toBe(withoutRequestId(await unknown.text()));
    const html = page.html;
    expect(html).not.toContain(victim.grantId);
    const noCsrf = await browser.request(`${app.url}/account/consents/${attacker.grantId}/revoke`, { method: 'POST', body: '', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(noCsrf.status).toBe(403);
    expect((await app.container.consents.get(victim.grantId)).status).toBe('authorised');
    expect((await app.container.consents.get(attacker.grantId)).status).toBe('authorised');
  });

  test('a signed-in customer revoking another customer\'s consent through the service guard changes nothing', async () => {
    const victim = await customerWithConsent();
    const attacker = await customerWithConsent();
    expect(await app.container.consents.transition(victim.grantId, 'revoked', { userId: attacker.customer.id }, { actor: 'test' })).toBeUndefined();
    expect((await app.container.consents.get(victim.grantId)).status).toBe('authorised');
  });

  test('five idle minutes end the dashboard session', async () => {
    clock.release();
    const { customer, authenticator } = await customerWithConsent();
    const { browser } = await signIn(customer, authenticator);
    clock.set(Date.now() + 299_000);
    expect(requirePage(await browser.navigate(`${app.url}/account`)).document.querySelector('.consents')).not.toBeNull();
    clock.set(clock.ms + 301_000);
    expect(requirePage(await browser.navigate(`${app.url}/account`)).document.querySelector('form[action="/account/login"]')).not.toBeNull();
    clock.release();
  });
});

describe('replacing the authenticator', () => {
  test('right after SCA: a new secret confirmed by its first code replaces the old one', async () => {
    // Real time throughout: the codes here are computed from the real clock.
    clock.release();
    const { customer, authenticator } = await customerWithConsent();
    const { browser } = await signIn(customer, authenticator);
    const page = requirePage(await browser.navigate(`${app.url}/account/authenticator`));
    const secret = page.document.querySelector('code.secret')!.text.replace(/\s+/g, '');
    const codes = requirePage(await browser.submit(page, 'form[action="/account/authenticator"]', { otp: await generate({ secret, epoch: Math.floor(clock.ms / 1000) }) }));
    expect(codes.document.querySelectorAll('.recovery-codes li')).toHaveLength(10);
    // The old authenticator no longer works; the new one does.
    expect(await app.container.totp.verifyCode(customer.id, await generate({ secret: authenticator.secret, epoch: Math.floor(clock.ms / 1000) + 30 }))).toBe(false);
    expect(await app.container.totp.verifyCode(customer.id, await generate({ secret, epoch: Math.floor(clock.ms / 1000) + 30 }))).toBe(true);
  });

  test('not after a session has been open longer than five minutes: sign in again first', async () => {
    clock.release();
    const { customer, authenticator } = await customerWithConsent();
    const { browser } = await signIn(customer, authenticator);
    // Only now move the clock (the codes above were checked against real time).
    clock.set(Date.now() + 200_000);
    await browser.navigate(`${app.url}/account`); // keeps the session alive
    clock.set(clock.ms + 200_000);
    const refused = await browser.request(`${app.url}/account/authenticator`);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('sign in again');
  });
});

test('the sweeper marks a consent past its end expired: audited, shown as expired, its tokens inactive', async () => {
  clock.release();
  const { accessToken, grantId } = await customerWithConsent();
  const consent = await app.container.consents.get(grantId);
  expect(consent.expiresAt).not.toBeNull();
  clock.set(consent.expiresAt!.getTime() + 1000);
  try {
    await app.container.sweeper.sweepOnce();
    expect((await app.container.consents.get(grantId)).status).toBe('expired');
    const events = await app.container.database.db.selectFrom('audit_events').select('type').where('type', '=', 'consent.expired').execute();
    expect(events.length).toBeGreaterThan(0);
  } finally {
    clock.release();
  }
  expect((await client.tokenIntrospection(rs, accessToken)).active).toBe(false);
});
