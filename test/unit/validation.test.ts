import { describe, expect, test } from '@jest/globals';

import { normaliseUsername } from '../../src/services/customers.js';
import { ValidationError } from '../../src/services/errors.js';
import { assertCleanText, isValidIban, normaliseIban } from '../../src/services/validation.js';

/** Runs fn expecting a ValidationError; returns it for further assertions. */
function validationError(fn: () => unknown): ValidationError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  return caught as ValidationError;
}

describe('isValidIban', () => {
  test.each([
    'GB82WEST12345698765432',
    'DE89370400440532013000',
    'FR1420041010050500013M02606',
    'GB82 WEST 1234 5698 7654 32',
    'gb82west12345698765432',
    'de89 3704 0044 0532 0130 00',
    'fr1420041010050500013m02606',
    'NO9386011117947', // shortest real IBAN (15 characters)
  ])('accepts %j', (iban) => {
    expect(isValidIban(iban)).toBe(true);
  });

  test.each([
    ['checksum off by one (check digits)', 'GB83WEST12345698765432'],
    ['checksum off by one (account digit)', 'GB82WEST12345698765433'],
    ['checksum off by one (DE)', 'DE89370400440532013001'],
    ['too short', 'GB82WEST1234'],
    ['too short, otherwise well-formed prefix', 'DE89'],
    ['letters in check digits', 'GBXXWEST12345698765432'],
    ['digits in country code', '1282WEST12345698765432'],
    ['empty', ''],
    ['only spaces', '    '],
    ['punctuation', 'GB82-WEST-1234-5698-7654-32'],
    ['too long (35 characters)', `GB82${'1'.repeat(31)}`],
  ])('rejects %s: %j', (_label, iban) => {
    expect(isValidIban(iban)).toBe(false);
  });
});

describe('normaliseIban', () => {
  test('removes spaces and upper-cases', () => {
    expect(normaliseIban('gb82 west 1234 5698 7654 32')).toBe('GB82WEST12345698765432');
    expect(normaliseIban('FR14 2004 1010 0505 0001 3M02 606')).toBe('FR1420041010050500013M02606');
  });

  test('is idempotent on a normalised IBAN', () => {
    expect(normaliseIban('DE89370400440532013000')).toBe('DE89370400440532013000');
  });
});

describe('assertCleanText', () => {
  test('returns clean text unchanged, including unicode and tab-free punctuation', () => {
    expect(assertCleanText('name', 'Zoë Müller-Smith — 日本 🙂', 100)).toBe('Zoë Müller-Smith — 日本 🙂');
    expect(assertCleanText('name', '', 10)).toBe('');
  });

  test('rejects NUL', () => {
    const error = validationError(() => assertCleanText('name', 'ali\u0000ce', 100));
    expect(error.code).toBe('INVALID_TEXT');
    expect(error.message).toBe('name contains control characters');
  });

  test.each([
    ['BEL', '\u0007'],
    ['backspace', '\u0008'],
    ['carriage return', '\r'],
    ['escape', '\u001B'],
    ['DEL', '\u007F'],
    ['C1 NEL', '\u0085'],
    ['C1 CSI', '\u009B'],
  ])('rejects %s even when multiline', (_label, ch) => {
    for (const multiline of [false, true]) {
      const error = validationError(() => assertCleanText('memo', `a${ch}b`, 100, { multiline }));
      expect(error.code).toBe('INVALID_TEXT');
      expect(error.message).toBe('memo contains control characters');
    }
  });

  test('rejects a lone high surrogate', () => {
    const error = validationError(() => assertCleanText('name', 'a\uD800b', 100));
    expect(error.code).toBe('INVALID_TEXT');
    expect(error.message).toBe('name is not well-formed Unicode');
  });

  test('rejects a lone low surrogate and a reversed pair', () => {
    expect(validationError(() => assertCleanText('name', '\uDC00', 100)).message).toBe('name is not well-formed Unicode');
    expect(validationError(() => assertCleanText('name', '\uDE00\uD83D', 100)).message).toBe('name is not well-formed Unicode');
  });

  test('rejects over-long text and accepts exactly maxLength', () => {
    expect(assertCleanText('name', 'x'.repeat(10), 10)).toBe('x'.repeat(10));
    const error = validationError(() => assertCleanText('name', 'x'.repeat(11), 10));
    expect(error.code).toBe('INVALID_TEXT');
    expect(error.message).toBe('name is longer than 10 characters');
  });

  test('rejects newline and tab when not multiline', () => {
    expect(validationError(() => assertCleanText('name', 'line1\nline2', 100)).message).toBe('name contains control characters');
    expect(validationError(() => assertCleanText('name', 'a\tb', 100)).message).toBe('name contains control characters');
    expect(validationError(() => assertCleanText('name', 'a\nb', 100, { multiline: false })).code).toBe('INVALID_TEXT');
  });

  test('allows newline and tab when multiline', () => {
    expect(assertCleanText('memo', 'line1\nline2', 100, { multiline: true })).toBe('line1\nline2');
    expect(assertCleanText('memo', 'a\tb', 100, { multiline: true })).toBe('a\tb');
  });
});

describe('normaliseUsername', () => {
  test('lower-cases and trims', () => {
    expect(normaliseUsername('  Alice  ')).toBe('alice');
    expect(normaliseUsername('BOB.Smith@Example.COM')).toBe('bob.smith@example.com');
    expect(normaliseUsername('\tcarol_99-x\n')).toBe('carol_99-x');
  });

  test('accepts exactly 3 and exactly 64 characters', () => {
    expect(normaliseUsername('abc')).toBe('abc');
    expect(normaliseUsername('a'.repeat(64))).toBe('a'.repeat(64));
  });

  test.each([
    ['Cyrillic а in "аlice"', '\u0430lice'],
    ['Cyrillic е in "alicе"', 'alic\u0435'],
    ['Greek ο in "bοb"', 'b\u03BFb'],
    ['fullwidth letters', '\uFF41\uFF4C\uFF49\uFF43\uFF45'],
    ['too short (2)', 'ab'],
    ['too short after trim', '  ab  '],
    ['too long (65)', 'a'.repeat(65)],
    ['inner space', 'alice smith'],
    ['empty', ''],
    ['leading dot', '.alice'],
    ['leading dash', '-alice'],
    ['slash', 'alice/bob'],
    ['NUL', 'alice\u0000'],
    ['accented letter', 'zoë'],
  ])('rejects %s', (_label, input) => {
    const error = validationError(() => normaliseUsername(input));
    expect(error.name).toBe('ValidationError');
    expect(error.code).toBe('INVALID_USERNAME');
  });

  test('a confusable lookalike does not normalise to the ASCII name', () => {
    expect(() => normaliseUsername('\u0430lice')).toThrow(ValidationError);
    expect(normaliseUsername('alice')).toBe('alice');
  });
});
