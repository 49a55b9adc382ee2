import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';

import fc from 'fast-check';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';

import { AuthorizationDetailsValidator, InvalidDetailsError } from '../../src/services/authorization-details.js';
import type { TestApp } from '../support/app.js';
import { signSsa, ssaClaims } from '../support/directory.js';
import {
  authorizeCode, CLIENT_ASSERTION_TYPE, dpopKeyPair, dpopProof, epoch, pkcePair, redeemCode,
  type CraftedClient, type KeyPair, type SigningKey,
} from '../support/fapi-crafting.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { SIGN_IN_FAILED } from '../support/sca.js';
import { createCustomer, pushAuthorization, REDIRECT_URI, registerTpp, type Customer, type Tpp } from '../support/tpp.js';
import {
  applyOps, clientAuthMode, deepValue, detailCase, detailsExpectation, detailsParam, detailsText, dpopMode, hostileString, jsonValue,
  materialise, memberName, MAX_AMOUNT, objectOf, paramOps, plainString, UNIT_CURRENCIES,
  type ClientAuthMode, type DetailCase, type DetailsParam, type DpopMode, type ParamOp,
} from './generators.js';
import {
  baseProblems, envelopeProblems, expectThat, oauthErrorProblems, outcome, refusedByNode, send, stringsIn,
  type FuzzEnv, type Outcome, type Received, type Sent,
} from './harness.js';

/**
 * The fuzz targets (issue #9 point 5): each is a generator of inputs, a set-up against a
 * running app, and a property checked on every answer — never a 5xx, a well-formed
 * success or error, no internals in the body, and, where a model is cheap, the answer the
 * model predicts. test/e2e/fuzz-quick.test.ts runs a small deterministic slice of each;
 * scripts/fuzz.ts runs ≥ 10,000 cases per target.
 */
export interface FuzzTarget<S, T> {
  /** short id (FUZZ_TARGETS, the table) */
  readonly name: string;
  /** what it fuzzes, for people */
  readonly title: string;
  /** 'pure': in-process (no app needed); 'http': against FuzzEnv */
  readonly kind: 'pure' | 'http';
  readonly arbitrary: fc.Arbitrary<T>;
  /** inputs that once failed (bugs found by fuzzing): the quick test always runs them first */
  readonly regressions?: readonly T[];
  setup(env: FuzzEnv | undefined): Promise<S>;
  /** Runs one case; never throws for a bad answer (it lists problems instead). */
  property(state: S, input: T): Promise<Outcome>;
}

/**
 * Conformance checks beyond "no 5xx, no leak, an RFC 6749 / envelope error": each one is
 * a rule of DESIGN §3–4 or an RFC that the fuzzing found broken at least once. They stay
 * on; switch one off only with the reason next to it.
 */
export const STRICT = {
  /** DESIGN §4 "NUL and malformed Unicode are rejected with 400": also on oidc-provider's endpoints (PAR, token) */
  nulAndMalformedUnicodeRefused: true,
  /** RFC 6749 §5.2: error_description only in %x20-21 / %x23-5B / %x5D-7E (no `"`, no `\`, ASCII) */
  errorDescriptionCharset: true,
} as const;

function requireEnv(env: FuzzEnv | undefined): FuzzEnv {
  if (env === undefined) throw new Error('this target needs a running app (FuzzEnv)');
  return env;
}

/**
 * Percent-encodes every byte but unreserved characters; a lone surrogate becomes its
 * WTF-8 bytes (%ED%A0%80), which is not UTF-8: URLSearchParams and encodeURIComponent
 * would replace it or throw, and the server must see it.
 */
export function percentEncode(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i += 1) {
    const code = text.codePointAt(i)!;
    if (code > 0xffff) i += 1;
    const ch = String.fromCodePoint(code);
    if (/^[A-Za-z0-9\-._~]$/.test(ch)) {
      out += ch;
      continue;
    }
    const bytes = code >= 0xd800 && code <= 0xdfff
      ? [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
      : [...Buffer.from(ch, 'utf8')];
    for (const byte of bytes) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** NUL or malformed Unicode (a lone surrogate, sent as invalid UTF-8) in a parameter name or value. */
const unstorable = (pairs: readonly (readonly [string, string])[]): boolean => pairs.some(([name, value]) => [name, value].some((text) => text.includes('\u0000') || !text.isWellFormed()));

/** application/x-www-form-urlencoded, repeated names kept, lone surrogates sent as such. */
/** How deep a JSON text nests (brackets outside strings); 0 for a scalar. */
function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') deepest = Math.max(deepest, ++depth);
    else if (c === ']' || c === '}') depth -= 1;
  }
  return deepest;
}

const formBody = (pairs: readonly (readonly [string, string])[]): string => pairs.map(([name, value]) => `${percentEncode(name)}=${percentEncode(value)}`).join('&');

// ---------------------------------------------------------------------------------------
// 1. authorization_details validator (pure)

/** The unit tests' clock: expires_at offsets are resolved against it. */
const VALIDATOR_NOW = new Date('2030-06-01T12:00:00Z');

/** Pure-only mutations: numbers JSON cannot carry. */
const nonFinite = fc.tuple(detailCase(UNIT_CURRENCIES), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY))
  .map(([c, value]): DetailCase => ({ detail: c.detail !== null && typeof c.detail === 'object' && !Array.isArray(c.detail) ? objectOf([...Object.entries(c.detail), ['x_number', value]]) : [c.detail, value], expect: 'invalid', mutation: `non-finite ${value}` }));

export const authorizationDetailsTarget: FuzzTarget<AuthorizationDetailsValidator, DetailCase> = {
  name: 'details',
  title: 'authorization_details validator (RFC 9396 types)',
  kind: 'pure',
  arbitrary: fc.oneof({ weight: 20, arbitrary: detailCase(UNIT_CURRENCIES) }, { weight: 1, arbitrary: nonFinite }),
  regressions: [
    // a type named like an Object.prototype member was looked up as a validator
    { detail: { type: 'toString', instructedAmount: { currency: 'EUR', amount: '1.00' }, creditorName: 'Shop', creditorAccount: { iban: 'DE89370400440532013000' } }, expect: 'invalid', mutation: 'type toString' },
    { detail: { type: 'constructor', actions: ['list_accounts'] }, expect: 'invalid', mutation: 'type constructor' },
    { detail: { type: 'hasOwnProperty' }, expect: 'invalid', mutation: 'type hasOwnProperty' },
  ],
  async setup() {
    return new AuthorizationDetailsValidator({ currencies: UNIT_CURRENCIES, maxAmount: MAX_AMOUNT });
  },
  async property(validator, input) {
    const detail = materialise(input.detail, VALIDATOR_NOW);
    const problems: string[] = [];
    let result: unknown;
    let error: unknown;
    try {
      result = validator.validate(detail, VALIDATOR_NOW);
    } catch (caught) {
      error = caught;
    }
    if (error !== undefined) {
      if (!(error instanceof InvalidDetailsError)) {
        problems.push(`threw ${(error as Error)?.name ?? typeof error} instead of InvalidDetailsError: ${String((error as Error)?.message ?? error).slice(0, 200)}`);
      } else {
        expectThat(problems, error.message.length > 0 && error.message.length <= 300, `error message empty or long (${error.message.length})`);
        expectThat(problems, !/[\u0000-\u001f]/.test(error.message) && error.message.isWellFormed(), `error message carries control characters: ${JSON.stringify(error.message)}`);
      }
      if (input.expect === 'valid') problems.push(`rejected a valid detail (${input.mutation}): ${(error as Error).message}`);
      return { status: 0, problems, accepted: false };
    }
    if (input.expect === 'invalid') problems.push(`accepted an invalid detail (${input.mutation})`);
    // Idempotent: what the validator returns validates again, to itself.
    try {
      const again = validator.validate(result, VALIDATOR_NOW);
      expectThat(problems, isDeepStrictEqual(again, result), 'validating the validated detail changed it');
    } catch (caught) {
      problems.push(`the validated detail no longer validates: ${(caught as Error).message}`);
    }
    const iban = (result as { creditorAccount?: { iban?: unknown } }).creditorAccount?.iban;
    if (iban !== undefined) expectThat(problems, typeof iban === 'string' && /^[A-Z0-9]+$/.test(iban), `creditor IBAN not normalised: ${String(iban)}`);
    return { status: 0, problems, accepted: true };
  },
};

// ---------------------------------------------------------------------------------------
// Clients for the OAuth targets

async function signingKey(kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { kid, alg: 'ES256', privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

const FUZZ_SCOPE = 'openid offline_access accounts payments';

async function fuzzClient(app: TestApp, name: string): Promise<CraftedClient> {
  const key = await signingKey('fuzz-key-1');
  const created = await app.container.clients.createClient({
    client_name: name,
    redirect_uris: [REDIRECT_URI],
    jwks: { keys: [key.publicJwk] },
    scope: FUZZ_SCOPE,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  });
  return { clientId: created.client_id, key, rsaKey: undefined };
}

/** The client-authentication members of a form, correct or broken as `mode` says. */
async function clientAuth(app: TestApp, client: CraftedClient, other: CraftedClient, mode: ClientAuthMode, endpoint: string): Promise<[string, string][]> {
  const now = epoch();
  const claims = { iss: client.clientId, sub: client.clientId, aud: app.url, jti: randomUUID(), iat: now, exp: now + 60 };
  const sign = (payload: Record<string, unknown>) => new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: client.key.kid }).sign(client.key.privateKey);
  const withAssertion = (assertion: string, clientId: string | undefined = client.clientId): [string, string][] => [
    ...(clientId === undefined ? [] : [['client_id', clientId] as [string, string]]),
    ['client_assertion_type', CLIENT_ASSERTION_TYPE],
    ['client_assertion', assertion],
  ];
  switch (mode) {
    case 'valid': return withAssertion(await sign(claims));
    case 'missing': return [['client_id', client.clientId]];
    case 'garbage': return withAssertion('eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJl');
    case 'wrong-aud': return withAssertion(await sign({ ...claims, aud: `${app.url}${endpoint}x` }));
    case 'expired': return withAssertion(await sign({ ...claims, iat: now - 600, exp: now - 300 }));
    case 'other-client-id': return withAssertion(await sign(claims), other.clientId);
    case 'alg-none': return withAssertion(new UnsecuredJWT(claims).encode());
    case 'no-client-id': return withAssertion(await sign(claims), undefined);
  }
}

async function dpopHeader(app: TestApp, keys: KeyPair, mode: DpopMode, path: string, accessToken?: string): Promise<Record<string, string>> {
  const htu = `${app.url}${path}`;
  const options = accessToken === undefined ? {} : { accessToken };
  switch (mode) {
    case 'valid': return { dpop: await dpopProof(keys, { htu, ...options }) };
    case 'missing': return {};
    case 'garbage': return { dpop: 'not.a.proof' };
    case 'wrong-htu': return { dpop: await dpopProof(keys, { htu: `${htu}/other`, ...options }) };
    case 'wrong-htm': return { dpop: await dpopProof(keys, { htu, htm: 'GET', ...options }) };
    case 'old': return { dpop: await dpopProof(keys, { htu, iat: epoch() - 3600, ...options }) };
    case 'two': return { dpop: `${await dpopProof(keys, { htu })}, ${await dpopProof(keys, { htu })}` };
  }
}

/** A checked OAuth endpoint answer: `ok` statuses with their own check, else an RFC 6749 error. */
function oauthAnswer(request: Sent, received: Received, okStatus: number, checkOk: (body: Record<string, unknown>) => string[], errorCodes?: readonly string[]): string[] {
  const problems = baseProblems(request, received);
  if (received.status === okStatus) {
    const body = received.json;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) problems.push(`success body is not a JSON object: ${received.text.slice(0, 200)}`);
    else problems.push(...checkOk(body as Record<string, unknown>));
  } else if ([400, 401, 413].includes(received.status)) {
    problems.push(...oauthErrorProblems(received, errorCodes, STRICT.errorDescriptionCharset));
  } else {
    problems.push(`unexpected status ${received.status}: ${received.text.slice(0, 200)}`);
  }
  return problems;
}

const CLIENT_AUTH_ERRORS = ['invalid_client', 'invalid_request'];

/** A form body over oidc-provider's 56 KiB limit is refused as a whole (413) before anything in it is judged. */
const FORM_LIMIT = 56 * 1024;
const oversized = (request: Sent): boolean => Buffer.byteLength(request.body ?? '') > FORM_LIMIT;

// ---------------------------------------------------------------------------------------
// 2. PAR (POST /request)

const PAR_PARAMS = [
  'response_type', 'redirect_uri', 'scope', 'code_challenge', 'code_challenge_method', 'state', 'nonce', 'prompt', 'acr_values', 'claims',
  'authorization_details', 'max_age', 'login_hint', 'ui_locales', 'response_mode', 'resource', 'request', 'request_uri', 'client_id',
  'dpop_jkt', 'id_token_hint', 'claims_locales', 'registration',
] as const;

const scopeValue = fc.subarray(['openid', 'offline_access', 'accounts', 'payments', 'profile', 'email', 'grant_management_query', 'admin', 'openid\u0000'], { minLength: 0 }).map((s) => s.join(' '));
const PAR_PLAUSIBLE: Record<string, fc.Arbitrary<string>> = {
  response_type: fc.constantFrom('code', 'token', 'code id_token', 'none', 'id_token', ''),
  redirect_uri: fc.constantFrom(REDIRECT_URI, 'https://tpp.example/other', 'https://evil.example/callback', `${REDIRECT_URI}?x=1`, 'http://tpp.example/callback', REDIRECT_URI.toUpperCase()),
  scope: scopeValue,
  code_challenge: fc.oneof(fc.constant(pkcePair().challenge), fc.string({ unit: 'grapheme-ascii', minLength: 0, maxLength: 130 })),
  code_challenge_method: fc.constantFrom('S256', 'plain', 's256', ''),
  prompt: fc.constantFrom('consent', 'login', 'none', 'select_account', 'login consent', 'create'),
  acr_values: fc.constantFrom('urn:openbanking:psd2:sca', 'urn:openbanking:psd2:ca', 'urn:openbanking:psd2:ca urn:openbanking:psd2:sca', 'urn:other'),
  claims: fc.oneof(
    fc.constantFrom('{"id_token":{"acr":{"essential":true,"value":"urn:openbanking:psd2:sca"}}}', '{"userinfo":{"acr":{"essential":true,"values":["x"]}}}', '{"id_token":{"acr":null}}', '{', '[]', 'null'),
    jsonValue.map((value) => JSON.stringify(value) ?? 'null'),
    fc.constant({ id_token: { acr: { essential: true, values: deepValue } } }).map((v) => JSON.stringify(v)),
  ),
  max_age: numberLike(),
  response_mode: fc.constantFrom('query', 'jwt', 'query.jwt', 'fragment', 'form_post'),
  resource: fc.constantFrom('urn:portcullis:bank-api', 'https://evil.example/', 'urn:other', ''),
  request: fc.constantFrom('eyJhbGciOiJub25lIn0.eyJzdGF0ZSI6IngifQ.', 'a.b.c', 'not-a-jwt'),
  request_uri: fc.constantFrom('urn:ietf:params:oauth:request_uri:abc', 'https://evil.example/request'),
  dpop_jkt: fc.constantFrom('0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I', '', 'x'),
};

function numberLike(): fc.Arbitrary<string> {
  return fc.oneof(fc.integer().map(String), fc.constantFrom('NaN', '-1', '1e309', '0x10', '', '300', '9007199254740993'));
}

export interface ParCase {
  readonly details: DetailsParam;
  readonly ops: ParamOp[];
  readonly auth: ClientAuthMode;
}

interface OAuthState {
  readonly env: FuzzEnv;
  readonly client: CraftedClient;
  readonly other: CraftedClient;
}

const PKCE = pkcePair();

export const parTarget: FuzzTarget<OAuthState, ParCase> = {
  name: 'par',
  title: 'PAR parameters (POST /request)',
  kind: 'http',
  arbitrary: fc.record({
    details: detailsParam,
    ops: fc.oneof({ weight: 1, arbitrary: fc.constant<ParamOp[]>([]) }, { weight: 2, arbitrary: paramOps(PAR_PARAMS, PAR_PLAUSIBLE) }),
    auth: clientAuthMode,
  }),
  regressions: [
    // error_description carried `"` (RFC 6749 §5.2 allows %x20-21 / %x23-5B / %x5D-7E only)
    { details: { kind: 'list', cases: [{ detail: objectOf([['type', 'account_information'], ['actions', ['list_accounts']], ['__proto__', {}]]), expect: 'invalid', mutation: 'member __proto__' }] }, ops: [], auth: 'valid' },
    { details: { kind: 'list', cases: [{ detail: { type: 'payment_initiation', instructedAmount: { currency: 'eur', amount: '1.00' }, creditorName: 'Shop', creditorAccount: { iban: 'DE89370400440532013000' } }, expect: 'invalid', mutation: 'currency eur' }] }, ops: [], auth: 'valid' },
    // 500: dpop_jkt is stored as is in the pushed request's jsonb payload, which refuses \u0000
    { details: { kind: 'none' }, ops: [{ op: 'set', name: 'dpop_jkt', value: 'a\u0000b' }], auth: 'valid' },
    // 201: NUL in a parameter oidc-provider keeps inside the request object (DESIGN §4 wants 400)
    { details: { kind: 'none' }, ops: [{ op: 'set', name: 'state', value: 'a\u0000b' }], auth: 'valid' },
  ],
  async setup(env) {
    const { app } = requireEnv(env);
    return { env: requireEnv(env), client: await fuzzClient(app, 'Fuzz PAR TPP'), other: await fuzzClient(app, 'Fuzz other TPP') };
  },
  async property({ env, client, other }, input) {
    const { app } = env;
    const details = detailsText(input.details, new Date());
    const base: Record<string, string> = {
      response_type: 'code', redirect_uri: REDIRECT_URI, scope: FUZZ_SCOPE, code_challenge: PKCE.challenge, code_challenge_method: 'S256',
      state: 'fuzz-state', prompt: 'consent', ...(details === undefined ? {} : { authorization_details: details }),
    };
    const pairs = [...await clientAuth(app, client, other, input.auth, '/request'), ...applyOps(base, input.ops)];
    const request: Sent = {
      method: 'POST', url: `${app.url}/request`, headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: formBody(pairs), echoes: stringsIn(pairs),
    };
    const received = await send(request);
    const problems = oauthAnswer(request, received, 201, (body) => {
      const found: string[] = [];
      expectThat(found, typeof body.request_uri === 'string' && /^urn:ietf:params:oauth:request_uri:[A-Za-z0-9_-]+$/.test(body.request_uri), `no request_uri: ${received.text.slice(0, 200)}`);
      expectThat(found, typeof body.expires_in === 'number' && body.expires_in > 0 && body.expires_in <= 60, `expires_in ${String(body.expires_in)}`);
      return found;
    });
    // DESIGN §4 strict input: NUL and malformed Unicode are refused with 400.
    if (STRICT.nulAndMalformedUnicodeRefused && unstorable(pairs)) expectThat(problems, received.status >= 400, `strict input: a parameter with NUL or malformed UTF-8 was accepted (${received.status})`);
    // The model: a wrong client never pushes; with nothing else changed, the details decide.
    if (input.auth !== 'valid' && input.auth !== 'no-client-id') {
      expectThat(problems, received.status !== 201, `accepted with client authentication "${input.auth}"`);
      if (received.status === 400 || received.status === 401) expectThat(problems, CLIENT_AUTH_ERRORS.includes(String((received.json as { error?: unknown })?.error)), `client authentication "${input.auth}" answered ${String((received.json as { error?: unknown })?.error)}`);
    } else if (input.ops.length === 0) {
      const expected = detailsExpectation(input.details);
      if (expected === 'valid') expectThat(problems, received.status === 201, `valid request refused: ${received.status} ${received.text.slice(0, 300)}`);
      if (expected === 'invalid') {
        // a body oidc-provider cannot parse (malformed UTF-8 from a lone surrogate, too large) is an invalid_request first
        // (and NUL anywhere: DESIGN §4 refuses it with 400 before any other check)
        // (and NUL anywhere or JSON nested deeper than 32: refused with invalid_request before any other check)
        const parsable = details === undefined || (details.isWellFormed() && !/\u0000|\\u0000|\\u[dD][89a-fA-F]/.test(details) && jsonDepth(details) <= 32 && request.body!.length < 50_000);
        const codes = parsable ? ['invalid_authorization_details'] : ['invalid_authorization_details', 'invalid_request'];
        expectThat(problems, (received.status === 400 || (!parsable && received.status === 413)) && codes.includes(String((received.json as { error?: unknown })?.error)), `invalid authorization_details answered ${received.status} ${received.text.slice(0, 300)}`);
      }
    }
    return outcome(received, problems);
  },
};

// ---------------------------------------------------------------------------------------
// 3. Token endpoint (POST /token)

const TOKEN_PARAMS = [
  'grant_type', 'scope', 'resource', 'authorization_details', 'code', 'code_verifier', 'redirect_uri', 'refresh_token', 'client_id',
  'audience', 'username', 'password', 'assertion', 'device_code', 'subject_token', 'requested_token_type',
] as const;

/** `$…` placeholders stand for values only the set-up knows (a live refresh token, a used code). */
const TOKEN_PLAUSIBLE: Record<string, fc.Arbitrary<string>> = {
  grant_type: fc.constantFrom('client_credentials', 'refresh_token', 'authorization_code', 'password', 'implicit', 'urn:ietf:params:oauth:grant-type:device_code',
    'urn:ietf:params:oauth:grant-type:token-exchange', 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'CLIENT_CREDENTIALS'),
  scope: scopeValue,
  resource: fc.constantFrom('urn:portcullis:bank-api', 'https://evil.example/', 'urn:other', '', 'urn:portcullis:bank-api#x'),
  code: fc.constantFrom('$USED_CODE', '$REFRESH_TOKEN', 'A'.repeat(43), ''),
  code_verifier: fc.constantFrom('$VERIFIER', 'short', 'v'.repeat(129), ''),
  redirect_uri: fc.constantFrom(REDIRECT_URI, 'https://evil.example/callback', ''),
  refresh_token: fc.constantFrom('$REFRESH_TOKEN', '$USED_CODE', 'B'.repeat(43), ''),
  client_id: fc.constantFrom('$OTHER_CLIENT', '$CLIENT', ''),
};

export interface TokenCase {
  readonly grant: 'client_credentials' | 'refresh_token' | 'authorization_code' | 'other';
  readonly details: DetailsParam;
  readonly ops: ParamOp[];
  readonly auth: ClientAuthMode;
  readonly dpop: DpopMode;
}

interface TokenState extends OAuthState {
  readonly dpopKeys: KeyPair;
  readonly refreshToken: string;
  readonly usedCode: string;
  readonly verifier: string;
}

export const tokenTarget: FuzzTarget<TokenState, TokenCase> = {
  name: 'token',
  title: 'token endpoint parameters (POST /token)',
  kind: 'http',
  arbitrary: fc.record({
    grant: fc.oneof({ weight: 4, arbitrary: fc.constant('client_credentials' as const) }, { weight: 3, arbitrary: fc.constant('refresh_token' as const) }, { weight: 1, arbitrary: fc.constantFrom('authorization_code' as const, 'other' as const) }),
    details: fc.oneof({ weight: 3, arbitrary: fc.constant<DetailsParam>({ kind: 'none' }) }, { weight: 1, arbitrary: detailsParam }),
    ops: fc.oneof({ weight: 1, arbitrary: fc.constant<ParamOp[]>([]) }, { weight: 2, arbitrary: paramOps(TOKEN_PARAMS, TOKEN_PLAUSIBLE) }),
    auth: clientAuthMode,
    dpop: dpopMode,
  }),
  regressions: [
    // 200: NUL in a parameter the token endpoint ignores (DESIGN §4 wants 400)
    { grant: 'client_credentials', details: { kind: 'none' }, ops: [{ op: 'set', name: 'x', value: '\u0000' }], auth: 'valid', dpop: 'valid' },
    { grant: 'client_credentials', details: { kind: 'list', cases: [{ detail: objectOf([['type', 'account_information'], ['actions', ['list_accounts']], ['prototype', 1]]), expect: 'invalid', mutation: 'member prototype' }] }, ops: [], auth: 'valid', dpop: 'valid' },
  ],
  async setup(env) {
    const { app } = requireEnv(env);
    const client = await fuzzClient(app, 'Fuzz token TPP');
    const other = await fuzzClient(app, 'Fuzz other token TPP');
    const customer = await createCustomer(app, `fuzz-token-${randomUUID().slice(0, 8)}`, 'fuzzing token customer password');
    const dpopKeys = await dpopKeyPair();
    // Two consents: replaying the first one's (redeemed) code revokes that grant (RFC 6749
    // §4.1.2), so the live refresh token comes from the second.
    const used = await authorizeCode(app, client, customer, { scope: 'openid offline_access accounts' });
    const first = await redeemCode(app, client, used, dpopKeys);
    const live = await authorizeCode(app, client, customer, { scope: 'openid offline_access accounts' });
    const redeemed = await redeemCode(app, client, live, dpopKeys);
    if (first.status !== 200 || redeemed.status !== 200 || typeof redeemed.body.refresh_token !== 'string') throw new Error(`token set-up: ${redeemed.status} ${redeemed.text}`);
    return { env: requireEnv(env), client, other, dpopKeys, refreshToken: redeemed.body.refresh_token, usedCode: used.code, verifier: used.codeVerifier };
  },
  async property(state, input) {
    const { env: { app }, client, other } = state;
    const substitute = (value: string) => value
      .replace('$REFRESH_TOKEN', state.refreshToken).replace('$USED_CODE', state.usedCode).replace('$VERIFIER', state.verifier)
      .replace('$OTHER_CLIENT', other.clientId).replace('$CLIENT', client.clientId);
    const base: Record<string, string> = input.grant === 'client_credentials' ? { grant_type: 'client_credentials', scope: 'accounts' }
      : input.grant === 'refresh_token' ? { grant_type: 'refresh_token', refresh_token: state.refreshToken }
        : input.grant === 'authorization_code' ? { grant_type: 'authorization_code', code: state.usedCode, code_verifier: state.verifier, redirect_uri: REDIRECT_URI }
          : { grant_type: 'password', username: 'alice', password: 'secret' };
    const details = detailsText(input.details, new Date());
    if (details !== undefined) base.authorization_details = details;
    const pairs = [...await clientAuth(app, client, other, input.auth, '/token'), ...applyOps(base, input.ops).map(([n, v]): [string, string] => [n, substitute(v)])];
    const request: Sent = {
      method: 'POST', url: `${app.url}/token`,
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...await dpopHeader(app, state.dpopKeys, input.dpop, '/token') },
      body: formBody(pairs), echoes: stringsIn(pairs),
    };
    const received = await send(request);
    const problems = oauthAnswer(request, received, 200, (body) => {
      const found: string[] = [];
      expectThat(found, typeof body.access_token === 'string' && body.access_token.length >= 32, 'no access_token');
      expectThat(found, body.token_type === 'DPoP', `token_type ${String(body.token_type)} (every TPP token is DPoP-bound)`);
      expectThat(found, typeof body.expires_in === 'number' && body.expires_in > 0, `expires_in ${String(body.expires_in)}`);
      return found;
    });
    const error = String((received.json as { error?: unknown } | undefined)?.error);
    if (STRICT.nulAndMalformedUnicodeRefused && unstorable(pairs)) expectThat(problems, received.status >= 400, `strict input: a parameter with NUL or malformed UTF-8 was accepted (${received.status})`);
    if (input.auth !== 'valid' && input.auth !== 'no-client-id') {
      expectThat(problems, received.status !== 200, `token issued with client authentication "${input.auth}"`);
      if (received.status === 400 || received.status === 401) expectThat(problems, CLIENT_AUTH_ERRORS.includes(error), `client authentication "${input.auth}" answered ${error}`);
    } else if (input.dpop !== 'valid') {
      expectThat(problems, received.status !== 200, `token issued with DPoP "${input.dpop}"`);
    } else if (input.ops.length === 0 && input.details.kind === 'none') {
      if (input.grant === 'authorization_code') expectThat(problems, received.status === 400 && error === 'invalid_grant', `a redeemed code answered ${received.status} ${error}`);
      else if (input.grant === 'other') expectThat(problems, received.status === 400 && error === 'unsupported_grant_type', `grant_type=password answered ${received.status} ${error}`);
      else expectThat(problems, received.status === 200, `valid ${input.grant} refused: ${received.status} ${received.text.slice(0, 300)}`);
    } else if (input.ops.length === 0 && (input.grant === 'client_credentials' || input.grant === 'refresh_token') && detailsExpectation(input.details) === 'invalid') {
      expectThat(problems, (received.status === 400 || (oversized(request) && received.status === 413)) && ['invalid_authorization_details', 'invalid_request'].includes(error), `invalid authorization_details answered ${received.status} ${error}`);
    }
    return outcome(received, problems);
  },
};

// ---------------------------------------------------------------------------------------
// 4. Dynamic client registration (RFC 7591, POST /reg with a software statement)

const ACCEPTED_METADATA = [
  'redirect_uris', 'token_endpoint_auth_method', 'token_endpoint_auth_signing_alg', 'jwks_uri',
  'tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email',
  'dpop_bound_access_tokens', 'tls_client_certificate_bound_access_tokens', 'grant_types', 'response_types', 'scope',
  'id_token_signed_response_alg', 'authorization_signed_response_alg', 'request_object_signing_alg', 'require_signed_request_object',
  'contacts', 'logo_uri', 'client_uri', 'policy_uri', 'tos_uri',
] as const;
const SSA_REDIRECTS = ['https://tpp.example/callback', 'https://tpp.example/other'];
const REGISTRATION_ERRORS = ['invalid_redirect_uri', 'invalid_client_metadata', 'invalid_software_statement', 'unapproved_software_statement'];
const ALGS = fc.constantFrom('PS256', 'ES256', 'EdDSA', 'RS256', 'HS256', 'none', 'ps256');
const uri = fc.oneof(fc.webUrl({ size: 'small' }), fc.constantFrom('https://tpp.example/logo.png', 'http://tpp.example/', 'javascript:alert(1)', 'data:text/html,x', 'https://'));

/** Plausible values of each accepted member ($JWKS_URI: the SSA's software_jwks_uri). */
const METADATA_PLAUSIBLE: Record<(typeof ACCEPTED_METADATA)[number], fc.Arbitrary<unknown>> = {
  redirect_uris: fc.oneof(fc.subarray(SSA_REDIRECTS, { minLength: 1 }), fc.constant(['https://evil.example/cb']), fc.constant([]), fc.constant(['http://127.0.0.1/cb']), fc.constant(['https://tpp.example/callback#frag'])),
  token_endpoint_auth_method: fc.constantFrom('private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'client_secret_basic', 'client_secret_post', 'none'),
  token_endpoint_auth_signing_alg: ALGS,
  jwks_uri: fc.constantFrom('$JWKS_URI', 'https://evil.example/jwks', 'http://127.0.0.1:1/jwks'),
  tls_client_auth_subject_dn: fc.constantFrom('CN=tpp.example,O=Budget Buddy,C=GB', '', 'CN=\u0000'),
  tls_client_auth_san_dns: fc.constantFrom('tpp.example', ''),
  tls_client_auth_san_uri: uri,
  tls_client_auth_san_ip: fc.constantFrom('192.0.2.1', '::1', 'not-an-ip'),
  tls_client_auth_san_email: fc.constantFrom('ops@tpp.example', 'not-an-email'),
  dpop_bound_access_tokens: fc.constantFrom(true, false, 'true', 1),
  tls_client_certificate_bound_access_tokens: fc.constantFrom(true, false, 'false'),
  grant_types: fc.subarray(['authorization_code', 'refresh_token', 'client_credentials', 'implicit', 'password', 'urn:ietf:params:oauth:grant-type:device_code']),
  response_types: fc.constantFrom(['code'], ['code id_token'], ['token'], [], ['none']),
  scope: scopeValue,
  id_token_signed_response_alg: ALGS,
  authorization_signed_response_alg: ALGS,
  request_object_signing_alg: ALGS,
  require_signed_request_object: fc.constantFrom(true, false, 'yes'),
  contacts: fc.array(fc.oneof(fc.emailAddress(), hostileString), { maxLength: 3 }),
  logo_uri: uri,
  client_uri: uri,
  policy_uri: uri,
  tos_uri: uri,
};

/** Members nobody accepts: ignored (RFC 7591 §2), never stored, never answered. */
const UNKNOWN_MEMBER = fc.oneof(
  { weight: 4, arbitrary: plainString.map((s) => `x-fuzz-${s}`) },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'software_id', 'client_name', 'client_id', 'client_secret', 'require_pushed_authorization_requests', 'authorization_details_types', 'portcullis_profile', 'portcullis_kind', 'software_roles', 'org_id', 'registration_access_token', 'client_id_issued_at') },
);

type RawMutation = 'none' | 'content-type' | 'truncate' | 'array' | 'raw-control' | 'bom' | 'invalid-utf8' | 'deep' | 'huge';

export interface RegistrationCase {
  /** body members other than software_statement, in order (repeats allowed: the last wins) */
  readonly members: [string, unknown][];
  /** where the statement goes: as a member (the usual), missing, not a string, or a wrong one first */
  readonly statement: 'member' | 'missing' | 'non-string' | 'garbage' | 'twice';
  /** SSA claims overridden (software_id stays unique unless overridden) */
  readonly ssaClaims: [string, unknown][];
  readonly raw: RawMutation;
  readonly rawArg: number;
}

const SSA_CLAIM_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  software_client_name: hostileString,
  org_name: hostileString,
  org_id: hostileString,
  software_id: hostileString,
  software_redirect_uris: fc.oneof(fc.array(fc.oneof(uri, hostileString), { maxLength: 3 }), jsonValue),
  software_roles: fc.oneof(fc.subarray(['AISP', 'PISP', 'CBPII', 'aisp']), jsonValue),
};

export const registrationTarget: FuzzTarget<{ env: FuzzEnv; counter: { n: number } }, RegistrationCase> = {
  name: 'registration',
  title: 'RFC 7591 registration metadata around a valid SSA (POST /reg)',
  kind: 'http',
  arbitrary: fc.record({
    members: fc.oneof(
      { weight: 1, arbitrary: fc.constant<[string, unknown][]>([]) },
      {
        weight: 6,
        arbitrary: fc.array(fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom(...ACCEPTED_METADATA).chain((name) => fc.oneof({ weight: 3, arbitrary: METADATA_PLAUSIBLE[name] }, { weight: 1, arbitrary: jsonValue }).map((value): [string, unknown] => [name, value])) },
          { weight: 3, arbitrary: fc.tuple(UNKNOWN_MEMBER, jsonValue) },
          { weight: 1, arbitrary: fc.tuple(fc.constant('jwks'), fc.oneof(jsonValue, fc.constant({ keys: [] }))) },
          { weight: 1, arbitrary: fc.tuple(memberName, jsonValue) },
        ), { maxLength: 6 }),
      },
    ),
    statement: fc.oneof({ weight: 12, arbitrary: fc.constant('member' as const) }, { weight: 1, arbitrary: fc.constantFrom('missing' as const, 'non-string' as const, 'garbage' as const, 'twice' as const) }),
    ssaClaims: fc.oneof({ weight: 8, arbitrary: fc.constant<[string, unknown][]>([]) }, { weight: 1, arbitrary: fc.constantFrom(...Object.keys(SSA_CLAIM_VALUES)).chain((name) => SSA_CLAIM_VALUES[name]!.map((value): [string, unknown][] => [[name, value]])) }),
    raw: fc.oneof({ weight: 12, arbitrary: fc.constant('none' as const) }, { weight: 1, arbitrary: fc.constantFrom<RawMutation>('content-type', 'truncate', 'array', 'raw-control', 'bom', 'invalid-utf8', 'deep', 'huge') }),
    rawArg: fc.nat({ max: 1_000_000 }),
  }),
  regressions: [
    // error_description: `"` from client-policy.ts, non-ASCII echoed from the request
    { members: [['response_types', 'code']], statement: 'member', ssaClaims: [], raw: 'none', rawArg: 0 },
    { members: [['redirect_uris', ['j\u{13020}']]], statement: 'member', ssaClaims: [], raw: 'none', rawArg: 0 },
    { members: [['scope', '\ufeff']], statement: 'member', ssaClaims: [], raw: 'none', rawArg: 0 },
    // 500: a software_id with NUL (signed by the directory) reaches a SQL parameter (findBySoftwareId)
    { members: [], statement: 'member', ssaClaims: [['software_id', 'a\u0000b']], raw: 'none', rawArg: 0 },
    // 500: an object where a string belongs (oidc-provider's isHmac ran a RegExp on it) — seed 548194346, case 588
    { members: [['token_endpoint_auth_signing_alg', { toString: 0 }]], statement: 'member', ssaClaims: [], raw: 'none', rawArg: 0 },
    // null redirect_uris was taken as absent (the statement's were used) — case 7859
    { members: [['redirect_uris', null], ['jwks_uri', 'http://127.0.0.1:1/jwks']], statement: 'member', ssaClaims: [], raw: 'none', rawArg: 0 },
  ],
  async setup(env) {
    return { env: requireEnv(env), counter: { n: 0 } };
  },
  async property({ env, counter }, input) {
    const { app } = env;
    counter.n += 1;
    const claims = objectOf(Object.entries({ ...ssaClaims(env.tppHost.url), software_id: `sw-fuzz-${counter.n}-${randomUUID().slice(0, 8)}` }));
    for (const [name, value] of input.ssaClaims) claims[name] = value;
    const statement = await signSsa(env.directoryKey, claims);
    const substitute = (value: unknown): unknown => (value === '$JWKS_URI' ? env.tppHost.url : value);
    const entries: [string, unknown][] = [
      ...(input.statement === 'member' || input.statement === 'twice' ? [['software_statement', input.statement === 'twice' ? 'eyJhbGciOiJFUzI1NiJ9.e30.x' : statement] as [string, unknown]] : []),
      ...(input.statement === 'non-string' ? [['software_statement', { jws: statement }] as [string, unknown]] : []),
      ...(input.statement === 'garbage' ? [['software_statement', 'eyJhbGciOiJFUzI1NiJ9.e30.x'] as [string, unknown]] : []),
      ...input.members.map(([name, value]): [string, unknown] => [name, substitute(value)]),
      ...(input.statement === 'twice' ? [['software_statement', statement] as [string, unknown]] : []),
    ];
    let text = `{${entries.map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value) ?? 'null'}`).join(',')}}`;
    let contentType = 'application/json';
    let body: string | Uint8Array = text;
    switch (input.raw) {
      case 'content-type': contentType = ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx', 'multipart/form-data; boundary=x', ''][input.rawArg % 5]!; break;
      case 'truncate': text = text.slice(0, input.rawArg % Math.max(1, text.length)); body = text; break;
      case 'array': text = `[${text}]`; body = text; break;
      case 'raw-control': { const at = input.rawArg % text.length; text = `${text.slice(0, at)}\u0000${text.slice(at)}`; body = text; break; }
      case 'bom': text = `\ufeff${text}`; body = text; break;
      case 'invalid-utf8': { const bytes = Buffer.from(text); const at = input.rawArg % bytes.length; body = Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff, 0xc0, 0x80]), bytes.subarray(at)]); break; }
      case 'deep': text = `{"software_statement":${JSON.stringify(statement)},"x":${'['.repeat(30 + (input.rawArg % 5000))}${']'.repeat(30 + (input.rawArg % 5000))}}`; body = text; break;
      case 'huge': text = `{"software_statement":${JSON.stringify(statement)},"x":"${'A'.repeat(60_000 + (input.rawArg % 20_000))}"}`; body = text; break;
      case 'none': break;
    }
    const request: Sent = {
      method: 'POST', url: `${app.url}/reg`, headers: { ...(contentType === '' ? {} : { 'content-type': contentType }), accept: 'application/json' },
      body, echoes: [...stringsIn(entries), ...stringsIn([...claims ? Object.entries(claims) : []])],
    };
    const received = await send(request);
    const problems = baseProblems(request, received);
    const json = received.json as Record<string, unknown> | undefined;
    if (received.status === 201) {
      expectThat(problems, typeof json?.client_id === 'string' && typeof json.registration_access_token === 'string', `201 without client_id / registration_access_token: ${received.text.slice(0, 200)}`);
      const echoedUnknown = Object.keys(json ?? {}).filter((name) => name.startsWith('x-fuzz-'));
      expectThat(problems, echoedUnknown.length === 0, `unknown members came back: ${echoedUnknown.join(', ')}`);
    } else if (received.status === 400 || received.status === 413) {
      problems.push(...oauthErrorProblems(received, REGISTRATION_ERRORS, STRICT.errorDescriptionCharset));
    } else {
      problems.push(`unexpected status ${received.status}: ${received.text.slice(0, 200)}`);
    }
    // The model, for well-formed bodies with a good statement (what registrationMetadata checks first).
    if (input.raw === 'none' && input.ssaClaims.length === 0) {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      const expected = Buffer.byteLength(text) > 64 * 1024 ? 'invalid_client_metadata' : registrationModel(parsed, statement, env.tppHost.url);
      if (expected === 'created') expectThat(problems, received.status === 201, `expected 201, got ${received.status} ${received.text.slice(0, 300)}`);
      else if (expected === 'rejected') expectThat(problems, received.status === 400, `NUL or malformed Unicode accepted: ${received.status} ${received.text.slice(0, 300)}`);
      else if (expected !== 'any') expectThat(problems, received.status === 400 && json?.error === expected, `expected ${expected}, got ${received.status} ${received.text.slice(0, 300)}`);
    } else if (input.raw === 'none' && !stringsIn(input.ssaClaims.filter(([name]) => name !== 'org_name')).every((text) => text.isWellFormed() && !text.includes('\u0000'))) {
      // (org_name is neither stored nor shown: it may hold anything the directory signed)
      expectThat(problems, received.status === 400, `a software statement with NUL or malformed Unicode was accepted: ${received.status}`);
    } else if (input.raw !== 'none' && input.raw !== 'bom' && input.raw !== 'invalid-utf8' && !(input.raw === 'deep' && input.rawArg % 5000 < 0) && input.raw !== 'huge') {
      // wrong media type, not JSON, not an object, raw NUL, too deep: refused before anything else
      if (!(input.raw === 'truncate' && (input.rawArg % Math.max(1, text.length)) === text.length)) {
        expectThat(problems, received.status === 400 && json?.error === 'invalid_client_metadata', `malformed body (${input.raw}) answered ${received.status} ${received.text.slice(0, 200)}`);
      }
    }
    return outcome(received, problems);
  },
};

function hasProtoMember(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasProtoMember);
  if (value !== null && typeof value === 'object') return Object.entries(value).some(([name, item]) => name === '__proto__' || hasProtoMember(item));
  return false;
}

/** registrationMetadata's first checks, in its order: the error it must give, 'created', or 'any'. */
export function registrationModel(body: Record<string, unknown>, statement: string, jwksUri: string): 'created' | 'any' | 'rejected' | string {
  // DESIGN §4: NUL and malformed Unicode anywhere (even in an ignored member) are a 400
  if (!stringsIn(body).every((text) => text.isWellFormed() && !text.includes('\u0000'))) return 'rejected';
  // the JSON parser refuses a __proto__ member anywhere (prototype poisoning)
  if (hasProtoMember(body)) return 'invalid_client_metadata';
  const statementValue = Object.hasOwn(body, 'software_statement') ? body.software_statement : undefined;
  if (statementValue === undefined || typeof statementValue !== 'string') return 'invalid_software_statement';
  if (statementValue !== statement) return 'any';
  if (body.jwks !== undefined) return 'invalid_client_metadata';
  const redirectUris = body.redirect_uris;
  if (redirectUris !== undefined) {
    if (!Array.isArray(redirectUris) || redirectUris.length === 0 || redirectUris.some((u) => typeof u !== 'string')) return 'invalid_redirect_uri';
    if ((redirectUris as string[]).some((u) => !SSA_REDIRECTS.includes(u))) return 'invalid_redirect_uri';
  }
  if (body.jwks_uri !== undefined && body.jwks_uri !== jwksUri) return 'invalid_client_metadata';
  const accepted = ACCEPTED_METADATA.filter((name) => body[name] !== undefined && !(name === 'redirect_uris' || (name === 'jwks_uri' && body.jwks_uri === jwksUri)));
  return accepted.length === 0 ? 'created' : 'any';
}

// ---------------------------------------------------------------------------------------
// 5. Admin API (ADMIN_PORT, /admin/v1)

type KeyMode = 'write' | 'read' | 'none' | 'garbage' | 'revoked' | 'basic';

interface AdminRoute {
  readonly method: 'GET' | 'POST';
  readonly template: string;
  readonly write: boolean;
  readonly query: readonly string[];
}

const ADMIN_ROUTES: readonly AdminRoute[] = [
  { method: 'GET', template: '/consents', write: false, query: ['user_id', 'client_id'] },
  { method: 'GET', template: '/consents/:grant', write: false, query: [] },
  { method: 'POST', template: '/consents/:grant/consume', write: true, query: [] },
  { method: 'POST', template: '/consents/:grant/revoke', write: true, query: [] },
  { method: 'GET', template: '/clients', write: false, query: ['after', 'limit'] },
  { method: 'GET', template: '/clients/:client', write: false, query: [] },
  { method: 'POST', template: '/clients/:client/disable', write: true, query: [] },
  { method: 'POST', template: '/clients/:client/enable', write: true, query: [] },
  { method: 'GET', template: '/users', write: false, query: ['after', 'limit'] },
  { method: 'GET', template: '/users/:user', write: false, query: [] },
  { method: 'POST', template: '/users/:user/unlock', write: true, query: [] },
  { method: 'POST', template: '/users/:user/reset-totp', write: true, query: [] },
  { method: 'GET', template: '/audit-events', write: false, query: ['type', 'user_id', 'client_id', 'before', 'limit'] },
  { method: 'GET', template: '/keys', write: false, query: [] },
  { method: 'GET', template: '/audit/verify', write: false, query: [] },
  { method: 'GET', template: '/openapi.json', write: false, query: [] },
];

/** A path segment: a real id ($USER, $GRANT_PAYMENT, …), a hostile string (encoded), or raw odd encodings. */
type Segment = { readonly kind: 'real'; readonly name: string } | { readonly kind: 'text'; readonly value: string } | { readonly kind: 'raw'; readonly value: string };
const segment: fc.Arbitrary<Segment> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('$USER', '$GRANT_PAYMENT', '$GRANT_ACCOUNTS', '$CLIENT', '$USER_ID').map((name): Segment => ({ kind: 'real', name })) },
  { weight: 4, arbitrary: hostileString.map((value): Segment => ({ kind: 'text', value })) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%ZZ', '%C0%AF', '%00', '%FF', '%ED%A0%80', '..', '%2e%2e', '%2F', 'a%20b', '%E2%80%AE', ';x=1', '%0d%0aX-Injected:%201').map((value): Segment => ({ kind: 'raw', value })) },
);

const ADMIN_QUERY_PLAUSIBLE: Record<string, fc.Arbitrary<string>> = {
  limit: fc.oneof(fc.integer({ min: -5, max: 300 }).map(String), numberLike(), fc.constantFrom('1', '200', '201', '0', '050', '1.5', ' 5', '5 ')),
  before: fc.oneof(fc.nat().map(String), numberLike(), fc.constantFrom('999999999999999', '9999999999999999', '-1')),
  after: fc.oneof(fc.constantFrom('$USER', '$CLIENT', 'a', 'z', 'tpp-'), hostileString),
  user_id: fc.oneof(fc.uuid().map(String), fc.constantFrom('$USER_ID', '00000000-0000-0000-0000-000000000000', '------------------------------------', 'gggggggg-0000-0000-0000-000000000000'), hostileString),
  client_id: fc.oneof(fc.constantFrom('$CLIENT'), hostileString),
  type: fc.oneof(fc.constantFrom('signin.failure', 'consent.granted', 'client.registered', '%'), hostileString),
};

export interface AdminCase {
  readonly route: number;
  readonly segment: Segment;
  readonly method: string | undefined;
  readonly query: [string, string][];
  readonly key: KeyMode;
  readonly body: { readonly contentType: string; readonly text: string } | undefined;
}

interface AdminState {
  readonly env: FuzzEnv;
  readonly keys: Record<KeyMode, string | undefined>;
  readonly real: Record<string, string>;
}

export const adminTarget: FuzzTarget<AdminState, AdminCase> = {
  name: 'admin',
  title: 'admin API paths, queries, bodies, keys (/admin/v1)',
  kind: 'http',
  arbitrary: fc.record({
    route: fc.nat({ max: ADMIN_ROUTES.length - 1 }),
    segment,
    method: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'POST', 'GET') }),
    query: fc.oneof(
      { weight: 2, arbitrary: fc.constant<[string, string][]>([]) },
      { weight: 3, arbitrary: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...Object.keys(ADMIN_QUERY_PLAUSIBLE)) }, { weight: 1, arbitrary: memberName }).chain((name) => (Object.hasOwn(ADMIN_QUERY_PLAUSIBLE, name) ? ADMIN_QUERY_PLAUSIBLE[name]! : hostileString).map((value): [string, string] => [name, value])), { maxLength: 4 }) },
    ),
    key: fc.oneof({ weight: 10, arbitrary: fc.constant('write' as const) }, { weight: 3, arbitrary: fc.constant('read' as const) }, { weight: 1, arbitrary: fc.constantFrom<KeyMode>('none', 'garbage', 'revoked', 'basic') }),
    body: fc.option(fc.record({
      contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/xml'),
      text: fc.oneof(jsonValue.map((value) => JSON.stringify(value) ?? 'null'), hostileString),
    }), { freq: 4, nil: undefined }),
  }),
  regressions: [
    // 500: user_id passes /^[0-9a-f-]{36}$/ but is no UUID (PostgreSQL: invalid input syntax for type uuid)
    { route: 0, segment: { kind: 'real', name: '$USER' }, method: undefined, query: [['user_id', '-'.repeat(36)]], key: 'write', body: undefined },
    { route: 0, segment: { kind: 'real', name: '$USER' }, method: undefined, query: [['user_id', 'a'.repeat(36)]], key: 'read', body: undefined },
  ],
  async setup(env) {
    const { app } = requireEnv(env);
    const context = { actor: 'fuzz' };
    const write = await app.container.apiKeys.create('fuzz write', ['admin:read', 'admin:write'], context);
    const read = await app.container.apiKeys.create('fuzz read', ['admin:read'], context);
    const revoked = await app.container.apiKeys.create('fuzz revoked', ['admin:read', 'admin:write'], context);
    await app.container.apiKeys.revoke(revoked.id, context);
    const user = `fuzz-admin-${randomUUID().slice(0, 8)}`;
    const customer = await createCustomer(app, user, 'fuzzing admin customer password');
    const client = await fuzzClient(app, 'Fuzz admin TPP');
    const payment = `fuzz-payment-${randomUUID()}`;
    const accounts = `fuzz-accounts-${randomUUID()}`;
    await app.container.consents.recordGranted({
      grantId: payment, clientId: client.clientId, userId: customer.id, scopes: 'openid payments', expiresAt: null,
      details: [{ type: 'payment_initiation', instructedAmount: { currency: 'EUR', amount: '10.00' }, creditorName: 'Shop', creditorAccount: { iban: 'DE89370400440532013000' } }],
    }, context);
    await app.container.consents.recordGranted({
      grantId: accounts, clientId: client.clientId, userId: customer.id, scopes: 'openid accounts', expiresAt: null,
      details: [{ type: 'account_information', actions: ['list_accounts'] }],
    }, context);
    return {
      env: requireEnv(env),
      keys: { write: write.key, read: read.key, revoked: revoked.key, none: undefined, garbage: `pcak_${'A'.repeat(43)}`, basic: undefined },
      real: { $USER: user, $USER_ID: customer.id, $GRANT_PAYMENT: payment, $GRANT_ACCOUNTS: accounts, $CLIENT: client.clientId },
    };
  },
  async property({ env, keys, real }, input) {
    const route = ADMIN_ROUTES[input.route]!;
    const seg = input.segment.kind === 'real' ? encodeURIComponent(real[input.segment.name]!) : input.segment.kind === 'text' ? percentEncode(input.segment.value) : input.segment.value;
    const path = route.template.replace(/:[a-z]+/, seg);
    const substitute = (value: string) => (Object.hasOwn(real, value) ? real[value]! : value);
    const query = input.query.map(([name, value]) => `${percentEncode(name)}=${percentEncode(substitute(value))}`).join('&');
    const method = input.method ?? route.method;
    const headers: Record<string, string> = { accept: 'application/json' };
    const key = keys[input.key];
    if (key !== undefined) headers.authorization = `Bearer ${key}`;
    if (input.key === 'basic') headers.authorization = 'Basic YWRtaW46YWRtaW4=';
    if (input.body !== undefined && method !== 'GET' && method !== 'HEAD') headers['content-type'] = input.body.contentType;
    const request: Sent = {
      method, url: `${env.adminUrl}/admin/v1${path}${query === '' ? '' : `?${query}`}`, headers,
      ...(input.body !== undefined && method !== 'GET' && method !== 'HEAD' ? { body: input.body.text } : {}),
      echoes: [...stringsIn(input), ...Object.values(real)],
    };
    const received = await send(request);
    const problems = baseProblems(request, received);
    if (refusedByNode(request, received)) return outcome(received, problems);
    const ok = received.status >= 200 && received.status < 300;
    if (method === 'HEAD' || received.status === 204) {
      expectThat(problems, received.text === '', 'HEAD/204 with a body');
    } else if (ok) {
      expectThat(problems, received.json !== null && typeof received.json === 'object' && !Array.isArray(received.json), `2xx body is not a JSON object: ${received.text.slice(0, 200)}`);
    } else {
      problems.push(...envelopeProblems(received));
    }
    // The model: authentication, then scope, then (for list routes) the limit — for requests
    // that reach the intended route with a URL the guard lets through.
    const texts = [...(route.template.includes(':') && input.segment.kind === 'text' ? [input.segment.value] : []), ...input.query.flat()];
    const reachesRoute = (input.method === undefined || input.method === route.method)
      && (!route.template.includes(':') || input.segment.kind === 'real' || (input.segment.kind === 'text' && input.segment.value !== '' && !/^\.{1,2}$/.test(input.segment.value)))
      && texts.every((text) => text.isWellFormed() && !text.includes('\u0000'));
    if (reachesRoute) {
      if (input.key === 'none' || input.key === 'garbage' || input.key === 'revoked' || input.key === 'basic') {
        if (route.template !== '/openapi.json') expectThat(problems, received.status === 401, `key "${input.key}" answered ${received.status}`);
      } else if (input.key === 'read' && route.write) {
        expectThat(problems, received.status === 403, `read key on ${route.template} answered ${received.status}`);
      } else if ((route.template === '/users' || route.template === '/clients') && input.query.length === 1 && input.query[0]![0] === 'limit') {
        const limit = input.query[0]![1];
        const valid = /^\d{1,3}$/.test(limit) && Number(limit) >= 1 && Number(limit) <= 200;
        expectThat(problems, received.status === (valid ? 200 : 400), `limit=${JSON.stringify(limit)} answered ${received.status}`);
      } else if (route.template === '/users/:user' && input.segment.kind === 'real' && input.segment.name === '$USER') {
        expectThat(problems, received.status === 200, `GET the fuzz customer answered ${received.status}`);
      }
    }
    return outcome(received, problems);
  },
};

// ---------------------------------------------------------------------------------------
// 6. The sign-in form (POST /interaction/:uid/login), on a real interaction page

type SigninUser = 'known' | 'unknown' | 'hostile';
type SigninPassword = 'right' | 'wrong' | 'hostile';

export interface SigninCase {
  readonly user: SigninUser;
  readonly username: string;
  readonly password: SigninPassword;
  readonly passwordText: string;
  /** operations on the form fields (csrf, username, password, otp, others; repeats) */
  readonly ops: ParamOp[];
  readonly csrf: 'valid' | 'missing' | 'garbage' | 'abort-form';
  readonly cookies: 'valid' | 'none' | 'csrf-only';
  readonly accept: 'html' | 'json';
  readonly raw: 'none' | 'json-body' | 'bad-encoding' | 'huge' | 'no-content-type';
}

interface SigninForm {
  readonly action: string;
  readonly csrf: string;
  readonly abortCsrf: string;
  readonly cookie: string;
  readonly csrfCookie: string;
  readonly openedAt: number;
}

interface SigninState {
  readonly env: FuzzEnv;
  readonly tpp: Tpp;
  readonly customer: Customer;
  form: SigninForm | undefined;
}

const SIGNIN_FIELDS = ['csrf', 'username', 'password', 'otp', 'decision', 'accounts'] as const;

async function openSigninForm(tpp: Tpp): Promise<SigninForm> {
  const started = await pushAuthorization(tpp);
  const browser = new FormBrowser();
  const page = requirePage(await browser.navigate(started.url.toString()));
  const form = page.document.querySelector('form[action$="/login"]');
  const abort = page.document.querySelector('form[action$="/abort"]');
  if (form === null || abort === null) throw new Error(`sign-in set-up: no sign-in form (${page.status})`);
  const action = new URL(form.getAttribute('action') ?? '', page.url).toString();
  const cookie = await browser.jar.getCookieString(action);
  return {
    action,
    csrf: form.querySelector('input[name=csrf]')?.getAttribute('value') ?? '',
    abortCsrf: abort.querySelector('input[name=csrf]')?.getAttribute('value') ?? '',
    cookie,
    csrfCookie: cookie.split('; ').filter((c) => c.startsWith('portcullis.csrf')).join('; '),
    openedAt: Date.now(),
  };
}

export const signinTarget: FuzzTarget<SigninState, SigninCase> = {
  name: 'signin',
  title: 'sign-in form fields on a real interaction (POST /interaction/:uid/login)',
  kind: 'http',
  arbitrary: fc.record({
    user: fc.constantFrom<SigninUser>('known', 'known', 'unknown', 'hostile'),
    username: hostileString,
    password: fc.constantFrom<SigninPassword>('right', 'wrong', 'wrong', 'hostile'),
    passwordText: hostileString,
    ops: fc.oneof({ weight: 2, arbitrary: fc.constant<ParamOp[]>([]) }, { weight: 1, arbitrary: paramOps(SIGNIN_FIELDS, {}) }),
    csrf: fc.oneof({ weight: 10, arbitrary: fc.constant('valid' as const) }, { weight: 1, arbitrary: fc.constantFrom('missing' as const, 'garbage' as const, 'abort-form' as const) }),
    cookies: fc.oneof({ weight: 10, arbitrary: fc.constant('valid' as const) }, { weight: 1, arbitrary: fc.constantFrom('none' as const, 'csrf-only' as const) }),
    accept: fc.constantFrom('html' as const, 'html' as const, 'json' as const),
    raw: fc.oneof({ weight: 15, arbitrary: fc.constant('none' as const) }, { weight: 1, arbitrary: fc.constantFrom('json-body' as const, 'bad-encoding' as const, 'huge' as const, 'no-content-type' as const) }),
  }),
  async setup(env) {
    const { app } = requireEnv(env);
    const tpp = await registerTpp(app);
    const customer = await createCustomer(app, `fuzz-signin-${randomUUID().slice(0, 8)}`, 'fuzzing sign-in customer password');
    return { env: requireEnv(env), tpp, customer, form: undefined };
  },
  async property(state, input) {
    const { env: { app }, customer } = state;
    // A fresh interaction after a success (it is finished) or when it gets old (600 s TTL).
    if (state.form === undefined || Date.now() - state.form.openedAt > 120_000) state.form = await openSigninForm(state.tpp);
    const form = state.form;
    const username = input.user === 'known' ? customer.username : input.user === 'unknown' ? 'fuzz-nobody' : input.username;
    const password = input.password === 'right' ? customer.password : input.password === 'wrong' ? 'a wrong password' : input.passwordText;
    const csrf = input.csrf === 'valid' ? form.csrf : input.csrf === 'abort-form' ? form.abortCsrf : input.csrf === 'garbage' ? 'x'.repeat(43) : undefined;
    const base: Record<string, string> = { ...(csrf === undefined ? {} : { csrf }), username, password };
    const pairs = applyOps(base, input.ops);
    let body = formBody(pairs);
    let contentType: string | undefined = 'application/x-www-form-urlencoded';
    if (input.raw === 'json-body') { body = JSON.stringify(Object.fromEntries(pairs)); contentType = 'application/json'; }
    if (input.raw === 'bad-encoding') body = `${body}&username=%E0%A4%A&x=%FF`;
    if (input.raw === 'huge') body = `${body}&pad=${'A'.repeat(20_000)}`;
    if (input.raw === 'no-content-type') contentType = undefined;
    const cookie = input.cookies === 'valid' ? form.cookie : input.cookies === 'csrf-only' ? form.csrfCookie : '';
    const request: Sent = {
      method: 'POST', url: form.action,
      headers: { accept: input.accept === 'html' ? 'text/html' : 'application/json', ...(contentType === undefined ? {} : { 'content-type': contentType }), ...(cookie === '' ? {} : { cookie }) },
      body, echoes: stringsIn(pairs),
    };
    const received = await send(request);
    const problems = baseProblems(request, received);
    const html = /^text\/html\b/.test(received.headers['content-type'] ?? '');
    if (received.status === 303) {
      state.form = undefined;
      expectThat(problems, /^\/auth\//.test(new URL(received.headers.location ?? '', app.url).pathname), `303 to ${received.headers.location}`);
    } else if (received.status === 401) {
      expectThat(problems, html && received.text.includes(SIGN_IN_FAILED), `401 without the sign-in failure page: ${received.text.slice(0, 200)}`);
    } else if ([400, 403, 413, 415, 429].includes(received.status)) {
      if (input.accept === 'json') problems.push(...envelopeProblems(received));
      else expectThat(problems, html && /role="alert"|<h1>/.test(received.text), `error page is not HTML: ${received.text.slice(0, 200)}`);
    } else {
      problems.push(`unexpected status ${received.status}: ${received.text.slice(0, 200)}`);
    }
    // The model, for a well-formed form on a live interaction.
    const clean = input.ops.length === 0 && input.raw === 'none' && input.csrf === 'valid' && input.cookies === 'valid';
    if (input.csrf !== 'valid' && input.ops.every((op) => op.name !== 'csrf') && input.raw === 'none') {
      expectThat(problems, [400, 403, 413].includes(received.status), `a form without its CSRF token answered ${received.status}`);
    }
    if (clean) {
      const storable = (text: string) => text.isWellFormed() && !text.includes('\u0000');
      if (body.length > 16 * 1024) {
        expectThat(problems, received.status === 413, `a form over 16 KiB answered ${received.status}`);
      } else if (!storable(username) || !storable(password) || username.length > 256 || password.length > 4096) {
        expectThat(problems, received.status === 400 || received.status === 413, `a field with NUL / malformed Unicode / over its length answered ${received.status}`);
      } else if (input.user === 'known' && input.password === 'right') {
        expectThat(problems, received.status === 303, `the right password answered ${received.status}`);
      } else if (input.user !== 'hostile' || input.password !== 'hostile' || username !== customer.username) {
        expectThat(problems, received.status === 401, `a wrong sign-in answered ${received.status}`);
      }
    }
    // Keep the customer usable: failures of the known customer would lock the account.
    if (username === customer.username || pairs.some(([, value]) => value === customer.username)) {
      await app.container.authentication.unlock(customer.id, { actor: 'fuzz' });
    }
    return { ...outcome(received, problems), accepted: received.status === 303 };
  },
};

// ---------------------------------------------------------------------------------------
// 7. Introspection and revocation (RFC 7662 / RFC 7009) by a resource server

type RsAuth = 'basic' | 'wrong-secret' | 'missing' | 'malformed-basic' | 'post' | 'tpp-assertion';

export interface IntrospectionCase {
  readonly endpoint: 'introspection' | 'revocation';
  readonly token: { readonly kind: 'live' | 'unknown' | 'text'; readonly text: string };
  readonly ops: ParamOp[];
  readonly auth: RsAuth;
  readonly accept: 'json' | 'jwt' | 'any';
}

interface IntrospectionState extends OAuthState {
  readonly rs: { readonly clientId: string; readonly secret: string };
  readonly live: string;
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

export const introspectionTarget: FuzzTarget<IntrospectionState, IntrospectionCase> = {
  name: 'introspection',
  title: 'introspection and revocation parameters (POST /token/introspection, /token/revocation)',
  kind: 'http',
  arbitrary: fc.record({
    endpoint: fc.constantFrom('introspection' as const, 'introspection' as const, 'revocation' as const),
    token: fc.oneof(
      { weight: 2, arbitrary: fc.constant({ kind: 'live' as const, text: '' }) },
      { weight: 2, arbitrary: fc.base64String({ minLength: 40, maxLength: 60 }).map((text) => ({ kind: 'unknown' as const, text: text.replace(/[+/=]/g, 'A') })) },
      { weight: 3, arbitrary: hostileString.map((text) => ({ kind: 'text' as const, text })) },
    ),
    ops: fc.oneof({ weight: 2, arbitrary: fc.constant<ParamOp[]>([]) }, { weight: 1, arbitrary: paramOps(['token', 'token_type_hint', 'client_id', 'client_secret', 'resource'], { token_type_hint: fc.constantFrom('access_token', 'refresh_token', 'id_token', 'foo', '') }) }),
    auth: fc.oneof({ weight: 8, arbitrary: fc.constant('basic' as const) }, { weight: 1, arbitrary: fc.constantFrom<RsAuth>('wrong-secret', 'missing', 'malformed-basic', 'post', 'tpp-assertion') }),
    accept: fc.constantFrom('json' as const, 'json' as const, 'jwt' as const, 'any' as const),
  }),
  async setup(env) {
    const { app } = requireEnv(env);
    const client = await fuzzClient(app, 'Fuzz introspected TPP');
    const other = await fuzzClient(app, 'Fuzz other introspected TPP');
    const created = await app.container.clients.createResourceServer('Fuzz bank API');
    const dpopKeys = await dpopKeyPair();
    const issued = await send({
      method: 'POST', url: `${app.url}/token`, echoes: [],
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...await dpopHeader(app, dpopKeys, 'valid', '/token') },
      body: formBody([...await clientAuth(app, client, other, 'valid', '/token'), ['grant_type', 'client_credentials'], ['scope', 'accounts']]),
    });
    const live = (issued.json as { access_token?: unknown } | undefined)?.access_token;
    if (typeof live !== 'string') throw new Error(`introspection set-up: ${issued.status} ${issued.text}`);
    return { env: requireEnv(env), client, other, rs: { clientId: created.client_id, secret: created.client_secret }, live };
  },
  async property(state, input) {
    const { env: { app }, rs } = state;
    const token = input.token.kind === 'live' ? state.live : input.token.text;
    // Revoking the live token would end every later "live" case: revocation gets a copy that does not exist.
    const sentToken = input.endpoint === 'revocation' && input.token.kind === 'live' ? `${token}x` : token;
    const path = input.endpoint === 'introspection' ? '/token/introspection' : '/token/revocation';
    const authPairs: [string, string][] = input.auth === 'post' ? [['client_id', rs.clientId], ['client_secret', rs.secret]]
      : input.auth === 'tpp-assertion' ? await clientAuth(app, state.client, state.other, 'valid', path) : [];
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: input.accept === 'json' ? 'application/json' : input.accept === 'jwt' ? 'application/token-introspection+jwt' : '*/*',
    };
    if (input.auth === 'basic') headers.authorization = basic(rs.clientId, rs.secret);
    if (input.auth === 'wrong-secret') headers.authorization = basic(rs.clientId, `${rs.secret}x`);
    if (input.auth === 'malformed-basic') headers.authorization = 'Basic %%%not-base64:';
    const pairs = [...authPairs, ...applyOps({ token: sentToken }, input.ops)];
    const request: Sent = { method: 'POST', url: `${app.url}${path}`, headers, body: formBody(pairs), echoes: stringsIn(pairs) };
    const received = await send(request);
    const problems = baseProblems(request, received);
    const jwtAnswer = /^application\/token-introspection\+jwt\b/.test(received.headers['content-type'] ?? '');
    if (received.status === 200 && input.endpoint === 'introspection') {
      if (jwtAnswer) expectThat(problems, /^[\w-]+\.[\w-]+\.[\w-]+$/.test(received.text), `JWT introspection answer is not a JWS: ${received.text.slice(0, 100)}`);
      else expectThat(problems, typeof (received.json as { active?: unknown } | undefined)?.active === 'boolean', `introspection answer without a boolean "active": ${received.text.slice(0, 200)}`);
    } else if (received.status === 200) {
      expectThat(problems, received.text === '' || received.json !== undefined, `revocation answer: ${received.text.slice(0, 200)}`);
    } else if ([400, 401, 406, 413].includes(received.status)) {
      problems.push(...oauthErrorProblems(received, undefined, STRICT.errorDescriptionCharset));
    } else {
      problems.push(`unexpected status ${received.status}: ${received.text.slice(0, 200)}`);
    }
    // The model: a wrong client learns nothing; a resource server learns the truth.
    const active = (received.json as { active?: unknown } | undefined)?.active;
    // (the resource server is registered for client_secret_basic: client_secret_post is the wrong method)
    if (input.auth === 'wrong-secret' || input.auth === 'missing' || input.auth === 'malformed-basic' || input.auth === 'post') {
      expectThat(problems, received.status === 400 || received.status === 401 || (oversized(request) && received.status === 413), `client authentication "${input.auth}" answered ${received.status}`);
    } else if (input.endpoint === 'introspection' && input.ops.length === 0 && input.accept !== 'jwt' && input.auth === 'basic') {
      if (input.token.kind === 'live') expectThat(problems, received.status === 200 && active === true, `a live token introspected as ${received.status} ${received.text.slice(0, 200)}`);
      if (input.token.kind === 'unknown') expectThat(problems, received.status === 200 && active === false, `an unknown token introspected as ${received.status} ${received.text.slice(0, 200)}`);
    }
    if (active === true) expectThat(problems, input.token.kind === 'live' && input.endpoint === 'introspection', `active:true for a token that is not the live one`);
    return outcome(received, problems);
  },
};

/** Every target, in the order the script runs them. */
export const TARGETS = [authorizationDetailsTarget, registrationTarget, adminTarget, parTarget, tokenTarget, introspectionTarget, signinTarget] as const;
