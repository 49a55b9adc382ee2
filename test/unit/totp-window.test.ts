import { describe, expect, test } from '@jest/globals';
import { generate } from 'otplib';

import type { Db } from '../../src/db/database.js';
import { AuditLog } from '../../src/services/audit.js';
import { requiredAcr } from '../../src/services/sca-policy.js';
import { SecretBox } from '../../src/services/secret-box.js';
import { normaliseRecoveryCode, TotpService } from '../../src/services/totp.js';

/** TOTP window with an injected clock, no database: `matches` is pure computation. */
const T = 1_900_000_020; // a step boundary + 0 s
let clock = new Date(T * 1000);
const unusedDb = {} as Db;
const totp = new TotpService({
  db: unusedDb, box: new SecretBox(Buffer.alloc(32, 7).toString('base64')), recoveryKey: 'a'.repeat(43), audit: new AuditLog(unusedDb, () => clock), now: () => clock,
});
// A fixed secret: its codes around T are all distinct (asserted below), so no chance collision.
const secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
const codeAt = (epoch: number) => generate({ secret, epoch });

describe('RFC 6238 window: SHA-1, 6 digits, 30 s, ± 1 step', () => {
  test('the current, previous and next steps match; two steps away do not', async () => {
    clock = new Date(T * 1000);
    const step = Math.floor(T / 30);
    expect(await totp.matches(secret, await codeAt(T))).toBe(step);
    expect(await totp.matches(secret, await codeAt(T - 30))).toBe(step - 1);
    expect(await totp.matches(secret, await codeAt(T + 30))).toBe(step + 1);
    const codes = await Promise.all([T - 60, T - 30, T, T + 30, T + 60].map(codeAt));
    expect(new Set(codes).size).toBe(5);
    expect(await totp.matches(secret, codes[0]!)).toBeUndefined();
    expect(await totp.matches(secret, codes[4]!)).toBeUndefined();
  });

  test('the last second of a step still accepts the step before it; the next second does not', async () => {
    const step = Math.floor(T / 30);
    const oldCode = await codeAt((step - 1) * 30);
    clock = new Date(((step + 1) * 30 - 1) * 1000); // end of `step`: step-1 is one away
    expect(await totp.matches(secret, oldCode)).toBe(step - 1);
    clock = new Date((step + 1) * 30 * 1000); // start of step+1: step-1 is two away
    const nearby = await Promise.all([step, step + 1, step + 2].map((s) => codeAt(s * 30)));
    expect(nearby).not.toContain(oldCode);
    expect(await totp.matches(secret, oldCode)).toBeUndefined();
  });

  test('malformed codes never match and never throw', async () => {
    for (const code of ['', '12345', '1234567', 'abcdef', '12 456', '٣٣٣٣٣٣']) expect(await totp.matches(secret, code)).toBeUndefined();
  });
});

test('recovery codes are normalised: case, dashes and spaces do not matter; other shapes are not recovery codes', () => {
  expect(normaliseRecoveryCode('abcd-efgh-jkmn')).toBe('ABCD-EFGH-JKMN');
  expect(normaliseRecoveryCode('ABCD EFGH JKMN')).toBe('ABCD-EFGH-JKMN');
  expect(normaliseRecoveryCode('123456')).toBeUndefined();
  expect(normaliseRecoveryCode('ABCD-EFGH-JKM0')).toBeUndefined(); // 0 is not in the alphabet
});

test('an essential acr claim is enforced like acr_values', () => {
  const essential = (value: unknown) => JSON.stringify({ id_token: { acr: { essential: true, ...(value as object) } } });
  expect(requiredAcr({ claims: essential({ value: 'urn:openbanking:psd2:sca' }) })).toBe('urn:openbanking:psd2:sca');
  expect(requiredAcr({ claims: essential({ values: ['urn:openbanking:psd2:sca'] }) })).toBe('urn:openbanking:psd2:sca');
  expect(requiredAcr({ claims: essential({ values: ['urn:openbanking:psd2:sca', 'urn:openbanking:psd2:ca'] }) })).toBe('urn:openbanking:psd2:ca');
  expect(requiredAcr({ claims: JSON.stringify({ id_token: { acr: { value: 'urn:openbanking:psd2:sca' } } }) })).toBe('urn:openbanking:psd2:ca');
  expect(requiredAcr({ claims: '{not json' })).toBe('urn:openbanking:psd2:ca');
});
