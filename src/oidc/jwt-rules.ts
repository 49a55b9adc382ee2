import { errors } from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * FAPI 2.0 Security Profile §5.3.2.1 time rules for every JWT a client sends us (client
 * assertions, request objects): `iat`/`nbf` up to 10 s in the future are accepted (clock
 * skew), later ones rejected. oidc-provider checks `nbf` with clockTolerance but ignores a
 * future `iat` whenever `exp` is present.
 */
export const FUTURE_SKEW_SECONDS = 10;
/** FAPI 2.0 / JAR: a request object lives at most 60 minutes (`exp` − `nbf`). */
const MAX_REQUEST_OBJECT_LIFETIME = 3600;

type Claims = Record<string, unknown>;

function epoch(now: Date): number {
  return Math.floor(now.getTime() / 1000);
}

function checkNotFromTheFuture(claims: Claims, now: number, fail: (message: string) => Error): void {
  for (const claim of ['iat', 'nbf'] as const) {
    const value = claims[claim];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) throw fail(`${claim} must be a number`);
    if (typeof value === 'number' && value > now + FUTURE_SKEW_SECONDS) throw fail(`${claim} is too far in the future`);
  }
}

/** Client assertions (private_key_jwt): `aud` is the issuer string itself, never an array. */
export function assertClientAssertion(now: () => Date) {
  return async function assertJwtClientAuthClaimsAndHeader(ctx: KoaContextWithOIDC, claims: Claims): Promise<void> {
    if (claims.aud !== ctx.oidc.issuer) {
      throw new errors.InvalidClientAuth('audience (aud) must equal the issuer identifier url');
    }
    if (typeof claims.jti !== 'string' || claims.jti === '') throw new errors.InvalidClientAuth('jti must be provided');
    if (typeof claims.exp !== 'number') throw new errors.InvalidClientAuth('exp must be provided');
    checkNotFromTheFuture(claims, epoch(now()), (message) => new errors.InvalidClientAuth(message));
  };
}

/** Request objects (JAR, RFC 9101, as FAPI 2.0 Message Signing profiles it). */
export function assertRequestObject(now: () => Date) {
  return async function assertJwtClaimsAndHeader(ctx: KoaContextWithOIDC, claims: Claims): Promise<void> {
    const fail = (message: string) => new errors.InvalidRequestObject(message);
    for (const claim of ['exp', 'nbf', 'aud'] as const) {
      if (claims[claim] === undefined) throw fail(`Request Object is missing the '${claim}' claim`);
    }
    if (claims.aud !== ctx.oidc.issuer && !(Array.isArray(claims.aud) && claims.aud.includes(ctx.oidc.issuer))) {
      throw fail('Request Object aud must be the issuer identifier');
    }
    const exp = claims.exp as number;
    const nbf = claims.nbf as number;
    if (typeof exp !== 'number' || typeof nbf !== 'number' || exp - nbf <= 0 || exp - nbf > MAX_REQUEST_OBJECT_LIFETIME) {
      throw fail("Request Object 'exp' must be after 'nbf' and at most 60 minutes later");
    }
    const current = epoch(now());
    if (nbf < current - MAX_REQUEST_OBJECT_LIFETIME) throw fail("Request Object 'nbf' is more than 60 minutes in the past");
    checkNotFromTheFuture(claims, current, fail);
  };
}
