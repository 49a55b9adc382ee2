import { describe, expect, test } from '@jest/globals';

import { ConfigError, loadConfig } from '../../src/config.js';

type Env = Record<string, string | undefined>;

/** base64 of exactly 32 bytes (0x00..0x1f). */
const VALID_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64');

const PRODUCTION_ENV: Env = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://portcullis:pw@db.internal:5432/portcullis',
  MASTER_KEY: VALID_KEY,
  ISSUER: 'https://auth.example.com/',
};

/** Runs loadConfig, expecting a ConfigError; returns it for further assertions. */
function configError(env: Env): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}

/** Asserts the invariant: one line, starts with the variable's name. */
function expectRejects(env: Env, variable: string): ConfigError {
  const error = configError(env);
  expect(error.name).toBe('ConfigError');
  expect(error.message).not.toMatch(/[\r\n]/);
  expect(error.message.startsWith(`${variable}: expected `)).toBe(true);
  return error;
}

describe('loadConfig defaults', () => {
  test('an empty environment yields the documented development defaults', () => {
    const config = loadConfig({});
    expect(config.nodeEnv).toBeUndefined();
    expect(config.production).toBe(false);
    expect(config.port).toBe(3000);
    expect(config.adminPort).toBe(3001);
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.host).toBe('127.0.0.1');
    expect(config.dataDir).toBe('./data');
    expect(config.logLevel).toBe('info');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.masterKey).toBeUndefined();
    expect(config.ssa).toBeUndefined();
    expect(config.tls).toBeUndefined();
    expect(config.trustedProxyCertHeader).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.fetchAllowPrivateNetworks).toBe(false);
    expect(config.argon2.memoryCost).toBeGreaterThanOrEqual(19456);
    expect(config.argon2.timeCost).toBeGreaterThanOrEqual(2);
    expect(config.argon2.parallelism).toBeGreaterThanOrEqual(1);
  });

  test('blank (whitespace-only) values count as unset', () => {
    const config = loadConfig({ PORT: '  ', LOG_LEVEL: '', HOST: ' ' });
    expect(config.port).toBe(3000);
    expect(config.logLevel).toBe('info');
    expect(config.host).toBe('127.0.0.1');
  });

  test('the default issuer follows PORT', () => {
    expect(loadConfig({ PORT: '8080' }).issuer).toBe('http://localhost:8080');
  });

  test('explicit values are parsed', () => {
    const config = loadConfig({
      PORT: '4000',
      ADMIN_PORT: '4001',
      HOST: '0.0.0.0',
      DATA_DIR: '/var/lib/portcullis',
      LOG_LEVEL: 'debug',
      FETCH_ALLOW_PRIVATE_NETWORKS: 'true',
      ARGON2_MEMORY_KIB: '65536',
      ARGON2_TIME_COST: '3',
      ARGON2_MAX_CONCURRENT: '3',
      TRUSTED_PROXY_CERT_HEADER: 'X-Client-Cert',
      SSA_ISSUER: 'directory',
      SSA_JWKS_URI: 'https://directory.example/jwks',
      TLS_CERT_FILE: '/tls/cert.pem',
      TLS_KEY_FILE: '/tls/key.pem',
      TLS_CLIENT_CA_FILE: '/tls/ca.pem',
    });
    expect(config.port).toBe(4000);
    expect(config.adminPort).toBe(4001);
    expect(config.host).toBe('0.0.0.0');
    expect(config.dataDir).toBe('/var/lib/portcullis');
    expect(config.logLevel).toBe('debug');
    expect(config.fetchAllowPrivateNetworks).toBe(true);
    expect(config.argon2).toEqual({ memoryCost: 65536, timeCost: 3, parallelism: 1, maxConcurrent: 3 });
    expect(config.trustedProxyCertHeader).toBe('x-client-cert');
    expect(config.ssa).toEqual({ issuer: 'directory', jwksUri: 'https://directory.example/jwks', maxAgeSeconds: 86400, jwksCooldownSeconds: 30 });
    expect(config.tls).toEqual({ certFile: '/tls/cert.pem', keyFile: '/tls/key.pem', clientCaFile: '/tls/ca.pem' });
  });
});

describe('loadConfig immutability', () => {
  test('the returned object and its nested objects are frozen', () => {
    const config = loadConfig({
      SSA_ISSUER: 'directory',
      SSA_JWKS_URI: 'https://directory.example/jwks',
      TLS_CERT_FILE: '/tls/cert.pem',
      TLS_KEY_FILE: '/tls/key.pem',
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.argon2)).toBe(true);
    expect(Object.isFrozen(config.ssa)).toBe(true);
    expect(Object.isFrozen(config.tls)).toBe(true);
    // ESM is strict mode: writing to a frozen object throws.
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.argon2 as { memoryCost: number }).memoryCost = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(3000);
    expect(config.argon2.memoryCost).toBe(19456);
  });
});

describe('loadConfig ISSUER', () => {
  test('a trailing slash is removed', () => {
    expect(loadConfig({ ISSUER: 'https://auth.example.com/' }).issuer).toBe('https://auth.example.com');
    expect(loadConfig({ ISSUER: 'https://auth.example.com/realm/' }).issuer).toBe('https://auth.example.com/realm');
  });

  test('an issuer without a trailing slash is kept as given', () => {
    expect(loadConfig({ ISSUER: 'https://auth.example.com/realm' }).issuer).toBe('https://auth.example.com/realm');
  });

  test('a query string is refused', () => {
    expectRejects({ ISSUER: 'https://auth.example.com/?tenant=a' }, 'ISSUER');
  });

  test('a fragment is refused', () => {
    expectRejects({ ISSUER: 'https://auth.example.com/#x' }, 'ISSUER');
  });

  test('a non-http(s) scheme or garbage is refused', () => {
    expectRejects({ ISSUER: 'ftp://auth.example.com' }, 'ISSUER');
    expectRejects({ ISSUER: 'not a url' }, 'ISSUER');
  });
});

describe('loadConfig rejects invalid values with a one-line ConfigError naming the variable', () => {
  const cases: ReadonlyArray<[string, Env, string]> = [
    ['PORT=abc', { PORT: 'abc' }, 'PORT'],
    ['PORT=70000', { PORT: '70000' }, 'PORT'],
    ['PORT=-1', { PORT: '-1' }, 'PORT'],
    ['PORT=3000.5', { PORT: '3000.5' }, 'PORT'],
    ['ADMIN_PORT=70000', { ADMIN_PORT: '70000' }, 'ADMIN_PORT'],
    ['DATABASE_URL=mysql://x', { DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    ['DATABASE_URL=not a url', { DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
    ['MASTER_KEY of 31 bytes', { MASTER_KEY: Buffer.alloc(31, 7).toString('base64') }, 'MASTER_KEY'],
    ['MASTER_KEY of 33 bytes', { MASTER_KEY: Buffer.alloc(33, 7).toString('base64') }, 'MASTER_KEY'],
    ['LOG_LEVEL=loud', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['SSA_ISSUER without SSA_JWKS_URI', { SSA_ISSUER: 'directory' }, 'SSA_JWKS_URI'],
    ['SSA_JWKS_URI without SSA_ISSUER', { SSA_JWKS_URI: 'https://directory.example/jwks' }, 'SSA_ISSUER'],
    ['TLS_CERT_FILE without TLS_KEY_FILE', { TLS_CERT_FILE: '/tls/cert.pem' }, 'TLS_KEY_FILE'],
    ['TLS_KEY_FILE without TLS_CERT_FILE', { TLS_KEY_FILE: '/tls/key.pem' }, 'TLS_CERT_FILE'],
    ['TLS_CLIENT_CA_FILE without TLS or a trusted proxy', { TLS_CLIENT_CA_FILE: '/tls/ca.pem' }, 'TLS_CLIENT_CA_FILE'],
    ['FETCH_ALLOW_PRIVATE_NETWORKS=maybe', { FETCH_ALLOW_PRIVATE_NETWORKS: 'maybe' }, 'FETCH_ALLOW_PRIVATE_NETWORKS'],
    ['ARGON2_MEMORY_KIB=1024 (below minimum)', { ARGON2_MEMORY_KIB: '1024' }, 'ARGON2_MEMORY_KIB'],
    ['ARGON2_MEMORY_KIB=19455 (one below minimum)', { ARGON2_MEMORY_KIB: '19455' }, 'ARGON2_MEMORY_KIB'],
    ['ARGON2_TIME_COST=1', { ARGON2_TIME_COST: '1' }, 'ARGON2_TIME_COST'],
    ['TRUSTED_PROXY_CERT_HEADER with a space', { TRUSTED_PROXY_CERT_HEADER: 'X Client-Cert' }, 'TRUSTED_PROXY_CERT_HEADER'],
    ['TRUSTED_PROXY_CERT_HEADER with CRLF', { TRUSTED_PROXY_CERT_HEADER: 'X-Client-Cert\r\nX-Injected: 1' }, 'TRUSTED_PROXY_CERT_HEADER'],
    ['TRUSTED_PROXY_CERT_HEADER with a colon', { TRUSTED_PROXY_CERT_HEADER: 'X-Client-Cert:' }, 'TRUSTED_PROXY_CERT_HEADER'],
    ['ISSUER with a query string', { ISSUER: 'https://auth.example.com?x=1' }, 'ISSUER'],
    ['HOST with a slash', { HOST: 'example.com/evil' }, 'HOST'],
    ['REDIS_URL=http://x', { REDIS_URL: 'http://x' }, 'REDIS_URL'],
    ['ADMIN_HOST with a slash', { ADMIN_HOST: 'a/b' }, 'ADMIN_HOST'],
    ['LOCKOUT_MAX_FAILURES=6 (PSD2: at most 5)', { LOCKOUT_MAX_FAILURES: '6' }, 'LOCKOUT_MAX_FAILURES'],
    ['SESSION_IDLE_SECONDS=301 (PSD2: at most 300)', { SESSION_IDLE_SECONDS: '301' }, 'SESSION_IDLE_SECONDS'],
    ['KEY_REFRESH_SECONDS=61 (instances follow within a minute)', { KEY_REFRESH_SECONDS: '61' }, 'KEY_REFRESH_SECONDS'],
    ['REFRESH_TOKEN_TTL beyond 180 days', { REFRESH_TOKEN_TTL: String(181 * 86400) }, 'REFRESH_TOKEN_TTL'],
    ['PAYMENT_CURRENCIES=euro', { PAYMENT_CURRENCIES: 'euro' }, 'PAYMENT_CURRENCIES'],
    ['PAYMENT_MAX_AMOUNT=-5', { PAYMENT_MAX_AMOUNT: '-5' }, 'PAYMENT_MAX_AMOUNT'],
    ['API_RESOURCE=ftp://x', { API_RESOURCE: 'ftp://x' }, 'API_RESOURCE'],
    ['ALLOW_LOOPBACK_REDIRECTS=sometimes', { ALLOW_LOOPBACK_REDIRECTS: 'sometimes' }, 'ALLOW_LOOPBACK_REDIRECTS'],
    ['SSA_MAX_AGE_SECONDS=10', { SSA_ISSUER: 'd', SSA_JWKS_URI: 'https://d.example/jwks', SSA_MAX_AGE_SECONDS: '10' }, 'SSA_MAX_AGE_SECONDS'],
  ];

  test.each(cases)('%s', (_label, env, variable) => {
    expectRejects(env, variable);
  });

  test('specific messages say what is expected', () => {
    expect(configError({ PORT: 'abc' }).message).toBe('PORT: expected an integer between 0 and 65535');
    expect(configError({ PORT: '70000' }).message).toBe('PORT: expected an integer between 0 and 65535');
    expect(configError({ LOG_LEVEL: 'loud' }).message).toBe(
      'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent',
    );
    expect(configError({ FETCH_ALLOW_PRIVATE_NETWORKS: 'maybe' }).message).toBe(
      'FETCH_ALLOW_PRIVATE_NETWORKS: expected "true" or "false"',
    );
    expect(configError({ ARGON2_MEMORY_KIB: '1024' }).message).toBe(
      'ARGON2_MEMORY_KIB: expected an integer between 19456 and 4194304',
    );
    expect(configError({ DATABASE_URL: 'mysql://x' }).message).toBe(
      'DATABASE_URL: expected a URL (postgres:, postgresql:)',
    );
  });

  test('the boundary values themselves are accepted', () => {
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ ARGON2_MEMORY_KIB: '19456' }).argon2.memoryCost).toBe(19456);
    expect(loadConfig({ FETCH_ALLOW_PRIVATE_NETWORKS: '0' }).fetchAllowPrivateNetworks).toBe(false);
    expect(loadConfig({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' }).fetchAllowPrivateNetworks).toBe(true);
    expect(loadConfig({ DATABASE_URL: 'postgresql://h/db' }).databaseUrl).toBe('postgresql://h/db');
    expect(loadConfig({ MASTER_KEY: VALID_KEY }).masterKey).toBe(VALID_KEY);
  });
});

describe('loadConfig never echoes a secret', () => {
  test('an invalid MASTER_KEY is not quoted in the message', () => {
    const secret = 'Sup3rSecretMasterKeyValue-do-not-log-me-0123456789';
    const error = expectRejects({ MASTER_KEY: secret }, 'MASTER_KEY');
    expect(error.message).not.toContain(secret);
    expect(error.message).not.toContain('Sup3rSecret');
    expect(error.stack ?? '').not.toContain(secret);
  });

  test('a near-miss MASTER_KEY (31 bytes of base64) is not quoted either', () => {
    const secret = Buffer.from('distinctive-31-byte-secret-key!', 'utf8').toString('base64');
    expect(Buffer.from(secret, 'base64').length).toBe(31);
    const error = expectRejects({ MASTER_KEY: secret }, 'MASTER_KEY');
    expect(error.message).not.toContain(secret);
  });
});

describe('loadConfig with NODE_ENV=production', () => {
  test('accepts a complete production environment', () => {
    const config = loadConfig(PRODUCTION_ENV);
    expect(config.production).toBe(true);
    expect(config.nodeEnv).toBe('production');
    expect(config.issuer).toBe('https://auth.example.com');
    expect(config.databaseUrl).toBe('postgres://portcullis:pw@db.internal:5432/portcullis');
    expect(config.masterKey).toBe(VALID_KEY);
    expect(config.fetchAllowPrivateNetworks).toBe(false);
  });

  test('refuses to start without DATABASE_URL', () => {
    const error = expectRejects({ ...PRODUCTION_ENV, DATABASE_URL: undefined }, 'DATABASE_URL');
    expect(error.message).toContain('NODE_ENV=production');
  });

  test('refuses to start without MASTER_KEY', () => {
    const error = expectRejects({ ...PRODUCTION_ENV, MASTER_KEY: undefined }, 'MASTER_KEY');
    expect(error.message).toContain('NODE_ENV=production');
  });

  test('refuses an http:// ISSUER', () => {
    const error = expectRejects({ ...PRODUCTION_ENV, ISSUER: 'http://auth.example.com' }, 'ISSUER');
    expect(error.message).toContain('https://');
  });

  test('refuses the default (http://localhost) issuer', () => {
    expectRejects({ ...PRODUCTION_ENV, ISSUER: undefined }, 'ISSUER');
  });

  test('refuses ALLOW_LOOPBACK_REDIRECTS=true', () => {
    expectRejects({ ...PRODUCTION_ENV, ALLOW_LOOPBACK_REDIRECTS: 'true' }, 'ALLOW_LOOPBACK_REDIRECTS');
  });

  test('refuses FETCH_ALLOW_PRIVATE_NETWORKS=true', () => {
    expectRejects({ ...PRODUCTION_ENV, FETCH_ALLOW_PRIVATE_NETWORKS: 'true' }, 'FETCH_ALLOW_PRIVATE_NETWORKS');
    expectRejects({ ...PRODUCTION_ENV, FETCH_ALLOW_PRIVATE_NETWORKS: '1' }, 'FETCH_ALLOW_PRIVATE_NETWORKS');
  });

  test('refuses test-only failpoints (PORTCULLIS_FAILPOINTS)', () => {
    expectRejects({ ...PRODUCTION_ENV, PORTCULLIS_FAILPOINTS: 'code.consumed' }, 'PORTCULLIS_FAILPOINTS');
  });

  test('the same gaps are accepted outside production', () => {
    const config = loadConfig({ NODE_ENV: 'development', ISSUER: 'http://auth.example.com', FETCH_ALLOW_PRIVATE_NETWORKS: 'true' });
    expect(config.production).toBe(false);
    expect(config.issuer).toBe('http://auth.example.com');
    expect(config.fetchAllowPrivateNetworks).toBe(true);
  });
});
