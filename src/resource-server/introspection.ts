/**
 * RFC 7662 token introspection client for the bank's APIs.
 *
 * Fails closed: anything but a 200 JSON object with a boolean `active` and well-typed members
 * (a network error, a timeout, a redirect, another status, another body) throws
 * IntrospectionUnavailableError, never a result. An inactive token yields `{ active: false }`
 * and nothing else, so no caller can act on members of a token the server disowned.
 */

/** One RFC 9396 authorization detail as the authorization server approved it. */
export interface AuthorizationDetail {
  readonly type: string;
  readonly [member: string]: unknown;
}

export interface TokenConfirmation {
  /** RFC 9449: SHA-256 thumbprint of the DPoP key the token is bound to */
  readonly jkt?: string;
  /** RFC 8705: SHA-256 thumbprint of the client certificate the token is bound to */
  readonly 'x5t#S256'?: string;
}

export interface IntrospectionResult {
  readonly active: boolean;
  readonly client_id?: string;
  readonly sub?: string;
  readonly scope?: string;
  readonly exp?: number;
  readonly iat?: number;
  /** DPoP or Bearer for access tokens; absent for refresh tokens */
  readonly token_type?: string;
  readonly cnf?: TokenConfirmation;
  readonly acr?: string;
  readonly amr?: readonly string[];
  readonly grant_id?: string;
  readonly authorization_details?: readonly AuthorizationDetail[];
  readonly aud?: string | readonly string[];
  readonly iss?: string;
}

export interface IntrospectionClientOptions {
  readonly introspectionEndpoint: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** the whole exchange, response body included, must finish within this (default 2000 ms) */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

/** The authorization server could not give a trustworthy answer; the request must not proceed. */
export class IntrospectionUnavailableError extends Error {
  override readonly name = 'IntrospectionUnavailableError';
}

/** RFC 6749 §2.3.1: client_id and secret are form-urlencoded before HTTP Basic encoding. */
function basicCredentials(clientId: string, clientSecret: string): string {
  const encode = (value: string): string => new URLSearchParams({ v: value }).toString().slice(2);
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

function malformed(member: string): IntrospectionUnavailableError {
  return new IntrospectionUnavailableError(`the introspection response has a malformed ${member}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A member of the given type, undefined when absent or null, otherwise throws. */
function optional<T>(body: Record<string, unknown>, name: string, check: (value: unknown) => value is T): T | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw malformed(name);
  return value;
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every(isString);
const isAudience = (value: unknown): value is string | string[] => isString(value) || isStringArray(value);
const isDetails = (value: unknown): value is AuthorizationDetail[] =>
  Array.isArray(value) && value.every((detail) => isRecord(detail) && isString(detail.type));

function confirmation(body: Record<string, unknown>): TokenConfirmation | undefined {
  const cnf = optional(body, 'cnf', isRecord);
  if (cnf === undefined) return undefined;
  const jkt = optional(cnf, 'jkt', isString);
  const x5t = optional(cnf, 'x5t#S256', isString);
  return { ...(jkt === undefined ? {} : { jkt }), ...(x5t === undefined ? {} : { 'x5t#S256': x5t }) };
}

/** Keeps the known members of an active token's response, each checked for its type. */
export function parseIntrospectionResponse(body: unknown): IntrospectionResult {
  if (!isRecord(body) || typeof body.active !== 'boolean') {
    throw new IntrospectionUnavailableError('the introspection response has no boolean "active"');
  }
  if (!body.active) return { active: false };
  const members = {
    client_id: optional(body, 'client_id', isString),
    sub: optional(body, 'sub', isString),
    scope: optional(body, 'scope', isString),
    exp: optional(body, 'exp', isNumber),
    iat: optional(body, 'iat', isNumber),
    token_type: optional(body, 'token_type', isString),
    cnf: confirmation(body),
    acr: optional(body, 'acr', isString),
    amr: optional(body, 'amr', isStringArray),
    grant_id: optional(body, 'grant_id', isString),
    authorization_details: optional(body, 'authorization_details', isDetails),
    aud: optional(body, 'aud', isAudience),
    iss: optional(body, 'iss', isString),
  };
  const result: Record<string, unknown> = { active: true };
  for (const [name, value] of Object.entries(members)) {
    if (value !== undefined) result[name] = value;
  }
  return result as unknown as IntrospectionResult;
}

export class IntrospectionClient {
  readonly #endpoint: string;
  readonly #authorization: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: IntrospectionClientOptions) {
    const endpoint = new URL(options.introspectionEndpoint);
    if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') throw new TypeError('introspectionEndpoint must be an http(s) URL');
    if (options.clientId === '' || options.clientSecret === '') throw new TypeError('clientId and clientSecret are required');
    const timeoutMs = options.timeoutMs ?? 2000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError('timeoutMs must be a positive number');
    this.#endpoint = endpoint.toString();
    this.#authorization = basicCredentials(options.clientId, options.clientSecret);
    this.#timeoutMs = timeoutMs;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** Asks the authorization server about `token`; throws IntrospectionUnavailableError unless it answers properly. */
  async introspect(token: string): Promise<IntrospectionResult> {
    let status: number;
    let contentType: string;
    let text: string;
    try {
      const response = await this.#fetch(this.#endpoint, {
        method: 'POST',
        headers: {
          authorization: this.#authorization,
          accept: 'application/json',
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        // A redirect is a misconfiguration; following it could turn the POST into a GET.
        redirect: 'error',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      status = response.status;
      contentType = response.headers.get('content-type') ?? '';
      // Read inside the try: the timeout also covers a body that never ends.
      text = await response.text();
    } catch (error) {
      throw new IntrospectionUnavailableError('the introspection endpoint did not answer', { cause: error });
    }
    if (status !== 200) throw new IntrospectionUnavailableError(`the introspection endpoint answered ${status}`);
    if (!/^application\/json\b/i.test(contentType)) throw new IntrospectionUnavailableError('the introspection response is not JSON');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      throw new IntrospectionUnavailableError('the introspection response is not JSON', { cause: error });
    }
    return parseIntrospectionResponse(body);
  }
}
