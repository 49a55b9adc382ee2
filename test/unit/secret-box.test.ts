import { afterAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SecretBox, constantTimeEqual, loadOrCreateDevMasterKey, sha256Base64Url } from '../../src/services/secret-box.js';

const KEY = randomBytes(32).toString('base64');

/** Replaces the first character of a base64url string with a different one (always changes the first byte). */
function flipFirstChar(part: string): string {
  const replacement = part[0] === 'A' ? 'B' : 'A';
  return replacement + part.slice(1);
}

function parts(sealed: string): [string, string, string, string] {
  const split = sealed.split('.');
  expect(split).toHaveLength(4);
  const [version, iv, ciphertext, tag] = split;
  if (version === undefined || iv === undefined || ciphertext === undefined || tag === undefined) {
    throw new Error('unreachable');
  }
  return [version, iv, ciphertext, tag];
}

describe('SecretBox', () => {
  const box = new SecretBox(KEY);

  test('seal then open returns the plaintext', () => {
    const sealed = box.seal('client-secret-123', 'client_secret');
    expect(box.open(sealed, 'client_secret')).toBe('client-secret-123');
  });

  test('round trips unicode and the empty string', () => {
    const text = 'Grüße, 世界 — 🔐 ñ \u{1F600}';
    expect(box.open(box.seal(text, 'p'), 'p')).toBe(text);
    expect(box.open(box.seal('', 'p'), 'p')).toBe('');
  });

  test('sealed format is v1.<iv>.<ciphertext>.<tag> in base64url with a 12-byte IV and 16-byte tag', () => {
    const sealed = box.seal('hello', 'p');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const [, iv, ciphertext, tag] = parts(sealed);
    expect(Buffer.from(iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(ciphertext, 'base64url')).toHaveLength(5);
    expect(Buffer.from(tag, 'base64url')).toHaveLength(16);
    expect(sealed).not.toContain('hello');
  });

  test('a ciphertext opened with a different purpose fails (purpose is AAD)', () => {
    const sealed = box.seal('secret', 'client_secret');
    expect(() => box.open(sealed, 'totp_secret')).toThrow();
    expect(() => box.open(sealed, 'client_secreT')).toThrow();
    expect(() => box.open(sealed, '')).toThrow();
    // and the right purpose still works
    expect(box.open(sealed, 'client_secret')).toBe('secret');
  });

  test('a tampered ciphertext fails', () => {
    const [version, iv, ciphertext, tag] = parts(box.seal('a longer secret value', 'p'));
    const tampered = [version, iv, flipFirstChar(ciphertext), tag].join('.');
    expect(() => box.open(tampered, 'p')).toThrow();
  });

  test('a tampered tag fails', () => {
    const [version, iv, ciphertext, tag] = parts(box.seal('a longer secret value', 'p'));
    const tampered = [version, iv, ciphertext, flipFirstChar(tag)].join('.');
    expect(() => box.open(tampered, 'p')).toThrow();
  });

  test('a tampered IV fails', () => {
    const [version, iv, ciphertext, tag] = parts(box.seal('a longer secret value', 'p'));
    const tampered = [version, flipFirstChar(iv), ciphertext, tag].join('.');
    expect(() => box.open(tampered, 'p')).toThrow();
  });

  test('an unknown version or a malformed string fails with a format error', () => {
    const [, iv, ciphertext, tag] = parts(box.seal('x', 'p'));
    expect(() => box.open(['v2', iv, ciphertext, tag].join('.'), 'p')).toThrow('sealed secret has an unknown format');
    expect(() => box.open(`v1.${iv}.${ciphertext}`, 'p')).toThrow('sealed secret has an unknown format');
    expect(() => box.open('', 'p')).toThrow('sealed secret has an unknown format');
  });

  test('a ciphertext sealed under another key fails', () => {
    const other = new SecretBox(randomBytes(32).toString('base64'));
    expect(() => other.open(box.seal('secret', 'p'), 'p')).toThrow();
  });

  test('two seals of the same plaintext differ (random IV)', () => {
    const a = box.seal('same plaintext', 'p');
    const b = box.seal('same plaintext', 'p');
    expect(a).not.toBe(b);
    expect(parts(a)[1]).not.toBe(parts(b)[1]);
    expect(box.open(a, 'p')).toBe('same plaintext');
    expect(box.open(b, 'p')).toBe('same plaintext');
  });

  test('a master key of the wrong length throws', () => {
    expect(() => new SecretBox(randomBytes(31).toString('base64'))).toThrow('master key must be 32 bytes');
    expect(() => new SecretBox(randomBytes(33).toString('base64'))).toThrow('master key must be 32 bytes');
    expect(() => new SecretBox(randomBytes(16).toString('base64'))).toThrow('master key must be 32 bytes');
    expect(() => new SecretBox('')).toThrow('master key must be 32 bytes');
  });
});

describe('constantTimeEqual', () => {
  test.each([
    ['abc', 'abc', true],
    ['', '', true],
    ['ünïcødé 🔐', 'ünïcødé 🔐', true],
    ['abc', 'abd', false],
    ['abc', 'ABC', false],
    ['abc', 'abcd', false],
    ['abcd', 'abc', false],
    ['', 'a', false],
    ['a', '', false],
    ['secret', 'secret ', false],
  ])('constantTimeEqual(%j, %j) is %s', (a, b, expected) => {
    expect(constantTimeEqual(a, b)).toBe(expected);
  });
});

describe('sha256Base64Url', () => {
  test('known vector: sha256("abc")', () => {
    expect(sha256Base64Url('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });

  test('known vector: sha256("")', () => {
    expect(sha256Base64Url('')).toBe('47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU');
  });

  test('hashes the UTF-8 encoding', () => {
    // "é" is c3 a9 in UTF-8 (not the latin1 byte e9)
    const expected = createHash('sha256').update(Buffer.from([0xc3, 0xa9])).digest('base64url');
    expect(sha256Base64Url('\u00e9')).toBe(expected);
    expect(sha256Base64Url('\u00e9')).not.toBe(createHash('sha256').update(Buffer.from([0xe9])).digest('base64url'));
    // no Unicode normalisation: precomposed and decomposed forms differ
    expect(sha256Base64Url('\u00e9')).not.toBe(sha256Base64Url('e\u0301'));
  });
});

describe('loadOrCreateDevMasterKey', () => {
  const root = mkdtempSync(join(tmpdir(), 'portcullis-secret-box-'));

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  test('creates a 32-byte base64 key in a mode-0600 file and returns the same key again', () => {
    const dataDir = join(root, 'data-a');
    const key = loadOrCreateDevMasterKey(dataDir);
    expect(key).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(key, 'base64')).toHaveLength(32);

    const file = join(dataDir, 'master.key');
    expect(readFileSync(file, 'utf8').trim()).toBe(key);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    expect(loadOrCreateDevMasterKey(dataDir)).toBe(key);
    // the key works for a SecretBox
    const box = new SecretBox(key);
    expect(box.open(box.seal('x', 'p'), 'p')).toBe('x');
  });

  test('different data directories get different keys', () => {
    const a = loadOrCreateDevMasterKey(join(root, 'data-b'));
    const b = loadOrCreateDevMasterKey(join(root, 'data-c'));
    expect(a).not.toBe(b);
  });

  test('creates missing parent directories', () => {
    const dataDir = join(root, 'nested', 'deeper', 'data');
    const key = loadOrCreateDevMasterKey(dataDir);
    expect(readFileSync(join(dataDir, 'master.key'), 'utf8')).toBe(`${key}\n`);
  });
});
