import { createHash, randomUUID } from 'node:crypto';

import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa, { type ParameterizedContext } from 'koa';
import type { Logger } from 'pino';

import type { BankAccount } from '../src/services/customers.js';
import {
  InMemoryReplayCache, IntrospectionClient, protect, type AuthorizationDetail, type ProtectedState, type ResourceConsent,
} from '../src/resource-server/index.js';

/**
 * The demo bank's account and payment API, behind the resource-server kit: every request
 * needs an active DPoP-bound token for the API's audience (`protect`), and then only the
 * accounts of its consent are visible (anything else is 403, whoever owns it: no BOLA).
 *
 *   GET  /accounts                     the consented accounts (name, currency, IBAN)
 *   GET  /accounts/:id/balances        needs the action read_balances
 *   GET  /accounts/:id/transactions    needs the action read_transactions (made-up history)
 *   POST /payments                     the payment its payment_initiation consent approved,
 *                                      once: the consent is consumed through the admin API
 *                                      before anything is executed (a second call is refused)
 */
export interface BankApiDeps {
  /** Portcullis's issuer (for introspection) */
  readonly issuer: string;
  /** Portcullis's admin API, e.g. http://127.0.0.1:3001 */
  readonly adminUrl: string;
  /** the API key the payment API consumes consents with */
  readonly apiKey: string;
  readonly resourceServer: { readonly client_id: string; readonly client_secret: string };
  /** the resource indicator of the bank's APIs (Portcullis's API_RESOURCE) */
  readonly audience: string;
  /** the origin the TPP addresses, e.g. http://127.0.0.1:3003 (DPoP proofs name it) */
  readonly publicOrigin: string;
  /** the customer's accounts, from the bank's core system (here: Portcullis's table) */
  readonly accountsOf: (userId: string) => Promise<BankAccount[]>;
  readonly log: Logger;
}

type Context = ParameterizedContext<ProtectedState>;

interface Movement {
  readonly id: string;
  readonly bookedAt: string;
  readonly description: string;
  /** signed decimal, e.g. "-12.40" */
  readonly amount: string;
}

// ---------------------------------------------------------------------------------------
// Money as integers of 1/10000: balances are stored with up to four decimals.

const SCALE = 10_000n;

function toUnits(decimal: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d{1,4}))?$/.exec(decimal);
  if (match === null) throw new Error(`not a decimal amount: ${decimal}`);
  const units = BigInt(match[2]!) * SCALE + BigInt((match[3] ?? '').padEnd(4, '0'));
  return match[1] === '-' ? -units : units;
}

function fromUnits(units: bigint): string {
  const negative = units < 0n;
  const absolute = negative ? -units : units;
  const cents = (absolute + 50n) / 100n; // two decimals, half up
  return `${negative ? '-' : ''}${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`;
}

/** The same made-up history for an account every time (derived from its id). */
function madeUpHistory(account: BankAccount, today: Date): Movement[] {
  const templates = account.currency === 'GBP'
    ? [['Salary — Acme Ltd', '2400.00'], ['Rent — Northside Lettings', '-950.00'], ['Corner Shop', '-12.40'], ['Coffee House', '-3.20'], ['Electric Co', '-64.00'], ['Bookshop', '-18.99'], ['Train ticket', '-27.50']]
    : [['Interest', '4.50'], ['Transfer from current account', '200.00'], ['Transfer from current account', '200.00'], ['Interest', '4.38']];
  const seed = createHash('sha256').update(account.id).digest();
  return templates.map(([description, amount], index) => {
    const daysAgo = 1 + index * 3 + (seed[index]! % 3);
    const day = new Date(today.getTime() - daysAgo * 86_400_000);
    return { id: `${account.id}-tx-${index + 1}`, bookedAt: day.toISOString().slice(0, 10), description: description!, amount: amount! };
  });
}

function refuse(ctx: Context, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: { code, message } };
}

/** The actions the consent grants on one account (its account_information details that name it). */
function actionsOn(consent: ResourceConsent, accountId: string): Set<string> {
  const actions = new Set<string>();
  for (const detail of consent.authorizationDetails) {
    if (detail.type !== 'account_information' || !Array.isArray(detail.accounts) || !detail.accounts.includes(accountId)) continue;
    if (Array.isArray(detail.actions)) for (const action of detail.actions) if (typeof action === 'string') actions.add(action);
  }
  return actions;
}

function sameMoney(a: unknown, b: unknown): boolean {
  const x = a as { amount?: unknown; currency?: unknown } | undefined;
  const y = b as { amount?: unknown; currency?: unknown } | undefined;
  return typeof x?.amount === 'string' && typeof y?.amount === 'string' && x.currency === y.currency && toUnits(x.amount) === toUnits(y.amount);
}

export function createBankApi(deps: BankApiDeps): Koa<ProtectedState> {
  const introspection = new IntrospectionClient({
    introspectionEndpoint: `${deps.issuer}/token/introspection`,
    clientId: deps.resourceServer.client_id,
    clientSecret: deps.resourceServer.client_secret,
  });
  const replay = new InMemoryReplayCache();
  const common = { introspection, audience: deps.audience, publicOrigin: deps.publicOrigin, replay };
  const accountsGuard = protect({ ...common, requiredScopes: ['accounts'], consentType: 'account_information' });
  const paymentsGuard = protect({ ...common, requiredScopes: ['payments'], consentType: 'payment_initiation' });
  /** payments executed while the demo runs, by debtor account id */
  const ledger = new Map<string, Movement[]>();

  /** The consented account `id` of the token's customer, or a 403 (or 404) already answered. */
  async function consentedAccount(ctx: Context, id: string, action: string): Promise<BankAccount | undefined> {
    const { consent } = ctx.state;
    // Object-level authorisation first: an id outside the consent is refused whether or not it exists.
    if (!consent.accounts.includes(id)) {
      refuse(ctx, 403, 'ACCOUNT_NOT_IN_CONSENT', 'this account is not part of the consent');
      return undefined;
    }
    if (!actionsOn(consent, id).has(action)) {
      refuse(ctx, 403, 'ACTION_NOT_IN_CONSENT', `the consent does not include ${action} for this account`);
      return undefined;
    }
    const account = consent.subject === undefined ? undefined : (await deps.accountsOf(consent.subject)).find((a) => a.id === id);
    if (account === undefined) {
      refuse(ctx, 404, 'ACCOUNT_NOT_FOUND', 'the account no longer exists');
      return undefined;
    }
    return account;
  }

  const router = new Router<ProtectedState>();

  router.get('/accounts', accountsGuard, async (ctx) => {
    const { consent } = ctx.state;
    if (!consent.authorizationDetails.some((d) => d.type === 'account_information' && Array.isArray(d.actions) && d.actions.includes('list_accounts'))) {
      return refuse(ctx, 403, 'ACTION_NOT_IN_CONSENT', 'the consent does not include list_accounts');
    }
    const own = consent.subject === undefined ? [] : await deps.accountsOf(consent.subject);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      accounts: own.filter((a) => consent.accounts.includes(a.id)).map((a) => ({ id: a.id, name: a.name, currency: a.currency, iban: a.iban })),
    };
  });

  router.get('/accounts/:id/balances', accountsGuard, async (ctx) => {
    const account = await consentedAccount(ctx, ctx.params.id!, 'read_balances');
    if (account === undefined) return;
    const paid = (ledger.get(account.id) ?? []).reduce((sum, m) => sum + toUnits(m.amount), 0n);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      account_id: account.id,
      balances: [{ type: 'available', amount: fromUnits(toUnits(account.balance) + paid), currency: account.currency, as_of: new Date().toISOString() }],
    };
  });

  router.get('/accounts/:id/transactions', accountsGuard, async (ctx) => {
    const account = await consentedAccount(ctx, ctx.params.id!, 'read_transactions');
    if (account === undefined) return;
    const movements = [...(ledger.get(account.id) ?? []), ...madeUpHistory(account, new Date())];
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      account_id: account.id,
      transactions: movements.map((m) => ({ id: m.id, booked_at: m.bookedAt, description: m.description, amount: m.amount, currency: account.currency })),
    };
  });

  router.post('/payments', paymentsGuard, bodyParser({ enableTypes: ['json'], jsonLimit: '16kb' }), async (ctx) => {
    const { consent } = ctx.state;
    const payment = consent.payment as (AuthorizationDetail & { instructedAmount?: { amount: string; currency: string }; creditorName?: string; creditorAccount?: { iban?: string }; debtorAccount?: { id?: string; iban?: string } }) | undefined;
    if (payment === undefined || consent.grantId === undefined) return refuse(ctx, 403, 'INSUFFICIENT_CONSENT', 'the token carries no payment consent');
    // The payment asked for must be the one the customer approved.
    const body = (ctx.request as { body?: unknown }).body as Record<string, unknown> | undefined;
    if (body !== undefined && typeof body === 'object' && body !== null && Object.keys(body).length > 0) {
      const creditor = body.creditorAccount as { iban?: unknown } | undefined;
      if (!sameMoney(body.instructedAmount, payment.instructedAmount) || creditor?.iban !== payment.creditorAccount?.iban) {
        return refuse(ctx, 403, 'PAYMENT_DOES_NOT_MATCH_CONSENT', 'the payment differs from the one the customer approved');
      }
    }
    const debtor = payment.debtorAccount?.id;
    const account = debtor === undefined || consent.subject === undefined ? undefined : (await deps.accountsOf(consent.subject)).find((a) => a.id === debtor);
    if (account === undefined) return refuse(ctx, 403, 'NO_DEBTOR_ACCOUNT', 'the consent names no account of the customer to pay from');

    // Exactly once: the consent is consumed (atomically, by Portcullis) before the payment runs.
    let consumed: Response;
    try {
      consumed = await fetch(`${deps.adminUrl}/admin/v1/consents/${encodeURIComponent(consent.grantId)}/consume`, {
        method: 'POST', headers: { authorization: `Bearer ${deps.apiKey}`, accept: 'application/json' }, signal: AbortSignal.timeout(3000),
      });
      await consumed.arrayBuffer();
    } catch (error) {
      deps.log.error({ err: error }, 'demo bank: the admin API cannot be reached');
      return refuse(ctx, 503, 'CONSENT_CHECK_UNAVAILABLE', 'the payment cannot be executed right now; nothing was paid');
    }
    if (consumed.status === 409 || consumed.status === 404) {
      return refuse(ctx, 409, 'CONSENT_ALREADY_USED', 'this payment consent has already been used (or was revoked); nothing was paid');
    }
    if (consumed.status !== 200) {
      deps.log.error({ status: consumed.status }, 'demo bank: consuming the consent failed');
      return refuse(ctx, 502, 'CONSENT_CHECK_FAILED', 'the payment cannot be executed right now; nothing was paid');
    }

    const amount = payment.instructedAmount!;
    const paymentId = `pmt-${randomUUID()}`;
    const movement: Movement = {
      id: paymentId, bookedAt: new Date().toISOString().slice(0, 10), description: `Payment to ${payment.creditorName ?? 'payee'}`,
      amount: `-${amount.amount}`,
    };
    ledger.set(account.id, [movement, ...(ledger.get(account.id) ?? [])]);
    ctx.status = 201;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      payment_id: paymentId, status: 'executed', instructedAmount: amount, creditorName: payment.creditorName,
      creditorAccount: payment.creditorAccount, debtorAccount: { id: account.id }, consent_id: consent.grantId,
    };
  });

  const app = new Koa<ProtectedState>({ proxy: false });
  app.silent = true;
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      deps.log.error({ err: error }, 'demo bank: request failed');
      refuse(ctx, 500, 'INTERNAL_ERROR', 'something went wrong');
    }
    if (ctx.status === 404 && ctx.body === undefined) refuse(ctx, 404, 'NOT_FOUND', 'no such route');
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
