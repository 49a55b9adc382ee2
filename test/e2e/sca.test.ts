import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  ACR_CA, ACR_SCA, alertText, Authenticator, CODE_FAILED, consentIfAsked, enrolTotp, formInputs, heading, open, redeem,
  SIGN_IN_FAILED, TestClock, withoutEchoedUsername,
} from '../support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, resourceServer, signInAndConsent, type Customer, type Tpp } from '../support/tpp.js';

/**
 * PSD2 strong customer authentication through the real pages (FormBrowser) and
 * openid-client: password + TOTP on one form, step-up, first-time enrolment, recovery
 * codes, lockout, per-IP throttling and the 5-minute idle session (DESIGN §3).
 */

let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let rs: client.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  rs = await resourceServer(app);
}, 60_000);

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

const SCA = { acr_values: ACR_SCA };

async function enrolledCustomer(username: string): Promise<{ customer: Customer; authenticator: Authenticator; recoveryCodes: string[] }> {
  const customer = await createCustomer(app, username);
  return { customer, ...(await enrolTotp(app, customer)) };
}

async function lockState(userId: string) {
  return app.container.database.db.selectFrom('users')
    .select(['failed_attempts', 'locked_until', 'lock_count', 'locked_permanently'])
    .where('id', '=', userId).executeTakeFirstOrThrow();
}

describe('which requests need SCA: the sign-in form asks for the one-time code only then', () => {
  const cases: [string, Record<string, string>, boolean][] = [
    ['no acr_values', {}, false],
    ['acr_values = sca only', SCA, true],
    ['acr_values lists ca as well (its weakest level is the minimum)', { acr_values: `${ACR_SCA} ${ACR_CA}` }, false],
    ['scope includes payments', { scope: 'openid payments' }, true],
  ];
  test.each(cases)('%s', async (_name, params, needsOtp) => {
    const page = await open(new FormBrowser(), await pushAuthorization(tpp, params));
    expect(page.status).toBe(200);
    expect(heading(page)).toBe('Sign in to your bank');
    expect(formInputs(page, 'login')).toEqual(needsOtp ? ['username', 'password', 'otp'] : ['username', 'password']);
  });
});

describe('strong customer authentication', () => {
  test('password and one-time code on one form: acr sca, amr [pwd, otp] in the ID token, userinfo and introspection', async () => {
    const { customer, authenticator } = await enrolledCustomer('sca-login');
    const browser = new FormBrowser();
    const started = await pushAuthorization(tpp, SCA);
    const login = await open(browser, started);
    expect(login.status).toBe(200);
    // One form carries all three factors' fields.
    expect(formInputs(login, 'login')).toEqual(['username', 'password', 'otp']);
    expect(login.document.querySelector('form[action$="/otp"]')).toBeNull();

    const result = await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() });
    expect(result.page === undefined ? undefined : heading(result.page)).toBe('Review this request');
    const callback = await consentIfAsked(browser, result);
    const tokens = await redeem(tpp, started, callback);

    const idToken = tokens.claims();
    expect(idToken?.sub).toBe(customer.id);
    expect(idToken?.acr).toBe(ACR_SCA);
    expect(idToken?.amr).toEqual(['pwd', 'otp']);
    expect(typeof idToken?.auth_time).toBe('number');

    const introspected = await client.tokenIntrospection(rs, tokens.access_token);
    expect(introspected).toMatchObject({ active: true, sub: customer.id, acr: ACR_SCA, amr: ['pwd', 'otp'] });

    // DESIGN §3: ID tokens, userinfo and introspection all say how the customer authenticated.
    const userinfo = await client.fetchUserInfo(tpp.config, tokens.access_token, customer.id, { DPoP: tpp.dpop });
    expect(userinfo).toMatchObject({ sub: customer.id, acr: ACR_SCA, amr: ['pwd', 'otp'] });

    // The refreshed access token keeps the level of the authentication behind the grant.
    const refreshed = await client.refreshTokenGrant(tpp.config, tokens.refresh_token!, undefined, { DPoP: tpp.dpop });
    expect(await client.tokenIntrospection(rs, refreshed.access_token)).toMatchObject({ active: true, acr: ACR_SCA, amr: ['pwd', 'otp'] });

    const audited = await app.container.database.db.selectFrom('audit_events').select(['type', 'data']).where('user_id', '=', customer.id).execute();
    expect(audited.map((e) => e.type)).toContain('sca.success');
  });

  test('step-up: a password-only session is asked for the one-time code alone, then gets acr sca', async () => {
    const { customer, authenticator } = await enrolledCustomer('sca-stepup');
    const browser = new FormBrowser();

    const first = await pushAuthorization(tpp);
    const firstTokens = await redeem(tpp, first, await signInAndConsent(first, customer, { browser }));
    expect(firstTokens.claims()?.acr).toBe(ACR_CA);
    expect(firstTokens.claims()?.amr).toEqual(['pwd']);

    const second = await pushAuthorization(tpp, SCA);
    const otpPage = await open(browser, second);
    expect(otpPage.status).toBe(200);
    expect(heading(otpPage)).toBe('Confirm it is you');
    expect(otpPage.document.querySelector('input[name=username]')).toBeNull();
    expect(otpPage.document.querySelector('input[name=password]')).toBeNull();
    expect(formInputs(otpPage, 'otp')).toEqual(['otp']);

    // A wrong code: 401, the generic code failure, the same page whatever was wrong with it.
    const wrong = requirePage(await browser.submit(otpPage, 'form[action$="/otp"]', { otp: await authenticator.wrongCode() }));
    expect(wrong.status).toBe(401);
    expect(alertText(wrong)).toBe(CODE_FAILED);
    expect(formInputs(wrong, 'otp')).toEqual(['otp']);
    const malformed = requirePage(await browser.submit(wrong, 'form[action$="/otp"]', { otp: 'abc' }));
    expect(malformed.status).toBe(401);
    expect(malformed.html).toBe(wrong.html);

    const result = await browser.submit(malformed, 'form[action$="/otp"]', { otp: await authenticator.code() });
    const tokens = await redeem(tpp, second, await consentIfAsked(browser, result));
    expect(tokens.claims()?.sub).toBe(customer.id);
    expect(tokens.claims()?.acr).toBe(ACR_SCA);
    expect(tokens.claims()?.amr).toEqual(['pwd', 'otp']);
    expect(await client.tokenIntrospection(rs, tokens.access_token)).toMatchObject({ active: true, acr: ACR_SCA, amr: ['pwd', 'otp'] });

    // The session now holds SCA: a further SCA request needs no sign-in at all.
    const third = await pushAuthorization(tpp, SCA);
    const consent = requirePage(await browser.navigate(third.url.toString()));
    expect(heading(consent)).toBe('Review this request');
  });

  test('the one-time-code page takes a recovery code too, once', async () => {
    const { customer, recoveryCodes } = await enrolledCustomer('sca-stepup-recovery');
    const browser = new FormBrowser();
    const first = await pushAuthorization(tpp);
    await signInAndConsent(first, customer, { browser });

    const second = await pushAuthorization(tpp, SCA);
    const otpPage = await open(browser, second);
    expect(formInputs(otpPage, 'otp')).toEqual(['otp']);
    const result = await browser.submit(otpPage, 'form[action$="/otp"]', { otp: recoveryCodes[0]! });
    const tokens = await redeem(tpp, second, await consentIfAsked(browser, result));
    expect(tokens.claims()?.acr).toBe(ACR_SCA);

    // Used: in another password-only session the same recovery code is refused.
    const otherBrowser = new FormBrowser();
    await signInAndConsent(await pushAuthorization(tpp), customer, { browser: otherBrowser });
    const third = await open(otherBrowser, await pushAuthorization(tpp, SCA));
    const reused = requirePage(await otherBrowser.submit(third, 'form[action$="/otp"]', { otp: recoveryCodes[0]! }));
    expect(reused.status).toBe(401);
    expect(alertText(reused)).toBe(CODE_FAILED);
  });

  test('failures are indistinguishable: unknown user, wrong password, wrong or missing code, no authenticator', async () => {
    const { customer, authenticator } = await enrolledCustomer('sca-same');
    const unenrolled = await createCustomer(app, 'sca-same-noapp');
    const browser = new FormBrowser();
    const started = await pushAuthorization(tpp, SCA);
    let page = await open(browser, started);

    const attempts: [string, Record<string, string>][] = [
      ['unknown user', { username: 'nobody-here', password: customer.password, otp: await authenticator.wrongCode() }],
      ['wrong password, right code', { username: customer.username, password: 'not the password at all', otp: await authenticator.code() }],
      ['right password, wrong code', { username: customer.username, password: customer.password, otp: await authenticator.wrongCode() }],
      ['right password, no code', { username: customer.username, password: customer.password }],
      ['no authenticator, wrong password', { username: unenrolled.username, password: 'not the password at all', otp: await authenticator.wrongCode() }],
    ];
    const pages: { name: string; status: number; html: string; alert: string | undefined }[] = [];
    for (const [name, fields] of attempts) {
      page = requirePage(await browser.submit(page, 'form[action$="/login"]', fields));
      pages.push({ name, status: page.status, html: withoutEchoedUsername(page.html), alert: alertText(page) });
    }
    for (const seen of pages) {
      expect({ name: seen.name, status: seen.status, alert: seen.alert }).toEqual({ name: seen.name, status: 401, alert: SIGN_IN_FAILED });
      expect({ name: seen.name, html: seen.html }).toEqual({ name: seen.name, html: pages[0]!.html });
    }
    // The page does echo the username typed (and only that differs).
    expect(page.document.querySelector('input[name=username]')?.getAttribute('value')).toBe(unenrolled.username);
  });

  test('lockout: after 5 failures the right password and code fail the same way; unlock lets the customer in', async () => {
    const { customer, authenticator } = await enrolledCustomer('sca-lock');
    const browser = new FormBrowser();
    const started = await pushAuthorization(tpp, SCA);
    let page = await open(browser, started);
    let failure: string | undefined;
    for (let i = 0; i < 5; i += 1) {
      page = requirePage(await browser.submit(page, 'form[action$="/login"]', { username: customer.username, password: `wrong password ${i}`, otp: await authenticator.wrongCode() }));
      expect(page.status).toBe(401);
      expect(alertText(page)).toBe(SIGN_IN_FAILED);
      failure ??= withoutEchoedUsername(page.html);
    }
    const state = await lockState(customer.id);
    expect(state.locked_until).not.toBeNull();
    expect(state.lock_count).toBe(1);

    // Blocked: the right password and a valid code get the very same answer.
    page = requirePage(await browser.submit(page, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() }));
    expect(page.status).toBe(401);
    expect(withoutEchoedUsername(page.html)).toBe(failure);

    const locked = await app.container.database.db.selectFrom('audit_events').select(['type', 'data']).where('user_id', '=', customer.id).where('type', '=', 'account.locked').execute();
    expect(locked).toHaveLength(1);
    expect(locked[0]!.data).toMatchObject({ permanent: false, lock_count: 1 });

    await app.container.authentication.unlock(customer.id, { actor: 'test' });
    expect(await lockState(customer.id)).toMatchObject({ failed_attempts: 0, locked_until: null, lock_count: 0, locked_permanently: false });

    const result = await browser.submit(page, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() });
    const tokens = await redeem(tpp, started, await consentIfAsked(browser, result));
    expect(tokens.claims()?.sub).toBe(customer.id);
    expect(tokens.claims()?.acr).toBe(ACR_SCA);
  });

  test('first SCA without an authenticator: enrolment page, recovery codes, then acr sca; a recovery code works once', async () => {
    const customer = await createCustomer(app, 'sca-first');
    const browser = new FormBrowser();
    const started = await pushAuthorization(tpp, SCA);
    const login = await open(browser, started);
    expect(formInputs(login, 'login')).toEqual(['username', 'password', 'otp']);

    // The password alone (the customer has no app yet) leads to the enrolment page.
    const enrol = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password }));
    expect(enrol.status).toBe(200);
    expect(heading(enrol)).toBe('Set up your authenticator app');
    expect(enrol.document.querySelector('input[name=username]')).toBeNull();
    expect(formInputs(enrol, 'enrol')).toEqual(['otp']);
    expect(enrol.document.querySelector('img.qr')?.getAttribute('src')).toMatch(/^data:image\/png;base64,[A-Za-z0-9+/]+=*$/);
    const shown = enrol.document.querySelector('code.secret')?.text.trim() ?? '';
    expect(shown).toMatch(/^[A-Z2-7]{4}( [A-Z2-7]{4})*( [A-Z2-7]{1,3})?$/);
    expect(await app.container.totp.isEnrolled(customer.id)).toBe(false);

    // A wrong code keeps the same proposed secret and stores nothing.
    const authenticator = new Authenticator(shown);
    const retry = requirePage(await browser.submit(enrol, 'form[action$="/enrol"]', { otp: await authenticator.wrongCode() }));
    expect(retry.status).toBe(401);
    expect(alertText(retry)).toBe(CODE_FAILED);
    expect(retry.document.querySelector('code.secret')?.text.trim()).toBe(shown);
    expect(await app.container.totp.isEnrolled(customer.id)).toBe(false);

    const codesPage = requirePage(await browser.submit(retry, 'form[action$="/enrol"]', { otp: await authenticator.code() }));
    expect(codesPage.status).toBe(200);
    expect(heading(codesPage)).toBe('Save your recovery codes');
    const recoveryCodes = codesPage.document.querySelectorAll('.recovery-codes code').map((c) => c.text.trim());
    expect(recoveryCodes).toHaveLength(10);
    expect(new Set(recoveryCodes).size).toBe(10);
    for (const code of recoveryCodes) expect(code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    expect(await app.container.totp.isEnrolled(customer.id)).toBe(true);

    const tokens = await redeem(tpp, started, await consentIfAsked(browser, await browser.submit(codesPage, 'form[action$="/enrolled"]', {})));
    expect(tokens.claims()?.sub).toBe(customer.id);
    expect(tokens.claims()?.acr).toBe(ACR_SCA);
    expect(tokens.claims()?.amr).toEqual(['pwd', 'otp']);

    // Later, in another browser: a recovery code in place of the one-time code, once.
    const recovery = recoveryCodes[0]!;
    const later = await pushAuthorization(tpp, SCA);
    const laterBrowser = new FormBrowser();
    const laterResult = await laterBrowser.submit(await open(laterBrowser, later), 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: recovery });
    const laterTokens = await redeem(tpp, later, await consentIfAsked(laterBrowser, laterResult));
    expect(laterTokens.claims()?.acr).toBe(ACR_SCA);

    const again = await pushAuthorization(tpp, SCA);
    const againBrowser = new FormBrowser();
    const againLogin = await open(againBrowser, again);
    const reused = requirePage(await againBrowser.submit(againLogin, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: recovery }));
    expect(reused.status).toBe(401);
    expect(alertText(reused)).toBe(SIGN_IN_FAILED);
    // Another, unused recovery code still works (written as a person might type it).
    const other = recoveryCodes[1]!.replace(/-/g, '').toLowerCase();
    const otherResult = await againBrowser.submit(reused, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: other });
    expect((await redeem(tpp, again, await consentIfAsked(againBrowser, otherResult))).claims()?.acr).toBe(ACR_SCA);
  });
});

describe('per-IP throttling of failed sign-ins', () => {
  let throttledDatabase: TestDatabase;
  let throttled: TestApp;

  beforeAll(async () => {
    throttledDatabase = await createTestDatabase();
    throttled = await startTestApp(throttledDatabase, { SIGNIN_IP_MAX_FAILURES: '3' });
  }, 60_000);

  afterAll(async () => {
    await throttled?.close();
    await throttledDatabase?.drop();
  });

  test('after 3 failures from one address, the next sign-in (even a right one) gets 429 with Retry-After', async () => {
    const throttledTpp = await registerTpp(throttled);
    const customer = await createCustomer(throttled, 'ip-carol');
    const other = await createCustomer(throttled, 'ip-dave');
    const browser = new FormBrowser();
    const started = await pushAuthorization(throttledTpp);
    let page = await open(browser, started);
    // Failures against different usernames count together.
    for (const username of ['ip-carol', 'ip-dave', 'nobody-at-all']) {
      page = requirePage(await browser.submit(page, 'form[action$="/login"]', { username, password: 'not the password at all' }));
      expect(page.status).toBe(401);
    }
    const blocked = requirePage(await browser.submit(page, 'form[action$="/login"]', { username: other.username, password: other.password }));
    expect(blocked.status).toBe(429);
    const retryAfter = blocked.headers.get('retry-after');
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(900);
    expect(blocked.document.querySelector('main')?.text).toMatch(/Too many failed sign-ins/);
    expect((await throttled.container.database.db.selectFrom('users').select('failed_attempts').where('id', '=', customer.id).executeTakeFirstOrThrow()).failed_attempts).toBe(1);
  });
});

describe('session idle timeout (SESSION_IDLE_SECONDS = 300)', () => {
  let idleDatabase: TestDatabase;
  let idle: TestApp;
  const clock = new TestClock();

  beforeAll(async () => {
    idleDatabase = await createTestDatabase();
    idle = await startTestApp(idleDatabase, {}, clock.now);
  }, 60_000);

  afterAll(async () => {
    await idle?.close();
    await idleDatabase?.drop();
  });

  test('299 s of inactivity keep the session (each request renews it); 301 s end it', async () => {
    const idleTpp = await registerTpp(idle);
    const customer = await createCustomer(idle, 'idle-erin');
    const browser = new FormBrowser();

    const first = await pushAuthorization(idleTpp);
    await signInAndConsent(first, customer, { browser });
    // The session was last saved just before the redirect to the client: at most now.
    let lastActive = clock.ms;

    // 299 s later, twice in a row: the session is still there, and each request renews it.
    for (let i = 0; i < 2; i += 1) {
      clock.set(lastActive + 299_000);
      const within = requirePage(await browser.navigate((await pushAuthorization(idleTpp)).url.toString()));
      expect(heading(within)).toBe('Review this request');
      expect(within.document.querySelector('input[name=username]')).toBeNull();
      lastActive = clock.ms;
    }

    clock.set(lastActive + 301_000);
    const after = await pushAuthorization(idleTpp);
    const signIn = requirePage(await browser.navigate(after.url.toString()));
    expect(signIn.status).toBe(200);
    expect(heading(signIn)).toBe('Sign in to your bank');
    expect(formInputs(signIn, 'login')).toEqual(['username', 'password']);

    // Signing in again works as usual.
    const result = await browser.submit(signIn, 'form[action$="/login"]', { username: customer.username, password: customer.password });
    expect(result.page === undefined ? undefined : heading(result.page)).toBe('Review this request');
    const tokens = await redeem(idleTpp, after, await consentIfAsked(browser, result));
    expect(tokens.claims()?.sub).toBe(customer.id);
  });
});
