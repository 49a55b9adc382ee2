import { availableParallelism } from 'node:os';
/**
 * Environment → one frozen, validated Config. Every key is documented in README
 * ("Configuration"). Parsing never reads the process environment directly: callers
 * pass the environment in, so tests build as many configurations as they like.
 *
 * Invariant: an invalid value throws ConfigError whose message is one line naming the
 * variable and what is expected, and never echoes a secret value.
 */

import { parseRateLimits, type RateLimits } from './http/rate-limit.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface Argon2Params {
  /** memory cost in KiB (≥ 19456 = 19 MiB, the OWASP minimum for argon2id) */
  readonly memoryCost: number;
  /** iterations (≥ 2) */
  readonly timeCost: number;
  readonly parallelism: number;
  /**
   * argon2 computations in flight at once; more wait their turn. argon2 and every
   * signature (jose, WebCrypto) share libuv's thread pool: bounding the hashes keeps
   * threads free for the token and introspection paths during a burst of sign-ins.
   */
  readonly maxConcurrent: number;
}

export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
}

export interface Config {
  readonly nodeEnv: string | undefined;
  readonly production: boolean;
  /** address the public listener binds to; 127.0.0.1 unless HOST says otherwise */
  readonly host: string;
  /** address the admin listener binds to; 127.0.0.1 unless ADMIN_HOST says otherwise */
  readonly adminHost: string;
  readonly port: number;
  readonly adminPort: number;
  readonly issuer: string;
  /** undefined → embedded PGlite in dataDir */
  readonly databaseUrl: string | undefined;
  readonly databasePoolMax: number;
  readonly dataDir: string;
  /** base64 of 32 bytes; undefined only outside production (then generated into dataDir) */
  readonly masterKey: string | undefined;
  /** the trusted software-statement directory; undefined → dynamic registration disabled */
  readonly ssa: { readonly issuer: string; readonly jwksUri: string; readonly maxAgeSeconds: number; readonly jwksCooldownSeconds: number } | undefined;
  readonly tls: TlsConfig | undefined;
  /** CA bundle that client certificates (tls_client_auth) must chain to, from our TLS or a proxy */
  readonly clientCaFile: string | undefined;
  readonly trustedProxyCertHeader: string | undefined;
  readonly redisUrl: string | undefined;
  /** per-class request budgets (RATE_LIMIT_<CLASS>); undefined = disabled (never in production) */
  readonly rateLimits: RateLimits | undefined;
  readonly fetchAllowPrivateNetworks: boolean;
  /** development and the demo: http://127.0.0.1 / localhost redirect URIs are accepted */
  readonly allowLoopbackRedirects: boolean;
  readonly logLevel: string;
  readonly argon2: Argon2Params;
  /** seconds an access token lives */
  readonly accessTokenTtl: number;
  /** seconds a refresh token (and the grant behind it) lives */
  readonly refreshTokenTtl: number;
  /** seconds between sweeps of expired rows */
  readonly sweepIntervalSeconds: number;
  readonly sca: {
    /** consecutive failed sign-ins (any factor) before a block; PSD2 RTS allows at most 5 */
    readonly maxFailures: number;
    /** seconds a block lasts */
    readonly blockSeconds: number;
    /** the n-th consecutive block is permanent (only `portcullis user unlock` lifts it) */
    readonly permanentAfterBlocks: number;
    /** failed sign-ins one IP address may cause per window, whatever the usernames */
    readonly ipMaxFailures: number;
    readonly ipWindowSeconds: number;
    /** seconds of inactivity that end an authenticated session (PSD2 RTS: at most 300) */
    readonly sessionIdleSeconds: number;
  };
  /** the resource indicator (RFC 8707) of the bank's APIs: audience of consent-bound tokens */
  readonly apiResource: string;
  readonly payments: {
    /** ISO 4217 currencies a payment may be in */
    readonly currencies: readonly string[];
    /** largest payment amount accepted, a decimal string */
    readonly maxAmount: string;
  };
  readonly keys: {
    /** seconds a rotated-in key is published before it signs */
    readonly activationDelaySeconds: number;
    /** seconds a retired key stays published for verification */
    readonly retentionSeconds: number;
    /** seconds between checks for key changes (≤ 60: every instance follows within a minute) */
    readonly refreshSeconds: number;
  };
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function fail(name: string, expected: string): never {
  throw new ConfigError(`${name}: expected ${expected}`);
}

function text(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value.trim() === '') return undefined;
  return value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) fail(name, `an integer between ${min} and ${max}`);
  const value = Number(raw);
  if (value < min || value > max) fail(name, `an integer between ${min} and ${max}`);
  return value;
}

function boolean(env: Env, name: string): boolean {
  const raw = text(env, name);
  if (raw === undefined) return false;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  return fail(name, '"true" or "false"');
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    return fail(name, `a URL (${protocols.join(', ')})`);
  }
  if (!protocols.includes(parsed.protocol)) fail(name, `a URL (${protocols.join(', ')})`);
  return raw;
}

function currencies(env: Env): string[] {
  const raw = text(env, 'PAYMENT_CURRENCIES') ?? 'EUR,GBP,USD,CHF,SEK,DKK,NOK,PLN,CZK';
  const list = raw.split(',').map((c) => c.trim());
  if (list.length === 0 || list.some((c) => !/^[A-Z]{3}$/.test(c))) fail('PAYMENT_CURRENCIES', 'a comma-separated list of ISO 4217 codes, e.g. EUR,GBP');
  return list;
}

function decimal(env: Env, name: string, fallback: string): string {
  const raw = text(env, name) ?? fallback;
  if (!/^[1-9]\d{0,14}(\.\d{1,3})?$/.test(raw)) fail(name, 'a positive decimal number such as 100000 or 2500.50');
  return raw;
}

function masterKey(env: Env): string | undefined {
  const raw = text(env, 'MASTER_KEY');
  if (raw === undefined) return undefined;
  if (!/^[A-Za-z0-9+/]{43}=$/.test(raw) || Buffer.from(raw, 'base64').length !== 32) {
    fail('MASTER_KEY', 'base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)');
  }
  return raw;
}

function issuer(env: Env, port: number, production: boolean): string {
  const raw = url(env, 'ISSUER', ['http:', 'https:']) ?? `http://localhost:${port}`;
  const parsed = new URL(raw);
  if (raw.includes('?') || raw.includes('#') || parsed.username || parsed.password) fail('ISSUER', 'a URL without credentials, query or fragment');
  if (production && parsed.protocol !== 'https:') fail('ISSUER', 'an https:// URL when NODE_ENV=production');
  // The issuer is compared as a string everywhere (iss, aud of assertions): one spelling only.
  return raw.endsWith('/') ? raw.slice(0, -1) : raw;
}

export function loadConfig(env: Env): Config {
  const nodeEnv = text(env, 'NODE_ENV');
  const production = nodeEnv === 'production';
  const port = integer(env, 'PORT', 3000, 0, 65535);
  const adminPort = integer(env, 'ADMIN_PORT', 3001, 0, 65535);
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  const key = masterKey(env);

  if (production && databaseUrl === undefined) {
    fail('DATABASE_URL', 'a PostgreSQL URL when NODE_ENV=production (the embedded database is for evaluation only)');
  }
  if (production && key === undefined) {
    fail('MASTER_KEY', 'base64 of 32 bytes when NODE_ENV=production');
  }

  const ssaIssuer = text(env, 'SSA_ISSUER');
  const ssaJwksUri = url(env, 'SSA_JWKS_URI', ['http:', 'https:']);
  if ((ssaIssuer === undefined) !== (ssaJwksUri === undefined)) {
    fail(ssaIssuer === undefined ? 'SSA_ISSUER' : 'SSA_JWKS_URI', 'to be set together with the other of SSA_ISSUER / SSA_JWKS_URI');
  }

  const certFile = text(env, 'TLS_CERT_FILE');
  const keyFile = text(env, 'TLS_KEY_FILE');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    fail(certFile === undefined ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE', 'to be set together with the other of TLS_CERT_FILE / TLS_KEY_FILE');
  }
  const clientCaFile = text(env, 'TLS_CLIENT_CA_FILE');
  const proxyHeader = text(env, 'TRUSTED_PROXY_CERT_HEADER');
  if (proxyHeader !== undefined && !/^[A-Za-z0-9-]{1,64}$/.test(proxyHeader)) {
    fail('TRUSTED_PROXY_CERT_HEADER', 'an HTTP header name (letters, digits, dashes)');
  }
  if (clientCaFile !== undefined && certFile === undefined && proxyHeader === undefined) {
    fail('TLS_CLIENT_CA_FILE', 'TLS_CERT_FILE and TLS_KEY_FILE (our own TLS) or TRUSTED_PROXY_CERT_HEADER (a TLS proxy) to be set as well');
  }

  const fetchAllowPrivateNetworks = boolean(env, 'FETCH_ALLOW_PRIVATE_NETWORKS');
  if (production && fetchAllowPrivateNetworks) {
    fail('FETCH_ALLOW_PRIVATE_NETWORKS', 'false when NODE_ENV=production');
  }

  const allowLoopbackRedirects = boolean(env, 'ALLOW_LOOPBACK_REDIRECTS');
  if (production && allowLoopbackRedirects) fail('ALLOW_LOOPBACK_REDIRECTS', 'false when NODE_ENV=production');

  const rateLimitsDisabled = boolean(env, 'RATE_LIMITS_DISABLED');
  if (production && rateLimitsDisabled) fail('RATE_LIMITS_DISABLED', 'false when NODE_ENV=production');
  // Test-only crash points (failpoints.ts): never in production.
  if (production && (env.PORTCULLIS_FAILPOINTS ?? '') !== '') fail('PORTCULLIS_FAILPOINTS', 'unset when NODE_ENV=production');
  const rateLimits = parseRateLimits(env, fail);

  const logLevel = text(env, 'LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) fail('LOG_LEVEL', `one of ${LOG_LEVELS.join(', ')}`);

  const host = text(env, 'HOST') ?? '127.0.0.1';
  if (!/^[0-9A-Za-z.:-]{1,253}$/.test(host)) fail('HOST', 'an IP address or host name to bind to');
  const adminHost = text(env, 'ADMIN_HOST') ?? '127.0.0.1';
  if (!/^[0-9A-Za-z.:-]{1,253}$/.test(adminHost)) fail('ADMIN_HOST', 'an IP address or host name to bind to');

  return Object.freeze({
    nodeEnv,
    production,
    host,
    adminHost,
    port,
    adminPort,
    issuer: issuer(env, port, production),
    databaseUrl,
    databasePoolMax: integer(env, 'DATABASE_POOL_MAX', 10, 1, 1000),
    dataDir: text(env, 'DATA_DIR') ?? './data',
    masterKey: key,
    ssa: ssaIssuer !== undefined && ssaJwksUri !== undefined
      ? Object.freeze({ issuer: ssaIssuer, jwksUri: ssaJwksUri, maxAgeSeconds: integer(env, 'SSA_MAX_AGE_SECONDS', 86400, 60, 365 * 86400), jwksCooldownSeconds: integer(env, 'SSA_JWKS_COOLDOWN_SECONDS', 30, 1, 3600) })
      : undefined,
    tls: certFile !== undefined && keyFile !== undefined
      ? Object.freeze({ certFile, keyFile, clientCaFile })
      : undefined,
    clientCaFile,
    trustedProxyCertHeader: proxyHeader?.toLowerCase(),
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    rateLimits: rateLimitsDisabled ? undefined : rateLimits,
    fetchAllowPrivateNetworks,
    allowLoopbackRedirects,
    logLevel,
    argon2: Object.freeze({
      memoryCost: integer(env, 'ARGON2_MEMORY_KIB', 19456, 19456, 4194304),
      timeCost: integer(env, 'ARGON2_TIME_COST', 2, 2, 100),
      parallelism: integer(env, 'ARGON2_PARALLELISM', 1, 1, 16),
      maxConcurrent: integer(env, 'ARGON2_MAX_CONCURRENT', Math.max(1, availableParallelism() - 1), 1, 64),
    }),
    accessTokenTtl: integer(env, 'ACCESS_TOKEN_TTL', 600, 30, 86400),
    refreshTokenTtl: integer(env, 'REFRESH_TOKEN_TTL', 90 * 86400, 60, 180 * 86400),
    sweepIntervalSeconds: integer(env, 'SWEEP_INTERVAL_SECONDS', 60, 1, 86400),
    sca: Object.freeze({
      maxFailures: integer(env, 'LOCKOUT_MAX_FAILURES', 5, 1, 5),
      blockSeconds: integer(env, 'LOCKOUT_BLOCK_SECONDS', 1800, 60, 30 * 86400),
      permanentAfterBlocks: integer(env, 'LOCKOUT_PERMANENT_AFTER_BLOCKS', 3, 1, 100),
      ipMaxFailures: integer(env, 'SIGNIN_IP_MAX_FAILURES', 30, 1, 100000),
      ipWindowSeconds: integer(env, 'SIGNIN_IP_WINDOW_SECONDS', 900, 1, 86400),
      sessionIdleSeconds: integer(env, 'SESSION_IDLE_SECONDS', 300, 30, 300),
    }),
    apiResource: url(env, 'API_RESOURCE', ['https:', 'http:', 'urn:']) ?? 'urn:portcullis:bank-api',
    payments: Object.freeze({
      currencies: Object.freeze(currencies(env)),
      maxAmount: decimal(env, 'PAYMENT_MAX_AMOUNT', '100000'),
    }),
    keys: Object.freeze({
      activationDelaySeconds: integer(env, 'KEY_ACTIVATION_DELAY_SECONDS', 3600, 0, 30 * 86400),
      retentionSeconds: integer(env, 'KEY_RETENTION_SECONDS', 86400, 300, 365 * 86400),
      refreshSeconds: integer(env, 'KEY_REFRESH_SECONDS', 30, 1, 60),
    }),
  });
}
