import { createHash } from 'node:crypto';

import type { Context, DefaultState, Middleware, Next, ParameterizedContext } from 'koa';

import { DPOP_ALGS, DpopError, InMemoryReplayCache, verifyDpopProof, type ReplayCache } from './dpop.js';
import {
  IntrospectionUnavailableError, type AuthorizationDetail, type IntrospectionClient, type IntrospectionResult,
} from './introspection.js';

/**
 * Koa middleware guarding a bank API: every request must present an active, sender-
 * constrained access token (FAPI 2.0), proven with a DPoP proof or the client certificate it
 * is bound to, carrying the required scopes and consent. Only then does `next` run, with
 * the consent in `ctx.state.consent`; every refusal answers here and `next` never runs.
 *
 * Refusals: 400 a malformed or repeated Authorization header (invalid_request); 401 no,
 * unknown, inactive, unbound or unproven token (RFC 6750 §3.1 invalid_token, RFC 9449 §7.1
 * invalid_dpop_proof); 403 scope or consent missing (insufficient_scope); 503
 * the authorization server cannot be asked (fail closed). Bodies are
 * `{"error":{"code","message"}}`.
 */

export type ConsentType = 'account_information' | 'payment_initiation';

/** What the token lets the caller do, for the handler behind `protect`. */
export interface ResourceConsent {
  /** the consent (grant) the token belongs to */
  readonly grantId: string | undefined;
  /** the TPP */
  readonly clientId: string | undefined;
  /** the customer */
  readonly subject: string | undefined;
  readonly scopes: readonly string[];
  readonly acr: string | undefined;
  readonly amr: readonly string[] | undefined;
  readonly authorizationDetails: readonly AuthorizationDetail[];
  /** every account any account_information detail grants, each once, in order */
  readonly accounts: readonly string[];
  /** the payment_initiation detail when the token carries exactly one, else undefined */
  readonly payment: AuthorizationDetail | undefined;
}

export interface ProtectedState extends DefaultState {
  consent: ResourceConsent;
}

export interface ProtectOptions {
  readonly introspection: IntrospectionClient;
  /** scopes the token must all have */
  readonly requiredScopes?: readonly string[];
  /** the token must carry authorization details of this type (exactly one for payments) */
  readonly consentType?: ConsentType;
  /** the token's `aud` must include this (e.g. Portcullis's API_RESOURCE); unchecked when unset */
  readonly audience?: string;
  /** DPoP jti store; share one between every `protect` of an API (default: one per `protect`) */
  readonly replay?: ReplayCache;
  readonly now?: () => Date;
  /**
   * the origin clients address, e.g. https://api.bank.example; DPoP proofs must name it.
   * Default: the request's protocol and Host (behind a TLS-terminating proxy set this, or
   * Koa's `app.proxy`, or every DPoP proof is refused).
   */
  readonly publicOrigin?: string;
  /** base64url SHA-256 of the DER client certificate of this request (mTLS-bound tokens) */
  readonly clientCertificateThumbprint?: (ctx: Context) => string | undefined;
  /** DPoP proof age limits (defaults 60 s and 10 s) */
  readonly dpopMaxAgeSeconds?: number;
  readonly dpopFutureSkewSeconds?: number;
}

/** RFC 8705 §3.1: the x5t#S256 of a DER certificate (for `clientCertificateThumbprint`). */
export function certificateThumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

type Scheme = 'DPoP' | 'Bearer';

/** RFC 6750 §3 error_description / scope: a quoted-string without quote, backslash or non-ASCII. */
function quoted(value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '')}"`;
}

interface Refusal {
  readonly status: 400 | 401 | 403;
  readonly code: string;
  readonly message: string;
  /** RFC 6750 / RFC 9449 error code; absent when no credentials were presented (RFC 6750 §3.1) */
  readonly error?: 'invalid_token' | 'invalid_dpop_proof' | 'invalid_request' | 'insufficient_scope';
  readonly scope?: readonly string[];
}

function challenge(scheme: Scheme, refusal: Refusal): string {
  const params: string[] = [];
  if (refusal.error !== undefined) {
    params.push(`error=${quoted(refusal.error)}`, `error_description=${quoted(refusal.message)}`);
  }
  if (refusal.scope !== undefined && refusal.scope.length > 0) params.push(`scope=${quoted(refusal.scope.join(' '))}`);
  if (scheme === 'DPoP') params.push(`algs=${quoted(DPOP_ALGS.join(' '))}`);
  return params.length === 0 ? scheme : `${scheme} ${params.join(', ')}`;
}

function respond(ctx: Context, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: { code, message } };
}

/** Answers a refusal with the challenge for the scheme the request used (both schemes when it used none). */
function refuse(ctx: Context, schemes: readonly Scheme[], refusal: Refusal): void {
  respond(ctx, refusal.status, refusal.code, refusal.message);
  const challenges = schemes.map((scheme) => challenge(scheme, refusal));
  ctx.set('WWW-Authenticate', challenges.length === 1 ? challenges[0]! : challenges);
}

/**
 * Every value of a request header, duplicates kept (Node's `headers` keeps only the first
 * Authorization). Http2ServerRequest and hand-made requests lack headersDistinct: there the
 * single joined value is all there is.
 */
function headerValues(ctx: Context, name: string): string[] {
  const distinct = (ctx.req as { headersDistinct?: NodeJS.Dict<string[]> }).headersDistinct;
  if (distinct !== undefined) return distinct[name] ?? [];
  const value = ctx.get(name);
  return value === '' ? [] : [value];
}

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

interface Credentials {
  readonly scheme: Scheme;
  readonly token: string;
}

/**
 * The one Authorization header as DPoP or Bearer credentials: undefined when there is none
 * or it uses another scheme (no credentials for us, RFC 6750 §3.1), 'malformed' when there
 * are several or a DPoP/Bearer header is not `scheme SP token68`.
 */
function credentials(ctx: Context): Credentials | 'malformed' | undefined {
  const values = headerValues(ctx, 'authorization');
  if (values.length === 0) return undefined;
  if (values.length > 1) return 'malformed';
  const [scheme = '', ...rest] = values[0]!.trim().split(/ +/);
  const kind = scheme.toLowerCase() === 'dpop' ? 'DPoP' : scheme.toLowerCase() === 'bearer' ? 'Bearer' : undefined;
  if (kind === undefined) return undefined;
  const token = rest[0];
  if (rest.length !== 1 || token === undefined || !TOKEN68.test(token)) return 'malformed';
  return { scheme: kind, token };
}

/**
 * The URL the client addressed: the public (or request) origin and the path as received,
 * before any mount or router prefix rewrote ctx.path. Undefined when the request target has
 * no path (e.g. "*").
 */
function requestUrl(ctx: Context, publicOrigin: string | undefined): string | undefined {
  // Not ctx.origin: since Koa 3 that is the Origin request header (its typings still say otherwise).
  const origin = publicOrigin ?? `${ctx.protocol}://${ctx.host}`;
  const raw = ctx.originalUrl;
  // origin-form ("/path?query") is the norm; absolute-form ("http://host/path") comes from proxies.
  if (raw.startsWith('/')) return `${origin}${raw.split(/[?#]/, 1)[0]!}`;
  try {
    return `${origin}${new URL(raw).pathname}`;
  } catch {
    return undefined;
  }
}

function audiences(result: IntrospectionResult): readonly string[] {
  if (result.aud === undefined) return [];
  return typeof result.aud === 'string' ? [result.aud] : result.aud;
}

function isCurrent(detail: AuthorizationDetail, now: Date): boolean {
  if (typeof detail.expires_at !== 'string') return true;
  const expires = Date.parse(detail.expires_at);
  return !Number.isNaN(expires) && expires > now.getTime();
}

/** The consent a token carries; details of account_information past their expires_at grant nothing. */
function consentOf(result: IntrospectionResult, now: Date): ResourceConsent {
  const authorizationDetails = result.authorization_details ?? [];
  const accounts = new Set<string>();
  for (const detail of authorizationDetails) {
    if (detail.type !== 'account_information' || !isCurrent(detail, now) || !Array.isArray(detail.accounts)) continue;
    for (const account of detail.accounts) {
      if (typeof account === 'string') accounts.add(account);
    }
  }
  const payments = authorizationDetails.filter((detail) => detail.type === 'payment_initiation');
  return {
    grantId: result.grant_id,
    clientId: result.client_id,
    subject: result.sub,
    scopes: (result.scope ?? '').split(' ').filter((scope) => scope !== ''),
    acr: result.acr,
    amr: result.amr,
    authorizationDetails,
    accounts: [...accounts],
    payment: payments.length === 1 ? payments[0] : undefined,
  };
}

/** Why the consent does not cover `type`, or undefined when it does. */
function consentShortfall(consent: ResourceConsent, type: ConsentType, now: Date): string | undefined {
  const details = consent.authorizationDetails.filter((detail) => detail.type === type);
  if (type === 'payment_initiation') {
    if (details.length === 0) return 'the token carries no payment_initiation consent';
    if (consent.payment === undefined) return 'the token carries several payments; this API takes one';
    return undefined;
  }
  if (!details.some((detail) => isCurrent(detail, now))) return 'the token carries no current account_information consent';
  return undefined;
}

/** publicOrigin in canonical form; a path, query, fragment or user information is a configuration error. */
function assertOrigin(publicOrigin: string): string {
  const url = new URL(publicOrigin);
  const bare = url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === '';
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !bare || /[?#]/.test(publicOrigin)) {
    throw new TypeError('publicOrigin must be an http(s) origin without path, query or fragment');
  }
  return url.origin;
}

export function protect(options: ProtectOptions): Middleware<ProtectedState> {
  const now = options.now ?? (() => new Date());
  const replay = options.replay ?? new InMemoryReplayCache({ now });
  const publicOrigin = options.publicOrigin === undefined ? undefined : assertOrigin(options.publicOrigin);
  const requiredScopes = [...(options.requiredScopes ?? [])];
  const mtls = options.clientCertificateThumbprint;
  // Challenges for a request without credentials: DPoP always, Bearer where mTLS-bound tokens can work.
  const anyScheme: Scheme[] = mtls === undefined ? ['DPoP'] : ['DPoP', 'Bearer'];

  return async function protectResource(ctx: ParameterizedContext<ProtectedState>, next: Next): Promise<void> {
    const presented = credentials(ctx);
    if (presented === undefined) {
      refuse(ctx, anyScheme, { status: 401, code: 'MISSING_TOKEN', message: 'an access token is required' });
      return;
    }
    if (presented === 'malformed') {
      refuse(ctx, anyScheme, { status: 400, code: 'INVALID_REQUEST', message: 'the Authorization header must be one DPoP or Bearer token', error: 'invalid_request' });
      return;
    }
    const { scheme, token } = presented;
    const invalidToken = (message: string): void => refuse(ctx, [scheme], { status: 401, code: 'INVALID_TOKEN', message, error: 'invalid_token' });
    const invalidProof = (message: string): void => refuse(ctx, ['DPoP'], { status: 401, code: 'INVALID_DPOP_PROOF', message, error: 'invalid_dpop_proof' });

    // Cheap refusals first: a DPoP presentation needs exactly one proof (RFC 9449 §4.3 check 1).
    const proofs = headerValues(ctx, 'dpop');
    if (scheme === 'DPoP' && proofs.length !== 1) {
      invalidProof(proofs.length === 0 ? 'a DPoP proof is required' : 'exactly one DPoP proof is allowed');
      return;
    }

    let result: IntrospectionResult;
    try {
      result = await options.introspection.introspect(token);
    } catch (error) {
      if (!(error instanceof IntrospectionUnavailableError)) throw error;
      respond(ctx, 503, 'INTROSPECTION_UNAVAILABLE', 'the access token cannot be checked right now; try again later');
      return;
    }

    const at = now();
    if (!result.active) return invalidToken('the access token is not active');
    // Refresh tokens introspect as active too (to resource servers as well), but without token_type.
    const tokenType = result.token_type?.toLowerCase();
    if (tokenType !== 'dpop' && tokenType !== 'bearer') return invalidToken('the token is not an access token');
    if (result.exp !== undefined && result.exp * 1000 <= at.getTime()) return invalidToken('the access token has expired');
    if (options.audience !== undefined && !audiences(result).includes(options.audience)) {
      return invalidToken('the access token is not for this API');
    }

    // FAPI 2.0: every token is sender-constrained, and presented the way it is bound.
    const jkt = result.cnf?.jkt;
    const x5t = result.cnf?.['x5t#S256'];
    if (jkt === undefined && x5t === undefined) return invalidToken('the access token is not sender-constrained');
    if (jkt !== undefined && scheme !== 'DPoP') return invalidToken('a DPoP-bound access token must be presented with the DPoP scheme');
    if (jkt === undefined && scheme === 'DPoP') return invalidToken('the access token is not DPoP-bound');
    if (x5t !== undefined && (mtls === undefined || mtls(ctx) !== x5t)) {
      return invalidToken('the access token is bound to another client certificate');
    }
    if (jkt !== undefined) {
      const url = requestUrl(ctx, publicOrigin);
      if (url === undefined) return invalidProof('the request target has no path to prove');
      try {
        await verifyDpopProof({
          proof: proofs[0]!,
          accessToken: token,
          method: ctx.method,
          url,
          expectedJkt: jkt,
          now: at,
          replay,
          ...(options.dpopMaxAgeSeconds === undefined ? {} : { maxAgeSeconds: options.dpopMaxAgeSeconds }),
          ...(options.dpopFutureSkewSeconds === undefined ? {} : { futureSkewSeconds: options.dpopFutureSkewSeconds }),
        });
      } catch (error) {
        if (error instanceof DpopError) return invalidProof(error.reason);
        throw error;
      }
    }

    const consent = consentOf(result, at);
    const missing = requiredScopes.filter((scope) => !consent.scopes.includes(scope));
    if (missing.length > 0) {
      refuse(ctx, [scheme], {
        status: 403, code: 'INSUFFICIENT_SCOPE', message: `the access token lacks the scope ${missing.join(' ')}`, error: 'insufficient_scope', scope: requiredScopes,
      });
      return;
    }
    if (options.consentType !== undefined) {
      const shortfall = consentShortfall(consent, options.consentType, at);
      if (shortfall !== undefined) {
        refuse(ctx, [scheme], { status: 403, code: 'INSUFFICIENT_CONSENT', message: shortfall, error: 'insufficient_scope' });
        return;
      }
    }

    ctx.state.consent = consent;
    await next();
  };
}
