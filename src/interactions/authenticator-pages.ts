import type { Context } from 'koa';
import QRCode from 'qrcode';

import { HttpError } from '../http/errors.js';
import type { SecretBox } from '../services/secret-box.js';
import type { TotpService } from '../services/totp.js';

/** What every sign-in page says, and only that: never which factor failed. */
export const SIGN_IN_FAILED = 'Sign-in failed. Check your details and try again.';
export const CODE_FAILED = 'That code did not work. Check your authenticator app and try again.';

/** The answer when this IP address caused too many failures lately (429 + Retry-After). */
export function tooManyAttempts(ctx: Context, retryAfterSeconds: number): never {
  ctx.set('Retry-After', String(retryAfterSeconds));
  throw new HttpError(429, 'TOO_MANY_ATTEMPTS', `Too many failed sign-ins from your network. Try again in ${Math.ceil(retryAfterSeconds / 60)} minute(s).`);
}

/**
 * The enrolment page's secret. A new one is proposed until the customer confirms it with
 * a first code; meanwhile it travels in the form sealed (AES-GCM) under `purpose`, which
 * binds it to one customer and one page, so it can be neither forged nor moved.
 */
export async function enrolmentView(deps: { totp: TotpService; box: SecretBox }, username: string, purpose: string, sealed?: string) {
  const secret = sealed === undefined ? deps.totp.proposeSecret(username).secret : openEnrolment(deps.box, sealed, purpose);
  return {
    qr: await QRCode.toDataURL(deps.totp.uriFor(username, secret), { errorCorrectionLevel: 'M', margin: 2, width: 240 }),
    secret: secret.replace(/(.{4})/g, '$1 ').trim(),
    enrolment: sealed ?? deps.box.seal(secret, purpose),
  };
}

/** The proposed secret back from the form, or 400 when it was tampered with or is not this page's. */
export function openEnrolment(box: SecretBox, sealed: string, purpose: string): string {
  try {
    return box.open(sealed, purpose);
  } catch {
    throw new HttpError(400, 'INVALID_ENROLMENT', 'This set-up page has expired. Start again.');
  }
}
