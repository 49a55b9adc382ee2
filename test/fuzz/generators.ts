import fc from 'fast-check';

import { ACCOUNT_ACTIONS, MAX_CONSENT_DAYS, minorUnits } from '../../src/services/authorization-details.js';

/**
 * fast-check generators for the fuzz targets (targets.ts): valid structures, and the same
 * structures mutated — unknown members, wrong types, numbers as odd strings, Unicode,
 * NUL, lone surrogates, `__proto__` — so that most cases pass the first validation layer
 * and reach the next one. Everything here is data (no functions, no clock): a case is
 * reproduced from its seed and path, and prints readably as a counterexample.
 */

// ---------------------------------------------------------------------------------------
// Strings and JSON values

/** A lone UTF-16 surrogate: malformed Unicode once it crosses JSON (`"\ud800"`). */
export const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));

const unit = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: loneSurrogate },
);

/** Strings that look like numbers, NaN-like or huge, sent as text. */
export const numberLikeString = fc.oneof(
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '-1', '-0', '0', '00', '1e309', '1e-309', '9007199254740993', '-9223372036854775809',
    '99999999999999999999999999', '0x1F', '+1', '1_000', '1,00', '1.', '.5', ' 1', '1 ', '١٢٣', '１２３', '1.0000001', '1e5', '0.000'),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
  fc.double().map(String),
);

/** Short, printable, mostly harmless: member names and plausible values. */
export const plainString = fc.string({ unit: 'grapheme-ascii', maxLength: 16 });

/** Whatever a hostile client sends as a string. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit, maxLength: 24 }) },
  { weight: 2, arbitrary: plainString },
  { weight: 2, arbitrary: numberLikeString },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '', ' ', '\u0000', 'a\u0000b', '\ud800', 'x\udfff', '\u0001', '\u007f', '\u0085', '\u2028', '\u202e', '\ufeff', 'ſ', 'K', '😀',
      'null', 'true', '[]', '{}', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty',
      "' OR '1'='1", '"; DROP TABLE clients; --', '\\', '%00', '%ZZ', '%C0%AF', '../../../../etc/passwd', 'file:///etc/passwd',
      '\r\nX-Injected: 1', '<script>alert(1)</script>', '${7*7}', '{{7*7}}', '%s%s%n', 'javascript:alert(1)', 'https://evil.example/',
      'https://tpp.example/callback', 'http://127.0.0.1/', 'urn:portcullis:bank-api', 'openid accounts payments',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(300, 2_000, 20_000, 70_000).chain((n) => fc.constantFrom('A', '\u00e9', '\u0000', '😀').map((c) => c.repeat(n))) },
);

/** Member names: plausible, hostile, and the prototype-pollution ones. */
export const memberName: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: plainString },
  { weight: 2, arbitrary: fc.string({ unit, maxLength: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', '', ' ', 'type', 'amount', 'iban', 'toString', 'valueOf', '$where', 'a.b', 'a[0]', '\u0000') },
);

/** An object with exactly these own members (even `__proto__`; later duplicates win, as in JSON.parse). */
export function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [name, value] of entries) Object.defineProperty(object, name, { value, enumerable: true, writable: true, configurable: true });
  return object;
}

const jsonLeaf: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -0, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 5e-324, true, false, null) },
);

/** Any JSON value (NaN / Infinity are not JSON: JSON.stringify would make them null). */
export const jsonValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    jsonLeaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.array(fc.tuple(memberName, tie('value')), { maxLength: 4 }).map(objectOf),
  ),
})).value;

/** A value nested `depth` levels deep in arrays. */
export const deepValue = fc.integer({ min: 5, max: 60 }).map((depth) => {
  let value: unknown = 'deep';
  for (let i = 0; i < depth; i += 1) value = [value];
  return value;
});

/** Inserts `insert` into `base` at a generated position. */
export function spliced(base: string): fc.Arbitrary<string> {
  return fc.tuple(fc.nat({ max: base.length }), fc.constantFrom('\u0000', '\u0001', '\u001f', '\u007f', '\ud800', '\udc00', '\n')).map(([at, insert]) => `${base.slice(0, at)}${insert}${base.slice(at)}`);
}

// ---------------------------------------------------------------------------------------
// Authorization details (RFC 9396; DESIGN §3)

/** `$NOW+<seconds>`: a time relative to when the case runs (materialise() turns it into RFC 3339). */
export const relativeTime = (seconds: number): string => `$NOW${seconds < 0 ? '-' : '+'}${Math.abs(seconds)}`;
const RELATIVE = /^\$NOW([+-])(\d+)$/;

/** Replaces every `$NOW±s` string by an RFC 3339 date-time relative to `now`. */
export function materialise<T>(value: T, now: Date): T {
  if (typeof value === 'string') {
    const match = RELATIVE.exec(value);
    if (match === null) return value;
    const seconds = Number(match[2]) * (match[1] === '-' ? -1 : 1);
    return new Date(now.getTime() + seconds * 1000).toISOString() as T;
  }
  if (Array.isArray(value)) return value.map((item) => materialise(item, now)) as T;
  if (value !== null && typeof value === 'object') {
    return objectOf(Object.entries(value).map(([name, item]) => [name, materialise(item, now)])) as T;
  }
  return value;
}

/** What the validator must say about a case: a model that is cheap to state. */
export type Expectation = 'valid' | 'invalid' | 'any';

export interface DetailCase {
  readonly detail: unknown;
  readonly expect: Expectation;
  /** which mutation produced it ('none' for a valid structure) */
  readonly mutation: string;
}

export const HTTP_CURRENCIES = ['EUR', 'GBP', 'USD', 'CHF', 'SEK', 'DKK', 'NOK', 'PLN', 'CZK'] as const;
/** For the pure validator: also 0- and 3-decimal currencies. */
export const UNIT_CURRENCIES = [...HTTP_CURRENCIES, 'JPY', 'BHD', 'KWD'] as const;
export const MAX_AMOUNT = '100000';

const IBAN_COUNTRIES = ['DE', 'GB', 'FR', 'NL', 'ES', 'IT', 'BE', 'AT', 'CH', 'PL', 'SE'];
const BBAN_CHARS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function mod97(text: string): number {
  let remainder = 0;
  for (const ch of text) {
    const digits = /\d/.test(ch) ? ch : String(ch.charCodeAt(0) - 55);
    for (const d of digits) remainder = (remainder * 10 + Number(d)) % 97;
  }
  return remainder;
}

/** A syntactically valid IBAN with correct check digits (ISO 13616), possibly spaced or lower-case. */
export const validIban = fc.tuple(
  fc.constantFrom(...IBAN_COUNTRIES),
  fc.array(fc.constantFrom(...BBAN_CHARS), { minLength: 11, maxLength: 30 }).map((chars) => chars.join('')),
  fc.constantFrom('plain', 'spaced', 'lower'),
).map(([country, bban, style]) => {
  const check = String(98 - mod97(`${bban}${country}00`)).padStart(2, '0');
  const iban = `${country}${check}${bban}`;
  if (style === 'spaced') return iban.replace(/(.{4})/g, '$1 ').trim();
  return style === 'lower' ? iban.toLowerCase() : iban;
});

/** The same IBAN with check digits that cannot be right. */
export const badIban = validIban.map((iban) => {
  const compact = iban.replace(/ /g, '').toUpperCase();
  const check = Number(compact.slice(2, 4));
  return `${compact.slice(0, 2)}${String((check + 1) % 100).padStart(2, '0')}${compact.slice(4)}`;
});

const NO_CONTROLS = /[\u0000-\u001F\u007F]/;
const textWithin = (min: number, max: number) => fc.string({ unit: fc.oneof({ weight: 5, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) }, { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) }), minLength: min, maxLength: max })
  .filter((s) => s.length >= min && s.length <= max && s.isWellFormed() && !NO_CONTROLS.test(s));

/** A positive amount within MAX_AMOUNT with at most the currency's decimals. */
function amountFor(currency: string): fc.Arbitrary<string> {
  const units = minorUnits(currency);
  return fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.integer({ min: 0, max: 99_999 }), fc.nat({ max: units }), fc.nat({ max: 999 })).map(([whole, decimals, fraction]) => {
      const digits = String(fraction).padStart(3, '0').slice(0, decimals);
      const amount = decimals === 0 ? String(whole) : `${whole}.${digits}`;
      return /^0(\.0*)?$/.test(amount) ? (decimals === 0 ? '1' : `${whole}.${'0'.repeat(decimals - 1)}1`) : amount;
    }) },
    { weight: 1, arbitrary: fc.constantFrom(MAX_AMOUNT, ...(units > 0 ? [`${MAX_AMOUNT}.${'0'.repeat(units)}`, `0.${'0'.repeat(units - 1)}1`] : ['1'])) },
  );
}

const accountInformation = fc.record({
  type: fc.constant('account_information'),
  actions: fc.shuffledSubarray([...ACCOUNT_ACTIONS], { minLength: 1 }),
  locations: fc.array(fc.webUrl({ size: 'small' }).filter((u) => u.length <= 255), { maxLength: 3 }),
  // well inside (now, now + 180 days]: the HTTP targets send it a moment after it is made
  expires_at: fc.integer({ min: 600, max: MAX_CONSENT_DAYS * 86400 - 3600 }).map(relativeTime),
}, { requiredKeys: ['type', 'actions'] });

function paymentInitiation(currencies: readonly string[]) {
  return fc.constantFrom(...currencies).chain((currency) => fc.record({
    type: fc.constant('payment_initiation'),
    instructedAmount: fc.record({ currency: fc.constant(currency), amount: amountFor(currency) }),
    creditorName: textWithin(1, 70).filter((s) => s.trim() !== ''),
    creditorAccount: fc.record({ iban: validIban }),
    remittanceInformationUnstructured: textWithin(0, 140),
    locations: fc.array(fc.webUrl({ size: 'small' }).filter((u) => u.length <= 255), { maxLength: 2 }),
  }, { requiredKeys: ['type', 'instructedAmount', 'creditorName', 'creditorAccount'] }));
}

const ALLOWED_MEMBERS: Record<string, readonly string[]> = {
  account_information: ['type', 'actions', 'locations', 'expires_at'],
  payment_initiation: ['type', 'instructedAmount', 'creditorName', 'creditorAccount', 'remittanceInformationUnstructured', 'locations'],
  instructedAmount: ['currency', 'amount'],
  creditorAccount: ['iban'],
};
const POLLUTION = ['__proto__', 'constructor', 'prototype'];

type Detail = Record<string, unknown>;
type Mutation = (detail: Detail) => fc.Arbitrary<DetailCase>;

const clone = (detail: Detail): Detail => objectOf(Object.entries(detail).map(([name, value]) => [name, value !== null && typeof value === 'object' && !Array.isArray(value) ? clone(value as Detail) : Array.isArray(value) ? [...value] : value]));
const withMember = (object: Detail, name: string, value: unknown): Detail => objectOf([...Object.entries(object).filter(([n]) => n !== name), [name, value]]);
const without = (object: Detail, name: string): Detail => objectOf(Object.entries(object).filter(([n]) => n !== name));
const invalid = (mutation: string) => (detail: unknown): DetailCase => ({ detail, expect: 'invalid', mutation });
const stringMembers = (detail: Detail): [string[], string][] => {
  const found: [string[], string][] = [];
  const walk = (value: unknown, path: string[]) => {
    if (typeof value === 'string') found.push([path, value]);
    else if (Array.isArray(value)) value.forEach((item, i) => walk(item, [...path, String(i)]));
    else if (value !== null && typeof value === 'object') for (const [name, item] of Object.entries(value)) walk(item, [...path, name]);
  };
  walk(detail, []);
  return found;
};
function setPath(value: unknown, path: readonly string[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path as [string, ...string[]];
  if (Array.isArray(value)) return value.map((item, i) => (String(i) === head ? setPath(item, rest, replacement) : item));
  const object = value as Detail;
  return objectOf(Object.entries(object).map(([name, item]) => [name, name === head ? setPath(item, rest, replacement) : item]));
}
function pathsOf(value: unknown, path: string[] = []): string[][] {
  const paths: string[][] = [path];
  if (Array.isArray(value)) value.forEach((item, i) => paths.push(...pathsOf(item, [...path, String(i)])));
  else if (value !== null && typeof value === 'object') for (const [name, item] of Object.entries(value)) paths.push(...pathsOf(item, [...path, name]));
  return paths;
}

/** Mutations that must make any detail invalid, whatever else it holds. */
const invalidMutations: Mutation[] = [
  // an unknown member at the top, or in a nested object (additionalProperties: false)
  (detail) => {
    const objects = [[], ...(detail.type === 'payment_initiation' ? [['instructedAmount'], ['creditorAccount']] : [])] as string[][];
    return fc.tuple(fc.constantFrom(...objects), memberName, jsonValue).filter(([path, name]) => !(ALLOWED_MEMBERS[path[0] ?? String(detail.type)] ?? []).includes(name))
      .map(([path, name, value]) => invalid('unknown member')(path.length === 0 ? withMember(detail, name, value) : setPath(detail, path, withMember(detail[path[0]!] as Detail, name, value))));
  },
  // a prototype-pollution member
  (detail) => fc.tuple(fc.constantFrom(...POLLUTION), jsonValue).map(([name, value]) => invalid(`member ${name}`)(withMember(detail, name, value))),
  // a required member missing
  (detail) => {
    const required = detail.type === 'payment_initiation'
      ? [['type'], ['instructedAmount'], ['creditorName'], ['creditorAccount'], ['instructedAmount', 'currency'], ['instructedAmount', 'amount'], ['creditorAccount', 'iban']]
      : [['type'], ['actions']];
    return fc.constantFrom(...required).map((path) => invalid(`missing ${path.join('.')}`)(path.length === 1 ? without(detail, path[0]!) : setPath(detail, [path[0]!], without(detail[path[0]!] as Detail, path[1]!))));
  },
  // a member of the wrong JSON type
  (detail) => {
    const stringPaths = detail.type === 'payment_initiation'
      ? [['creditorName'], ['instructedAmount', 'currency'], ['instructedAmount', 'amount'], ['creditorAccount', 'iban'], ['type']]
      : [['type'], ...(detail.expires_at === undefined ? [] : [['expires_at']])];
    const objectPaths = detail.type === 'payment_initiation' ? [['instructedAmount'], ['creditorAccount']] : [];
    const arrayPaths = detail.type === 'account_information' ? [['actions']] : [];
    const notString = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.array(plainString, { maxLength: 2 }), fc.constant({}));
    const notObject = fc.oneof(fc.integer(), hostileString, fc.boolean(), fc.constant(null), fc.array(jsonValue, { maxLength: 2 }));
    return fc.oneof(
      fc.tuple(fc.constantFrom(...stringPaths), notString).map(([path, value]) => invalid(`non-string ${path.join('.')}`)(setPath(detail, path, value))),
      ...(objectPaths.length === 0 ? [] : [fc.tuple(fc.constantFrom(...objectPaths), notObject).map(([path, value]) => invalid(`non-object ${path.join('.')}`)(setPath(detail, path, value)))]),
      ...(arrayPaths.length === 0 ? [] : [fc.tuple(fc.constantFrom(...arrayPaths), fc.oneof(hostileString, fc.integer(), fc.constant(null), fc.constant({}))).map(([path, value]) => invalid(`non-array ${path.join('.')}`)(setPath(detail, path, value)))]),
    );
  },
  // a control character or a lone surrogate inside any string (type included)
  (detail) => {
    const strings = stringMembers(detail);
    return fc.constantFrom(...strings).chain(([path, value]) => spliced(value).filter((s) => NO_CONTROLS.test(s) || !s.isWellFormed()).map((s) => invalid(`control/surrogate in ${path.join('.')}`)(setPath(detail, path, s))));
  },
  // the type itself
  (detail) => fc.oneof(hostileString.filter((t) => t !== 'account_information' && t !== 'payment_initiation'), fc.constantFrom('Account_Information', 'payment_initiation ', 'account_information\u0000'))
    .map((type) => invalid('unknown type')(withMember(detail, 'type', type))),
  // type-specific rules
  (detail) => (detail.type === 'payment_initiation'
    ? fc.oneof(
      fc.constantFrom('NaN', 'Infinity', '-1', '-0', '0', '0.00', '0.0', '1e5', ' 1', '1 ', '1,00', '01', '1.', '.5', '1.0001', '١٢', '100000.01', '100001',
        '99999999999999999999', '0x1F', '+1', '1_000', '', '1.234', '12.345')
        .filter((amount) => !(amount === '1.234' || amount === '12.345') || minorUnits(String((detail.instructedAmount as Detail).currency)) < 3)
        .map((amount) => invalid(`amount ${amount}`)(setPath(detail, ['instructedAmount', 'amount'], amount))),
      fc.constantFrom('eur', 'EU', 'EURO', 'XXX', 'ZZZ', '€', '', 'E1R', 'EUR ').map((currency) => invalid(`currency ${currency}`)(setPath(detail, ['instructedAmount', 'currency'], currency))),
      badIban.map((iban) => invalid('IBAN check digits')(setPath(detail, ['creditorAccount', 'iban'], iban))),
      fc.constantFrom('', 'DE00', 'GB82WEST1234569876543', 'X'.repeat(43), 'NOT AN IBAN AT ALL').map((iban) => invalid('IBAN shape')(setPath(detail, ['creditorAccount', 'iban'], iban))),
      fc.constantFrom('', ' ', '\u00a0', '\u3000', ' '.repeat(70), 'N'.repeat(71)).map((name) => invalid('creditorName blank or long')(withMember(detail, 'creditorName', name))),
      fc.constant(invalid('remittance too long')(withMember(detail, 'remittanceInformationUnstructured', 'R'.repeat(141)))),
      fc.constant(invalid('too many locations')(withMember(detail, 'locations', Array.from({ length: 11 }, (_, i) => `https://api${i}.example/`)))),
    )
    : fc.oneof(
      fc.constantFrom<unknown[]>([], ['list_accounts', 'list_accounts'], ['read_everything'], ['list_accounts', 'read_balances', 'read_transactions', 'list_accounts'], ['LIST_ACCOUNTS'], [null])
        .map((actions) => invalid('actions')(withMember(detail, 'actions', actions))),
      fc.oneof(
        fc.integer({ min: -10 * 365 * 86400, max: 0 }).map(relativeTime),
        fc.integer({ min: MAX_CONSENT_DAYS * 86400 + 3600, max: 100 * 365 * 86400 }).map(relativeTime),
        fc.constantFrom('tomorrow', '2030-13-45T00:00:00Z', '9999-99-99T99:99:99Z', '', 'T', '1e12', '2030-01-01', '01/01/2030', 'x'.repeat(41)),
      ).map((expiresAt) => invalid(`expires_at ${expiresAt}`)(withMember(detail, 'expires_at', expiresAt))),
      fc.constantFrom<unknown>([''], ['x'.repeat(256)], Array.from({ length: 11 }, () => 'https://a.example/')).map((locations) => invalid('locations')(withMember(detail, 'locations', locations))),
    )),
];

/** Mutations whose outcome the model does not predict (the validator must still not crash). */
const anyMutations: Mutation[] = [
  (detail) => fc.tuple(fc.constantFrom(...pathsOf(detail).filter((p) => p.length > 0)), jsonValue).map(([path, value]) => ({ detail: setPath(detail, path, value), expect: 'any' as const, mutation: `replace ${path.join('.')}` })),
  (detail) => fc.tuple(fc.constantFrom(...pathsOf(detail).filter((p) => p.length > 0)), deepValue).map(([path, value]) => ({ detail: setPath(detail, path, value), expect: 'any' as const, mutation: `deep ${path.join('.')}` })),
];

/**
 * One authorization detail with what the validator must answer: a valid structure
 * (accepted), the same with a mutation that must be refused, or with a free mutation.
 * `currencies`: those the server under test accepts.
 */
export function detailCase(currencies: readonly string[] = HTTP_CURRENCIES): fc.Arbitrary<DetailCase> {
  const valid = fc.oneof(accountInformation, paymentInitiation(currencies)).map((detail) => clone(detail as Detail));
  return fc.oneof(
    { weight: 3, arbitrary: valid.map((detail): DetailCase => ({ detail, expect: 'valid', mutation: 'none' })) },
    { weight: 6, arbitrary: fc.tuple(valid, fc.nat({ max: invalidMutations.length - 1 })).chain(([detail, i]) => invalidMutations[i]!(detail)) },
    { weight: 2, arbitrary: fc.tuple(valid, fc.nat({ max: anyMutations.length - 1 })).chain(([detail, i]) => anyMutations[i]!(detail)) },
    { weight: 1, arbitrary: fc.oneof(jsonValue, fc.constantFrom<unknown>(null, 'payment_initiation', 42, [], {}, [{}])).map((detail): DetailCase => ({ detail, expect: detail !== null && typeof detail === 'object' && !Array.isArray(detail) && ['account_information', 'payment_initiation'].includes((detail as Detail).type as string) ? 'any' : 'invalid', mutation: 'random value' })) },
  );
}

/** The model over a list: valid when every detail is, invalid when one is. */
export function listExpectation(cases: readonly DetailCase[]): Expectation {
  if (cases.some((c) => c.expect === 'invalid')) return 'invalid';
  return cases.every((c) => c.expect === 'valid') ? 'valid' : 'any';
}

// ---------------------------------------------------------------------------------------
// Form parameters (PAR, token): a valid set, then operations on it

export type ParamOp =
  | { readonly op: 'set'; readonly name: string; readonly value: string }
  | { readonly op: 'delete'; readonly name: string }
  | { readonly op: 'repeat'; readonly name: string; readonly value: string };

/** Applies operations to a parameter list (repeated names allowed: parameter pollution). */
export function applyOps(params: Record<string, string>, ops: readonly ParamOp[]): [string, string][] {
  let pairs: [string, string][] = Object.entries(params);
  for (const op of ops) {
    if (op.op === 'delete') pairs = pairs.filter(([name]) => name !== op.name);
    else if (op.op === 'set') pairs = [...pairs.filter(([name]) => name !== op.name), [op.name, op.value]];
    else pairs = [...pairs, [op.name, op.value]];
  }
  return pairs;
}

/** Operations on a parameter set: known names with plausible or hostile values, unknown names. */
export function paramOps(known: readonly string[], plausible: Readonly<Record<string, fc.Arbitrary<string>>>): fc.Arbitrary<ParamOp[]> {
  const name = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: memberName });
  const valueFor = (n: string) => (Object.hasOwn(plausible, n) ? fc.oneof({ weight: 2, arbitrary: plausible[n]! }, { weight: 1, arbitrary: hostileString }) : hostileString);
  const op: fc.Arbitrary<ParamOp> = fc.oneof(
    { weight: 5, arbitrary: name.chain((n) => valueFor(n).map((value): ParamOp => ({ op: 'set', name: n, value }))) },
    { weight: 2, arbitrary: fc.constantFrom(...known).map((n): ParamOp => ({ op: 'delete', name: n })) },
    { weight: 1, arbitrary: name.chain((n) => valueFor(n).map((value): ParamOp => ({ op: 'repeat', name: n, value }))) },
  );
  return fc.array(op, { maxLength: 4 });
}

/** `authorization_details` as sent: a JSON array of detail cases, or raw text. */
export type DetailsParam =
  | { readonly kind: 'none' }
  | { readonly kind: 'list'; readonly cases: readonly DetailCase[] }
  | { readonly kind: 'raw'; readonly text: string };

export const detailsParam: fc.Arbitrary<DetailsParam> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 6, arbitrary: fc.array(detailCase(), { minLength: 1, maxLength: 3 }).map((cases) => ({ kind: 'list' as const, cases })) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      hostileString,
      jsonValue.map((value) => JSON.stringify(value) ?? 'null'),
      fc.constantFrom('[]', '{}', '[', '[{"type":"account_information","actions":["list_accounts"]}', '[{"type":"account_information","actions":["list_accounts"],"type":"payment_initiation"}]', '[null]', '"x"', '1e999'),
    ).map((text) => ({ kind: 'raw' as const, text })),
  },
);

export function detailsText(param: DetailsParam, now: Date): string | undefined {
  if (param.kind === 'none') return undefined;
  if (param.kind === 'raw') return param.text;
  return JSON.stringify(materialise(param.cases.map((c) => c.detail), now));
}

/** The model for a detail parameter: 'valid' when absent or all valid. */
export function detailsExpectation(param: DetailsParam): Expectation {
  if (param.kind === 'none') return 'valid';
  if (param.kind === 'raw') return 'any';
  return listExpectation(param.cases);
}

/** How a request authenticates its client (private_key_jwt): mostly right, sometimes not ('no-client-id' is right too: the assertion names the client). */
export type ClientAuthMode = 'valid' | 'missing' | 'garbage' | 'wrong-aud' | 'expired' | 'other-client-id' | 'alg-none' | 'no-client-id';
export const clientAuthMode: fc.Arbitrary<ClientAuthMode> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('valid' as const) },
  { weight: 1, arbitrary: fc.constantFrom('missing', 'garbage', 'wrong-aud', 'expired', 'other-client-id', 'alg-none', 'no-client-id') as fc.Arbitrary<ClientAuthMode> },
);

/** The DPoP header: a fresh proof, none, or a broken one. */
export type DpopMode = 'valid' | 'missing' | 'garbage' | 'wrong-htu' | 'wrong-htm' | 'old' | 'two';
export const dpopMode: fc.Arbitrary<DpopMode> = fc.oneof(
  { weight: 10, arbitrary: fc.constant('valid' as const) },
  { weight: 1, arbitrary: fc.constantFrom('missing', 'garbage', 'wrong-htu', 'wrong-htm', 'old', 'two') as fc.Arbitrary<DpopMode> },
);
