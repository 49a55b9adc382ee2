import Router from '@koa/router';
import type { Context } from 'koa';

import type { Csrf } from '../http/csrf.js';
import { HttpError } from '../http/errors.js';
import { formField, parseForm } from '../http/form.js';
import type { Views } from '../http/views.js';
import { SCOPE_DESCRIPTIONS } from '../oidc/configuration.js';
import type { AuthenticationService } from '../services/authentication.js';
import { ACCOUNT_INFORMATION, formatAmount, PAYMENT_INITIATION, type AuthorizationDetail } from '../services/authorization-details.js';
import type { ClientService } from '../services/clients.js';
import type { ConsentRecord, ConsentService } from '../services/consents.js';
import type { CustomerService } from '../services/customers.js';
import type { DashboardSessions } from '../services/dashboard-sessions.js';
import type { SecretBox } from '../services/secret-box.js';
import type { TotpService } from '../services/totp.js';
import { CODE_FAILED, enrolmentView, openEnrolment, SIGN_IN_FAILED, tooManyAttempts } from './authenticator-pages.js';

export interface DashboardDeps {
  readonly views: Views;
  readonly csrf: Csrf;
  readonly sessions: DashboardSessions;
  readonly authentication: AuthenticationService;
  readonly customers: CustomerService;
  readonly consents: ConsentService;
  readonly clients: ClientService;
  readonly totp: TotpService;
  readonly box: SecretBox;
}

const COOKIE = 'portcullis.account';
const ACTIONS: Readonly<Record<string, string>> = { list_accounts: 'list', read_balances: 'balances', read_transactions: 'transactions' };

function formatDate(date: Date | null): string {
  return date === null ? 'no end date' : date.toUTCString().slice(5, 22);
}

/** What a consent grants, in words a customer reads. */
function describe(consent: ConsentRecord): string[] {
  const lines: string[] = [];
  for (const detail of consent.details as unknown as AuthorizationDetail[]) {
    if (detail.type === ACCOUNT_INFORMATION) {
      const accounts = detail.accounts?.join(', ') ?? 'no accounts';
      lines.push(`Read ${detail.actions.map((a) => ACTIONS[a] ?? a).join(', ')} of accounts ${accounts}`);
    } else if (detail.type === PAYMENT_INITIATION) {
      lines.push(`Pay ${formatAmount(detail.instructedAmount.amount, detail.instructedAmount.currency)} to ${detail.creditorName} from ${detail.debtorAccount?.id ?? 'your account'}`);
    }
  }
  if (lines.length === 0) {
    lines.push(...consent.scopes.split(' ').map((s) => SCOPE_DESCRIPTIONS[s]).filter((d): d is string => d !== undefined));
  }
  return lines;
}

/**
 * The customer dashboard: every consent with its client, what it grants, since and until,
 * its status, and a Revoke button. Signing in always takes SCA; five idle minutes end the
 * session. A consent id that is not the customer's answers 404, like an unknown one.
 *
 *   GET  /account                       consents, or the sign-in form
 *   POST /account/login                 username + password + code
 *   POST /account/consents/:id/revoke   revoke one consent
 *   GET  /account/authenticator         replace the authenticator (needs a fresh SCA)
 *   POST /account/authenticator         confirm the new one with its first code
 *   POST /account/logout
 */
export function dashboardRouter(deps: DashboardDeps): Router {
  const { views, csrf, sessions } = deps;
  const router = new Router({ prefix: '/account' });

  const render = (ctx: Context, view: string, data: Record<string, unknown>) => {
    ctx.type = 'html';
    ctx.body = views.render(view, data);
  };
  const context = (ctx: Context, userId?: string) => ({ actor: 'customer', userId, ip: ctx.ip, requestId: String(ctx.state.requestId ?? '') });
  const setCookie = (ctx: Context, value: string | null) => ctx.cookies.set(COOKIE, value, { signed: true, httpOnly: true, sameSite: 'strict', secure: ctx.secure, overwrite: true, path: '/account' });
  const session = (ctx: Context) => sessions.resume(ctx.cookies.get(COOKIE, { signed: true }));

  async function requireSession(ctx: Context) {
    const current = await session(ctx);
    if (current === undefined) throw new HttpError(401, 'SIGN_IN_REQUIRED', 'Your session has ended. Sign in again.');
    return current;
  }

  function renderSignIn(ctx: Context, error?: string, username = '') {
    render(ctx, 'account-login', { title: 'Your connected apps', csrf: csrf.token(ctx, 'account:login'), error, username });
  }

  router.get('/', async (ctx) => {
    const current = await session(ctx);
    if (current === undefined) return renderSignIn(ctx);
    const profile = await deps.customers.profile(current.userId);
    const consents = await deps.consents.list({ userId: current.userId });
    const names = new Map<string, string>();
    for (const clientId of new Set(consents.map((c) => c.clientId))) {
      const record = await deps.clients.get(clientId).catch(() => undefined);
      names.set(clientId, typeof record?.metadata.client_name === 'string' ? record.metadata.client_name : clientId);
    }
    render(ctx, 'account', {
      title: 'Your connected apps',
      name: profile?.name ?? profile?.username ?? '',
      logoutCsrf: csrf.token(ctx, 'account:logout'),
      consents: consents.filter((c) => c.status !== 'rejected').map((c) => {
        const status = deps.consents.effectiveStatus(c);
        return {
          id: c.grantId, client: names.get(c.clientId), grants: describe(c), since: formatDate(c.createdAt), until: formatDate(c.expiresAt),
          status, revocable: status === 'authorised', csrf: csrf.token(ctx, 'account:revoke'),
        };
      }),
    });
  });

  router.post('/login', parseForm, async (ctx) => {
    csrf.verify(ctx, 'account:login', formField(ctx, 'csrf', 100));
    const username = formField(ctx, 'username', 256) ?? '';
    const outcome = await deps.authentication.signIn({
      username, password: formField(ctx, 'password', 4096) ?? '', otp: formField(ctx, 'otp', 32), needSca: true, context: context(ctx),
    });
    if (outcome.ok) {
      setCookie(ctx, await sessions.open(outcome.userId));
      ctx.status = 303;
      return ctx.redirect('/account');
    }
    if (outcome.reason === 'throttled') tooManyAttempts(ctx, outcome.retryAfterSeconds);
    if (outcome.reason === 'enrolment_required') {
      throw new HttpError(403, 'AUTHENTICATOR_REQUIRED', 'This page needs a one-time code. Set up your authenticator the next time an app asks you to sign in, or ask the bank.');
    }
    ctx.status = 401;
    return renderSignIn(ctx, SIGN_IN_FAILED, username.slice(0, 64));
  });

  router.post('/consents/:grantId/revoke', parseForm, async (ctx) => {
    const grantId = String(ctx.params.grantId);
    csrf.verify(ctx, 'account:revoke', formField(ctx, 'csrf', 100));
    const current = await requireSession(ctx);
    // Owner-guarded: another customer's consent (or an unknown id) changes nothing and reads as 404.
    const revoked = await deps.consents.transition(grantId, 'revoked', { userId: current.userId }, context(ctx, current.userId));
    if (revoked === undefined) {
      const mine = await deps.consents.find(grantId);
      if (mine?.userId !== current.userId) throw new HttpError(404, 'CONSENT_NOT_FOUND', 'No such consent.');
    }
    ctx.status = 303;
    ctx.redirect('/account');
  });

  const enrolmentPurpose = (userId: string) => `dashboard_totp:${userId}`;

  async function renderAuthenticator(ctx: Context, userId: string, error?: string, sealed?: string) {
    const profile = await deps.customers.profile(userId);
    if (profile === undefined) throw new HttpError(401, 'SIGN_IN_REQUIRED', 'Sign in again.');
    render(ctx, 'enrol', {
      title: 'Replace your authenticator app',
      action: '/account/authenticator',
      cancelHref: '/account',
      clientName: 'Your bank',
      csrf: csrf.token(ctx, 'account:authenticator'),
      ...await enrolmentView(deps, profile.username, enrolmentPurpose(userId), sealed),
      error,
    });
  }

  router.get('/authenticator', async (ctx) => {
    const current = await requireSession(ctx);
    // Re-enrolment replaces the possession factor: only right after a full SCA.
    if (!current.fresh) throw new HttpError(403, 'FRESH_SCA_REQUIRED', 'For your security, sign in again before replacing your authenticator.');
    return renderAuthenticator(ctx, current.userId);
  });

  router.post('/authenticator', parseForm, async (ctx) => {
    csrf.verify(ctx, 'account:authenticator', formField(ctx, 'csrf', 100));
    const current = await requireSession(ctx);
    if (!current.fresh) throw new HttpError(403, 'FRESH_SCA_REQUIRED', 'For your security, sign in again before replacing your authenticator.');
    const sealed = formField(ctx, 'enrolment', 512) ?? '';
    const secret = openEnrolment(deps.box, sealed, enrolmentPurpose(current.userId));
    const step = await deps.totp.matches(secret, (formField(ctx, 'otp', 32) ?? '').trim());
    if (step === undefined) {
      ctx.status = 401;
      return renderAuthenticator(ctx, current.userId, CODE_FAILED, sealed);
    }
    const recoveryCodes = await deps.totp.confirmEnrolment(current.userId, secret, step, context(ctx, current.userId));
    render(ctx, 'recovery-codes', { title: 'Save your new recovery codes', action: '/account', method: 'get', recoveryCodes });
  });

  router.post('/logout', parseForm, async (ctx) => {
    csrf.verify(ctx, 'account:logout', formField(ctx, 'csrf', 100));
    await sessions.close(ctx.cookies.get(COOKIE, { signed: true }));
    setCookie(ctx, null);
    ctx.status = 303;
    ctx.redirect('/account');
  });

  return router;
}
