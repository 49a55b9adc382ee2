import { createHash } from 'node:crypto';

import { Ajv, type ValidateFunction } from 'ajv';

import { canonicalJson } from './audit.js';
import { isValidIban, normaliseIban, oauthErrorText } from './validation.js';

/**
 * RFC 9396 authorization_details for open banking (DESIGN §3): JSON Schema first
 * (ajv, additionalProperties: false, bounded strings and arrays), then business rules.
 * Pure: no I/O, no clock of its own.
 */
export const ACCOUNT_INFORMATION = 'account_information';
export const PAYMENT_INITIATION = 'payment_initiation';
export const DETAIL_TYPES = [ACCOUNT_INFORMATION, PAYMENT_INITIATION] as const;
export const ACCOUNT_ACTIONS = ['list_accounts', 'read_balances', 'read_transactions'] as const;
/** PSD2 RTS art. 10: account access is re-authenticated at least every 180 days. */
export const MAX_CONSENT_DAYS = 180;

export interface DetailRules {
  /** ISO 4217 codes accepted for payments */
  readonly currencies: readonly string[];
  /** largest payment amount, as a decimal string */
  readonly maxAmount: string;
}

export interface AccountInformationDetail {
  type: typeof ACCOUNT_INFORMATION;
  actions: string[];
  locations?: string[];
  expires_at?: string;
  /** set on approval: the accounts the customer chose */
  accounts?: string[];
}

export interface PaymentInitiationDetail {
  type: typeof PAYMENT_INITIATION;
  instructedAmount: { currency: string; amount: string };
  creditorName: string;
  creditorAccount: { iban: string };
  remittanceInformationUnstructured?: string;
  locations?: string[];
  /** set on approval: the account the customer pays from */
  debtorAccount?: { iban: string; id?: string };
}

export type AuthorizationDetail = AccountInformationDetail | PaymentInitiationDetail;

/** Its message becomes an OAuth error_description: kept to the characters RFC 6749 allows. */
export class InvalidDetailsError extends Error {
  override readonly name = 'InvalidDetailsError';

  constructor(message: string) {
    super(oauthErrorText(message));
  }
}

/** ISO 4217 minor units for currencies that do not have two. */
const MINOR_UNITS: Readonly<Record<string, number>> = { JPY: 0, KRW: 0, ISK: 0, CLP: 0, BHD: 3, KWD: 3, OMR: 3, JOD: 3, TND: 3 };
export function minorUnits(currency: string): number {
  return MINOR_UNITS[currency] ?? 2;
}

const locations = { type: 'array', maxItems: 10, items: { type: 'string', minLength: 1, maxLength: 255, format: 'uri' } } as const;

const accountInformationSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'actions'],
  properties: {
    type: { const: ACCOUNT_INFORMATION },
    actions: { type: 'array', minItems: 1, maxItems: 3, uniqueItems: true, items: { enum: [...ACCOUNT_ACTIONS] } },
    locations,
    expires_at: { type: 'string', maxLength: 40 },
  },
} as const;

const paymentInitiationSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'instructedAmount', 'creditorName', 'creditorAccount'],
  properties: {
    type: { const: PAYMENT_INITIATION },
    instructedAmount: {
      type: 'object',
      additionalProperties: false,
      required: ['currency', 'amount'],
      properties: {
        currency: { type: 'string', pattern: '^[A-Z]{3}$' },
        amount: { type: 'string', pattern: '^(0|[1-9][0-9]{0,14})(\\.[0-9]{1,3})?$' },
      },
    },
    creditorName: { type: 'string', minLength: 1, maxLength: 70 },
    creditorAccount: {
      type: 'object',
      additionalProperties: false,
      required: ['iban'],
      properties: { iban: { type: 'string', minLength: 15, maxLength: 42 } },
    },
    remittanceInformationUnstructured: { type: 'string', maxLength: 140 },
    locations,
  },
} as const;

const POLLUTION_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Rejects prototype-pollution keys, non-finite numbers and control characters anywhere in the value. */
function assertPlainJson(value: unknown, depth = 0): void {
  if (depth > 8) throw new InvalidDetailsError('authorization details are nested too deeply');
  if (typeof value === 'number' && !Number.isFinite(value)) throw new InvalidDetailsError('numbers must be finite');
  if (typeof value === 'string') {
    if (!value.isWellFormed() || /[\u0000-\u001F\u007F]/.test(value)) throw new InvalidDetailsError('text contains control characters or malformed Unicode');
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) assertPlainJson(item, depth + 1);
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      if (POLLUTION_KEYS.has(key)) throw new InvalidDetailsError(`member name "${key}" is not allowed`);
      assertPlainJson((value as Record<string, unknown>)[key], depth + 1);
    }
  }
}

function compareDecimals(a: string, b: string): number {
  const [ai = '0', af = ''] = a.split('.');
  const [bi = '0', bf = ''] = b.split('.');
  if (ai.length !== bi.length) return ai.length - bi.length;
  if (ai !== bi) return ai < bi ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const x = af.padEnd(width, '0');
  const y = bf.padEnd(width, '0');
  return x === y ? 0 : x < y ? -1 : 1;
}

export class AuthorizationDetailsValidator {
  readonly #rules: DetailRules;
  readonly #validators: Record<string, ValidateFunction>;

  constructor(rules: DetailRules) {
    this.#rules = rules;
    const ajv = new Ajv({ allErrors: false, strict: true, validateFormats: false });
    this.#validators = {
      [ACCOUNT_INFORMATION]: ajv.compile(accountInformationSchema),
      [PAYMENT_INITIATION]: ajv.compile(paymentInitiationSchema),
    };
  }

  /** Validates one requested detail; throws InvalidDetailsError with a safe message. */
  validate(detail: unknown, now: Date): AuthorizationDetail {
    assertPlainJson(detail);
    const type = (detail as { type?: unknown } | null)?.type;
    const validator = typeof type === 'string' && Object.hasOwn(this.#validators, type) ? this.#validators[type] : undefined;
    if (validator === undefined) throw new InvalidDetailsError('unsupported authorization details type');
    if (!validator(detail)) {
      const error = validator.errors?.[0];
      throw new InvalidDetailsError(`${type}${error?.instancePath ?? ''} ${error?.message ?? 'is invalid'}`.trim());
    }
    return type === ACCOUNT_INFORMATION
      ? this.#accountInformation(detail as AccountInformationDetail, now)
      : this.#payment(detail as PaymentInitiationDetail);
  }

  #accountInformation(detail: AccountInformationDetail, now: Date): AccountInformationDetail {
    if (detail.expires_at !== undefined) {
      const expires = Date.parse(detail.expires_at);
      if (!/^\d{4}-\d{2}-\d{2}T/.test(detail.expires_at) || Number.isNaN(expires)) throw new InvalidDetailsError('expires_at must be an RFC 3339 date-time');
      if (expires <= now.getTime()) throw new InvalidDetailsError('expires_at must be in the future');
      if (expires > now.getTime() + MAX_CONSENT_DAYS * 86400_000) throw new InvalidDetailsError(`expires_at must be at most ${MAX_CONSENT_DAYS} days away`);
    }
    return detail;
  }

  #payment(detail: PaymentInitiationDetail): PaymentInitiationDetail {
    const { currency, amount } = detail.instructedAmount;
    if (!this.#rules.currencies.includes(currency)) throw new InvalidDetailsError(`currency ${currency} is not accepted`);
    const decimals = amount.split('.')[1]?.length ?? 0;
    if (decimals > minorUnits(currency)) throw new InvalidDetailsError(`amount has more decimal places than ${currency} allows`);
    if (compareDecimals(amount, '0') <= 0) throw new InvalidDetailsError('amount must be positive');
    if (compareDecimals(amount, this.#rules.maxAmount) > 0) throw new InvalidDetailsError(`amount exceeds the maximum of ${this.#rules.maxAmount}`);
    if (!isValidIban(detail.creditorAccount.iban)) throw new InvalidDetailsError('creditorAccount.iban is not a valid IBAN');
    if (detail.creditorName.trim() === '') throw new InvalidDetailsError('creditorName must not be blank');
    return { ...detail, creditorAccount: { iban: normaliseIban(detail.creditorAccount.iban) } };
  }
}

/**
 * Dynamic linking (PSD2 RTS art. 5): the hash an SCA is bound to — exactly the amount,
 * currency and payee of every payment in the request, nothing else.
 */
export function paymentLinkHash(details: readonly AuthorizationDetail[]): string | undefined {
  const payments = details.filter((d): d is PaymentInitiationDetail => d.type === PAYMENT_INITIATION)
    .map((p) => ({ amount: p.instructedAmount.amount, currency: p.instructedAmount.currency, creditorName: p.creditorName, creditorIban: normaliseIban(p.creditorAccount.iban) }));
  if (payments.length === 0) return undefined;
  return createHash('sha256').update(canonicalJson(payments)).digest('base64url');
}

/** The amount as a customer reads it, e.g. "GBP 1,250.00". */
export function formatAmount(amount: string, currency: string): string {
  const [whole = '0', fraction = ''] = amount.split('.');
  const units = minorUnits(currency);
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${currency} ${units === 0 ? grouped : `${grouped}.${fraction.padEnd(units, '0')}`}`;
}

/** Parses the authorization_details request parameter (a JSON string) leniently for display. */
export function parseDetails(raw: unknown): AuthorizationDetail[] {
  if (typeof raw !== 'string' || raw === '') return [];
  try {
    const parsed = JSON.parse(raw) as unknown;
    return Array.isArray(parsed) ? parsed as AuthorizationDetail[] : [];
  } catch {
    return [];
  }
}

/**
 * How long a consent (grant) lives: `maxSeconds`, cut short by the earliest `expires_at`
 * of its account-information details. Always at least one second (oidc-provider needs a
 * positive integer; an already expired detail was refused at the request).
 */
export function consentLifetimeSeconds(details: readonly AuthorizationDetail[] | undefined, maxSeconds: number, now: Date): number {
  let seconds = maxSeconds;
  for (const detail of details ?? []) {
    if (detail.type === ACCOUNT_INFORMATION && detail.expires_at !== undefined) {
      seconds = Math.min(seconds, Math.floor((Date.parse(detail.expires_at) - now.getTime()) / 1000));
    }
  }
  return Math.max(1, seconds);
}
