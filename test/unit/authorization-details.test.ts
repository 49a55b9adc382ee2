import { describe, expect, test } from '@jest/globals';

import {
  AuthorizationDetailsValidator, consentLifetimeSeconds, formatAmount, InvalidDetailsError, paymentLinkHash,
  type AuthorizationDetail,
} from '../../src/services/authorization-details.js';

const now = new Date('2030-06-01T12:00:00Z');
const validator = new AuthorizationDetailsValidator({ currencies: ['EUR', 'GBP', 'JPY', 'KWD'], maxAmount: '10000' });
const payment = {
  type: 'payment_initiation',
  instructedAmount: { currency: 'EUR', amount: '123.45' },
  creditorName: 'Merchant GmbH',
  creditorAccount: { iban: 'DE89 3704 0044 0532 0130 00' },
  remittanceInformationUnstructured: 'Order 1',
};
const access = { type: 'account_information', actions: ['list_accounts', 'read_balances'], expires_at: '2030-09-01T00:00:00Z' };

describe('valid details', () => {
  test('a payment: IBAN normalised', () => {
    expect(validator.validate(payment, now)).toMatchObject({ creditorAccount: { iban: 'DE89370400440532013000' } });
  });
  test('account information with and without expiry', () => {
    expect(validator.validate(access, now)).toEqual(access);
    expect(validator.validate({ type: 'account_information', actions: ['read_transactions'] }, now)).toBeDefined();
  });
  test('currencies with 0 and 3 decimals', () => {
    expect(validator.validate({ ...payment, instructedAmount: { currency: 'JPY', amount: '5000' } }, now)).toBeDefined();
    expect(validator.validate({ ...payment, instructedAmount: { currency: 'KWD', amount: '1.125' } }, now)).toBeDefined();
  });
});

const invalid: [string, unknown][] = [
  ['unknown type', { type: 'crypto_transfer' }],
  ['no type', { actions: ['list_accounts'] }],
  ['not an object', 'payment'],
  ['null', null],
  ['unknown member', { ...payment, fee: '1.00' }],
  ['unknown member in amount', { ...payment, instructedAmount: { currency: 'EUR', amount: '1.00', fx: 1 } }],
  ['amount as a number', { ...payment, instructedAmount: { currency: 'EUR', amount: 123.45 } }],
  ['negative amount', { ...payment, instructedAmount: { currency: 'EUR', amount: '-1.00' } }],
  ['zero amount', { ...payment, instructedAmount: { currency: 'EUR', amount: '0.00' } }],
  ['too many decimals for EUR', { ...payment, instructedAmount: { currency: 'EUR', amount: '1.001' } }],
  ['decimals for JPY', { ...payment, instructedAmount: { currency: 'JPY', amount: '1.5' } }],
  ['above the maximum', { ...payment, instructedAmount: { currency: 'EUR', amount: '10000.01' } }],
  ['exponent notation', { ...payment, instructedAmount: { currency: 'EUR', amount: '1e3' } }],
  ['leading zeros', { ...payment, instructedAmount: { currency: 'EUR', amount: '0012.00' } }],
  ['currency not configured', { ...payment, instructedAmount: { currency: 'USD', amount: '1.00' } }],
  ['lower-case currency', { ...payment, instructedAmount: { currency: 'eur', amount: '1.00' } }],
  ['IBAN checksum', { ...payment, creditorAccount: { iban: 'DE89370400440532013001' } }],
  ['creditor name too long', { ...payment, creditorName: 'x'.repeat(71) }],
  ['blank creditor name', { ...payment, creditorName: '   ' }],
  ['creditor name with a control character', { ...payment, creditorName: 'Bad\u0007Name' }],
  ['remittance too long', { ...payment, remittanceInformationUnstructured: 'x'.repeat(141) }],
  ['lone surrogate', { ...payment, creditorName: 'Bad \uD800 name' }],
  ['__proto__ key', JSON.parse('{"type":"payment_initiation","__proto__":{"polluted":true}}')],
  ['constructor key', { ...access, constructor: { prototype: {} } }],
  ['unknown action', { ...access, actions: ['transfer'] }],
  ['no actions', { ...access, actions: [] }],
  ['duplicate actions', { ...access, actions: ['read_balances', 'read_balances'] }],
  ['expires_at in the past', { ...access, expires_at: '2030-05-01T00:00:00Z' }],
  ['expires_at beyond 180 days', { ...access, expires_at: '2031-01-01T00:00:00Z' }],
  ['expires_at not a date', { ...access, expires_at: 'next year' }],
  ['too many locations', { ...access, locations: Array.from({ length: 11 }, (_, i) => `https://api${i}.example`) }],
  ['deep nesting', { ...access, locations: [[[[[[[[[['x']]]]]]]]]] }],
  ['non-finite number', { ...payment, instructedAmount: { currency: 'EUR', amount: Number.POSITIVE_INFINITY } }],
];

describe('invalid details are refused with a clear message', () => {
  test.each(invalid)('%s', (_name, detail) => {
    expect(() => validator.validate(detail, now)).toThrow(InvalidDetailsError);
  });
  test('the corpus has at least 15 cases', () => {
    expect(invalid.length).toBeGreaterThanOrEqual(15);
  });
});

describe('dynamic linking hash', () => {
  const base = validator.validate(payment, now) as AuthorizationDetail;
  test('covers amount, currency and payee — and nothing else', () => {
    const hash = paymentLinkHash([base]);
    expect(hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(paymentLinkHash([{ ...base, remittanceInformationUnstructured: 'other' } as AuthorizationDetail])).toBe(hash);
    expect(paymentLinkHash([{ ...base, instructedAmount: { currency: 'EUR', amount: '123.46' } } as AuthorizationDetail])).not.toBe(hash);
    expect(paymentLinkHash([{ ...base, instructedAmount: { currency: 'GBP', amount: '123.45' } } as AuthorizationDetail])).not.toBe(hash);
    expect(paymentLinkHash([{ ...base, creditorName: 'Merchant AG' } as AuthorizationDetail])).not.toBe(hash);
    expect(paymentLinkHash([{ ...base, creditorAccount: { iban: 'GB82WEST12345698765432' } } as AuthorizationDetail])).not.toBe(hash);
  });
  test('no payment, no hash', () => {
    expect(paymentLinkHash([access as AuthorizationDetail])).toBeUndefined();
  });
});

test('amounts are formatted for people', () => {
  expect(formatAmount('1250', 'GBP')).toBe('GBP 1,250.00');
  expect(formatAmount('1234567.5', 'EUR')).toBe('EUR 1,234,567.50');
  expect(formatAmount('5000', 'JPY')).toBe('JPY 5,000');
});

test('a consent lives the configured maximum, or until its account access expires', () => {
  expect(consentLifetimeSeconds(undefined, 90 * 86400, now)).toBe(90 * 86400);
  expect(consentLifetimeSeconds([{ type: 'account_information', actions: ['read_balances'], expires_at: '2030-06-03T12:00:00Z' }], 90 * 86400, now)).toBe(2 * 86400);
  expect(consentLifetimeSeconds([{ type: 'account_information', actions: ['read_balances'], expires_at: '2030-05-03T12:00:00Z' }], 90 * 86400, now)).toBe(1);
});
