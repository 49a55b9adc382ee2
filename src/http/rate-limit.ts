import { isIP } from 'node:net';

import { Redis } from 'ioredis';
import type { Context, Middleware, Next } from 'koa';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';

import type { Views } from './views.js';

/**
 * Request rate limits per endpoint class (DESIGN §4; "Protecting the API surface", point 1).
 *
 * Each request is classified by method and path (`classify`); each class has its own budget
 * of `points` requests per `duration` seconds (fixed window that starts at a key's first
 * request, rate-limiter-flexible's "enhanced fixed window"). Counters live in memory, or in
 * Redis when a URL is configured so that every instance spends one shared budget.
 *
 * Keys
 * - signin, pages, registration, userinfo, grants: the client IP (`ctx.ip`: the socket
 *   address, or the forwarded one only when the Koa app trusts a proxy). IPv6 addresses
 *   count per /64, the smallest block one subscriber usually holds, so rotating addresses
 *   inside it buys nothing. registration, userinfo and grants are called with bearer
 *   credentials (registration access token, access token) that only the handler resolves
 *   to a client: keying them by client would mean a token lookup here.
 * - token, par, introspection, revocation: the client is authenticated inside oidc-provider,
 *   which reads the form body itself (no body parser may run before it), so no
 *   authenticated client exists yet when this middleware runs. The key is the client the
 *   request *claims* in its `Authorization: Basic` header (RFC 6749 §2.3.1, form-decoded
 *   username), when there is one, else the IP. Because a claim is unverified, anybody may
 *   name any client: (a) a claimed client gets its own budget, so a noisy client does not
 *   starve others behind the same address, and (b) every request also spends from a
 *   per-IP ceiling of CLIENT_IP_CEILING_FACTOR × the class budget, so rotating invented
 *   client ids cannot buy an unbounded rate, and spoofing a victim's client id can at most
 *   exhaust that client's budget from one address at a time.
 *   Limits: FAPI 2.0 TPPs authenticate with private_key_jwt (client_id inside the body and
 *   the client_assertion) or tls_client_auth, never Basic; Basic is used here only by
 *   resource servers at introspection and revocation. So TPPs are in practice counted per
 *   IP address, and several TPPs behind one egress address share that budget. The
 *   `clientKey` option can supply a stronger identity (e.g. the SHA-256 of a client
 *   certificate that chains to the TPP CA bundle) without reading the body.
 *
 * Responses
 * Every limited request carries X-RateLimit-Limit, X-RateLimit-Remaining and
 * X-RateLimit-Reset (seconds until the window of the reported counter resets); the
 * reported counter is the tighter one when two apply. Over the limit: 429 + Retry-After.
 * - OAuth endpoints (token, par, introspection, revocation, registration, userinfo):
 *   `{"error":"slow_down","error_description":…}`. RFC 6749 has no rate-limit error code.
 *   `slow_down` is the registered OAuth error (RFC 8628 §3.5, IANA "OAuth Extensions Error
 *   Registry") whose meaning is exactly "too many requests, back off"; OAuth client
 *   libraries surface it as an error rather than choking on an unknown code, and together
 *   with HTTP 429 + Retry-After it says what to do. `too_many_requests` is not registered.
 * - pages and grants: the application envelope
 *   `{"error":{"code":"RATE_LIMITED","message":…,"request_id":…}}`, or the error page for
 *   browsers when `views` is given (as errorHandler does).
 *
 * Store failure (Redis unreachable, or slower than STORE_TIMEOUT_MS)
 * - signin, par and token fail closed: 503 + Retry-After, `temporarily_unavailable`
 *   (OAuth) or the envelope with TEMPORARILY_UNAVAILABLE. These guard credentials and token
 *   issuance; guessing passwords or codes at an unmetered rate is worse than a short outage.
 * - every other class fails open: the request goes through unmetered.
 * Either way one warning is logged per minute at most. There is no insurance limiter: a
 * per-instance fallback would multiply the budget by the number of instances.
 * The Redis client never queues commands while disconnected (`enableOfflineQueue: false`,
 * `rejectIfRedisNotReady`), times commands out after STORE_TIMEOUT_MS, drops a connection
 * on which a command timed out, and reconnects in the background, so an outage costs no
 * request more than about half a second.
 *
 * Unlimited on purpose: /healthz and /readyz (load balancers probe them from few addresses;
 * limiting them takes healthy instances out of rotation), discovery and /jwks (static,
 * cacheable, fetched by every client and resource server, often from shared egress;
 * throttling them breaks token verification for everyone behind that address), /static
 * and any path not listed (the provider answers 404 without work). Volumetric floods of
 * those belong at the edge (CDN / WAF), not in an application budget.
 * A new endpoint must be added to `classify`, or it is unlimited.
 */

export const RATE_LIMIT_CLASSES = ['signin', 'par', 'token', 'registration', 'introspection', 'revocation', 'userinfo', 'grants', 'pages'] as const;
export type RateLimitClass = (typeof RATE_LIMIT_CLASSES)[number];

export interface RateLimitRule {
  /** requests allowed per key per window */
  readonly points: number;
  /** window length, seconds */
  readonly duration: number;
}

export type RateLimits = Readonly<Record<RateLimitClass, RateLimitRule>>;

/**
 * Budgets per key per window. Keys: IP (signin, pages, registration, userinfo, grants);
 * claimed client, else IP (token, par, introspection, revocation).
 * - signin 20/min per IP: a person types a password or a code a few times a minute; this
 *   leaves room for a household or office behind one address and stops scripted guessing
 *   (the per-account lockout and SIGNIN_IP_MAX_FAILURES still count failures separately).
 * - token 600/min, par 300/min: a busy TPP backend (code redemptions, refreshes, client
 *   credentials); PAR precedes every authorization, token follows it (and refreshes).
 * - introspection 1200/min: resource servers may introspect per API call.
 * - revocation 300/min, userinfo 600/min, grants 300/min.
 * - registration 30/min: rare, expensive (software-statement verification, key fetches).
 * - pages 300/min per IP: a person clicks a few times a minute; a shared NAT has headroom.
 */
export const DEFAULT_LIMITS: RateLimits = Object.freeze({
  signin: Object.freeze({ points: 20, duration: 60 }),
  par: Object.freeze({ points: 300, duration: 60 }),
  token: Object.freeze({ points: 600, duration: 60 }),
  registration: Object.freeze({ points: 30, duration: 60 }),
  introspection: Object.freeze({ points: 1200, duration: 60 }),
  revocation: Object.freeze({ points: 300, duration: 60 }),
  userinfo: Object.freeze({ points: 600, duration: 60 }),
  grants: Object.freeze({ points: 300, duration: 60 }),
  pages: Object.freeze({ points: 300, duration: 60 }),
});

/** For classes keyed by claimed client: what one IP may spend in total, × the class budget. */
export const CLIENT_IP_CEILING_FACTOR = 10;

/** A store call slower than this counts as a store failure. */
export const STORE_TIMEOUT_MS = 500;
const CONNECT_TIMEOUT_MS = 1000;
/** Retry-After when the store is unavailable and the class fails closed. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;
const LOG_INTERVAL_MS = 60_000;

const MAX_POINTS = 1_000_000;
const MAX_DURATION = 86_400;

interface ClassPolicy {
  /** answers in RFC 6749 error form rather than the application envelope */
  readonly oauth: boolean;
  /** 503 when the store is unavailable (otherwise the request passes unmetered) */
  readonly failClosed: boolean;
  /** keyed by the claimed client (Basic username) where there is one, with a per-IP ceiling */
  readonly perClient: boolean;
}

const POLICIES: Readonly<Record<RateLimitClass, ClassPolicy>> = {
  signin: { oauth: false, failClosed: true, perClient: false },
  par: { oauth: true, failClosed: true, perClient: true },
  token: { oauth: true, failClosed: true, perClient: true },
  registration: { oauth: true, failClosed: false, perClient: false },
  introspection: { oauth: true, failClosed: false, perClient: true },
  revocation: { oauth: true, failClosed: false, perClient: true },
  userinfo: { oauth: true, failClosed: false, perClient: false },
  grants: { oauth: false, failClosed: false, perClient: false },
  pages: { oauth: false, failClosed: false, perClient: false },
};

/** POST steps that check a password or a one-time code. */
const SIGNIN_INTERACTION = /^\/interaction\/[^/]+\/(login|otp|enrol)$/;
const SIGNIN_ACCOUNT = new Set(['/account/login', '/account/authenticator']);

function within(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * The path as routers may match it: percent-decoded, lower case (koa-router matches case-
 * insensitively), repeated and trailing slashes dropped. Normalising can only make a
 * request count in a class, never take it out of one.
 */
function normalisePath(path: string): string {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // malformed escapes: classify the raw path
  }
  const collapsed = decoded.toLowerCase().replace(/\/{2,}/g, '/');
  return collapsed.length > 1 && collapsed.endsWith('/') ? collapsed.replace(/\/+$/, '') || '/' : collapsed;
}

/**
 * The class a request counts in, or undefined for unlimited paths (health, discovery, JWKS,
 * static, unknown). Pure. Sign-in checks (POST /interaction/:uid/login|otp|enrol,
 * POST /account/login, and POST /account/authenticator, which verifies a one-time code) are
 * `signin`; every other request under /interaction, /account, /auth and /session/end
 * (RP-initiated logout pages) is `pages`. Protocol endpoints count whatever the method:
 * a wrong method is cheap to refuse but should not be a free lane.
 */
export function classify(method: string, path: string): RateLimitClass | undefined {
  const p = normalisePath(path);
  if (method.toUpperCase() === 'POST' && (SIGNIN_INTERACTION.test(p) || SIGNIN_ACCOUNT.has(p))) return 'signin';
  switch (p) {
    case '/request': return 'par';
    case '/token': return 'token';
    case '/token/introspection': return 'introspection';
    case '/token/revocation': return 'revocation';
    case '/me': return 'userinfo';
    default: break;
  }
  if (within(p, '/reg')) return 'registration';
  if (within(p, '/grants')) return 'grants';
  if (within(p, '/interaction') || within(p, '/account') || within(p, '/auth') || within(p, '/session/end')) return 'pages';
  return undefined;
}

/**
 * The counting key for an address: IPv4 as is (also when IPv4-mapped), IPv6 per /64.
 */
export function addressKey(ip: string): string {
  let address = ip.trim();
  const zone = address.indexOf('%');
  if (zone >= 0) address = address.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (isIP(address) !== 6) return address === '' ? 'unknown' : address;
  return `${expandIpv6(address).slice(0, 4).join(':')}::/64`;
}

/** Eight hexadecimal groups of a valid IPv6 address (embedded IPv4 converted). */
function expandIpv6(address: string): string[] {
  let text = address.toLowerCase();
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const gap = text.indexOf('::');
  let groups: string[];
  if (gap < 0) {
    groups = text.split(':');
  } else {
    const head = text.slice(0, gap) === '' ? [] : text.slice(0, gap).split(':');
    const tail = text.slice(gap + 2) === '' ? [] : text.slice(gap + 2).split(':');
    groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  }
  return groups.map((group) => parseInt(group, 16).toString(16));
}

/**
 * The client id an `Authorization: Basic` header claims (RFC 6749 §2.3.1: the username is
 * form-urlencoded), or undefined. Unverified: a claim, never an identity. Ids that are not
 * 1–128 visible ASCII characters are ignored (the request then counts per IP): they name
 * no client of ours and would only bloat the store.
 */
export function basicClientId(ctx: Pick<Context, 'get'>): string | undefined {
  const match = /^basic\s+([A-Za-z0-9+/_-]+={0,2})\s*$/i.exec(ctx.get('authorization'));
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  let id = decoded.slice(0, colon);
  try {
    id = decodeURIComponent(id.replace(/\+/g, ' '));
  } catch {
    // not form-encoded: keep as sent
  }
  return /^[\x21-\x7e]{1,128}$/.test(id) ? id : undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Budgets from the environment: `RATE_LIMIT_<CLASS>=points/seconds` (e.g.
 * `RATE_LIMIT_TOKEN=600/60`), each class defaulting to DEFAULT_LIMITS. points 1–1000000,
 * seconds 1–86400. An unknown `RATE_LIMIT_*` name is an error (a typo would silently keep
 * the default). `fail` reports the variable and what is expected (config.ts passes its own,
 * which throws ConfigError); by default an Error "NAME: expected …" is thrown.
 */
export function parseRateLimits(env: Env, fail: (name: string, expected: string) => never = defaultFail): RateLimits {
  const limits = { ...DEFAULT_LIMITS } as Record<RateLimitClass, RateLimitRule>;
  const known = new Set<string>(RATE_LIMIT_CLASSES.map(variableName));
  for (const name of Object.keys(env)) {
    if (name.startsWith('RATE_LIMIT_') && !known.has(name)) {
      fail(name, `one of ${[...known].join(', ')}`);
    }
  }
  for (const rateLimitClass of RATE_LIMIT_CLASSES) {
    const name = variableName(rateLimitClass);
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') continue;
    const expected = `points/seconds, e.g. ${DEFAULT_LIMITS[rateLimitClass].points}/${DEFAULT_LIMITS[rateLimitClass].duration} (points 1–${MAX_POINTS}, seconds 1–${MAX_DURATION})`;
    const match = /^(\d{1,7})\s*\/\s*(\d{1,5})$/.exec(raw);
    if (match === null) fail(name, expected);
    const points = Number(match[1]);
    const duration = Number(match[2]);
    if (points < 1 || points > MAX_POINTS || duration < 1 || duration > MAX_DURATION) fail(name, expected);
    limits[rateLimitClass] = Object.freeze({ points, duration });
  }
  return Object.freeze(limits);
}

function variableName(rateLimitClass: RateLimitClass): string {
  return `RATE_LIMIT_${rateLimitClass.toUpperCase()}`;
}

function defaultFail(name: string, expected: string): never {
  throw new Error(`${name}: expected ${expected}`);
}

export type RateLimitOutcome = 'allowed' | 'limited' | 'failed_open' | 'failed_closed';

export interface RateLimiterOptions {
  readonly limits: RateLimits;
  /** redis:// or rediss:// URL; undefined → per-instance memory counters */
  readonly redisUrl?: string | undefined;
  readonly log: Logger;
  /** prefix of every counter key (one per deployment sharing a Redis); default "portcullis:rl" */
  readonly keyPrefix?: string;
  /** when given, browsers (Accept: text/html) get the error page for pages and sign-in */
  readonly views?: Views | undefined;
  /** claimed client of token / PAR / introspection / revocation requests; default: Basic username */
  readonly clientKey?: (ctx: Context) => string | undefined;
  /** called once per limited request (metrics) */
  readonly observe?: (rateLimitClass: RateLimitClass, outcome: RateLimitOutcome) => void;
}

export interface RateLimiter {
  readonly middleware: Middleware;
  /** ends the Redis connection, if any */
  close(): Promise<void>;
}

interface Counter {
  readonly limiter: RateLimiterAbstract;
  readonly points: number;
}

interface ClassCounters {
  /** per claimed client, else per IP */
  readonly primary: Counter;
  /** per IP, for classes keyed by claimed client */
  readonly ceiling: Counter | undefined;
}

type Taken =
  | { readonly kind: 'allowed'; readonly counter: Counter; readonly res: RateLimiterRes }
  | { readonly kind: 'limited'; readonly counter: Counter; readonly res: RateLimiterRes }
  | { readonly kind: 'unavailable'; readonly error: unknown };

class StoreTimeoutError extends Error {
  override readonly name = 'StoreTimeoutError';
}

function isLimiterRes(value: unknown): value is RateLimiterRes {
  return value !== null && typeof value === 'object' && !(value instanceof Error)
    && typeof (value as { msBeforeNext?: unknown }).msBeforeNext === 'number'
    && typeof (value as { remainingPoints?: unknown }).remainingPoints === 'number';
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new StoreTimeoutError(`rate-limit store did not answer within ${ms} ms`)), ms);
        timer.unref();
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function take(counter: Counter, key: string): Promise<Taken> {
  try {
    return { kind: 'allowed', counter, res: await withTimeout(counter.limiter.consume(key), STORE_TIMEOUT_MS) };
  } catch (error) {
    if (isLimiterRes(error)) return { kind: 'limited', counter, res: error };
    return { kind: 'unavailable', error };
  }
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { limits, log, views } = options;
  const keyPrefix = options.keyPrefix ?? 'portcullis:rl';
  const clientKey = options.clientKey ?? basicClientId;
  const observe = options.observe ?? (() => undefined);

  // One warning per minute at most, with the number of events folded into it.
  let lastWarning = -Infinity;
  let suppressed = 0;
  let storeDown = false;
  function warnStoreDown(error: unknown, detail: Record<string, unknown>): void {
    storeDown = true;
    const now = Date.now();
    if (now - lastWarning < LOG_INTERVAL_MS) {
      suppressed += 1;
      return;
    }
    log.warn({ err: error, suppressed, ...detail }, 'rate-limit store unavailable: sign-in, PAR and token requests are refused (503); other classes pass unmetered');
    lastWarning = now;
    suppressed = 0;
  }

  let redis: Redis | undefined;
  /** settles when the first connection attempt has (start-up requests wait for it, once) */
  let firstAttempt: Promise<void> | undefined;
  if (options.redisUrl !== undefined) {
    const client = new Redis(options.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: STORE_TIMEOUT_MS,
      // How long a dropped connection may take to close before its socket is destroyed.
      disconnectTimeout: 200,
      // Keep reconnecting in the background, at most every 2 s.
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    client.on('error', (error: unknown) => warnStoreDown(error, { event: 'connection' }));
    client.on('ready', () => {
      if (storeDown) log.info('rate-limit store reachable again');
      storeDown = false;
    });
    firstAttempt = new Promise<void>((resolve) => {
      const settle = () => {
        firstAttempt = undefined;
        resolve();
      };
      client.once('ready', settle);
      client.once('error', settle);
      client.once('end', settle);
      setTimeout(settle, CONNECT_TIMEOUT_MS + 250).unref();
    });
    redis = client;
  }

  /**
   * A command failed although the connection is up: Redis stalls (or the network does).
   * Timed-out commands stay queued in ioredis until a reply or a disconnect, so a stalled
   * connection would collect every later command and make each request wait the full
   * timeout. Dropping it fails pending commands at once; while it reconnects (ready check
   * included), requests are refused without waiting, and a healthy Redis is back within
   * one retry.
   */
  let lastReset = -Infinity;
  function resetStalledConnection(): void {
    if (redis === undefined || redis.status !== 'ready') return;
    const now = Date.now();
    if (now - lastReset < 1000) return;
    lastReset = now;
    redis.disconnect(true);
  }

  function counter(prefix: string, points: number, duration: number): Counter {
    const limiter = redis === undefined
      ? new RateLimiterMemory({ keyPrefix: prefix, points, duration })
      : new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: prefix,
        points,
        duration,
        rejectIfRedisNotReady: true,
        // A key over its budget is refused from memory until its window ends: a flood
        // beyond the limit costs no Redis round trips.
        inMemoryBlockOnConsumed: points + 1,
      });
    return { limiter, points };
  }

  const counters = {} as Record<RateLimitClass, ClassCounters>;
  for (const rateLimitClass of RATE_LIMIT_CLASSES) {
    const rule = limits[rateLimitClass];
    counters[rateLimitClass] = {
      primary: counter(`${keyPrefix}:${rateLimitClass}`, rule.points, rule.duration),
      ceiling: POLICIES[rateLimitClass].perClient
        ? counter(`${keyPrefix}:${rateLimitClass}:ip`, rule.points * CLIENT_IP_CEILING_FACTOR, rule.duration)
        : undefined,
    };
  }

  function refuse(ctx: Context, rateLimitClass: RateLimitClass, status: 429 | 503, retryAfter: number): void {
    const policy = POLICIES[rateLimitClass];
    ctx.status = status;
    ctx.set('Retry-After', String(retryAfter));
    ctx.set('Cache-Control', 'no-store');
    const requestId = String(ctx.state.requestId ?? '');
    if (policy.oauth) {
      ctx.body = status === 429
        ? { error: 'slow_down', error_description: `too many requests; retry after ${retryAfter} s` }
        : { error: 'temporarily_unavailable', error_description: `the service is temporarily unavailable; retry after ${retryAfter} s` };
      return;
    }
    const code = status === 429 ? 'RATE_LIMITED' : 'TEMPORARILY_UNAVAILABLE';
    const message = status === 429
      ? `Too many requests. Try again in ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`
      : 'This service is temporarily unavailable. Try again in a few seconds.';
    if (views !== undefined && ctx.accepts('html', 'json') === 'html') {
      ctx.type = 'html';
      ctx.body = views.render('error', { title: status === 429 ? 'Too many requests' : 'Something went wrong', message, requestId });
      return;
    }
    ctx.body = { error: { code, message, request_id: requestId } };
  }

  async function rateLimit(ctx: Context, next: Next): Promise<void> {
    const rateLimitClass = classify(ctx.method, ctx.path);
    if (rateLimitClass === undefined) return next();
    if (firstAttempt !== undefined) await firstAttempt;

    const policy = POLICIES[rateLimitClass];
    const { primary, ceiling } = counters[rateLimitClass];
    const ipKey = `ip:${addressKey(ctx.ip)}`;
    const claimed = policy.perClient ? clientKey(ctx) : undefined;
    const primaryKey = claimed === undefined ? ipKey : `client:${claimed}`;

    const taken = await Promise.all([take(primary, primaryKey), ...(ceiling === undefined ? [] : [take(ceiling, ipKey)])]);

    const limited = taken.filter((t) => t.kind === 'limited');
    if (limited.length > 0) {
      // The counter that frees up last decides when a retry can succeed.
      const binding = limited.reduce((a, b) => (b.res.msBeforeNext > a.res.msBeforeNext ? b : a));
      setLimitHeaders(ctx, binding.counter, binding.res);
      observe(rateLimitClass, 'limited');
      refuse(ctx, rateLimitClass, 429, seconds(binding.res.msBeforeNext));
      return;
    }
    const failure = taken.find((t) => t.kind === 'unavailable');
    if (failure !== undefined) {
      warnStoreDown(failure.error, { rateLimitClass, failClosed: policy.failClosed });
      resetStalledConnection();
      if (policy.failClosed) {
        observe(rateLimitClass, 'failed_closed');
        refuse(ctx, rateLimitClass, 503, UNAVAILABLE_RETRY_AFTER_SECONDS);
        return;
      }
      observe(rateLimitClass, 'failed_open');
      return next();
    }
    const allowed = taken.filter((t) => t.kind === 'allowed');
    // Report the counter closest to its limit.
    const binding = allowed.reduce((a, b) => (b.res.remainingPoints / b.counter.points < a.res.remainingPoints / a.counter.points ? b : a));
    setLimitHeaders(ctx, binding.counter, binding.res);
    observe(rateLimitClass, 'allowed');
    return next();
  }

  return {
    middleware: rateLimit,
    async close(): Promise<void> {
      if (redis === undefined) return;
      const client = redis;
      redis = undefined;
      if (client.status === 'ready') {
        try {
          await withTimeout(client.quit(), CONNECT_TIMEOUT_MS);
          return;
        } catch {
          // fall through to a hard disconnect
        }
      }
      client.disconnect();
    },
  };
}

function setLimitHeaders(ctx: Context, counter: Counter, res: RateLimiterRes): void {
  ctx.set('X-RateLimit-Limit', String(counter.points));
  ctx.set('X-RateLimit-Remaining', String(Math.max(0, res.remainingPoints)));
  ctx.set('X-RateLimit-Reset', String(seconds(res.msBeforeNext)));
}
