import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

import { sql, type Kysely } from 'kysely';
import type { CookieJar } from 'tough-cookie';

import type { DB } from '../../src/db/schema.js';

/**
 * A recorder for hostile-input tests: sends requests three ways (fetch; node:http for bytes
 * fetch refuses; a raw socket for what node:http refuses too, such as CR/LF or NUL inside a
 * header), keeps every exchange, and checks each response for the things no response may do:
 * a 5xx, a stack trace, SQL or file-system internals, library names, X-Powered-By, a header
 * injected through CR/LF, or a missing X-Request-Id.
 */

export type Via = 'fetch' | 'http' | 'raw';

export interface Exchange {
  readonly family: string;
  readonly label: string;
  readonly via: Via;
  readonly method: string;
  readonly target: string;
  /** a short description of the hostile part of the request (headers / body) */
  readonly sent: string;
  /** 0: no response at all */
  readonly status: number;
  /** lower-case names; repeated headers joined with "\n" */
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly error: string | undefined;
  /**
   * Headers over Node's 16 KB limit: Node answers 431 and closes the socket; when the client
   * is still writing, the kernel may reset the connection before the 431 is read.
   */
  readonly oversizedHeaders?: boolean;
  /** wall-clock time from sending to the whole response (a time-based injection shows here) */
  readonly durationMs?: number;
}

/** Where requests go: a base URL (http://127.0.0.1:port) and an optional path prefix. */
export interface Target {
  readonly url: string;
  readonly host: string;
  readonly port: number;
}

export function target(url: string): Target {
  const parsed = new URL(url);
  return { url: parsed.origin, host: parsed.hostname, port: Number(parsed.port) };
}

const WELL_FORMED_REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

/** Long base64url runs (tokens, keys, nonces) are random text: library-name checks skip them. */
const RANDOM_RUNS = /[A-Za-z0-9_-]{24,}/g;

export const LEAK_PATTERNS: readonly [string, RegExp][] = [
  ['stack trace', /at .*\.(js|ts):\d+/],
  ['SQL error', /syntax error at or near|relation "|invalid input syntax for|invalid byte sequence|unterminated quoted|column "[^"]*" does not exist|violates [a-z ]*constraint|duplicate key value/i],
  ['file path', /\/work\/|node_modules|\/src\//],
  ['system file', /root:x:0:0|"devDependencies"|-----BEGIN [A-Z ]*PRIVATE KEY/],
  ['private JWK member', /"(?:d|p|q|dp|dq|qi)"\s*:\s*"/],
];

const LIBRARY_PATTERNS: readonly [string, RegExp][] = [
  ['library name', /\b(?:oidc-provider|koa|kysely|pglite|node-postgres|raw-body|co-body|bodyparser|argon2)\b/i],
  ['library name (pg)', /(?<![A-Za-z0-9_-])pg(?![A-Za-z0-9_])/i],
  ['library name (jose)', /\bjose\b/],
  ['version string', /(?:oidc-provider|koa|kysely|pg|jose)[@/ ]v?\d+\.\d+|node(?:\.js)?[ /]v\d+\.\d+/i],
];

/** Headers only Node's HTTP parser sends when it refuses a request before the app sees it. */
export function rejectedByNodeParser(exchange: Exchange): boolean {
  if (exchange.status === 0) return exchange.oversizedHeaders === true && /ECONNRESET|EPIPE/.test(exchange.error ?? '');
  if (![400, 413, 414, 431, 505].includes(exchange.status)) return false;
  return Object.keys(exchange.headers).every((name) => name === 'connection' || name === 'content-length' || name === 'date');
}

/** Everything wrong with one response (empty when it is fine). */
export function inspect(exchange: Exchange): string[] {
  const problems: string[] = [];
  if (exchange.status === 0 && !rejectedByNodeParser(exchange)) problems.push(`no response (${exchange.error ?? 'connection closed'})`);
  if (exchange.status >= 500) problems.push(`status ${exchange.status}`);
  const headerText = Object.entries(exchange.headers).filter(([name]) => name !== 'set-cookie').map(([name, value]) => `${name}: ${value}`).join('\n');
  const everything = `${headerText}\n${exchange.body}`;
  for (const [name, pattern] of LEAK_PATTERNS) {
    const match = pattern.exec(everything);
    if (match) problems.push(`leak (${name}): …${excerptAround(everything, match.index)}…`);
  }
  const scrubbed = everything.replace(RANDOM_RUNS, '');
  for (const [name, pattern] of LIBRARY_PATTERNS) {
    const match = pattern.exec(scrubbed);
    if (match) problems.push(`leak (${name}): …${excerptAround(scrubbed, match.index)}…`);
  }
  if (exchange.headers['x-powered-by'] !== undefined) problems.push(`X-Powered-By: ${exchange.headers['x-powered-by']}`);
  if (exchange.status !== 0 && !rejectedByNodeParser(exchange)) {
    const id = exchange.headers['x-request-id'];
    if (id === undefined) problems.push('no X-Request-Id');
    else if (!WELL_FORMED_REQUEST_ID.test(id)) problems.push(`X-Request-Id not well formed: ${JSON.stringify(id.slice(0, 80))}`);
  }
  // CR/LF injection: a header or cookie named by the payload must never appear.
  if (exchange.headers['x-injected'] !== undefined) problems.push(`injected header X-Injected: ${exchange.headers['x-injected']}`);
  if (/injected/i.test(exchange.headers['set-cookie'] ?? '')) problems.push(`injected cookie: ${exchange.headers['set-cookie']}`);
  for (const [name, value] of Object.entries(exchange.headers)) {
    // headerRecord joins repeated headers with "\n" (fetch joins them with ", ", except Set-Cookie).
    const joined = name === 'set-cookie' || exchange.via !== 'fetch';
    if ((joined ? value.split('\n') : [value]).some((one) => /[\r\n\0]/.test(one))) problems.push(`raw CR/LF/NUL in response header ${name}`);
  }
  return problems;
}

function excerptAround(text: string, index: number): string {
  return JSON.stringify(text.slice(Math.max(0, index - 60), index + 100));
}

export function describeExchange(exchange: Exchange): string {
  return `[${exchange.family}] ${exchange.label}: ${exchange.method} ${exchange.target.slice(0, 160)}${exchange.sent ? ` (${exchange.sent.slice(0, 200)})` : ''} via ${exchange.via} → ${exchange.status}`
    + ` body: ${JSON.stringify(exchange.body.slice(0, 300))}`;
}

function headerRecord(entries: Iterable<[string, string]>): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [name, value] of entries) {
    const key = name.toLowerCase();
    record[key] = record[key] === undefined ? value : `${record[key]}\n${value}`;
  }
  return record;
}

function summarise(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('latin1') : String(value);
  const printable = JSON.stringify(text.length > 160 ? `${text.slice(0, 120)}…[${text.length} chars]` : text);
  return printable;
}

export interface FetchOptions extends RequestInit {
  /** a cookie jar to send cookies from and store Set-Cookie in (a real browser session) */
  readonly jar?: CookieJar;
  /** what to show in a report instead of the body summary */
  readonly note?: string;
}

export interface HttpOptions {
  readonly method?: string;
  readonly path: string;
  readonly headers?: OutgoingHttpHeaders | readonly string[];
  readonly body?: string | Buffer;
  readonly note?: string;
  /** the headers exceed Node's limit on purpose (a reset instead of a 431 is then acceptable) */
  readonly oversizedHeaders?: boolean;
}

export class Recorder {
  readonly exchanges: Exchange[] = [];
  family = 'setup';

  /** fetch without following redirects. */
  async fetch(to: Target, label: string, path: string, options: FetchOptions = {}): Promise<Exchange> {
    const { jar, note, ...init } = options;
    const url = `${to.url}${path}`;
    const headers = new Headers(init.headers);
    if (!headers.has('accept')) headers.set('accept', 'application/json');
    if (jar !== undefined) {
      const cookie = await jar.getCookieString(url);
      if (cookie) headers.set('cookie', headers.has('cookie') ? `${headers.get('cookie')}; ${cookie}` : cookie);
    }
    const method = init.method ?? 'GET';
    const sent = note ?? [...headers.entries()].filter(([name]) => !['accept', 'content-type'].includes(name)).map(([name, value]) => `${name}: ${summarise(value)}`).concat(init.body === undefined ? [] : [`body ${summarise(init.body)}`], headers.has('content-type') ? [`content-type ${headers.get('content-type')}`] : []).join('; ');
    let exchange: Exchange;
    const started = performance.now();
    try {
      const response = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(15_000) });
      const body = await response.text();
      if (jar !== undefined) for (const setCookie of response.headers.getSetCookie()) await jar.setCookie(setCookie, url).catch(() => undefined);
      const entries: [string, string][] = [...response.headers.entries()].filter(([name]) => name !== 'set-cookie');
      for (const setCookie of response.headers.getSetCookie()) entries.push(['set-cookie', setCookie]);
      exchange = { family: this.family, label, via: 'fetch', method, target: path, sent, status: response.status, headers: headerRecord(entries), body, error: undefined };
    } catch (error) {
      exchange = { family: this.family, label, via: 'fetch', method, target: path, sent, status: 0, headers: {}, body: '', error: errorText(error) };
    }
    exchange = { ...exchange, durationMs: performance.now() - started };
    this.exchanges.push(exchange);
    return exchange;
  }

  /** node:http: header values and paths with bytes 0x80–0xFF, duplicate headers, huge headers, any method. */
  async http(to: Target, label: string, options: HttpOptions): Promise<Exchange> {
    const method = options.method ?? 'GET';
    const sent = options.note ?? [
      Array.isArray(options.headers) ? summarise(options.headers.join(' | ')) : Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${summarise(String(value))}`).join('; '),
      options.body === undefined ? '' : `body ${summarise(options.body)}`,
    ].filter(Boolean).join('; ');
    const base = { family: this.family, label, via: 'http' as const, method, target: options.path, sent, ...(options.oversizedHeaders === true ? { oversizedHeaders: true } : {}) };
    const started = performance.now();
    const received = await new Promise<Exchange>((resolve) => {
      let settled = false;
      const done = (value: Exchange) => { if (!settled) { settled = true; resolve(value); } };
      const req = httpRequest({
        host: to.host, port: to.port, method, path: options.path, agent: false, timeout: 15_000,
        headers: options.headers as OutgoingHttpHeaders,
        insecureHTTPParser: true,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        const finish = () => {
          const entries: [string, string][] = [];
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) entries.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
          done({ ...base, status: res.statusCode ?? 0, headers: headerRecord(entries), body: Buffer.concat(chunks).toString('utf8'), error: undefined });
        };
        res.on('end', finish);
        res.on('error', finish);
        res.on('close', finish);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => done({ ...base, status: 0, headers: {}, body: '', error: errorText(error) }));
      if (options.body !== undefined) req.write(options.body);
      req.end();
    });
    const exchange = { ...received, durationMs: performance.now() - started };
    this.exchanges.push(exchange);
    return exchange;
  }

  /**
   * A raw HTTP/1.1 request over a socket, exactly these bytes (CR/LF and NUL inside headers,
   * smuggling attempts, bogus methods). The request should say Connection: close.
   */
  async raw(to: Target, label: string, bytes: string | Buffer, note?: string): Promise<Exchange> {
    const buffer = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    const head = buffer.toString('latin1').split('\r\n')[0] ?? '';
    const [method = '?', path = '?'] = head.split(' ');
    const base = { family: this.family, label, via: 'raw' as const, method, target: path, sent: note ?? summarise(buffer.toString('latin1').split('\r\n').slice(1).join(' | ')) };
    const started = performance.now();
    const received = await new Promise<Exchange>((resolve) => {
      const socket = connect({ host: to.host, port: to.port });
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        socket.destroy();
        const response = Buffer.concat(chunks);
        if (response.length === 0) {
          resolve({ ...base, status: 0, headers: {}, body: '', error: error === undefined ? 'connection closed without a response' : errorText(error) });
          return;
        }
        resolve({ ...base, ...parseRawResponse(response), error: undefined });
      };
      socket.setTimeout(15_000, () => finish(new Error('timeout')));
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (responseComplete(Buffer.concat(chunks))) finish();
      });
      socket.on('end', () => finish());
      socket.on('error', (error) => finish(error));
      socket.on('connect', () => socket.write(buffer));
    });
    const exchange = { ...received, durationMs: performance.now() - started };
    this.exchanges.push(exchange);
    return exchange;
  }
}

function errorText(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return `${(error as Error).message}${cause === undefined ? '' : ` (${cause.code ?? ''} ${cause.message ?? ''})`}`;
}

function splitHead(response: Buffer): { head: string; body: Buffer } | undefined {
  const end = response.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  return { head: response.subarray(0, end).toString('latin1'), body: response.subarray(end + 4) };
}

function responseComplete(response: Buffer): boolean {
  const parts = splitHead(response);
  if (parts === undefined) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(parts.head);
  if (length) return parts.body.length >= Number(length[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(parts.head)) return parts.body.includes('\r\n0\r\n\r\n') || parts.body.subarray(0, 5).toString() === '0\r\n\r\n';
  return false; // read until the server closes
}

function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < body.length) {
    const lineEnd = body.indexOf('\r\n', offset);
    if (lineEnd === -1) break;
    const size = parseInt(body.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** Status, headers and body of the first response on a raw socket. */
function parseRawResponse(response: Buffer): { status: number; headers: Record<string, string>; body: string } {
  const parts = splitHead(response) ?? { head: response.toString('latin1'), body: Buffer.alloc(0) };
  const [statusLine = '', ...lines] = parts.head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const entries: [string, string][] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    // A line without a colon would be a header split by an injected CR/LF: keep it visible.
    entries.push(colon === -1 ? [line, ''] : [line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  const headers = headerRecord(entries);
  const body = /chunked/i.test(headers['transfer-encoding'] ?? '') ? dechunk(parts.body) : parts.body;
  return { status, headers, body: body.toString('utf8') };
}

/** Statuses histogram, 5xx count, leaks, problems: the table printed at the end. */
export function summaryTable(exchanges: readonly Exchange[]): string {
  const histogram = new Map<number, number>();
  for (const exchange of exchanges) histogram.set(exchange.status, (histogram.get(exchange.status) ?? 0) + 1);
  const problems = exchanges.map((exchange) => ({ exchange, problems: inspect(exchange) })).filter((entry) => entry.problems.length > 0);
  const leaks = problems.filter((entry) => entry.problems.some((p) => p.startsWith('leak'))).length;
  const fivexx = exchanges.filter((exchange) => exchange.status >= 500).length;
  const byFamily = new Map<string, number>();
  for (const exchange of exchanges) byFamily.set(exchange.family, (byFamily.get(exchange.family) ?? 0) + 1);
  const byVia = new Map<string, number>();
  for (const exchange of exchanges) byVia.set(exchange.via, (byVia.get(exchange.via) ?? 0) + 1);
  const parser = exchanges.filter(rejectedByNodeParser);
  const failedFamilies = new Set(problems.map((entry) => entry.exchange.family));
  const lines = [
    'hostile-input summary',
    `  requests sent:         ${exchanges.length}  (${[...byVia].map(([via, n]) => `${via} ${n}`).join(', ')})`,
    `  statuses:              ${[...histogram].sort(([a], [b]) => a - b).map(([status, n]) => `${status === 0 ? 'none' : status}×${n}`).join('  ')}`,
    `  5xx:                   ${fivexx}`,
    `  responses with leaks:  ${leaks}`,
    `  responses with any problem: ${problems.length}`,
    `  refused by Node's HTTP parser (no app, no X-Request-Id): ${parser.length}${parser.length ? ` [${parser.map((e) => `${e.label} → ${e.status === 0 ? 'reset' : e.status}`).join('; ')}]` : ''}`,
    `  slowest:               ${[...exchanges].sort((a, b) => (b.durationMs ?? 0) - (a.durationMs ?? 0)).slice(0, 3).map((e) => `${Math.round(e.durationMs ?? 0)} ms ${e.label}`).join('; ')}`,
    '  per family:',
    ...[...byFamily].map(([family, n]) => `    ${family.padEnd(28)} ${String(n).padStart(4)}${failedFamilies.has(family) ? '  (problems)' : ''}`),
  ];
  if (problems.length > 0) {
    lines.push('  problems:');
    for (const { exchange, problems: found } of problems) lines.push(`    ${describeExchange(exchange)}\n      ⇒ ${found.join('\n      ⇒ ')}`);
  }
  return lines.join('\n');
}


// ---------------------------------------------------------------------------------------
// "The database is unchanged where the request was rejected": a fingerprint of the
// security-relevant state, taken before and after a batch of rejected requests.

/**
 * Columns fingerprinted per table: everything a refused request must never change. Left
 * out, on purpose, only what legitimately moves when a request is refused:
 * - users.failed_attempts / locked_until / lock_count / locked_permanently / updated_at:
 *   a failed sign-in is counted before the guess is evaluated (PSD2 RTS, at most 5 in a
 *   row); fingerprinted separately as "users (failure counters)", so a family that never
 *   fails against a real customer still proves they did not move;
 * - api_keys.last_used_at: stamped by every authenticated admin request, refused or not;
 * - dashboard_sessions.expires_at: sliding idle expiry, pushed back by every request that
 *   carries a valid session cookie, even one refused afterwards (a bad CSRF token).
 */
const FINGERPRINTED: Readonly<Record<string, { readonly order: string; readonly columns: string }>> = {
  users: { order: 'id', columns: 'id, username, password_hash, name, email, created_at, totp_secret_enc, totp_last_step, totp_enrolled_at' },
  'users (failure counters)': { order: 'id', columns: 'id, failed_attempts, locked_until, lock_count, locked_permanently' },
  recovery_codes: { order: 'user_id, code_hash', columns: 'user_id, code_hash, used_at, created_at' },
  clients: { order: 'client_id', columns: 'client_id, metadata, secret_enc, kind, profile, software_id, disabled_at, created_at, updated_at' },
  consents: { order: 'grant_id', columns: 'grant_id, client_id, user_id, type, scopes, details, status, sca_hash, version, created_at, status_changed_at, expires_at' },
  dashboard_sessions: { order: 'id_hash', columns: 'id_hash, user_id, created_at' },
  api_keys: { order: 'id', columns: 'id, name, key_hash, scopes, created_at, expires_at, revoked_at' },
  bank_accounts: { order: 'id', columns: 'id, user_id, name, iban, currency, balance, created_at' },
  payment_sca: { order: 'flow_id', columns: 'flow_id, user_id, details_hash, authenticated_at, grant_id, created_at' },
  signing_keys: { order: 'kid', columns: 'kid, alg, state, public_jwk, private_jwk_enc, created_at, activated_at, retired_at' },
  server_secrets: { order: 'name', columns: 'name, value_enc, created_at' },
};

/**
 * oidc-provider models left out of the fingerprint, because a refused request may write them:
 * - ReplayDetection and SoftwareStatementJti: a DPoP proof's, client assertion's or software
 *   statement's jti is recorded (insert-only, by design) as soon as its signature is verified,
 *   before a later check refuses the request;
 * - Session and Interaction: browsing a real sign-in page, or posting a refused form to it,
 *   re-saves the interaction / session (oidc-provider's own bookkeeping, sealed with a
 *   fresh nonce each time), and /auth may open a session before it refuses a request.
 * Every other model (tokens, codes, grants, pushed requests, registration access tokens)
 * is fingerprinted row by row.
 */
export const UNFINGERPRINTED_MODELS: readonly string[] = ['ReplayDetection', 'SoftwareStatementJti', 'Session', 'Interaction'];

export interface DatabaseState {
  /** "table" or "oidc_models:Model" → "<rows>:<md5 of the rows in key order>" */
  readonly fingerprints: Readonly<Record<string, string>>;
  /** the last audit event's sequence number, and a digest of the chain up to it */
  readonly auditSeq: number;
  readonly auditDigest: string;
}

type AnyDb = Kysely<DB>;

async function auditDigest(db: AnyDb, upTo: number): Promise<string> {
  const { rows } = await sql<{ digest: string | null }>`select md5(string_agg(seq::text || ':' || hash, ',' order by seq)) as digest from audit_events where seq <= ${upTo}`.execute(db);
  return rows[0]?.digest ?? '';
}

/** Row counts and checksums of every security-relevant table (see FINGERPRINTED). */
export async function databaseState(db: AnyDb): Promise<DatabaseState> {
  const fingerprints: Record<string, string> = {};
  for (const [name, { order, columns }] of Object.entries(FINGERPRINTED)) {
    const table = name.replace(/ \(.*\)$/, '');
    const { rows } = await sql<{ count: string | number; digest: string | null }>`
      select count(*) as count, md5(coalesce(string_agg(row_text, '|' order by row_order), '')) as digest
      from (select (${sql.raw(columns)})::text as row_text, (${sql.raw(order)})::text as row_order from ${sql.table(table)}) as t`.execute(db);
    fingerprints[name] = `${Number(rows[0]?.count ?? -1)}:${rows[0]?.digest ?? ''}`;
  }
  const { rows: models } = await sql<{ model: string; count: string | number; digest: string | null }>`
    select model, count(*) as count,
      md5(string_agg(key || '|' || payload::text || '|' || coalesce(grant_id, '') || '|' || coalesce(uid, '') || '|' || coalesce(expires_at::text, '') || '|' || coalesce(consumed_at::text, ''), ',' order by key)) as digest
    from oidc_models where model not in (${sql.join([...UNFINGERPRINTED_MODELS])}) group by model`.execute(db);
  for (const row of models) fingerprints[`oidc_models:${row.model}`] = `${Number(row.count)}:${row.digest ?? ''}`;
  const auditSeq = await lastAuditSeq(db);
  return { fingerprints, auditSeq, auditDigest: await auditDigest(db, auditSeq) };
}

export interface ChangeRules {
  /** fingerprints the batch is expected to change (requests it expects to be accepted) */
  readonly mayChange?: readonly string[];
  /** audit event types the batch may append (failures are audited: signin.failure, …) */
  readonly auditTypes?: readonly string[];
}

async function lastAuditSeq(db: AnyDb): Promise<number> {
  const { rows } = await sql<{ seq: string | number | null }>`select max(seq) as seq from audit_events`.execute(db);
  return Number(rows[0]?.seq ?? 0);
}

/**
 * Waits (at most 2 s) until the audit log stops growing: oidc-provider's events (a token
 * issued, a client registered) are audited after the response has gone out, and must be
 * counted in the batch that caused them, not in the next one.
 */
async function auditSettled(db: AnyDb): Promise<void> {
  let last = await lastAuditSeq(db);
  for (const deadline = Date.now() + 2000; Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 60));
    const now = await lastAuditSeq(db);
    if (now === last) return;
    last = now;
  }
}

/**
 * What changed since `before`, beyond what `rules` allow: one line per changed fingerprint,
 * a line if any earlier audit event was altered, and one per unexpected new audit event.
 */
export async function databaseChanges(db: AnyDb, before: DatabaseState, rules: ChangeRules = {}): Promise<string[]> {
  await auditSettled(db);
  const after = await databaseState(db);
  const changes: string[] = [];
  const keys = new Set([...Object.keys(before.fingerprints), ...Object.keys(after.fingerprints)]);
  for (const key of keys) {
    const was = before.fingerprints[key] ?? '0:';
    const now = after.fingerprints[key] ?? '0:';
    if (was !== now && !(rules.mayChange ?? []).includes(key)) changes.push(`${key}: rows ${was.split(':')[0]} → ${now.split(':')[0]}${was.split(':')[0] === now.split(':')[0] ? ' (same count, contents changed)' : ''}`);
  }
  if ((await auditDigest(db, before.auditSeq)) !== before.auditDigest) changes.push('audit_events: an earlier event was altered or removed');
  const { rows } = await sql<{ seq: string | number; type: string }>`select seq, type from audit_events where seq > ${before.auditSeq} order by seq`.execute(db);
  const allowed = rules.auditTypes ?? [];
  for (const row of rows) if (!allowed.includes(row.type)) changes.push(`audit_events: unexpected new event #${Number(row.seq)} ${row.type}`);
  return changes;
}
