import type { Context, Middleware, Next } from 'koa';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import { matchedRoute, normalisePath, statusOfError } from './request-log.js';

/**
 * Prometheus metrics. No module-level state: every `createMetrics()` builds its own
 * Registry and its own metrics (tests build many; two apps in one process may too).
 *
 * Label values are bounded, so that no request can mint new time series:
 * - `route`: the matched route template (the same as the request log's `route`); a request
 *   no route matched and that ended 404/405 is `(unmatched)`; other unmatched requests get
 *   the normalised path (identifiers → `:id`), at most `maxUnmatchedRoutes` distinct
 *   values, then `(other)`;
 * - `method`: the standard HTTP methods, else `OTHER`;
 * - counter labels: the documented values where the set is known (others → `other`),
 *   else at most 32 distinct values per label (then `other`), each ≤ 64 characters of
 *   `[A-Za-z0-9_.:-]`.
 */

export interface PoolStats { readonly total: number; readonly idle: number; readonly waiting: number }

export interface MetricsOptions {
  /** the database pool's connections; undefined (PGlite) → no samples */
  readonly poolStats?: () => PoolStats | undefined;
  /** also collect prom-client's process_* and nodejs_* metrics (production: yes) */
  readonly defaultMetrics?: boolean;
  /** distinct normalised paths of unmatched requests kept as `route` values (default 100) */
  readonly maxUnmatchedRoutes?: number;
}

export type SignInOutcome = 'success' | 'failure' | 'throttled';
export type ScaOutcome = 'success' | 'failure' | 'throttled' | 'enrolment_required';
export type ConsentStatus = 'authorised' | 'rejected' | 'revoked' | 'consumed' | 'expired';

/** A counter whose label values are checked (see the module comment). */
export interface BoundedCounter<L extends string, V extends string = string> {
  inc(labels: Record<L, V>, value?: number): void;
}

export interface Metrics {
  readonly registry: Registry;
  /** Koa middleware: http_requests_total{route,method,status}, http_request_duration_seconds{route,method} */
  readonly middleware: Middleware;
  /** Koa handler for GET /metrics (router.get('/metrics', metrics.handler)) */
  readonly handler: (ctx: Context) => Promise<void>;
  /** Koa middleware answering `path` (default /metrics) itself (GET/HEAD; 405 otherwise) and passing every other request on */
  endpoint(path?: string): Middleware;
  readonly counters: {
    /** portcullis_tokens_issued_total{grant_type} */
    readonly tokensIssued: BoundedCounter<'grant_type'>;
    /** portcullis_sign_ins_total{outcome} */
    readonly signIns: BoundedCounter<'outcome', SignInOutcome>;
    /** portcullis_account_locks_total{permanent="true"|"false"} */
    readonly locks: BoundedCounter<'permanent', 'true' | 'false'>;
    /** portcullis_sca_total{outcome} */
    readonly sca: BoundedCounter<'outcome', ScaOutcome>;
    /** portcullis_consents_total{status} — transitions into `status` */
    readonly consents: BoundedCounter<'status', ConsentStatus>;
    /** portcullis_rate_limited_total{class} */
    readonly rateLimited: BoundedCounter<'class'>;
    /** portcullis_credential_stuffing_total{kind} */
    readonly credentialStuffing: BoundedCounter<'kind'>;
  };
  readonly gauges: {
    /** portcullis_db_pool_connections{state="total"|"idle"|"waiting"}, read from `poolStats` at each scrape */
    readonly poolConnections: Gauge<'state'>;
  };
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
const GRANT_TYPES = [
  'authorization_code', 'refresh_token', 'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code', 'urn:openid:params:grant-type:ciba',
  'urn:ietf:params:oauth:grant-type:token-exchange', 'urn:ietf:params:oauth:grant-type:jwt-bearer',
];
const MAX_FREE_VALUES = 32;
const OTHER = 'other';

/** Maps label values into a bounded set. */
class LabelGuard {
  readonly #allowed: ReadonlySet<string> | undefined;
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(allowed: readonly string[] | undefined, max = MAX_FREE_VALUES) {
    this.#allowed = allowed === undefined ? undefined : new Set(allowed);
    this.#max = max;
  }

  value(raw: unknown): string {
    const value = String(raw).slice(0, 64).replace(/[^A-Za-z0-9_.:-]/g, '_');
    if (this.#allowed !== undefined) return this.#allowed.has(value) ? value : OTHER;
    if (this.#seen.has(value)) return value;
    if (this.#seen.size >= this.#max) return OTHER;
    this.#seen.add(value);
    return value;
  }
}

function boundedCounter<L extends string, V extends string>(registry: Registry, name: string, help: string, label: L, allowed?: readonly V[]): BoundedCounter<L, V> {
  const counter = new Counter<L>({ name, help, labelNames: [label], registers: [registry] });
  const guard = new LabelGuard(allowed);
  // Known values start at 0: the series exist (and rate() works) before the first event.
  for (const value of allowed ?? []) counter.inc({ [label]: value } as unknown as Record<L, string>, 0);
  return {
    inc(labels, value = 1) {
      counter.inc({ [label]: guard.value(labels[label]) } as unknown as Record<L, string>, value);
    },
  };
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics === true) collectDefaultMetrics({ register: registry });

  const requests = new Counter<'route' | 'method' | 'status'>({
    name: 'http_requests_total', help: 'HTTP requests by route template, method and status', labelNames: ['route', 'method', 'status'], registers: [registry],
  });
  const duration = new Histogram<'route' | 'method'>({
    name: 'http_request_duration_seconds', help: 'HTTP request latency in seconds, by route template and method', labelNames: ['route', 'method'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
  });
  const maxUnmatched = options.maxUnmatchedRoutes ?? 100;
  const unmatchedSeen = new Set<string>();

  const routeLabel = (ctx: Context, status: number): string => {
    const matched = matchedRoute(ctx);
    if (matched !== undefined) return matched;
    if (status === 404 || status === 405) return '(unmatched)';
    const path = normalisePath(ctx.path);
    if (unmatchedSeen.has(path)) return path;
    if (unmatchedSeen.size >= maxUnmatched) return '(other)';
    unmatchedSeen.add(path);
    return path;
  };

  const middleware: Middleware = async function measureRequest(ctx: Context, next: Next): Promise<void> {
    const started = process.hrtime.bigint();
    let thrown: number | undefined;
    try {
      await next();
    } catch (error) {
      thrown = statusOfError(error);
      throw error;
    } finally {
      const status = thrown ?? ctx.status;
      const route = routeLabel(ctx, status);
      const method = METHODS.has(ctx.method) ? ctx.method : 'OTHER';
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route, method }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  const handler = async (ctx: Context): Promise<void> => {
    const body = await registry.metrics();
    ctx.status = 200;
    ctx.body = body;
    ctx.set('Content-Type', registry.contentType);
    ctx.set('Cache-Control', 'no-store');
  };

  const endpoint = (path = '/metrics'): Middleware => async (ctx: Context, next: Next): Promise<void> => {
    if (ctx.path !== path) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      return;
    }
    await handler(ctx);
  };

  const poolStats = options.poolStats;
  const poolConnections = new Gauge<'state'>({
    name: 'portcullis_db_pool_connections', help: 'Database pool connections by state (total, idle, waiting clients)', labelNames: ['state'], registers: [registry],
    collect() {
      const stats = poolStats?.();
      if (stats === undefined) {
        this.reset();
        return;
      }
      this.set({ state: 'total' }, stats.total);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });

  return {
    registry,
    middleware,
    handler,
    endpoint,
    counters: {
      tokensIssued: boundedCounter(registry, 'portcullis_tokens_issued_total', 'Tokens issued by the token endpoint, by grant type', 'grant_type', GRANT_TYPES),
      signIns: boundedCounter<'outcome', SignInOutcome>(registry, 'portcullis_sign_ins_total', 'Sign-in attempts by outcome', 'outcome', ['success', 'failure', 'throttled']),
      locks: boundedCounter<'permanent', 'true' | 'false'>(registry, 'portcullis_account_locks_total', 'Accounts blocked after repeated failures (permanent: the n-th block in a row)', 'permanent', ['true', 'false']),
      sca: boundedCounter<'outcome', ScaOutcome>(registry, 'portcullis_sca_total', 'Strong customer authentication (one-time code) checks by outcome', 'outcome', ['success', 'failure', 'throttled', 'enrolment_required']),
      consents: boundedCounter<'status', ConsentStatus>(registry, 'portcullis_consents_total', 'Consent transitions by the status reached', 'status', ['authorised', 'rejected', 'revoked', 'consumed', 'expired']),
      rateLimited: boundedCounter(registry, 'portcullis_rate_limited_total', 'Requests refused by a rate limit, by limit class', 'class'),
      credentialStuffing: boundedCounter(registry, 'portcullis_credential_stuffing_total', 'Credential-stuffing signals, by kind', 'kind'),
    },
    gauges: { poolConnections },
  };
}
