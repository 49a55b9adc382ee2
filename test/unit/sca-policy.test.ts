import { describe, expect, test } from '@jest/globals';

import { ACR_CA, ACR_SCA } from '../../src/services/acr.js';
import { requiredAcr, satisfies, type LevelRequest } from '../../src/services/sca-policy.js';

const PAYMENT_DETAILS = [{ type: 'payment_initiation', instructedAmount: { currency: 'EUR', amount: '12.00' }, creditorName: 'Merchant' }];

describe('requiredAcr', () => {
  test('a request that asks for nothing in particular needs CA', () => {
    expect(requiredAcr({})).toBe(ACR_CA);
    expect(requiredAcr({ scope: 'openid accounts' })).toBe(ACR_CA);
  });

  test('acr_values listing only SCA needs SCA', () => {
    expect(requiredAcr({ acr_values: ACR_SCA })).toBe(ACR_SCA);
    expect(requiredAcr({ acr_values: `  ${ACR_SCA}  ` })).toBe(ACR_SCA);
    expect(requiredAcr({ scope: 'openid accounts', acr_values: ACR_SCA })).toBe(ACR_SCA);
  });

  test('acr_values listing only CA needs CA', () => {
    expect(requiredAcr({ acr_values: ACR_CA })).toBe(ACR_CA);
  });

  test('acr_values listing both needs CA: the weakest level listed is the minimum, whatever the order', () => {
    expect(requiredAcr({ acr_values: `${ACR_SCA} ${ACR_CA}` })).toBe(ACR_CA);
    expect(requiredAcr({ acr_values: `${ACR_CA} ${ACR_SCA}` })).toBe(ACR_CA);
    expect(requiredAcr({ acr_values: `${ACR_SCA}  ${ACR_CA}` })).toBe(ACR_CA);
  });

  test('acr_values that does not list CA never lowers the level to CA (unknown values are not a weaker level)', () => {
    expect(requiredAcr({ acr_values: 'urn:example:unknown' })).toBe(ACR_SCA);
    expect(requiredAcr({ acr_values: `urn:example:unknown ${ACR_SCA}` })).toBe(ACR_SCA);
  });

  test('a scope containing payments needs SCA, even when acr_values lists CA', () => {
    expect(requiredAcr({ scope: 'payments' })).toBe(ACR_SCA);
    expect(requiredAcr({ scope: 'openid payments' })).toBe(ACR_SCA);
    expect(requiredAcr({ scope: 'openid payments accounts' })).toBe(ACR_SCA);
    expect(requiredAcr({ scope: 'openid payments', acr_values: ACR_CA })).toBe(ACR_SCA);
    expect(requiredAcr({ scope: 'openid payments', acr_values: `${ACR_CA} ${ACR_SCA}` })).toBe(ACR_SCA);
  });

  test('scope is matched by whole scope values, not substrings', () => {
    expect(requiredAcr({ scope: 'openid accounts payments-history' })).toBe(ACR_CA);
    expect(requiredAcr({ scope: 'openid nopayments' })).toBe(ACR_CA);
  });

  test('authorization_details present, as a JSON string or an array, needs SCA (even with acr_values CA)', () => {
    expect(requiredAcr({ authorization_details: JSON.stringify(PAYMENT_DETAILS) })).toBe(ACR_SCA);
    expect(requiredAcr({ authorization_details: PAYMENT_DETAILS })).toBe(ACR_SCA);
    expect(requiredAcr({ authorization_details: JSON.stringify(PAYMENT_DETAILS), acr_values: ACR_CA })).toBe(ACR_SCA);
    expect(requiredAcr({ authorization_details: PAYMENT_DETAILS, scope: 'openid', acr_values: `${ACR_CA} ${ACR_SCA}` })).toBe(ACR_SCA);
  });

  test.each<[string, LevelRequest]>([
    ['undefined members', { acr_values: undefined, scope: undefined, authorization_details: undefined }],
    ['null members', { acr_values: null, scope: null, authorization_details: null }],
    ['empty strings', { acr_values: '', scope: '', authorization_details: '' }],
    ['an empty JSON array of authorization_details', { authorization_details: '[]' }],
    ['blank acr_values', { acr_values: '   ' }],
    ['non-string acr_values and scope', { acr_values: 42, scope: ['payments'] }],
  ])('empty values need CA: %s', (_name, request) => {
    expect(requiredAcr(request)).toBe(ACR_CA);
  });
});

describe('satisfies', () => {
  test.each<[unknown, string, boolean]>([
    [ACR_CA, ACR_CA, true],
    [ACR_SCA, ACR_CA, true],
    [ACR_SCA, ACR_SCA, true],
    [ACR_CA, ACR_SCA, false],
    [undefined, ACR_CA, false],
    [undefined, ACR_SCA, false],
    [null, ACR_CA, false],
    ['', ACR_CA, false],
    ['urn:example:unknown', ACR_CA, false],
    ['urn:example:unknown', ACR_SCA, false],
    [`${ACR_SCA} `, ACR_SCA, false],
    [ACR_SCA.toUpperCase(), ACR_SCA, false],
    [[ACR_SCA], ACR_SCA, false],
    // an unknown required level is satisfied only by the strongest one
    [ACR_SCA, 'urn:example:unknown', true],
    [ACR_CA, 'urn:example:unknown', false],
  ])('session acr %p against required %p → %p', (sessionAcr, required, expected) => {
    expect(satisfies(sessionAcr, required)).toBe(expected);
  });

  test('every level requiredAcr can return is satisfied by an SCA session', () => {
    for (const request of [{}, { scope: 'payments' }, { acr_values: ACR_CA }, { acr_values: ACR_SCA }, { authorization_details: PAYMENT_DETAILS }]) {
      expect(satisfies(ACR_SCA, requiredAcr(request))).toBe(true);
    }
  });
});
