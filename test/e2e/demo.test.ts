import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { generate } from 'otplib';
import type { Browser, BrowserContext, Cookie as BrowserCookie } from 'playwright-core';

import { FormBrowser, requirePage, type Page } from '../support/browser.js';
import { launchChromium, saveScreenshot } from '../support/chromium.js';

/**
 * `npm run demo` end to end: the demo runs as its own process (tsx, a temporary DATA_DIR,
 * free ports) and a person drives it through the TPP web app — connect the bank (sign in
 * with password and TOTP, pick one account), see that account's balance, be refused
 * another account, pay once (a second execution is refused), revoke the consent on the
 * bank's dashboard and see the TPP lose access. Then Chromium takes the screenshots for the
 * README, and a restart on the same DATA_DIR reuses everything.
 *
 * The browser (FormBrowser) follows redirects within one origin; the hops between the TPP
 * and Portcullis (different ports, so different origins) are followed here, as `leftTo`.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSX_CLI = join(ROOT, 'node_modules/tsx/dist/cli.mjs');
const DOCS_IMAGES = join(ROOT, 'docs/images');

interface Printed {
  readonly tpp: string;
  readonly portcullis: string;
  readonly dashboard: string;
  readonly bank: string;
  readonly username: string;
  readonly password: string;
  readonly totpSecret: string;
  readonly otpauthUri: string;
  readonly reused: boolean;
}

/** The demo as a child process: its output, and what its box printed. */
class DemoProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  #listeners: (() => void)[] = [];

  constructor(dataDir: string, portBase: number) {
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, DEMO_PORT_BASE: String(portBase), LOG_LEVEL: 'warn' };
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the demo
    // detached: its own process group, so a failed test can still end tsx and the node it runs.
    this.child = spawn(process.execPath, [TSX_CLI, 'demo/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child.stdout!.on('data', (chunk: Buffer) => { this.stdout += chunk.toString('utf8'); this.#notify(); });
    this.child.stderr!.on('data', (chunk: Buffer) => { this.stderr += chunk.toString('utf8'); this.#notify(); });
    this.exited = new Promise((resolveExit) => this.child.on('exit', (code) => { this.#notify(); resolveExit(code); }));
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }

  /** Resolves once stdout matches `pattern` (event-driven, no polling); fails on exit or timeout. */
  waitFor(pattern: RegExp, timeoutMs = 45_000): Promise<RegExpMatchArray> {
    return new Promise((resolveMatch, reject) => {
      const check = () => {
        const match = pattern.exec(this.stdout);
        if (match !== null) return done(() => resolveMatch(match));
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          return done(() => reject(new Error(`the demo exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}:\n${this.stdout}\n${this.stderr}`)));
        }
      };
      const timer = setTimeout(() => done(() => reject(new Error(`the demo did not print ${pattern} within ${timeoutMs} ms:\n${this.stdout}\n${this.stderr}`))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((listener) => listener !== check);
        settle();
      };
      this.#listeners.push(check);
      check();
    });
  }

  async ready(): Promise<Printed> {
    await this.waitFor(/Stop with Ctrl\+C\./);
    const field = (pattern: RegExp): string => {
      const value = pattern.exec(this.stdout)?.[1];
      if (value === undefined) throw new Error(`the box lacks ${pattern}:\n${this.stdout}`);
      return value;
    };
    return {
      tpp: field(/Open the TPP app:\s+(\S+?)\/?\s/),
      portcullis: field(/Portcullis \(bank\):\s+(\S+?)\/?\s/),
      dashboard: field(/Customer dashboard:\s+(\S+)\s/),
      bank: field(/bank API\s+(\S+)\s/),
      username: field(/username\s+(\S+)\s/),
      password: field(/password\s+(\S+)\s/),
      totpSecret: field(/TOTP secret\s+([A-Z2-7]+)\s/),
      otpauthUri: field(/(otpauth:\/\/totp\/\S+)\s/),
      reused: /\(reused\)/.test(this.stdout),
    };
  }

  /** SIGTERM to tsx, which hands it to the demo: a graceful stop. Resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** Last resort after a failure: the whole process group (tsx and the demo), by its id. */
  kill(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/**
 * A base port with it and the next four free on 127.0.0.1, below Linux's ephemeral range
 * (32768+), so that other tests' outgoing connections and port-0 listeners cannot take one
 * between this check and the demo's listen.
 */
async function freePortBase(): Promise<number> {
  const free = (port: number) => new Promise<boolean>((resolveFree) => {
    const server = createServer();
    server.once('error', () => resolveFree(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolveFree(true)));
  });
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    let ok = true;
    for (let offset = 0; offset < 5 && ok; offset += 1) ok = await free(base + offset);
    if (ok) return base;
  }
  throw new Error('no five consecutive free ports found');
}

// ---------------------------------------------------------------------------------------
// One-time codes: each 30 s step is accepted once, only steps after the last accepted one,
// within ± 1 step of the server's clock. So: the previous step (while safely inside the
// window), then the current, then the next — three sign-ins per window.

const PERIOD = 30;
let lastStep = 0;

async function nextCode(secret: string): Promise<string> {
  for (;;) {
    const seconds = Date.now() / 1000;
    const current = Math.floor(seconds / PERIOD);
    const earliest = seconds % PERIOD < PERIOD - 5 ? current - 1 : current;
    const step = Math.max(lastStep + 1, earliest);
    if (step <= current + 1) {
      lastStep = step;
      return generate({ secret, epoch: step * PERIOD });
    }
    // Every code of this window is spent: wait for the clock to reach the next step.
    await new Promise((resolveWait) => setTimeout(resolveWait, (current + 1) * PERIOD * 1000 - Date.now() + 50));
  }
}

// ---------------------------------------------------------------------------------------

let dataDir: string;
let demo: DemoProcess;
let printed: Printed;
const browser = new FormBrowser();
/** the TPP page after connecting: the consented account and its balance */
let accountsPage: Page;

function text(page: Page, selector: string): string {
  return page.document.querySelector(selector)?.text.replace(/\s+/g, ' ').trim() ?? '';
}

/** Follows a hop to another origin (TPP ↔ Portcullis) the way a browser would. */
async function follow(result: { page?: Page; leftTo?: string }, expectedOrigin: string): Promise<Page> {
  if (result.leftTo === undefined) throw new Error(`expected a redirect to ${expectedOrigin}, got a page (${result.page?.status}): ${result.page?.document.querySelector('main')?.text.trim().slice(0, 400)}`);
  expect(new URL(result.leftTo).origin).toBe(expectedOrigin);
  return requirePage(await browser.navigate(result.leftTo));
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'portcullis-demo-'));
  demo = new DemoProcess(dataDir, await freePortBase());
  printed = await demo.ready();
}, 60_000);

afterAll(async () => {
  demo?.kill();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('npm run demo', () => {
  test('prints the URLs and the demo customer\'s credentials, the same ones it stored', () => {
    expect(printed.tpp).toMatch(/^http:\/\/localhost:\d+$/);
    expect(printed.portcullis).toMatch(/^http:\/\/localhost:\d+$/);
    expect(printed.dashboard).toBe(`${printed.portcullis}/account`);
    expect(printed.username).toBe('demo');
    expect(printed.password.length).toBeGreaterThanOrEqual(10);
    expect(printed.otpauthUri).toContain(`secret=${printed.totpSecret}`);
    expect(printed.reused).toBe(false);
    const stored = JSON.parse(readFileSync(join(dataDir, 'demo-secrets.json'), 'utf8')) as { customer: { password: string; totpSecret: string } };
    expect(stored.customer).toMatchObject({ password: printed.password, totpSecret: printed.totpSecret });
    expect(statSync(join(dataDir, 'demo-secrets.json')).mode & 0o077).toBe(0);
  });

  test('connect: TPP → bank sign-in (password + TOTP) → consent to one account → the TPP shows it and its balance', async () => {
    const home = requirePage(await browser.navigate(`${printed.tpp}/`));
    expect(home.status).toBe(200);
    expect(text(home, '#connect')).toBe('Connect your bank');

    const login = await follow(await browser.submit(home, 'form[action="/connect"]', {}), printed.portcullis);
    expect(login.url).toMatch(new RegExp(`^${printed.portcullis}/interaction/`));
    expect(text(login, 'main')).toContain('Demo Budget App is asking to connect to your bank');
    expect(login.document.querySelector('form[action$="/login"] input[name=otp]')).not.toBeNull();

    const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', {
      username: printed.username, password: printed.password, otp: await nextCode(printed.totpSecret),
    }));
    expect(consent.status).toBe(200);
    expect(text(consent, '.permissions')).toContain('see their balances');
    expect(consent.document.querySelectorAll('input[name=accounts]').map((i) => i.getAttribute('value'))).toEqual(['demo-current', 'demo-savings']);

    accountsPage = await follow(await browser.submit(consent, 'form[action$="/consent"]', { accounts: ['demo-current'] }, { name: 'decision', value: 'allow' }), printed.tpp);
    expect(accountsPage.url).toBe(`${printed.tpp}/accounts`);
    expect(accountsPage.status).toBe(200);
    expect(text(accountsPage, '#account-demo-current h2')).toBe('Everyday current account');
    expect(text(accountsPage, '#account-demo-current .balance')).toBe('£1,250.00');
    expect(accountsPage.document.querySelector('#account-demo-savings')).toBeNull();

    const detail = requirePage(await browser.navigate(`${printed.tpp}/accounts/demo-current`));
    expect(detail.status).toBe(200);
    expect(text(detail, 'table')).toContain('Corner Shop');
  });

  test('the bank API refuses an account outside the consent (403), and any call without a token (401)', async () => {
    const refused = requirePage(await browser.navigate(`${printed.tpp}/accounts/demo-savings`));
    expect(refused.status).toBe(403);
    expect(text(refused, '#bank-refusal h1')).toBe('Your bank refused: that account is not shared with this app');
    expect(text(refused, '#bank-refusal')).toContain('HTTP 403 ACCOUNT_NOT_IN_CONSENT');

    const anonymous = await fetch(`${printed.bank}/accounts/demo-savings/balances`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^DPoP /);
  });

  test('pay 10.00 GBP: one-time code on a page showing amount and payee, consent, executed once; a second execution is refused', async () => {
    const otp = await follow(await browser.submit(accountsPage, 'form[action="/pay"]', {}), printed.portcullis);
    // Signed in already: the payment asks for a code alone, on a page showing what it confirms.
    expect(otp.document.querySelector('input[name=password]')).toBeNull();
    expect(text(otp, '.amount')).toBe('GBP 10.00');
    expect(text(otp, '.payee')).toBe('Corner Shop');

    const consent = requirePage(await browser.submit(otp, 'form[action$="/otp"]', { otp: await nextCode(printed.totpSecret) }));
    expect(text(consent, '.amount')).toBe('GBP 10.00');
    expect(consent.document.querySelector('input[name=debtor_account]')?.getAttribute('value')).toBe('demo-current');

    const paid = await follow(await browser.submit(consent, 'form[action$="/consent"]', { debtor_account: 'demo-current' }, { name: 'decision', value: 'allow' }), printed.tpp);
    expect(paid.url).toBe(`${printed.tpp}/payment`);
    expect(text(paid, '#payment-done h1')).toBe('Payment sent');
    expect(text(paid, '#payment-done .lead')).toBe('£10.00 to Corner Shop');

    // The bank executed it against the consented account.
    const accounts = requirePage(await browser.navigate(`${printed.tpp}/accounts`));
    expect(text(accounts, '#account-demo-current .balance')).toBe('£1,240.00');

    const again = requirePage(await browser.submit(paid, 'form[action="/payment/again"]', {}));
    expect(again.status).toBe(403);
    expect(text(again, '#bank-refusal h1')).toBe('Your bank refused to pay again');
    expect(text(again, '#bank-refusal')).toMatch(/HTTP (401|403|409)/);
    expect(text(requirePage(await browser.navigate(`${printed.tpp}/accounts`)), '#account-demo-current .balance')).toBe('£1,240.00');
  });

  test('the customer revokes on /account; the TPP\'s next call fails with "access was revoked"', async () => {
    const login = requirePage(await browser.navigate(printed.dashboard));
    const dashboard = requirePage(await browser.submit(login, 'form[action="/account/login"]', {
      username: printed.username, password: printed.password, otp: await nextCode(printed.totpSecret),
    }));
    expect(dashboard.status).toBe(200);
    const consents = dashboard.document.querySelectorAll('li.consent');
    const payment = consents.find((item) => item.text.includes('Corner Shop') || item.querySelector('.status')?.text === 'consumed');
    expect(payment?.querySelector('.status')?.text).toBe('consumed');
    const live = consents.filter((item) => item.querySelector('.status')?.text === 'authorised');
    expect(live).toHaveLength(1);
    expect(live[0]!.querySelector('h2')?.text).toBe('Demo Budget App');
    const id = live[0]!.getAttribute('id')!;

    const after = requirePage(await browser.submit(dashboard, `#${id} form`, {}));
    expect(text(after, `#${id} .status`)).toBe('revoked');

    const refused = requirePage(await browser.navigate(`${printed.tpp}/accounts`));
    expect(refused.status).toBe(403);
    expect(text(refused, '#bank-refusal h1')).toBe('Your bank says access was revoked');
    expect(text(refused, '#bank-refusal')).toContain('HTTP 401');
  }, 60_000); // this third code may have to wait for the next 30 s step

  test('screenshots in Chromium: TPP home, sign-in, consent, TPP accounts, dashboard', async () => {
    let chromium: Browser | undefined;
    try {
      chromium = await launchChromium();
      const context: BrowserContext = await chromium.newContext({ viewport: { width: 1024, height: 720 }, deviceScaleFactor: 1 });
      const page = await context.newPage();
      const shots: string[] = [];
      const shoot = async (name: string) => { shots.push(await saveScreenshot(page, name)); };

      await page.goto(`${printed.tpp}/`);
      await shoot('demo-tpp-home');
      await page.click('#connect');
      await page.waitForURL(`${printed.portcullis}/interaction/**`);
      await page.locator('input[name=otp]').waitFor();
      await shoot('demo-sign-in');

      // The person signed in with the form browser above; hand its bank sessions (sign-in and
      // dashboard) to Chromium rather than spend more one-time codes (one per 30 s step).
      const cookies: BrowserCookie[] = [];
      for (const path of ['/', '/account']) {
        for (const cookie of await browser.jar.getCookies(`${printed.portcullis}${path}`)) {
          if (cookie.key === 'demo_tpp_sid' || cookies.some((c) => c.name === cookie.key && c.path === (cookie.path ?? '/'))) continue;
          const sameSite = cookie.sameSite === 'strict' ? 'Strict' : 'Lax';
          cookies.push({
            name: cookie.key, value: cookie.value, domain: 'localhost', path: cookie.path ?? '/', httpOnly: cookie.httpOnly, secure: false, sameSite,
            expires: cookie.expires instanceof Date ? Math.floor(cookie.expires.getTime() / 1000) : -1,
          });
        }
      }
      await context.addCookies(cookies);

      await page.goto(`${printed.tpp}/`);
      await page.click('#connect');
      await page.locator('form[action$="/consent"]').waitFor();
      await shoot('demo-consent');
      await page.click('button[name=decision][value=allow]');
      await page.waitForURL(`${printed.tpp}/accounts`);
      await expect(page.locator('#account-demo-savings .balance').textContent()).resolves.toContain('€5,400.00');
      await shoot('demo-tpp-accounts');

      await page.goto(printed.dashboard);
      await page.locator('li.consent').first().waitFor();
      await shoot('demo-dashboard');

      // docs/images holds the README's copies: written when missing or on request, so a
      // test run does not rewrite tracked images (dates and ids change on every run).
      mkdirSync(DOCS_IMAGES, { recursive: true });
      for (const shot of shots) {
        expect(statSync(shot).size).toBeLessThan(150 * 1024);
        const target = join(DOCS_IMAGES, shot.split('/').pop()!);
        if (!existsSync(target) || process.env.UPDATE_SCREENSHOTS === '1') copyFileSync(shot, target);
      }
    } finally {
      await chromium?.close();
    }
  }, 60_000);

  test('a restart on the same DATA_DIR stops cleanly and reuses the customer, secrets and accounts', async () => {
    expect(await demo.stop()).toBe(0);
    expect(demo.stdout).toContain('demo: stopped');
    expect(existsSync(join(dataDir, 'portcullis.pid'))).toBe(false);

    const port = Number(new URL(printed.portcullis).port);
    demo = new DemoProcess(dataDir, port);
    const again = await demo.ready();
    expect(again).toMatchObject({ reused: true, password: printed.password, totpSecret: printed.totpSecret, tpp: printed.tpp });
    const home = requirePage(await new FormBrowser().navigate(`${again.tpp}/`));
    expect(text(home, '#connect')).toBe('Connect your bank');
    expect(await demo.stop()).toBe(0);
  }, 60_000);
});
