import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';

import { startTestApp, type TestApp } from '../support/app.js';
import { launchChromium, saveScreenshot } from '../support/chromium.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createCustomer, pushAuthorization, REDIRECT_URI, registerTpp, type Customer, type Tpp } from '../support/tpp.js';

/**
 * The sign-in and consent pages in a real Chromium (Debian's package, driven by
 * playwright-core): PAR by openid-client, the customer in the browser, the code redeemed
 * by openid-client again.
 *
 * The TPP's redirect_uri stays https://tpp.example/callback. page.route() does not see the
 * target of a 303 (checked: the route handler is never called and the navigation fails with
 * ERR_NAME_NOT_RESOLVED), so Chromium's resolver maps tpp.example:443 to a real loopback
 * HTTPS server with a throwaway self-signed certificate (the context ignores certificate
 * errors; nothing else is reachable from this browser).
 */

const PHONE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 };
const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };
const FAILED = 'Sign-in failed. Check your details and try again.';

let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let alice: Customer;
let browser: Browser;
let callbackServer: Server;
let certDir: string;
const callbackHits: string[] = [];

function startCallbackServer(): Promise<Server> {
  certDir = mkdtempSync(join(tmpdir(), 'portcullis-tpp-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tpp.key', '-out', 'tpp.pem',
    '-days', '1', '-subj', '/CN=tpp.example', '-addext', 'subjectAltName=DNS:tpp.example', '-addext', 'extendedKeyUsage=serverAuth',
  ], { cwd: certDir, stdio: ['ignore', 'ignore', 'pipe'] });
  const server = createServer({ cert: readFileSync(join(certDir, 'tpp.pem')), key: readFileSync(join(certDir, 'tpp.key')) }, (req, res) => {
    callbackHits.push(`https://${req.headers.host}${req.url}`);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>TPP</title><p>callback reached</p></html>');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  alice = await createCustomer(app);
  callbackServer = await startCallbackServer();
  const { port } = callbackServer.address() as AddressInfo;
  browser = await launchChromium({ args: [`--host-resolver-rules=MAP tpp.example:443 127.0.0.1:${port}`] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (callbackServer !== undefined) {
    callbackServer.closeAllConnections();
    await new Promise<void>((resolve) => callbackServer.close(() => resolve()));
  }
  if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
  await app?.close();
  await database?.drop();
});

interface Watched {
  readonly page: Page;
  readonly context: BrowserContext;
  /** console errors, uncaught page errors and CSP violations, as text */
  readonly problems: string[];
  readonly csp: string[];
}

/** A new context and page that records console errors, page errors and CSP violations. */
async function openPage(options: BrowserContextOptions): Promise<Watched> {
  const context = await browser.newContext({ ...options, ignoreHTTPSErrors: true });
  // Devtools-injected, so our CSP does not apply to it; it reports violations the page
  // itself could see (Chromium also logs each violation to the console on its own).
  await context.addInitScript(`document.addEventListener('securitypolicyviolation', (e) =>
    console.error('Content Security Policy violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));`);
  const page = await context.newPage();
  const problems: string[] = [];
  const csp: string[] = [];
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) csp.push(message.text());
    if (message.type() === 'error') problems.push(`console: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  return { page, context, problems, csp };
}

/**
 * Console errors that are not the page's fault. Chromium logs every non-2xx response as
 * "Failed to load resource", including the failed sign-in page itself (a 401 by design) and
 * its own /favicon.ico request (we serve none: a 404).
 */
const EXPECTED_ERRORS = [
  /^console: Failed to load resource: the server responded with a status of 401 \(Unauthorized\) \(http:\/\/127\.0\.0\.1:\d+\/interaction\/[\w-]+\/login\)$/,
  /^console: Failed to load resource: the server responded with a status of 404 \(Not Found\) \(http:\/\/127\.0\.0\.1:\d+\/favicon\.ico\)$/,
];

function unexpected(problems: string[]): string[] {
  return problems.filter((problem) => !EXPECTED_ERRORS.some((pattern) => pattern.test(problem)));
}

/** tag, name and text of document.activeElement (the tsconfig has no DOM lib: evaluated as a string). */
function focused(page: Page): Promise<{ tag: string; name: string; text: string; outline: string }> {
  return page.evaluate(`(() => {
    const e = document.activeElement;
    if (e === null) return { tag: '', name: '', text: '', outline: '' };
    const style = getComputedStyle(e);
    return { tag: e.tagName.toLowerCase(), name: e.getAttribute('name') ?? '', text: e.textContent.trim(), outline: style.outlineStyle + ' ' + style.outlineWidth };
  })()`);
}

/** true when the page is wider than the viewport (sideways scrolling on a phone). */
function overflowsHorizontally(page: Page): Promise<boolean> {
  return page.evaluate('document.documentElement.scrollWidth > document.documentElement.clientWidth');
}

describe('sign-in and consent in Chromium', () => {
  test('phone: a wrong password, then sign in, untick an account, allow; the code redeems', async () => {
    const { page, context, problems, csp } = await openPage(PHONE);
    try {
      const started = await pushAuthorization(tpp);
      const login = await page.goto(started.url.toString());
      expect(login?.status()).toBe(200);
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Sign in to your bank');
      await expect(page.locator('main').textContent()).resolves.toContain('Budget Buddy');
      await expect(page.getByRole('alert').count()).resolves.toBe(0);
      await expect(overflowsHorizontally(page)).resolves.toBe(false);
      await saveScreenshot(page, 'sign-in-phone');

      // getByLabel finds the inputs through their <label for>: the labels work.
      await page.getByLabel('Username').fill(alice.username);
      await page.getByLabel('Password').fill('not the password at all');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForLoadState();
      await expect(page.getByRole('alert').textContent()).resolves.toBe(FAILED);
      await expect(page.getByLabel('Username').inputValue()).resolves.toBe(alice.username);
      await expect(page.getByLabel('Password').inputValue()).resolves.toBe('');
      await expect(page.getByLabel('Username').getAttribute('aria-describedby')).resolves.toBe('form-error');
      await expect(overflowsHorizontally(page)).resolves.toBe(false);
      await saveScreenshot(page, 'sign-in-failed-phone');

      await page.getByLabel('Password').fill(alice.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForLoadState();
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Review this request');
      await expect(page.locator('main').textContent()).resolves.toContain('Budget Buddy');
      const accounts = page.locator('input[name=accounts]');
      await expect(accounts.count()).resolves.toBe(2);
      for (const box of await accounts.all()) await expect(box.isChecked()).resolves.toBe(true);
      await page.getByLabel('Savings').uncheck();
      await expect(page.getByLabel('Savings').isChecked()).resolves.toBe(false);
      await expect(page.getByLabel('Current account').isChecked()).resolves.toBe(true);
      await expect(overflowsHorizontally(page)).resolves.toBe(false);
      await saveScreenshot(page, 'consent-phone');

      const consentPost = page.waitForRequest((request) => request.method() === 'POST' && request.url().endsWith('/consent'));
      const callbackRequest = page.waitForRequest((request) => request.url().startsWith(`${REDIRECT_URI}?`));
      await page.locator('button[name=decision][value=allow]').click();
      await page.waitForURL(`${REDIRECT_URI}?**`);
      await expect(page.locator('body').textContent()).resolves.toContain('callback reached');

      // The browser sent only the account left ticked.
      expect(new URLSearchParams((await consentPost).postData() ?? '').getAll('accounts')).toEqual(['alice-current']);

      const callback = new URL(page.url());
      expect((await callbackRequest).url()).toBe(callback.toString());
      expect(callbackHits).toContain(callback.toString());
      expect(callback.searchParams.get('code')).toMatch(/\S+/);
      expect(callback.searchParams.get('iss')).toBe(app.url);
      expect(callback.searchParams.get('state')).toBe(started.state);
      expect(callback.searchParams.get('error')).toBeNull();

      const tokens = await client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
      expect(tokens.token_type.toLowerCase()).toBe('dpop');
      expect(tokens.claims()?.sub).toBe(alice.id);
      expect(tokens.claims()?.amr).toEqual(['pwd']);

      expect(csp).toEqual([]);
      // The listener works: the wrong password's 401 was seen; nothing else went wrong.
      expect(problems.some((problem) => problem.includes('status of 401'))).toBe(true);
      expect(unexpected(problems)).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test('desktop: keyboard focus goes username → password → Sign in, with a visible outline', async () => {
    const { page, context, problems, csp } = await openPage(DESKTOP);
    try {
      const started = await pushAuthorization(tpp);
      await page.goto(started.url.toString());
      await expect(overflowsHorizontally(page)).resolves.toBe(false);
      await saveScreenshot(page, 'sign-in-desktop');

      // autofocus puts the cursor in the username field.
      await expect(focused(page)).resolves.toMatchObject({ tag: 'input', name: 'username' });
      // From the top of the page (a click on the header moves the Tab starting point there).
      await page.locator('header').click();
      const order: string[] = [];
      for (let i = 0; i < 4; i += 1) {
        await page.keyboard.press('Tab');
        const now = await focused(page);
        expect(now.outline).toMatch(/^solid [1-9]/);
        order.push(now.name === '' ? `${now.tag}:${now.text}` : `${now.tag}[name=${now.name}]`);
      }
      expect(order).toEqual(['input[name=username]', 'input[name=password]', 'button:Sign in', 'button:Cancel and return to Budget Buddy']);
      for (let i = 0; i < 3; i += 1) await page.keyboard.press('Shift+Tab');
      await expect(focused(page)).resolves.toMatchObject({ name: 'username' });

      // Keyboard only: type, Tab, type, Enter submits the form.
      await page.keyboard.type(alice.username);
      await page.keyboard.press('Tab');
      await page.keyboard.type('not the password at all');
      await page.keyboard.press('Enter');
      await page.waitForLoadState();
      await expect(page.getByRole('alert').textContent()).resolves.toBe(FAILED);

      expect(csp).toEqual([]);
      expect(unexpected(problems)).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
