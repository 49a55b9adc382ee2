import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';

import { POOL_QUEUE_FULL } from '../db/database.js';
import type { Views } from './views.js';

/**
 * Database outages answer 503 + Retry-After, never 500 and never a stale or guessed 2xx:
 * the database is the only place state lives, so without it we fail closed (DESIGN §4).
 */

/** Seconds a client should wait before retrying while the database is unreachable. */
export const RETRY_AFTER_SECONDS = 5;

const MESSAGE = 'the service is temporarily unavailable; try again shortly';

/** Node socket errors on the way to the database (refused, reset, unreachable, no such host). */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * SQLSTATEs that mean "the database cannot serve now" rather than "this statement is wrong":
 * 08 connection exception; 53 insufficient resources (too many connections, disk full, out
 * of memory); 57 operator intervention (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
 * cannot_connect_now, 57014 statement_timeout); 55P03 lock_timeout; 25006 a read-only
 * transaction (connected to a standby during a failover).
 */
const SQLSTATE_CLASSES = new Set(['08', '53', '57']);
const SQLSTATES = new Set(['55P03', '25006']);

/** pg and pg-pool raise these without a code. */
const PG_MESSAGES = [
  /^timeout exceeded when trying to connect/,
  /^Connection terminated/, // "… unexpectedly", "… due to connection timeout"
  /^Client has encountered a connection error and is not queryable/,
  /^Client was closed and is not queryable/,
  /^Cannot use a pool after calling end on the pool/,
  /^Query read timeout/,
];

function matches(error: object): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (code === POOL_QUEUE_FULL || NETWORK_CODES.has(code) || SQLSTATES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && SQLSTATE_CLASSES.has(code.slice(0, 2))) return true;
  }
  return typeof message === 'string' && PG_MESSAGES.some((pattern) => pattern.test(message));
}

/**
 * True when `error` says the database is unreachable, shutting down, saturated or too slow.
 * Looks at the error itself and, for AggregateError (Node tries each address of a host),
 * at its members; not at `cause` chains, where an unrelated outbound failure (a client's
 * jwks_uri refusing connections) would be mistaken for a database outage.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if (matches(error)) return true;
  return error instanceof AggregateError && error.errors.some((member: unknown) => typeof member === 'object' && member !== null && matches(member));
}

/** How the caller gets the 503: RFC 6749 error, the error envelope, or the friendly page. */
export type UnavailableForm = 'oauth' | 'json' | 'html';

export function respondUnavailable(ctx: Context, form: UnavailableForm, views: Views | undefined): void {
  const requestId = String(ctx.state.requestId ?? '');
  ctx.status = 503;
  ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
  if (form === 'html' && views !== undefined) {
    ctx.type = 'html';
    ctx.body = views.render('error', {
      title: 'Temporarily unavailable',
      message: 'We cannot complete this right now. Nothing has been lost: please try again in a few moments.',
      requestId,
    });
  } else if (form === 'oauth') {
    ctx.body = { error: 'temporarily_unavailable', error_description: MESSAGE };
  } else {
    ctx.body = { error: { code: 'SERVICE_UNAVAILABLE', message: MESSAGE, request_id: requestId } };
  }
}

/** ctx.state key: set when oidc-provider failed this request because of the database */
const OUTAGE = 'databaseUnavailable';

/**
 * Wraps the protocol endpoints (our filters in front of oidc-provider, and oidc-provider).
 * oidc-provider renders every unexpected error as 500 server_error and then emits
 * `server_error` with the error; our listener marks the request when that error is a
 * database outage, and on the way out this middleware answers 503 temporarily_unavailable
 * instead (the friendly page where oidc-provider had rendered HTML). Never a body
 * oidc-provider produced from data it could not read: introspection's provisional
 * `{active:false}` is replaced as well. A filter's own database error gets the same answer.
 */
export function answerProviderOutages(current: () => Provider, views: Views, log: Logger): Middleware {
  const watched = new WeakSet<Provider>();
  const unavailable = (ctx: Context, error: unknown) => log.warn({ err: error, requestId: ctx.state.requestId }, 'database unavailable');
  const mark = (ctx: unknown, error: unknown) => {
    if (!isDatabaseUnavailable(error)) return;
    (ctx as Context).state[OUTAGE] = true;
    unavailable(ctx as Context, error);
  };
  return async function providerOutages(ctx, next) {
    // The provider is rebuilt when signing keys change: listen on each one once.
    const provider = current();
    if (!watched.has(provider)) {
      watched.add(provider);
      provider.on('server_error', mark);
    }
    try {
      await next();
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      unavailable(ctx, error);
      respondUnavailable(ctx, ctx.accepts('json', 'html') === 'html' ? 'html' : 'oauth', views);
      return;
    }
    if (ctx.state[OUTAGE] === true) respondUnavailable(ctx, ctx.response.is('html') === 'html' ? 'html' : 'oauth', views);
  };
}
