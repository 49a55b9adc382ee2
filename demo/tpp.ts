import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import Koa, { type Context } from 'koa';
import * as client from 'openid-client';
import type { Logger } from 'pino';

import type { Directory } from './directory.js';
import { html, layout, Markup, type Theme } from './html.js';

/**
 * "Demo Budget App", a third-party provider (TPP) web app: it registers itself with
 * Portcullis by dynamic client registration (a software statement from the demo
 * directory, its keys at /jwks), then runs the FAPI 2.0 flow with openid-client:
 * PAR with RFC 9396 authorization_details, private_key_jwt, DPoP-bound tokens, and calls
 * the bank API with them.
 *
 *   GET  /                     home: "Connect your bank"
 *   POST /connect              PAR (account_information) → the bank's sign-in page
 *   GET  /callback             code → tokens (then /accounts, or the payment is executed)
 *   GET  /accounts             the consented accounts and their balances, from the bank API
 *   GET  /accounts/:id         one account's balance and transactions
 *   POST /pay                  PAR (payment_initiation: 10.00 GBP to Corner Shop)
 *   GET  /payment              the payment's outcome
 *   POST /payment/again        the same payment consent used a second time (the bank refuses)
 *   GET  /jwks                 the TPP's public key (software_jwks_uri)
 *
 * Sessions live in memory (cookie demo_tpp_sid); a restart forgets them and registers anew.
 */
export const TPP_NAME = 'Demo Budget App';
const SESSION_COOKIE = 'demo_tpp_sid';
const SESSION_IDLE_MS = 60 * 60_000;
const MAX_SESSIONS = 10_000;
const THEME: Theme = { brand: TPP_NAME, colour: '#6b3fa0' };

/** PSD2: access to account information is granted for at most 180 days; the app asks for 90. */
const AIS_DAYS = 90;

export function aisDetails(now = new Date()): Record<string, unknown>[] {
  const expires = new Date(now.getTime() + AIS_DAYS * 86_400_000);
  expires.setUTCSeconds(0, 0);
  return [{ type: 'account_information', actions: ['list_accounts', 'read_balances', 'read_transactions'], expires_at: expires.toISOString().replace('.000Z', 'Z') }];
}
export const DEMO_PAYMENT = {
  type: 'payment_initiation',
  instructedAmount: { currency: 'GBP', amount: '10.00' },
  creditorName: 'Corner Shop',
  creditorAccount: { iban: 'GB33BUKB20201555555555' },
  remittanceInformationUnstructured: 'Demo Budget App order 1001',
};

export interface TppDeps {
  /** Portcullis's issuer */
  readonly issuer: string;
  /** where browsers reach this app, e.g. http://localhost:3004 */
  readonly publicUrl: string;
  /** where Portcullis fetches our keys, e.g. http://127.0.0.1:3004/jwks */
  readonly jwksUri: string;
  /** the bank API, e.g. http://127.0.0.1:3003 */
  readonly bankUrl: string;
  readonly directory: Directory;
  readonly log: Logger;
}

interface Pending {
  readonly kind: 'accounts' | 'payment';
  readonly state: string;
  readonly codeVerifier: string;
}

interface Session {
  readonly id: string;
  readonly csrf: string;
  readonly dpop: client.DPoPHandle;
  lastSeen: number;
  pending?: Pending;
  accounts?: { accessToken: string; refreshToken: string | undefined; grantId: string | undefined; until: string | undefined };
  payment?: { accessToken: string; grantId: string | undefined; outcome: BankResult };
}

interface BankResult {
  readonly status: number;
  readonly body: Record<string, unknown>;
  /** RFC 6750 error of a WWW-Authenticate challenge, if any */
  readonly challenge: string | undefined;
}

export interface Registration {
  readonly clientId: string;
  readonly softwareId: string;
  readonly registrationClientUri: string | undefined;
}

export interface Tpp {
  readonly app: Koa;
  /** DCR with a fresh software statement; run once this app is listening (Portcullis fetches /jwks) */
  register(): Promise<Registration>;
  readonly registration: Registration | undefined;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function money(amount: string, currency: string): string {
  try {
    return new Intl.NumberFormat('en-GB', { style: 'currency', currency }).format(Number(amount));
  } catch {
    return `${currency} ${amount}`;
  }
}

function maskIban(iban: unknown): string {
  return typeof iban === 'string' ? `•••• ${iban.slice(-4)}` : '';
}

export async function createTpp(deps: TppDeps): Promise<Tpp> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `tpp-${randomUUID().slice(0, 8)}`;
  const jwks: { keys: JWK[] } = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] };
  const redirectUri = `${deps.publicUrl}/callback`;
  const issuerOrigin = new URL(deps.issuer).origin;
  const sessions = new Map<string, Session>();
  let registration: Registration | undefined;
  let config: client.Configuration | undefined;

  // --- sessions ------------------------------------------------------------------------

  async function newSession(ctx: Context): Promise<Session> {
    const now = Date.now();
    for (const [id, session] of sessions) if (now - session.lastSeen > SESSION_IDLE_MS) sessions.delete(id);
    // Bounded: past MAX_SESSIONS the oldest session (first in insertion order) is forgotten.
    if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    const session: Session = {
      id: randomBytes(24).toString('base64url'),
      csrf: randomBytes(24).toString('base64url'),
      dpop: client.getDPoPHandle(requireConfig(), await client.randomDPoPKeyPair('ES256')),
      lastSeen: now,
    };
    sessions.set(session.id, session);
    ctx.cookies.set(SESSION_COOKIE, session.id, { httpOnly: true, sameSite: 'lax', overwrite: true, signed: false });
    return session;
  }

  function findSession(ctx: Context): Session | undefined {
    const id = ctx.cookies.get(SESSION_COOKIE);
    const session = id === undefined ? undefined : sessions.get(id);
    if (session === undefined || Date.now() - session.lastSeen > SESSION_IDLE_MS) return undefined;
    session.lastSeen = Date.now();
    return session;
  }

  function requireConfig(): client.Configuration {
    if (config === undefined) throw new TppError(503, 'Still starting', 'The app is registering with the bank. Reload in a moment.');
    return config;
  }

  /** The session of a form post, its CSRF token checked. */
  function postingSession(ctx: Context): Session {
    const session = findSession(ctx);
    const body = (ctx.request as { body?: Record<string, unknown> }).body ?? {};
    if (session === undefined || typeof body.csrf !== 'string' || !safeEqual(body.csrf, session.csrf)) {
      throw new TppError(403, 'Your session has expired', 'Go back to the home page and try again.');
    }
    return session;
  }

  // --- the bank ------------------------------------------------------------------------

  async function pushAuthorization(session: Session, kind: Pending['kind']): Promise<URL> {
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = await client.buildAuthorizationUrlWithPAR(requireConfig(), {
      redirect_uri: redirectUri,
      // Account access lasts (90 days): a refresh token (offline_access, which needs prompt=consent)
      // replaces the short-lived access token. A payment is made at once and needs none.
      scope: kind === 'accounts' ? 'openid accounts offline_access' : 'openid payments',
      ...(kind === 'accounts' ? { prompt: 'consent' } : {}),
      authorization_details: JSON.stringify(kind === 'accounts' ? aisDetails() : [DEMO_PAYMENT]),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
    }, { DPoP: session.dpop });
    session.pending = { kind, state, codeVerifier };
    return url;
  }

  async function callBank(session: Session, accessToken: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<BankResult> {
    const headers = new Headers({ accept: 'application/json' });
    if (body !== undefined) headers.set('content-type', 'application/json');
    let response: Response;
    let challenge: string | undefined;
    try {
      response = await client.fetchProtectedResource(requireConfig(), accessToken, new URL(path, deps.bankUrl), method,
        body === undefined ? undefined : JSON.stringify(body), headers, { DPoP: session.dpop });
    } catch (error) {
      if (!(error instanceof client.WWWAuthenticateChallengeError)) {
        deps.log.warn({ err: error }, 'demo TPP: the bank API cannot be reached');
        return { status: 503, body: {}, challenge: undefined };
      }
      response = error.response;
      challenge = error.cause[0]?.parameters.error;
    }
    let parsed: Record<string, unknown> = {};
    try {
      const value: unknown = await response.json();
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) parsed = value as Record<string, unknown>;
    } catch {
      // not JSON: the status says enough
    }
    return { status: response.status, body: parsed, challenge };
  }

  /**
   * A call to the account API with the session's access token; when the bank says the token
   * is no good (401: it expired after ACCESS_TOKEN_TTL, or the consent ended), one refresh
   * and one retry. A revoked consent has no refresh token left: the 401 stands.
   */
  async function accountsCall(session: Session, path: string): Promise<BankResult> {
    const access = session.accounts;
    if (access === undefined) return { status: 401, body: {}, challenge: undefined };
    const result = await callBank(session, access.accessToken, 'GET', path);
    if (result.status !== 401 || access.refreshToken === undefined) return result;
    try {
      const tokens = await client.refreshTokenGrant(requireConfig(), access.refreshToken, undefined, { DPoP: session.dpop });
      access.accessToken = tokens.access_token;
      if (tokens.refresh_token !== undefined) access.refreshToken = tokens.refresh_token;
    } catch (error) {
      deps.log.info({ err: error }, 'demo TPP: refreshing the account access failed');
      access.refreshToken = undefined;
      return result;
    }
    return callBank(session, access.accessToken, 'GET', path);
  }

  function bankError(result: BankResult): { code: string; message: string } {
    const error = result.body.error as { code?: unknown; message?: unknown } | undefined;
    return { code: typeof error?.code === 'string' ? error.code : String(result.status), message: typeof error?.message === 'string' ? error.message : '' };
  }

  /** The page for a refusal by the bank API, in words a customer understands. */
  function refusalPage(ctx: Context, session: Session, result: BankResult, context: 'accounts' | 'payment-again'): void {
    const { code, message } = bankError(result);
    let title: string;
    let explanation: string;
    if (context === 'payment-again') {
      title = 'Your bank refused to pay again';
      explanation = 'A payment consent pays exactly once. To pay again, ask your bank for a new payment.';
    } else if (result.status === 401) {
      title = 'Your bank says access was revoked';
      explanation = 'Your bank no longer accepts this app\'s access to your accounts (the consent was revoked or has expired). Connect again if you want to keep using the app.';
      session.accounts = undefined;
    } else if (code === 'ACCOUNT_NOT_IN_CONSENT') {
      title = 'Your bank refused: that account is not shared with this app';
      explanation = 'You chose which accounts to share when you connected. Connect again to share other accounts.';
    } else if (result.status === 403) {
      title = 'Your bank refused this request';
      explanation = 'The consent you gave does not cover it.';
    } else {
      title = 'Your bank is not available right now';
      explanation = 'Try again in a moment.';
    }
    ctx.status = result.status >= 500 ? 502 : 403;
    ctx.body = layout(THEME, title, html`
<section class="card error" id="bank-refusal">
  <h1>${title}</h1>
  <p>${explanation}</p>
  <p class="muted">The bank answered HTTP ${result.status}<span class="code"> ${code}</span>${message ? html`: ${message}` : ''}${result.challenge ? html` (${result.challenge})` : ''}.</p>
  ${context === 'accounts' ? connectButton(session, 'Connect again') : ''}
  <a class="button secondary" href="/">Home</a>
</section>`, footer());
  }

  // --- pages ---------------------------------------------------------------------------

  function connectButton(session: Session, label = 'Connect your bank', style: 'primary' | 'secondary' = 'primary'): Markup {
    return html`<form class="inline" method="post" action="/connect"><input type="hidden" name="csrf" value="${session.csrf}"><button type="submit" class="${style}" id="connect">${label}</button></form>`;
  }

  function payButton(session: Session): Markup {
    return html`<form class="inline" method="post" action="/pay"><input type="hidden" name="csrf" value="${session.csrf}"><button type="submit" class="primary" id="pay">Pay ${money(DEMO_PAYMENT.instructedAmount.amount, DEMO_PAYMENT.instructedAmount.currency)} to ${DEMO_PAYMENT.creditorName}</button></form>`;
  }

  function footer(): Markup {
    return html`${TPP_NAME} is registered with <a href="${deps.issuer}">Portcullis</a> as client <code>${registration?.clientId ?? '…'}</code> (dynamic registration, software statement from the demo directory).`;
  }

  function errorPage(ctx: Context, status: number, title: string, message: string): void {
    ctx.status = status;
    ctx.body = layout(THEME, title, html`<section class="card error"><h1>${title}</h1><p>${message}</p><a class="button secondary" href="/">Home</a></section>`, footer());
  }

  const router = new Router();

  router.get('/jwks', (ctx) => {
    ctx.type = 'application/jwk-set+json';
    ctx.body = JSON.stringify(jwks);
  });

  router.get('/', async (ctx) => {
    const session = findSession(ctx) ?? await newSession(ctx);
    const connected = session.accounts !== undefined;
    ctx.body = layout(THEME, 'Home', html`
<section class="card">
  <h1>All your money in one place</h1>
  <p class="lead">${TPP_NAME} shows your balances and recent spending, and pays your favourite shop in one tap.</p>
  ${connected
    ? html`<p>You are connected to your bank.</p><a class="button primary" href="/accounts" id="see-accounts">See your accounts</a> ${payButton(session)}`
    : html`<p>To start, connect your bank. You will sign in at your bank, and choose which accounts to share.</p>${connectButton(session)}`}
</section>
<section class="card">
  <h2>How it works</h2>
  <p class="muted">Your bank (Portcullis) asks you to sign in with your password and a one-time code, and shows you exactly what ${TPP_NAME} asks for. ${TPP_NAME} never sees your password, and you can revoke its access at any time on <a href="${deps.issuer}/account">your bank's account page</a>.</p>
</section>`, footer());
  });

  router.post('/connect', async (ctx) => {
    const session = postingSession(ctx);
    ctx.status = 303;
    ctx.redirect((await pushAuthorization(session, 'accounts')).toString());
  });

  router.post('/pay', async (ctx) => {
    const session = postingSession(ctx);
    ctx.status = 303;
    ctx.redirect((await pushAuthorization(session, 'payment')).toString());
  });

  router.get('/callback', async (ctx) => {
    const session = findSession(ctx);
    const pending = session?.pending;
    if (session === undefined || pending === undefined) return errorPage(ctx, 400, 'Nothing to continue', 'This app was not waiting for your bank. Start again from the home page.');
    session.pending = undefined;
    const error = typeof ctx.query.error === 'string' ? ctx.query.error : undefined;
    if (error !== undefined) {
      const words = error === 'access_denied' ? 'You did not give your consent at your bank, so nothing was shared.' : `Your bank could not complete the request (${error}).`;
      return errorPage(ctx, 400, 'Not connected', words);
    }
    let tokens: client.TokenEndpointResponse;
    try {
      tokens = await client.authorizationCodeGrant(requireConfig(), new URL(ctx.originalUrl, deps.publicUrl), {
        pkceCodeVerifier: pending.codeVerifier, expectedState: pending.state,
      }, undefined, { DPoP: session.dpop });
    } catch (caught) {
      deps.log.warn({ err: caught }, 'demo TPP: code redemption failed');
      return errorPage(ctx, 400, 'Not connected', 'Your bank did not confirm the request. Start again from the home page.');
    }
    const grantId = typeof tokens.grant_id === 'string' ? tokens.grant_id : undefined;
    if (pending.kind === 'accounts') {
      const approved = (tokens.authorization_details ?? []).find((d) => d.type === 'account_information');
      const until = typeof approved?.expires_at === 'string' ? new Date(approved.expires_at).toUTCString().slice(5, 16) : undefined;
      session.accounts = { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, grantId, until };
      ctx.status = 303;
      return ctx.redirect('/accounts');
    }
    // The customer approved the payment: execute it now, once.
    const { type: _type, ...payment } = DEMO_PAYMENT;
    const outcome = await callBank(session, tokens.access_token, 'POST', '/payments', payment);
    session.payment = { accessToken: tokens.access_token, grantId, outcome };
    ctx.status = 303;
    ctx.redirect('/payment');
  });

  router.get('/accounts', async (ctx) => {
    const session = findSession(ctx);
    if (session?.accounts === undefined) {
      ctx.status = 303;
      return ctx.redirect('/');
    }
    const list = await accountsCall(session, '/accounts');
    if (list.status !== 200) return refusalPage(ctx, session, list, 'accounts');
    const accounts = (Array.isArray(list.body.accounts) ? list.body.accounts : []) as { id: string; name: string; currency: string; iban?: string }[];
    const rows: Markup[] = [];
    for (const account of accounts) {
      const balances = await accountsCall(session, `/accounts/${encodeURIComponent(account.id)}/balances`);
      if (balances.status !== 200) return refusalPage(ctx, session, balances, 'accounts');
      const balance = (balances.body.balances as { amount: string; currency: string }[] | undefined)?.[0];
      rows.push(html`<li class="account" id="account-${account.id}">
  <div><h2><a href="/accounts/${encodeURIComponent(account.id)}">${account.name}</a></h2><span class="muted">${maskIban(account.iban)} · ${account.currency}</span></div>
  <div class="balance">${balance === undefined ? '—' : money(balance.amount, balance.currency)}</div>
</li>`);
    }
    ctx.body = layout(THEME, 'Your accounts', html`
<section class="card ok">
  <h1>Your accounts</h1>
  <p class="muted">Shared by your bank with your consent${session.accounts.until === undefined ? '' : html` until ${session.accounts.until}`}, fetched just now with a DPoP-bound access token. You can revoke access at any time on <a href="${deps.issuer}/account">your bank's account page</a>.</p>
  <ul class="accounts">${rows}</ul>
  ${connectButton(session, 'Change which accounts you share', 'secondary')}
</section>
<section class="card">
  <h2>Pay the Corner Shop</h2>
  <p class="muted">Your bank will show you the amount and the payee, and ask for a one-time code.</p>
  ${payButton(session)}
</section>`, footer());
  });

  router.get('/accounts/:id', async (ctx) => {
    const session = findSession(ctx);
    if (session?.accounts === undefined) {
      ctx.status = 303;
      return ctx.redirect('/');
    }
    const id = ctx.params.id!;
    const balances = await accountsCall(session, `/accounts/${encodeURIComponent(id)}/balances`);
    if (balances.status !== 200) return refusalPage(ctx, session, balances, 'accounts');
    const list = await accountsCall(session, '/accounts');
    if (list.status !== 200) return refusalPage(ctx, session, list, 'accounts');
    const account = ((list.body.accounts ?? []) as { id: string; name: string; currency: string; iban?: string }[]).find((a) => a.id === id);
    const history = await accountsCall(session, `/accounts/${encodeURIComponent(id)}/transactions`);
    if (history.status !== 200) return refusalPage(ctx, session, history, 'accounts');
    const balance = (balances.body.balances as { amount: string; currency: string }[] | undefined)?.[0];
    const transactions = (history.body.transactions ?? []) as { booked_at: string; description: string; amount: string; currency: string }[];
    ctx.body = layout(THEME, 'Account', html`
<section class="card">
  <p><a href="/accounts">← All accounts</a></p>
  <h1>${account?.name ?? id}</h1>
  <p class="muted">${maskIban(account?.iban)} · ${account?.currency ?? ''}</p>
  <p class="balance">${balance === undefined ? '—' : money(balance.amount, balance.currency)}</p>
  <table>
    <thead><tr><th>Date</th><th>Description</th><th class="amount">Amount</th></tr></thead>
    <tbody>${transactions.map((t) => html`<tr><td>${t.booked_at}</td><td>${t.description}</td><td class="amount">${money(t.amount, t.currency)}</td></tr>`)}</tbody>
  </table>
</section>`, footer());
  });

  router.get('/payment', (ctx) => {
    const session = findSession(ctx);
    if (session?.payment === undefined) {
      ctx.status = 303;
      return ctx.redirect('/');
    }
    const { outcome } = session.payment;
    if (outcome.status !== 201) {
      const { code, message } = bankError(outcome);
      return errorPage(ctx, 502, 'The payment was not made', `Your bank refused it (HTTP ${outcome.status} ${code}${message ? `: ${message}` : ''}).`);
    }
    const amount = outcome.body.instructedAmount as { amount: string; currency: string };
    ctx.body = layout(THEME, 'Payment sent', html`
<section class="card ok" id="payment-done">
  <h1>Payment sent</h1>
  <p class="lead">${money(amount.amount, amount.currency)} to ${String(outcome.body.creditorName)}</p>
  <p class="muted">Payment <code>${String(outcome.body.payment_id)}</code>, from your account ${String((outcome.body.debtorAccount as { id?: string } | undefined)?.id ?? '')}.</p>
  <a class="button primary" href="/">Home</a>
</section>
<section class="card">
  <h2>Try to use the consent twice</h2>
  <p class="muted">Your consent was for one payment. Asking the bank to execute it again must fail.</p>
  <form class="inline" method="post" action="/payment/again"><input type="hidden" name="csrf" value="${session.csrf}"><button type="submit" class="secondary" id="pay-again">Execute the same payment again</button></form>
</section>`, footer());
  });

  router.post('/payment/again', async (ctx) => {
    const session = postingSession(ctx);
    if (session.payment === undefined) {
      ctx.status = 303;
      return ctx.redirect('/');
    }
    const { type: _type, ...payment } = DEMO_PAYMENT;
    const outcome = await callBank(session, session.payment.accessToken, 'POST', '/payments', payment);
    if (outcome.status === 201) {
      return errorPage(ctx, 500, 'The bank paid twice', 'This must not happen: a payment consent pays once.');
    }
    return refusalPage(ctx, session, outcome, 'payment-again');
  });

  const app = new Koa({ proxy: false });
  app.silent = true;
  app.use(async (ctx, next) => {
    ctx.set('Content-Security-Policy', `default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self' ${issuerOrigin}; frame-ancestors 'none'; base-uri 'none'`);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (error) {
      if (error instanceof TppError) return errorPage(ctx, error.status, error.title, error.message);
      deps.log.error({ err: error }, 'demo TPP: request failed');
      return errorPage(ctx, 500, 'Something went wrong', 'Try again from the home page.');
    }
    if (ctx.status === 404 && ctx.body === undefined) errorPage(ctx, 404, 'Not found', 'There is no such page.');
  });
  app.use(bodyParser({ enableTypes: ['form'], formLimit: '8kb' }));
  app.use(router.routes());
  app.use(router.allowedMethods());

  return {
    app,
    get registration() { return registration; },
    async register() {
      const softwareId = `demo-budget-app-${randomUUID()}`;
      const statement = await deps.directory.issueSoftwareStatement({
        softwareId,
        clientName: TPP_NAME,
        redirectUris: [redirectUri],
        jwksUri: deps.jwksUri,
        roles: ['AISP', 'PISP'],
        orgId: 'demo-org-1',
        orgName: 'Demo Budget Ltd',
      });
      const response = await fetch(`${deps.issuer}/reg`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ software_statement: statement, redirect_uris: [redirectUri], token_endpoint_auth_method: 'private_key_jwt' }),
      });
      const body = await response.json() as Record<string, unknown>;
      if (response.status !== 201 || typeof body.client_id !== 'string') {
        throw new Error(`dynamic client registration failed: HTTP ${response.status} ${String(body.error ?? '')} ${String(body.error_description ?? '')}`);
      }
      config = await client.discovery(new URL(deps.issuer), body.client_id, {
        token_endpoint_auth_method: 'private_key_jwt',
        ...(typeof body.id_token_signed_response_alg === 'string' ? { id_token_signed_response_alg: body.id_token_signed_response_alg } : {}),
      }, client.PrivateKeyJwt({ key: privateKey as CryptoKey, kid }), { execute: [client.allowInsecureRequests] });
      registration = {
        clientId: body.client_id, softwareId,
        registrationClientUri: typeof body.registration_client_uri === 'string' ? body.registration_client_uri : undefined,
      };
      return registration;
    },
  };
}

class TppError extends Error {
  override readonly name = 'TppError';
  constructor(readonly status: number, readonly title: string, message: string) {
    super(message);
  }
}
