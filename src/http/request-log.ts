import type { Context, Next } from 'koa';
import type { Logger } from 'pino';

/**
 * One log line per request:
 *   {"level":30,"time":…,"requestId":"…","method":"POST","route":"/interaction/:uid/login",
 *    "status":303,"latencyMs":12.3,"clientId":"…","ip":"…","msg":"request"}
 * (level 50 for 5xx). `route` is the matched route template (@koa/router and oidc-provider
 * both set `ctx._matchedRoute`), else the path normalised by `normalisePath`; `clientId`
 * only when known (oidc-provider's authenticated client, or `ctx.state.clientId`).
 *
 * Never logged: bodies, the query string (authorization codes, request_uri), cookies,
 * Authorization and DPoP headers, the raw path (tokens and interaction uids in URLs).
 * Place it right after `requestId` and above the error handler: it then sees the status
 * the error handler chose; an error escaping everything is logged as 500 and rethrown.
 */
export function requestLog(log: Logger) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const started = process.hrtime.bigint();
    let status: number | undefined;
    try {
      await next();
    } catch (error) {
      status = statusOfError(error);
      throw error;
    } finally {
      const latencyMs = Math.round(Number(process.hrtime.bigint() - started) / 10_000) / 100;
      const finalStatus = status ?? ctx.status;
      const line: Record<string, unknown> = {
        requestId: typeof ctx.state.requestId === 'string' ? ctx.state.requestId : undefined,
        method: ctx.method,
        route: routeOf(ctx),
        status: finalStatus,
        latencyMs,
        clientId: clientIdOf(ctx),
        ip: ctx.ip,
      };
      if (finalStatus >= 500) log.error(line, 'request');
      else log.info(line, 'request');
    }
  };
}

export function statusOfError(error: unknown): number {
  const status = (error as { status?: unknown; statusCode?: unknown } | null)?.status ?? (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' && status >= 400 && status <= 599 ? status : 500;
}

const MAX_ROUTE = 200;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * 20 or more characters of the base64url alphabet, among them a digit or a capital: a token,
 * an interaction uid, a random id, a hex digest (lower-case words joined by - or _, such as
 * openid-configuration, are not random).
 */
const LONG_RUN = /[A-Za-z0-9_-]{20,}/g;

function hasRandomRun(text: string): boolean {
  return (text.match(LONG_RUN) ?? []).some((run) => /[0-9A-Z]/.test(run));
}
const DIGITS = /^[0-9]+$/;

function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * A path with its identifiers replaced by `:id`: every segment that is a UUID, all digits,
 * longer than 64 characters, or that holds a run of 20+ base64url characters with a digit
 * or a capital in it (checked before and after percent-decoding). Bounded to 200 characters.
 */
export function normalisePath(path: string): string {
  const normalised = path.split('/').map((segment) => {
    if (segment === '') return segment;
    const plain = decoded(segment);
    if (UUID.test(plain) || DIGITS.test(plain) || segment.length > 64 || hasRandomRun(segment) || hasRandomRun(plain)) return ':id';
    return segment;
  }).join('/');
  return normalised.length > MAX_ROUTE ? `${normalised.slice(0, MAX_ROUTE)}…` : normalised;
}

/** The matched route template (@koa/router, oidc-provider), else the normalised path. */
export function matchedRoute(ctx: Context): string | undefined {
  const matched = (ctx as unknown as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof matched === 'string' && matched !== '') return matched.length > MAX_ROUTE ? `${matched.slice(0, MAX_ROUTE)}…` : matched;
  if (matched instanceof RegExp) return normalisePath(String(matched));
  return undefined;
}

export function routeOf(ctx: Context): string {
  return matchedRoute(ctx) ?? normalisePath(ctx.path);
}

export function clientIdOf(ctx: Context): string | undefined {
  try {
    const fromProvider = (ctx as unknown as { oidc?: { client?: { clientId?: unknown } } }).oidc?.client?.clientId;
    if (typeof fromProvider === 'string') return fromProvider.slice(0, 200);
  } catch {
    // ctx.oidc getters may throw outside oidc-provider's own requests
  }
  const fromState = (ctx.state as { clientId?: unknown }).clientId;
  return typeof fromState === 'string' ? fromState.slice(0, 200) : undefined;
}
