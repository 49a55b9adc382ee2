import { types } from 'node:util';

import { pino, type DestinationStream, type Logger } from 'pino';

import { normalisePath } from './http/request-log.js';

/**
 * JSON logs, one object per line, on stdout (or `destination`: tests capture lines).
 *
 * Nothing secret may reach a line, whatever a caller hands the logger:
 * - pino `redact` paths censor the secret-bearing field names at the top level, and the
 *   most common of them one level down (`*.password`, `*.authorization`…): each wildcard
 *   path costs about 1 µs per line, and the next pass covers every depth anyway;
 * - `formatters.log` / `formatters.bindings` rebuild every logged object: a field whose
 *   name is secret-bearing (exact, or by suffix: …token, …secret, …password) is censored
 *   at any depth, errors become plain `{type,message,stack,…}` objects, and every string
 *   (keys included) goes through `sanitiseString`;
 * - `child()` bindings are rebuilt the same way;
 * - `hooks.logMethod` passes the message and its interpolation arguments through the same;
 * - `hooks.streamWrite` is the last net: JWT / API-key / card patterns in the finished line.
 *
 * `sanitiseString` masks identifiers in URL paths (as the request log's `route` does),
 * card-number-like digit runs (13–19 digits, optionally separated by single spaces or
 * dashes, not glued to letters or other digits), JWT/JWS/JWE-looking tokens (three or more base64url
 * segments), Portcullis API keys (`pcak_…`), credentials after an HTTP auth scheme
 * (`Bearer …`), secret-bearing query/form parameters (`code=…`, `password=…`) and JSON
 * members (`"password":"…"`), truncates very long strings, and escapes control characters
 * (U+0000–U+001F, U+007F–U+009F, U+2028/9) as visible `\uXXXX` text, so that a value can
 * neither split a line nor forge one, even after a pretty-printer decodes the JSON.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    // formatters.log has already turned errors into plain, sanitised objects
    serializers: { err: (value: unknown) => value },
    formatters: {
      log: (object) => sanitiseObject(object),
      bindings: (bindings) => sanitiseObject(bindings),
    },
    hooks: {
      logMethod(args, method) {
        method.apply(this, sanitiseArguments(args as unknown[]) as Parameters<typeof method>);
      },
      streamWrite: sanitiseLine,
    },
  };
  const logger = destination === undefined ? pino(options) : pino(options, destination);
  // pino applies formatters.bindings to the root's bindings only: children's are sanitised here
  // (children inherit this method from the root through their prototype chain).
  const child = logger.child as unknown as (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger;
  Object.defineProperty(logger, 'child', {
    value: function sanitisedChild(this: Logger, bindings: pino.Bindings, childOptions?: pino.ChildLoggerOptions) {
      return child.call(this, sanitiseObject(bindings), childOptions);
    },
    writable: true,
    configurable: true,
  });
  return logger;
}

export const CENSOR = '[redacted]';

/** Field names (lower case, separators removed) whose values are never logged. */
const SECRET_FIELDS = new Set([
  'password', 'passwd', 'passphrase', 'newpassword', 'currentpassword',
  'otp', 'totp', 'code', 'codeverifier', 'recoverycode', 'recoverycodes', 'pin',
  'clientsecret', 'clientassertion', 'assertion',
  'accesstoken', 'refreshtoken', 'idtoken', 'idtokenhint', 'logouttoken', 'logintoken', 'subjecttoken', 'actortoken',
  'registrationaccesstoken', 'initialaccesstoken', 'token', 'tokens',
  'requesturi', 'secret', 'secrets', 'credentials',
  'authorization', 'proxyauthorization', 'cookie', 'cookies', 'setcookie', 'dpop',
  'key', 'apikey', 'xapikey', 'privatekey', 'masterkey', 'secretkey', 'signingkey', 'keys',
  // private and symmetric JWK members
  'd', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth',
  'pan', 'cardnumber', 'cvv', 'cvc',
]);

/** Any field whose normalised name ends with one of these is secret too. */
const SECRET_SUFFIXES = ['password', 'passwd', 'secret', 'token', 'apikey', 'privatekey', 'assertion', 'verifier', 'cookie', 'authorization'];

/** The same names as pino redact paths (their usual spellings), depth 0–3. */
const REDACT_FIELD_SPELLINGS = [
  'password', 'otp', 'totp', 'code', 'code_verifier', 'recovery_code', 'pin',
  'client_secret', 'clientSecret', 'client_assertion', 'assertion',
  'access_token', 'accessToken', 'refresh_token', 'refreshToken', 'id_token', 'idToken', 'id_token_hint', 'logout_token',
  'registration_access_token', 'initial_access_token', 'token', 'tokens',
  'request_uri', 'requestUri', 'secret', 'credentials',
  'authorization', 'Authorization', 'proxy-authorization', 'cookie', 'Cookie', 'set-cookie', 'dpop', 'DPoP',
  'key', 'apiKey', 'api_key', 'x-api-key', 'privateKey', 'private_key', 'masterKey',
  'd', 'p', 'q', 'dp', 'dq', 'qi', 'k',
];

function pathSegment(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : `[${JSON.stringify(name)}]`;
}

function joinPath(prefix: string, name: string): string {
  const segment = pathSegment(name);
  if (prefix === '') return segment;
  return segment.startsWith('[') ? `${prefix}${segment}` : `${prefix}.${segment}`;
}

/**
 * Every spelling at the top level, the most common one level down. (@pinojs/redact costs
 * about 1 µs per wildcard path per line; formatters.log already censors every depth.)
 */
const REDACT_PATHS = [
  ...REDACT_FIELD_SPELLINGS.map((name) => joinPath('', name)),
  ...['password', 'client_secret', 'access_token', 'refresh_token', 'code', 'authorization', 'cookie'].map((name) => joinPath('*', name)),
];

const secretFieldMemo = new Map<string, boolean>();

export function isSecretField(name: string): boolean {
  const known = secretFieldMemo.get(name);
  if (known !== undefined) return known;
  const normalised = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  const secret = SECRET_FIELDS.has(normalised) || SECRET_SUFFIXES.some((suffix) => normalised.endsWith(suffix));
  // Field names come from code, so they are few; a bound keeps hostile keys from growing the memo.
  if (secretFieldMemo.size < 10_000) secretFieldMemo.set(name, secret);
  return secret;
}

const MAX_STRING = 8192;
const MAX_DEPTH = 8;

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
/** JWS / JWE compact serialisations: a JOSE header always encodes as `eyJ…`. */
const JWT_JOSE = /eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){2,4}/g;
/** Any three long base64url segments separated by dots. */
const JWT_GENERIC = /(?<![\\A-Za-z0-9_-])[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}/g;
const API_KEY = /pcak_[A-Za-z0-9_-]*/g;
const AUTH_SCHEME = /\b(Bearer|Basic|DPoP|Digest|Negotiate)(\s+)[A-Za-z0-9._~+/=-]{6,}/gi;
const SECRET_PARAM_NAMES = '[A-Za-z0-9_.-]*(?:token|secret|password|passwd|assertion|verifier)|code|otp|totp|pin|request_uri|request|key|api_key|d';
/** `code=…` in a URL, query string, form body or fragment. */
const SECRET_PARAM = new RegExp(`(^|[?&;#\\s,])(${SECRET_PARAM_NAMES})=([^&#\\s"',;]*)`, 'gi');
/** `"password":"…"` inside a string that holds JSON. */
const SECRET_JSON_MEMBER = new RegExp(`("(?:${SECRET_PARAM_NAMES})"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'gi');
/**
 * 13–19 digits, optionally separated by single spaces or dashes, standing alone: not part of
 * a longer run, nor glued to letters (so the digits of a UUID or a hex digest never match).
 */
const CARD = /(?<![0-9][ -]?)(?<![A-Za-z])[0-9](?:[ -]?[0-9]){12,18}(?![ -]?[0-9])(?![A-Za-z])/g;
/** The same inside a finished JSON line, never touching the digits of a `\uXXXX` escape. */
const CARD_IN_JSON = /(?<![0-9][ -]?)(?<![A-Za-z])(?<!\\u[0-9A-Fa-f]{0,3})[0-9](?:[ -]?[0-9]){12,18}(?![ -]?[0-9])(?![A-Za-z])/g;
/** The path of an absolute http(s) URL anywhere in a string. */
const URL_PATH = /(\bhttps?:\/\/[^\s/?#"'<>]+)(\/[^\s?#"'<>]*)/gi;
/** A whole string that is a path (ctx.url, ctx.path): its path part. */
const LEADING_PATH = /^\/(?!\/)[^\s?#"'<>]*/;

const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeControl(char: string): string {
  return SHORT_ESCAPES[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

const HAS_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const HAS_AUTH_SCHEME = /bearer|basic|dpop|digest|negotiate/i;

function digitCount(value: string): number {
  let count = 0;
  for (let i = 0; i < value.length; i += 1) {
    const code = value.charCodeAt(i);
    if (code >= 48 && code <= 57) count += 1;
  }
  return count;
}

/** Masks secrets and escapes control characters in one string (see createLogger). */
export function sanitiseString(input: string): string {
  let value = input.length > MAX_STRING ? `${input.slice(0, MAX_STRING)}…[truncated]` : input;
  // Each pass runs only when a cheap test says it could apply: every logged string comes here.
  // Identifiers in URL paths (interaction uids, tokens) as in the request log's `route`.
  if (value.startsWith('/')) value = value.replace(LEADING_PATH, (path) => normalisePath(path));
  if (value.includes('://')) value = value.replace(URL_PATH, (_match, origin: string, path: string) => `${origin}${normalisePath(path)}`);
  if (value.includes('pcak_')) value = value.replace(API_KEY, '[api key]');
  if (value.includes('.')) value = value.replace(JWT_JOSE, '[jwt]').replace(JWT_GENERIC, '[jwt]');
  if (HAS_AUTH_SCHEME.test(value)) value = value.replace(AUTH_SCHEME, `$1$2${CENSOR}`);
  if (value.includes('=')) value = value.replace(SECRET_PARAM, `$1$2=${CENSOR}`);
  if (value.includes('"')) value = value.replace(SECRET_JSON_MEMBER, `$1"${CENSOR}"`);
  if (value.length >= 13 && digitCount(value) >= 13) value = value.replace(CARD, '[card]');
  return HAS_CONTROL.test(value) ? value.replace(CONTROL, escapeControl) : value;
}

/** Error codes worth keeping (ECONNREFUSED, INVALID_NAME, SQLSTATE 23505); anything else under `code` is censored. */
const SAFE_ERROR_CODE = /^(?:[A-Z][A-Z0-9_]{0,39}|[0-9A-Z]{5})$/;

function sanitiseError(error: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: sanitiseString(error.constructor?.name ?? error.name ?? 'Error'),
    message: sanitiseString(String(error.message)),
    stack: typeof error.stack === 'string' ? sanitiseString(error.stack) : undefined,
  };
  for (const key of Object.keys(error)) {
    if (key === 'message' || key === 'stack') continue;
    const item = (error as unknown as Record<string, unknown>)[key];
    if (key === 'code' && typeof item === 'string' && SAFE_ERROR_CODE.test(item)) {
      out.errorCode = item;
      continue;
    }
    out[sanitiseString(key)] = isSecretField(key) ? CENSOR : sanitiseValue(item, depth + 1, seen);
  }
  if (error.cause !== undefined && !('cause' in out)) out.cause = sanitiseValue(error.cause, depth + 1, seen);
  return out;
}

function sanitiseValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  switch (typeof value) {
    case 'string':
      return sanitiseString(value);
    case 'number': case 'boolean': case 'undefined': case 'bigint':
      return value;
    case 'symbol':
      return sanitiseString(String(value));
    case 'function':
      return undefined;
    default:
      break;
  }
  if (value === null) return null;
  const object = value as object;
  if (depth > MAX_DEPTH) return '[depth]';
  if (seen.has(object)) return '[circular]';
  if (types.isDate(object)) return object;
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer) return `[binary ${object.byteLength} bytes]`;
  seen.add(object);
  try {
    // (isNativeError: errors from another realm too, e.g. node internals under jest)
    if (object instanceof Error || types.isNativeError(object)) return sanitiseError(object as Error, depth, seen);
    if (Array.isArray(object)) return object.map((item) => sanitiseValue(item, depth + 1, seen));
    if (object instanceof Map || object instanceof Set) return `[${object.constructor.name} size ${object.size}]`;
    const toJSON = (object as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return sanitiseValue(toJSON.call(object), depth + 1, seen);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(object)) {
      out[sanitiseString(key)] = isSecretField(key) ? CENSOR : sanitiseValue(item, depth + 1, seen);
    }
    return out;
  } catch {
    return '[unserialisable]';
  } finally {
    seen.delete(object);
  }
}

/** A logged object, rebuilt: secret fields censored at any depth, every string sanitised. */
export function sanitiseObject(object: Record<string, unknown>): Record<string, unknown> {
  const out = sanitiseValue(object, 0, new WeakSet());
  return out !== null && typeof out === 'object' && !Array.isArray(out) && !types.isDate(out) ? out as Record<string, unknown> : { value: out };
}

function sanitiseArguments(args: unknown[]): unknown[] {
  const [first] = args;
  const out = args.map((arg, index) => (index === 0 && first !== null && typeof first === 'object' ? arg : sanitiseValue(arg, 0, new WeakSet())));
  // pino takes the message of a lone error (or of `{ err }`) itself, past this hook: give it explicitly.
  if (args.length === 1 && first !== null && typeof first === 'object') {
    const error = first instanceof Error || types.isNativeError(first) ? first : (first as { err?: unknown }).err;
    const hasMessage = (first as { msg?: unknown }).msg !== undefined;
    if ((error instanceof Error || types.isNativeError(error)) && !hasMessage) out.push(sanitiseString(String((error as Error).message)));
  }
  return out;
}

/** JSON string literals in a finished line (keys and values). */
const STRING_LITERAL = /"(?:[^"\\]|\\.)*"/g;

/** The last net over the finished line: tokens, keys and card numbers that escaped the object pass. */
function sanitiseLine(line: string): string {
  return line
    .replace(API_KEY, '[api key]')
    .replace(JWT_JOSE, '[jwt]')
    .replace(JWT_GENERIC, '[jwt]')
    .replace(STRING_LITERAL, (literal) => literal.replace(CARD_IN_JSON, '[card]'))
    .replace(/[\u007f-\u009f\u2028\u2029]/g, escapeControl);
}
