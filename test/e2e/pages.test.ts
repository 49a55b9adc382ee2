import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage, type Page } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createCustomer, pushAuthorization, registerTpp, type Customer, type Tpp } from '../support/tpp.js';

let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let alice: Customer;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  alice = await createCustomer(app);
  await createCustomer(app, 'bob', 'bob has another long password');
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

async function openLogin(browser = new FormBrowser()): Promise<{ browser: FormBrowser; page: Page }> {
  const started = await pushAuthorization(tpp);
  return { browser, page: requirePage(await browser.navigate(started.url.toString())) };
}

async function openConsent(): Promise<{ browser: FormBrowser; page: Page }> {
  const { browser, page } = await openLogin();
  const consent = requirePage(await browser.submit(page, 'form[action$="/login"]', { username: alice.username, password: alice.password }));
  return { browser, page: consent };
}

function postForm(browser: FormBrowser, url: string, fields: [string, string][]) {
  return browser.request(url, { method: 'POST', body: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
}

describe('sign-in page', () => {
  test('has the contract fields, labels, the client name, CSRF input and no script', async () => {
    const { page } = await openLogin();
    expect(page.status).toBe(200);
    const form = page.document.querySelector('form[action$="/login"]')!;
    for (const name of ['username', 'password']) {
      const input = form.querySelector(`input[name=${name}]`)!;
      expect(input).not.toBeNull();
      expect(page.document.querySelector(`label[for=${input.getAttribute('id')}]`)).not.toBeNull();
    }
    expect(form.querySelector('input[name=otp]')).toBeNull();
    expect(form.querySelector('input[type=hidden][name=csrf]')?.getAttribute('value')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(page.document.querySelector('main')?.text).toContain('Budget Buddy');
    expect(page.document.querySelectorAll('script')).toHaveLength(0);
    expect(page.html).not.toMatch(/\son[a-z]+=/i); // no inline event handlers
    expect(page.document.querySelector('meta[name=viewport]')).not.toBeNull();
    expect(page.document.querySelector('html')?.getAttribute('lang')).toBe('en');
  });

  test('security headers: CSP without inline script, no framing, no caching, request id', async () => {
    const { page } = await openLogin();
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._-]{8,64}$/);
    expect(page.headers.get('x-powered-by')).toBeNull();
  });

  test('a wrong password and an unknown user get the same answer', async () => {
    const { browser, page } = await openLogin();
    const wrong = requirePage(await browser.submit(page, 'form[action$="/login"]', { username: 'alice', password: 'not the password at all' }));
    const unknown = requirePage(await browser.submit(wrong, 'form[action$="/login"]', { username: 'zelda', password: 'not the password at all' }));
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    // Same page but for the echoed username.
    expect(wrong.html.replace('value="alice"', 'value="?"')).toBe(unknown.html.replace('value="zelda"', 'value="?"'));
    expect(wrong.document.querySelector('[role=alert]')?.text).toBe('Sign-in failed. Check your details and try again.');
  });

  test('a form post without, with a wrong, or with another form\'s CSRF token is refused and changes nothing', async () => {
    const { browser, page } = await openLogin();
    const action = new URL(page.document.querySelector('form[action$="/login"]')!.getAttribute('action')!, page.url).toString();
    const abortToken = page.document.querySelector('form[action$="/abort"] input[name=csrf]')!.getAttribute('value')!;
    const credentials: [string, string][] = [['username', alice.username], ['password', alice.password]];
    for (const csrf of [undefined, 'A'.repeat(43), abortToken]) {
      const response = await postForm(browser, action, csrf === undefined ? credentials : [...credentials, ['csrf', csrf]]);
      expect(response.status).toBe(403);
      expect(await response.text()).toContain('this form has expired');
    }
    // A fresh browser (no CSRF cookie) replaying a valid token is refused too.
    const token = page.document.querySelector('form[action$="/login"] input[name=csrf]')!.getAttribute('value')!;
    expect((await postForm(new FormBrowser(), action, [...credentials, ['csrf', token]])).status).toBe(400);
    // The interaction is untouched: signing in properly still works.
    const consent = requirePage(await browser.submit(page, 'form[action$="/login"]', { username: alice.username, password: alice.password }));
    expect(consent.document.querySelector('button[name=decision][value=allow]')).not.toBeNull();
  });

  test('a repeated field is a 400, not a 500', async () => {
    const { browser, page } = await openLogin();
    const form = page.document.querySelector('form[action$="/login"]')!;
    const csrf = form.querySelector('input[name=csrf]')!.getAttribute('value')!;
    const response = await postForm(browser, new URL(form.getAttribute('action')!, page.url).toString(), [['csrf', csrf], ['username', 'alice'], ['username', 'bob'], ['password', 'x']]);
    expect(response.status).toBe(400);
  });

  test('NUL and malformed Unicode are a 400, not a 500', async () => {
    const { browser, page } = await openLogin();
    const form = page.document.querySelector('form[action$="/login"]')!;
    const csrf = form.querySelector('input[name=csrf]')!.getAttribute('value')!;
    const action = new URL(form.getAttribute('action')!, page.url).toString();
    for (const body of [`csrf=${csrf}&username=al%00ice&password=x`, `csrf=${csrf}&username=%ED%A0%80&password=x`, `csrf=${csrf}&username=%FF%FE&password=x`]) {
      const response = await browser.request(action, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(response.status).toBe(400);
    }
  });

  test('cancel returns access_denied to the client', async () => {
    const { browser, page } = await openLogin();
    const result = await browser.submit(page, 'form[action$="/abort"]', {});
    expect(new URL(result.leftTo!).searchParams.get('error')).toBe('access_denied');
  });
});

describe('consent page', () => {
  test('shows the client, the permissions in words, the customer\'s accounts and both buttons', async () => {
    const { page } = await openConsent();
    expect(page.document.querySelector('main')?.text).toContain('Budget Buddy');
    expect(page.document.querySelector('.permissions')?.text).toContain('See the accounts you choose');
    const accounts = page.document.querySelectorAll('input[type=checkbox][name=accounts]').map((i) => i.getAttribute('value'));
    expect(accounts.sort()).toEqual(['alice-current', 'alice-savings']);
    expect(page.html).not.toContain('bob-current');
    expect(page.document.querySelector('button[name=decision][value=allow]')).not.toBeNull();
    expect(page.document.querySelector('button[name=decision][value=deny]')).not.toBeNull();
    // IBANs are masked on the page.
    expect(page.html).not.toContain('GB82WEST12345698765432');
  });

  test('an account id that is not the customer\'s is a 400 and grants nothing', async () => {
    const { browser, page } = await openConsent();
    const result = await browser.submit(page, 'form[action$="/consent"]', { accounts: ['alice-current', 'bob-current'] }, { name: 'decision', value: 'allow' });
    expect(result.page?.status).toBe(400);
    const grants = await app.container.database.db.selectFrom('oidc_models').select('key').where('model', '=', 'Grant').execute();
    const after = requirePage(await browser.navigate(page.url));
    expect(after.document.querySelector('button[name=decision][value=allow]')).not.toBeNull();
    expect((await app.container.database.db.selectFrom('oidc_models').select('key').where('model', '=', 'Grant').execute()).length).toBe(grants.length);
  });

  test('a decision other than allow or deny is a 400', async () => {
    const { browser, page } = await openConsent();
    const result = await browser.submit(page, 'form[action$="/consent"]', {}, { name: 'decision', value: 'maybe' });
    expect(result.page?.status).toBe(400);
  });
});

describe('errors and health', () => {
  test('an unknown interaction shows the error page with a request id and no internals', async () => {
    const response = await fetch(`${app.url}/interaction/does-not-exist`, { headers: { accept: 'text/html', 'x-request-id': 'trace-12345678' } });
    expect(response.status).toBe(400);
    expect(response.headers.get('x-request-id')).toBe('trace-12345678');
    const html = await response.text();
    expect(html).toContain('trace-12345678');
    expect(html).not.toMatch(/at .*\.(js|ts):\d+|node_modules|\/work\/|oidc-provider|SessionNotFound/);
  });

  test('a malformed inbound request id is replaced', async () => {
    const response = await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'bad id\twith spaces' } });
    expect(response.headers.get('x-request-id')).not.toBe('bad id\twith spaces');
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('JSON callers get the error envelope', async () => {
    const response = await fetch(`${app.url}/interaction/nope/login`, { method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' });
    expect(response.status).toBe(400);
    const body = await response.json() as { error: { code: string; message: string; request_id: string } };
    expect(body.error.code).toBe('INTERACTION_EXPIRED');
    expect(body.error.request_id).toBe(response.headers.get('x-request-id'));
  });

  test('an oversized form body is a 413', async () => {
    const response = await fetch(`${app.url}/interaction/nope/login`, { method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, body: `a=${'x'.repeat(64 * 1024)}` });
    expect(response.status).toBe(413);
  });

  test('/healthz and /readyz answer 200 with the database up', async () => {
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  });

  test('protocol responses carry a request id too', async () => {
    const response = await fetch(`${app.url}/.well-known/openid-configuration`);
    expect(response.headers.get('x-request-id')).toBeTruthy();
  });
});
