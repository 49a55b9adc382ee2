import * as client from 'openid-client';
import { generate } from 'otplib';

import type { TestApp } from './app.js';
import { FormBrowser, requirePage, type Page } from './browser.js';
import type { Customer, StartedAuthorization, Tpp } from './tpp.js';

/** Helpers for the strong-customer-authentication tests (TOTP, the sign-in pages' failures). */

export { ACR_CA, ACR_SCA } from '../../src/services/acr.js';

/** The failure texts of the sign-in page and of the one-time-code / enrolment pages. */
export const SIGN_IN_FAILED = 'Sign-in failed. Check your details and try again.';
export const CODE_FAILED = 'That code did not work. Check your authenticator app and try again.';

const PERIOD = 30;
const currentStep = (): number => Math.floor(Date.now() / 1000 / PERIOD);

/**
 * An authenticator app for one secret. The server accepts each time step once and only
 * steps after the last one accepted (± 1 step around its clock), so this hands out the
 * current step's code, then the next step's, and refuses a third within one step window
 * (a test needing more uses recovery codes or another customer).
 */
export class Authenticator {
  readonly secret: string;
  #lastStep: number | undefined;

  constructor(secret: string) {
    this.secret = secret.replace(/\s+/g, '');
  }

  /** The next code the server accepts; counts as used. */
  async code(): Promise<string> {
    const now = currentStep();
    const step = this.#lastStep === undefined || this.#lastStep < now ? now : this.#lastStep + 1;
    if (step > now + 1) throw new Error('more than two codes for one secret within one 30 s step: use another customer or a recovery code');
    this.#lastStep = step;
    return generate({ secret: this.secret, epoch: step * PERIOD });
  }

  /** A well-formed 6-digit code that is valid for none of the steps the server accepts now. */
  async wrongCode(): Promise<string> {
    const now = currentStep();
    const valid = new Set(await Promise.all([-1, 0, 1, 2].map((delta) => generate({ secret: this.secret, epoch: (now + delta) * PERIOD }))));
    for (let candidate = 123456; ; candidate += 111111) {
      const code = String(candidate % 1_000_000).padStart(6, '0');
      if (!valid.has(code)) return code;
    }
  }
}

/** Enrols the customer the way an operator does (`portcullis user totp`). */
export async function enrolTotp(app: TestApp, customer: Customer): Promise<{ authenticator: Authenticator; recoveryCodes: string[] }> {
  const enrolment = await app.container.totp.enrol(customer.id, customer.username, { actor: 'test' });
  return { authenticator: new Authenticator(enrolment.secret), recoveryCodes: enrolment.recoveryCodes };
}

/** The page's HTML with the echoed username (the one thing a failure page may repeat) blanked. */
export function withoutEchoedUsername(html: string): string {
  return html.replace(/(<input id="username" name="username"[^>]*? value=")[^"]*(")/, '$1$2');
}

export function alertText(page: Page): string | undefined {
  return page.document.querySelector('[role=alert]')?.text.trim();
}

export function heading(page: Page): string | undefined {
  return page.document.querySelector('h1')?.text.trim();
}

/** Names of the inputs (other than hidden ones) of the form whose action ends with `/action`. */
export function formInputs(page: Page, action: string): string[] {
  const form = page.document.querySelector(`form[action$="/${action}"]`);
  if (form === null) return [];
  return form.querySelectorAll('input').filter((i) => i.getAttribute('type') !== 'hidden').map((i) => i.getAttribute('name') ?? '');
}

/** Consents (all accounts) when the consent page is shown; returns the callback URL. */
export async function consentIfAsked(browser: FormBrowser, result: { page?: Page; leftTo?: string }): Promise<URL> {
  let reached = result;
  if (reached.page !== undefined) {
    const consent = reached.page;
    if (consent.document.querySelector('form[action$="/consent"]') === null) {
      throw new Error(`expected the consent page, got ${consent.status}: ${consent.document.querySelector('main')?.text.trim().slice(0, 300)}`);
    }
    const accounts = consent.document.querySelectorAll('input[name=accounts]').map((i) => i.getAttribute('value') ?? '');
    reached = await browser.submit(consent, 'form[action$="/consent"]', { accounts }, { name: 'decision', value: 'allow' });
  }
  if (reached.leftTo === undefined) throw new Error(`expected a redirect to the client, got a page: ${reached.page?.html.slice(0, 300)}`);
  return new URL(reached.leftTo);
}

/** Opens the authorization URL and expects one of our pages. */
export async function open(browser: FormBrowser, started: StartedAuthorization): Promise<Page> {
  return requirePage(await browser.navigate(started.url.toString()));
}

export function redeem(tpp: Tpp, started: StartedAuthorization, callback: URL) {
  return client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
}

/**
 * A clock for `startTestApp(…, now)`: real time until `set`, then frozen at the time
 * set, so that ages compared with the server's stored expiry are exact.
 */
export class TestClock {
  #frozen: number | undefined;

  readonly now = (): Date => new Date(this.#frozen ?? Date.now());

  set(epochMs: number): void {
    this.#frozen = epochMs;
  }

  /** Back to real time. */
  release(): void {
    this.#frozen = undefined;
  }

  get ms(): number {
    return this.now().getTime();
  }
}
