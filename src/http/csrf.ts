import { createHmac, randomBytes } from 'node:crypto';

import type { Context } from 'koa';

import { constantTimeEqual } from '../services/secret-box.js';
import { HttpError } from './errors.js';

const COOKIE = 'portcullis.csrf';

/**
 * Anti-CSRF tokens for our HTML forms (signed double submit): a random per-browser value
 * lives in a SameSite=Strict, HttpOnly, signed cookie; each form carries
 * HMAC(key, cookie value | form id). A cross-site page can neither read the cookie nor
 * compute the token, and a token minted for one form is useless for another.
 */
export class Csrf {
  readonly #key: Buffer;

  constructor(keyBase64Url: string) {
    this.#key = Buffer.from(keyBase64Url, 'base64url');
  }

  /** The hidden-field value for the form identified by `formId`; sets the cookie if absent. */
  token(ctx: Context, formId: string): string {
    // One browser secret per response, even when a page renders several forms.
    let browserSecret = (ctx.state.csrfSecret as string | undefined) ?? ctx.cookies.get(COOKIE, { signed: true });
    if (browserSecret === undefined || !/^[A-Za-z0-9_-]{43}$/.test(browserSecret)) {
      browserSecret = randomBytes(32).toString('base64url');
      ctx.cookies.set(COOKIE, browserSecret, { signed: true, httpOnly: true, sameSite: 'strict', secure: ctx.secure, overwrite: true });
    }
    ctx.state.csrfSecret = browserSecret;
    return this.#mac(browserSecret, formId);
  }

  /** Throws 403 unless `submitted` is the token for this browser and form. */
  verify(ctx: Context, formId: string, submitted: unknown): void {
    const browserSecret = ctx.cookies.get(COOKIE, { signed: true });
    if (typeof submitted !== 'string' || browserSecret === undefined || !constantTimeEqual(submitted, this.#mac(browserSecret, formId))) {
      throw new HttpError(403, 'CSRF_TOKEN_INVALID', 'this form has expired or was not sent by this site; go back and try again');
    }
  }

  #mac(browserSecret: string, formId: string): string {
    return createHmac('sha256', this.#key).update(`${browserSecret}|${formId}`).digest('base64url');
  }
}
