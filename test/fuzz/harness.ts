import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Logger } from 'pino';

import { createAdminApp } from '../../src/admin/app.js';
import { createLogger } from '../../src/logger.js';
import { startTestApp, type TestApp } from '../support/app.js';
import type { TestDatabase } from '../support/database.js';
import { DIRECTORY_ISSUER, keyPair, startJwksHost, type JwksHost, type KeyPair } from '../support/directory.js';
import { inspect, LEAK_PATTERNS, rejectedByNodeParser, type Exchange } from '../support/hostile.js';

/**
 * What every fuzz target runs against: one app (PGlite or PostgreSQL, as startTestApp),
 * its admin API on its own loopback port, a software-statement directory and a TPP key host,
 * with budgets generous enough that no case is throttled. Works under jest and under tsx.
 */
export interface FuzzEnv {
  readonly app: TestApp;
  readonly adminUrl: string;
  readonly directoryKey: KeyPair;
  readonly directory: JwksHost;
  /** the TPP's private_key_jwt key, published at tppHost.url (the SSAs' software_jwks_uri) */
  readonly tppKey: KeyPair;
  readonly tppHost: JwksHost;
  close(): Promise<void>;
}

/** Per-class budgets far above what a fuzz run sends from 127.0.0.1. */
export const GENEROUS_LIMITS: Record<string, string> = {
  ...Object.fromEntries(['SIGNIN', 'PAR', 'TOKEN', 'REGISTRATION', 'INTROSPECTION', 'REVOCATION', 'USERINFO', 'GRANTS', 'PAGES'].map((c) => [`RATE_LIMIT_${c}`, '1000000/60'])),
  SIGNIN_IP_MAX_FAILURES: '100000',
};

export async function startFuzzEnv(database: TestDatabase, options: { log?: Logger; overrides?: Record<string, string> } = {}): Promise<FuzzEnv> {
  const directoryKey = await keyPair('ES256');
  const directory = await startJwksHost([directoryKey]);
  const tppKey = await keyPair('ES256', 'tpp-fuzz-1');
  const tppHost = await startJwksHost([tppKey]);
  const app = await startTestApp(database, {
    SSA_ISSUER: DIRECTORY_ISSUER,
    SSA_JWKS_URI: directory.url,
    FETCH_ALLOW_PRIVATE_NETWORKS: 'true',
    ...GENEROUS_LIMITS,
    ...options.overrides,
  }, undefined, options.log ?? createLogger('silent'));
  const admin: Server = createServer(createAdminApp(app.container).callback());
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  return {
    app,
    adminUrl: `http://127.0.0.1:${(admin.address() as AddressInfo).port}`,
    directoryKey,
    directory,
    tppKey,
    tppHost,
    async close() {
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      await app.close();
      await directory.close();
      await tppHost.close();
    },
  };
}

// ---------------------------------------------------------------------------------------
// One case's outcome

export interface Outcome {
  /** HTTP status; 0 for a pure (in-process) target */
  readonly status: number;
  /** everything wrong with the answer; empty when the case passes */
  readonly problems: string[];
  /** the answer was a success (2xx, or a validator's acceptance) */
  readonly accepted: boolean;
  /** the request id, to find the server's log line for a 5xx */
  readonly requestId?: string;
}

export const isLeak = (problem: string): boolean => problem.startsWith('leak');

export interface Sent {
  readonly method: string;
  readonly url: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
  /** every string the request carried (decoded): what the server may legitimately echo */
  readonly echoes: readonly string[];
}

export interface Received {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly text: string;
  /** the body as JSON (undefined when it is not JSON) */
  readonly json: unknown;
}

/** Sends one request and reads the whole answer (never follows redirects). */
export async function send(request: Sent): Promise<Received> {
  const response = await fetch(request.url, {
    method: request.method,
    redirect: 'manual',
    ...(request.headers === undefined ? {} : { headers: request.headers }),
    ...(request.body === undefined ? {} : { body: request.body }),
  });
  const text = await response.text();
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = headers[name] === undefined ? value : `${headers[name]}\n${value}`;
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers, text, json };
}

/** Every string inside a value (keys included), for echo detection. */
export function stringsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const item of value) stringsIn(item, out);
  else if (value !== null && typeof value === 'object') {
    for (const [name, item] of Object.entries(value)) {
      out.push(name);
      stringsIn(item, out);
    }
  }
  return out;
}

/** Long base64url runs (tokens, keys, nonces) are random text: library-name checks skip them. */
const RANDOM_RUNS = /[A-Za-z0-9_-]{24,}/g;

/** The library-name patterns of hostile.ts inspect() (not exported there). */
const LIBRARY_PATTERNS: readonly [string, RegExp][] = [
  ['library name', /\b(?:oidc-provider|koa|kysely|pglite|node-postgres|raw-body|co-body|bodyparser|argon2)\b/i],
  ['library name (pg)', /(?<![A-Za-z0-9_-])pg(?![A-Za-z0-9_])/i],
  ['library name (jose)', /\bjose\b/],
  ['version string', /(?:oidc-provider|koa|kysely|pg|jose)[@/ ]v?\d+\.\d+|node(?:\.js)?[ /]v\d+\.\d+/i],
];

/**
 * Leaks in an answer (hostile.ts LEAK_PATTERNS and library names), ignoring text the
 * request itself carried: a fuzzed redirect URI containing "/src/" may be quoted back in
 * an error description without anything leaking.
 */
export function leaks(received: Pick<Received, 'headers' | 'text'>, echoes: readonly string[]): string[] {
  const headerText = Object.entries(received.headers).filter(([name]) => name !== 'set-cookie').map(([name, value]) => `${name}: ${value}`).join('\n');
  const everything = `${headerText}\n${received.text}`;
  const lowered = echoes.map((e) => e.toLowerCase());
  const echoed = (match: string) => lowered.some((e) => e.includes(match.toLowerCase()));
  const found: string[] = [];
  const scan = (text: string, patterns: readonly (readonly [string, RegExp])[]) => {
    for (const [name, pattern] of patterns) {
      const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
      for (const match of text.matchAll(global)) {
        if (!echoed(match[0])) {
          found.push(`leak (${name}): …${JSON.stringify(text.slice(Math.max(0, match.index - 60), match.index + 100))}…`);
          break;
        }
      }
    }
  };
  scan(everything, LEAK_PATTERNS);
  scan(everything.replace(RANDOM_RUNS, ''), LIBRARY_PATTERNS);
  return found;
}

/**
 * What no answer may do (hostile.ts inspect: 5xx, missing X-Request-Id, X-Powered-By,
 * CR/LF in headers), plus leaks not explained by an echo of the request.
 */
export function baseProblems(request: Sent, received: Received): string[] {
  return [...inspect(exchangeOf(request, received)).filter((problem) => !isLeak(problem)), ...leaks(received, request.echoes)];
}

function exchangeOf(request: Sent, received: Received): Exchange {
  return {
    family: 'fuzz', label: 'fuzz', via: 'fetch', method: request.method, target: request.url, sent: '',
    status: received.status, headers: received.headers, body: received.text, error: undefined,
  };
}

/** Node's HTTP parser answered (431 for a URL over 16 KB…): the app never saw the request. */
export function refusedByNode(request: Sent, received: Received): boolean {
  return rejectedByNodeParser(exchangeOf(request, received));
}

/** RFC 6749 §5.2: error codes are printable ASCII without `"` and `\`. */
const ERROR_CODE = /^[\x20\x21\x23-\x5B\x5D-\x7E]+$/;

/** An RFC 6749 error body: {error, error_description?, error_uri?}, JSON, error from `codes` when given. */
export function oauthErrorProblems(received: Received, codes?: readonly string[], checkDescriptionCharset = true): string[] {
  const problems: string[] = [];
  if (!/^application\/json\b/.test(received.headers['content-type'] ?? '')) problems.push(`error answer is not JSON (${received.headers['content-type'] ?? 'no content-type'})`);
  const body = received.json;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return [...problems, `error body is not a JSON object: ${received.text.slice(0, 200)}`];
  const { error, error_description: description, ...rest } = body as Record<string, unknown>;
  if (typeof error !== 'string' || !ERROR_CODE.test(error)) problems.push(`"error" is not an RFC 6749 error code: ${JSON.stringify(error)}`);
  else if (codes !== undefined && !codes.includes(error)) problems.push(`unexpected error code ${error} (expected ${codes.join(' | ')})`);
  if (description !== undefined && (typeof description !== 'string' || (checkDescriptionCharset && !ERROR_CODE.test(description)))) problems.push(`error_description is not RFC 6749 text: ${JSON.stringify(description).slice(0, 200)}`);
  // oidc-provider adds `scope` to invalid_scope answers (an RFC 6749 §8.2 extension member)
  const extra = Object.keys(rest).filter((name) => !['error_uri', 'state', 'iss', 'scope'].includes(name));
  if (extra.length > 0) problems.push(`error body has extra members: ${extra.join(', ')}`);
  return problems;
}

/** The application envelope: {"error":{"code","message","request_id"}} with request_id = X-Request-Id. */
export function envelopeProblems(received: Received): string[] {
  const body = received.json as { error?: { code?: unknown; message?: unknown; request_id?: unknown } } | undefined;
  const problems: string[] = [];
  if (!/^application\/json\b/.test(received.headers['content-type'] ?? '')) problems.push(`error answer is not JSON (${received.headers['content-type'] ?? 'no content-type'})`);
  if (body === null || typeof body !== 'object' || typeof body.error !== 'object' || body.error === null) return [...problems, `not the error envelope: ${received.text.slice(0, 200)}`];
  if (Object.keys(body).length !== 1) problems.push(`error envelope has extra members: ${Object.keys(body).join(', ')}`);
  const { code, message, request_id: requestId } = body.error;
  if (typeof code !== 'string' || !/^[A-Z][A-Z0-9_]*$/.test(code)) problems.push(`error.code is not a code: ${JSON.stringify(code)}`);
  if (typeof message !== 'string' || message === '') problems.push(`error.message missing: ${JSON.stringify(message)}`);
  if (requestId !== received.headers['x-request-id']) problems.push(`error.request_id ${JSON.stringify(requestId)} is not X-Request-Id ${received.headers['x-request-id']}`);
  return problems;
}

export function outcome(received: Received, problems: string[]): Outcome {
  return {
    status: received.status,
    problems,
    accepted: received.status >= 200 && received.status < 300,
    ...(received.headers['x-request-id'] === undefined ? {} : { requestId: received.headers['x-request-id'] }),
  };
}

/** Appends `message` when `condition` does not hold. */
export function expectThat(problems: string[], condition: boolean, message: string): void {
  if (!condition) problems.push(message);
}
