import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';

import { startTestApp, type TestApp } from '../support/app.js';
import { launchChromium, saveScreenshot } from '../support/chromium.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { ACR_SCA, Authenticator, enrolTotp, redeem } from '../support/sca.js';
import { createCustomer, pushAuthorization, REDIRECT_URI, registerTpp, type Customer, type Tpp } from '../support/tpp.js';

/**
 * First-time strong customer authentication in a real Chromium on a phone-sized screen:
 * the customer has no authenticator yet, signs in with the password, sets up the app from
 * the enrolment page (secret read from the page, QR code checked to have loaded), sees the
 * recovery codes, consents; later signs in with password and code on one form.
 *
 * Like browser-sign-in.test.ts, Chromium's resolver sends tpp.example:443 (the TPP's
 * redirect_uri) to a loopback HTTPS server with a throwaway certificate.
 */

const PHONE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 };

let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let erin: Customer;
let browser: Browser;
let callbackServer: Server;
let certDir: string;

function startCallbackServer(): Promise<Server> {
  certDir = mkdtempSync(join(tmpdir(), 'portcullis-tpp-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tpp.key', '-out', 'tpp.pem',
    '-days', '1', '-subj', '/CN=tpp.example', '-addext', 'subjectAltName=DNS:tpp.example', '-addext', 'extendedKeyUsage=serverAuth',
  ], { cwd: certDir, stdio: ['ignore', 'ignore', 'pipe'] });
  const server = createServer({ cert: readFileSync(join(certDir, 'tpp.pem')), key: readFileSync(join(certDir, 'tpp.key')) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>TPP</title><p>callback reached</p></html>');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  erin = await createCustomer(app, 'erin');
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
  /** console errors and uncaught page errors, as text */
  readonly problems: string[];
  /** Content Security Policy violations */
  readonly csp: string[];
}

/** A fresh context and page that records console errors, page errors and CSP violations. */
async function openPage(options: BrowserContextOptions): Promise<Watched> {
  const context = await browser.newContext({ ...options, ignoreHTTPSErrors: true });
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

/** Chromium's own /favicon.ico request is not the page's fault (we serve none). */
const unexpected = (problems: string[]): string[] =>
  problems.filter((problem) => !/status of 404 \(Not Found\) \(http:\/\/127\.0\.0\.1:\d+\/favicon\.ico\)$/.test(problem));

function overflowsHorizontally(page: Page): Promise<boolean> {
  return page.evaluate('document.documentElement.scrollWidth > document.documentElement.clientWidth');
}

/** The QR image's state (the tsconfig has no DOM lib: evaluated as a string). */
function qrImage(page: Page): Promise<{ src: string; complete: boolean; naturalWidth: number; width: number }> {
  return page.evaluate(`(() => {
    const img = document.querySelector('img.qr');
    if (img === null) return { src: '', complete: false, naturalWidth: 0, width: 0 };
    return { src: img.getAttribute('src') ?? '', complete: img.complete, naturalWidth: img.naturalWidth, width: img.getBoundingClientRect().width };
  })()`);
}

const heading = (page: Page): Promise<string | null> => page.getByRole('heading', { level: 1 }).textContent();

describe('first-time SCA in Chromium (phone)', () => {
  test('enrol from the page, save the recovery codes, consent; later sign in with password and code on one form', async () => {
    const first = await openPage(PHONE);
    let authenticator: Authenticator;
    try {
      const { page } = first;
      const started = await pushAuthorization(tpp, { acr_values: ACR_SCA });
      expect((await page.goto(started.url.toString()))?.status()).toBe(200);
      await expect(heading(page)).resolves.toBe('Sign in to your bank');
      await expect(page.getByLabel('One-time code from your authenticator app').count()).resolves.toBe(1);

      // No authenticator yet: the password alone leads to the set-up page.
      await page.getByLabel('Username').fill(erin.username);
      await page.getByLabel('Password').fill(erin.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForLoadState();
      await expect(heading(page)).resolves.toBe('Set up your authenticator app');
      await expect(page.locator('input[name=username]').count()).resolves.toBe(0);

      const qr = await qrImage(page);
      expect(qr.src).toMatch(/^data:image\/png;base64,/);
      expect(qr.complete).toBe(true);
      expect(qr.naturalWidth).toBeGreaterThan(0);
      expect(qr.width).toBeGreaterThan(100);
      const shown = (await page.locator('code.secret').textContent())?.trim() ?? '';
      expect(shown).toMatch(/^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$/);
      await expect(overflowsHorizontally(page)).resolves.toBe(false);
      await saveScreenshot(page, 'enrolment-phone');

      authenticator = new Authenticator(shown);
      await page.getByLabel('Code from your authenticator app').fill(await authenticator.code());
      await page.getByRole('button', { name: 'Confirm and continue' }).click();
      await page.waitForLoadState();
      await expect(heading(page)).resolves.toBe('Save your recovery codes');
      const codes = (await page.locator('.recovery-codes code').allTextContents()).map((c) => c.trim());
      expect(codes).toHaveLength(10);
      for (const code of codes) expect(code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
      await expect(overflowsHorizontally(page)).resolves.toBe(false);
      await saveScreenshot(page, 'recovery-codes-phone');

      await page.getByRole('button', { name: /I have saved them/ }).click();
      await page.waitForLoadState();
      await expect(heading(page)).resolves.toBe('Review this request');
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL(`${REDIRECT_URI}?**`);
      await expect(page.locator('body').textContent()).resolves.toContain('callback reached');

      const tokens = await redeem(tpp, started, new URL(page.url()));
      expect(tokens.claims()?.sub).toBe(erin.id);
      expect(tokens.claims()?.acr).toBe(ACR_SCA);
      expect(tokens.claims()?.amr).toEqual(['pwd', 'otp']);

      expect(first.csp).toEqual([]);
      expect(unexpected(first.problems)).toEqual([]);
    } finally {
      await first.context.close();
    }

    // A new browser (no session): username, password and code on the one sign-in form.
    const later = await openPage(PHONE);
    try {
      const { page } = later;
      const started = await pushAuthorization(tpp, { acr_values: ACR_SCA });
      await page.goto(started.url.toString());
      await expect(heading(page)).resolves.toBe('Sign in to your bank');
      const form = page.locator('form[action$="/login"]');
      const fields = await Promise.all((await form.locator('input:not([type=hidden])').all()).map((input) => input.getAttribute('name')));
      expect(fields).toEqual(['username', 'password', 'otp']);
      await page.getByLabel('Username').fill(erin.username);
      await page.getByLabel('Password').fill(erin.password);
      await page.getByLabel('One-time code from your authenticator app').fill(await authenticator.code());
      await expect(overflowsHorizontally(page)).resolves.toBe(false);
      await saveScreenshot(page, 'sign-in-with-code-phone');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForLoadState();
      await expect(heading(page)).resolves.toBe('Review this request');
      await expect(page.locator('main').textContent()).resolves.toContain('Budget Buddy');

      expect(later.csp).toEqual([]);
      expect(unexpected(later.problems)).toEqual([]);
    } finally {
      await later.context.close();
    }
  });
  test('no phone to hand: a recovery code typed into the sign-in form\'s code field signs in', async () => {
    const frieda = await createCustomer(app, 'frieda');
    const { recoveryCodes } = await enrolTotp(app, frieda);
    const recovery = recoveryCodes[0]!;
    const { page, context, problems, csp } = await openPage(PHONE);
    try {
      const started = await pushAuthorization(tpp, { acr_values: ACR_SCA });
      await page.goto(started.url.toString());
      await expect(heading(page)).resolves.toBe('Sign in to your bank');
      await page.getByLabel('Username').fill(frieda.username);
      await page.getByLabel('Password').fill(frieda.password);
      const codeField = page.getByLabel('One-time code from your authenticator app');
      await codeField.pressSequentially(recovery);
      // The field must hold the whole recovery code (the server accepts one here).
      await expect(codeField.inputValue()).resolves.toBe(recovery);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForLoadState();
      await expect(heading(page)).resolves.toBe('Review this request');
      expect(csp).toEqual([]);
      expect(unexpected(problems)).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
