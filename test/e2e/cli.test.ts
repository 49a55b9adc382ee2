import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair } from 'jose';

import { openDatabase } from '../../src/db/database.js';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../support/database.js';
import { runCli } from '../support/processes.js';

/** The `portcullis` command as DESIGN §3 specifies it, run as a real process. */
let database: TestDatabase | undefined;
let dataDir: string;
let env: Record<string, string>;

async function rowCounts(): Promise<Record<string, number>> {
  const opened = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir });
  try {
    const counts: Record<string, number> = {};
    for (const table of ['users', 'bank_accounts', 'clients'] as const) {
      const row = await opened.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      counts[table] = Number(row.n);
    }
    return counts;
  } finally {
    await opened.db.destroy();
  }
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
  env = { DATA_DIR: dataDir, MASTER_KEY: Buffer.alloc(32, 3).toString('base64') };
  if (usingPostgres()) {
    database = await createTestDatabase();
    env.DATABASE_URL = database.url!;
  }
  const migrated = await runCli(['migrate', '--json'], env);
  expect(migrated.code).toBe(0);
  expect(JSON.parse(migrated.stdout)).toMatchObject({ ok: true });
  const user = await runCli(['user', 'create', '--username', 'dave', '--password-stdin', '--json'], env, 'dave has a long password\n');
  expect(user.code).toBe(0);
}, 60_000);

afterAll(async () => {
  await database?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('portcullis CLI', () => {
  test('--json prints exactly one JSON object; human output otherwise', async () => {
    const json = await runCli(['keys', 'list', '--json'], env);
    expect(json.code).toBe(0);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    const { keys } = JSON.parse(json.stdout) as { keys: { alg: string; state: string }[] };
    expect(keys.map((k) => k.alg).sort()).toEqual(['ES256', 'EdDSA', 'PS256']);
    expect(keys.every((k) => k.state === 'active')).toBe(true);
    const text = await runCli(['keys', 'list'], env);
    expect(text.stdout).toMatch(/PS256\s+active/);
  });

  test('client create reads metadata from a file or stdin and applies the FAPI 2.0 defaults', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const metadata = { client_name: 'File TPP', redirect_uris: ['https://tpp.example/cb'], jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'a' }] } };
    const file = join(dataDir, 'client.json');
    writeFileSync(file, JSON.stringify(metadata));
    const fromFile = await runCli(['client', 'create', '--metadata-file', file, '--json'], env);
    expect(fromFile.code).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({
      client_id: expect.stringMatching(/^tpp-/),
      client_name: 'File TPP',
      token_endpoint_auth_method: 'private_key_jwt',
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      response_types: ['code'],
      profile: 'fapi2',
    });
    const fromStdin = await runCli(['client', 'create', '--metadata-file', '-', '--json'], env, JSON.stringify({ ...metadata, client_name: 'Stdin TPP' }));
    expect(fromStdin.code).toBe(0);
  });

  test('resource-server create shows the secret once', async () => {
    const out = await runCli(['resource-server', 'create', '--name', 'Payments API', '--json'], env);
    expect(out.code).toBe(0);
    const parsed = JSON.parse(out.stdout) as Record<string, string>;
    expect(Object.keys(parsed).sort()).toEqual(['client_id', 'client_secret']);
    expect(parsed.client_secret!.length).toBeGreaterThanOrEqual(43);
  });

  const rejected: [string, string[], string, RegExp][] = [
    ['password on argv', ['user', 'create', '--username', 'eve', '--password', 'hunter2hunter2'], '', /never read from the command line/],
    ['missing --password-stdin', ['user', 'create', '--username', 'eve'], 'x', /--password-stdin is required/],
    ['short password', ['user', 'create', '--username', 'eve', '--password-stdin'], 'short\n', /at least 10 characters/],
    ['duplicate username', ['user', 'create', '--username', 'DAVE', '--password-stdin'], 'another long password\n', /already taken/],
    ['confusable username', ['user', 'create', '--username', 'd\u0430ve', '--password-stdin'], 'another long password\n', /username must be/],
    ['unknown option', ['user', 'create', '--username', 'eve', '--password-stdin', '--admin'], 'another long password\n', /Unknown option/],
    ['bad IBAN', ['account', 'add', '--username', 'dave', '--id', 'd1', '--name', 'X', '--iban', 'GB82WEST12345698765431', '--currency', 'GBP'], '', /not a valid IBAN/],
    ['bad currency', ['account', 'add', '--username', 'dave', '--id', 'd1', '--name', 'X', '--iban', 'GB82WEST12345698765432', '--currency', 'pounds'], '', /ISO 4217/],
    ['bad balance', ['account', 'add', '--username', 'dave', '--id', 'd1', '--name', 'X', '--iban', 'GB82WEST12345698765432', '--currency', 'GBP', '--balance', '1e9'], '', /decimal/],
    ['unknown user', ['account', 'add', '--username', 'nobody', '--id', 'd1', '--name', 'X', '--iban', 'GB82WEST12345698765432', '--currency', 'GBP'], '', /no such user/],
    ['metadata not JSON', ['client', 'create', '--metadata-file', '-'], '{not json', /not valid JSON/],
    ['metadata file missing', ['client', 'create', '--metadata-file', '/nonexistent/client.json'], '', /cannot read/],
    ['unknown metadata member', ['client', 'create', '--metadata-file', '-'], JSON.stringify({ redirect_uris: ['https://a.example/cb'], jwks: { keys: [] }, hack: true }), /unknown client metadata member/],
    ['client without binding', ['client', 'create', '--metadata-file', '-'], JSON.stringify({ redirect_uris: ['https://a.example/cb'], jwks_uri: 'https://a.example/jwks', dpop_bound_access_tokens: false }), /sender-constrained/],
    ['client secret auth', ['client', 'create', '--metadata-file', '-'], JSON.stringify({ redirect_uris: ['https://a.example/cb'], token_endpoint_auth_method: 'client_secret_basic' }), /private_key_jwt/],
    ['unknown command', ['user', 'delete'], '', /unknown command/],
  ];

  test.each(rejected)('%s: clear message on stderr, non-zero exit, nothing written', async (_name, args, input, message) => {
    const before = await rowCounts();
    const out = await runCli([...args, '--json'], env, input);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(message);
    expect(out.stderr.trim().split('\n').length).toBeLessThanOrEqual(10);
    expect(out.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(JSON.parse(out.stdout)).toHaveProperty('error.message');
    expect(await rowCounts()).toEqual(before);
  });

  test('an invalid environment stops with one line naming the variable', async () => {
    const out = await runCli(['keys', 'list'], { ...env, PORT: 'eighty' });
    expect(out.code).toBe(2);
    expect(out.stderr.trim()).toBe('portcullis: configuration error: PORT: expected an integer between 0 and 65535');
  });
});
