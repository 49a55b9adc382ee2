import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { sql } from 'kysely';
import { generate, verify } from 'otplib';

import { openDatabase, type Db } from '../../src/db/database.js';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../support/database.js';
import { runCli } from '../support/processes.js';

/**
 * The SCA commands of `portcullis` (DESIGN §3) as real processes on their own database:
 * `user totp`, `user unlock`, `audit verify`.
 */
let database: TestDatabase | undefined;
let dataDir: string;
let env: Record<string, string>;

/** Opens the CLI's database between CLI runs (PGlite's data directory is single-process). */
async function withDb<T>(use: (db: Db) => Promise<T>): Promise<T> {
  const opened = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir });
  try {
    return await use(opened.db);
  } finally {
    await opened.db.destroy();
  }
}

function parseJson(stdout: string): Record<string, unknown> {
  expect(stdout.trim().split('\n')).toHaveLength(1);
  return JSON.parse(stdout) as Record<string, unknown>;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'portcullis-cli-sca-'));
  env = { DATA_DIR: dataDir, MASTER_KEY: Buffer.alloc(32, 5).toString('base64') };
  if (usingPostgres()) {
    database = await createTestDatabase();
    env.DATABASE_URL = database.url!;
  }
  expect((await runCli(['migrate', '--json'], env)).code).toBe(0);
  for (const username of ['frank', 'grace']) {
    const user = await runCli(['user', 'create', '--username', username, '--password-stdin', '--json'], env, `${username} has a long password\n`);
    expect(user.code).toBe(0);
  }
}, 60_000);

afterAll(async () => {
  await database?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('portcullis SCA commands', () => {
  test('user totp --json: a secret, its otpauth:// URI and 10 recovery codes; the secret is stored sealed', async () => {
    const out = await runCli(['user', 'totp', '--username', 'Frank', '--json'], env);
    expect(out.code).toBe(0);
    expect(out.stderr).toBe('');
    const parsed = parseJson(out.stdout) as { secret: string; otpauth_uri: string; recovery_codes: string[] };
    expect(Object.keys(parsed).sort()).toEqual(['otpauth_uri', 'recovery_codes', 'secret']);
    expect(parsed.secret).toMatch(/^[A-Z2-7]{16,}=*$/);
    expect(parsed.otpauth_uri.startsWith('otpauth://totp/')).toBe(true);
    const uri = new URL(parsed.otpauth_uri);
    expect(uri.searchParams.get('issuer')).toBe('Portcullis');
    expect(uri.searchParams.get('secret')).toBe(parsed.secret);
    expect(decodeURIComponent(uri.pathname)).toContain('frank');
    expect(parsed.otpauth_uri).toContain('issuer=Portcullis');
    expect(parsed.recovery_codes).toHaveLength(10);
    expect(new Set(parsed.recovery_codes).size).toBe(10);
    for (const code of parsed.recovery_codes) expect(code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    // The secret works in an authenticator app (RFC 6238 defaults).
    expect((await verify({ secret: parsed.secret, token: await generate({ secret: parsed.secret }) })).valid).toBe(true);

    const stored = await withDb((db) => db.selectFrom('users').select(['totp_secret_enc', 'totp_enrolled_at']).where('username', '=', 'frank').executeTakeFirstOrThrow());
    expect(typeof stored.totp_secret_enc).toBe('string');
    expect(stored.totp_secret_enc).not.toContain(parsed.secret);
    expect(stored.totp_enrolled_at).not.toBeNull();
    const events = await withDb((db) => db.selectFrom('audit_events').select(['type', 'actor']).where('type', '=', 'totp.enrolled').execute());
    expect(events).toEqual([{ type: 'totp.enrolled', actor: 'cli' }]);

    // Re-enrolment replaces the secret and the recovery codes.
    const again = parseJson((await runCli(['user', 'totp', '--username', 'frank', '--json'], env)).stdout) as { secret: string; recovery_codes: string[] };
    expect(again.secret).not.toBe(parsed.secret);
    expect(again.recovery_codes.filter((c) => parsed.recovery_codes.includes(c))).toEqual([]);
  });

  test('user totp / user unlock for an unknown user: non-zero exit and a clear message', async () => {
    for (const command of ['totp', 'unlock']) {
      const out = await runCli(['user', command, '--username', 'nobody', '--json'], env);
      expect(out.code).not.toBe(0);
      expect(out.stderr.trim()).toBe('portcullis: no such user');
      expect(parseJson(out.stdout)).toEqual({ error: { message: 'no such user' } });
    }
    const missing = await runCli(['user', 'totp'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--username is required/);
  });

  test('user unlock clears a permanent block and the failure counters', async () => {
    await withDb((db) => db.updateTable('users')
      .set({ locked_permanently: true, locked_until: new Date(Date.now() + 3_600_000), lock_count: 3, failed_attempts: 4 })
      .where('username', '=', 'grace').execute());
    const out = await runCli(['user', 'unlock', '--username', 'grace', '--json'], env);
    expect(out.code).toBe(0);
    expect(parseJson(out.stdout)).toEqual({ username: 'grace', unlocked: true });
    const state = await withDb((db) => db.selectFrom('users').select(['locked_permanently', 'locked_until', 'lock_count', 'failed_attempts']).where('username', '=', 'grace').executeTakeFirstOrThrow());
    expect(state).toEqual({ locked_permanently: false, locked_until: null, lock_count: 0, failed_attempts: 0 });
    const events = await withDb((db) => db.selectFrom('audit_events').select(['type', 'actor']).where('type', '=', 'account.unlocked').execute());
    expect(events).toEqual([{ type: 'account.unlocked', actor: 'cli' }]);
  });

  test('audit verify: intact chain → exit 0 {"ok":true,"events":N}; after tampering → exit 1, ok:false', async () => {
    const stored = await withDb(async (db) => Number((await db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n));
    const intact = await runCli(['audit', 'verify', '--json'], env);
    expect(intact.code).toBe(0);
    const result = parseJson(intact.stdout);
    expect(result).toEqual({ ok: true, events: stored });
    // At least what the commands above recorded: two enrolments and an unlock.
    expect(result.events).toBeGreaterThanOrEqual(3);
    const text = await runCli(['audit', 'verify'], env);
    expect(text.code).toBe(0);
    expect(text.stdout.trim()).toBe(`audit chain intact: ${stored} events`);

    await withDb(async (db) => {
      // The database refuses to rewrite history on its own…
      await expect(sql`update audit_events set data = ${JSON.stringify({ by: 'nobody' })}::jsonb where seq = 2`.execute(db)).rejects.toThrow(/append-only/);
      // …so the tamperer switches the trigger off first.
      await sql`alter table audit_events disable trigger audit_events_no_update_delete`.execute(db);
      await sql`update audit_events set data = ${JSON.stringify({ by: 'nobody' })}::jsonb where seq = 2`.execute(db);
      await sql`alter table audit_events enable trigger audit_events_no_update_delete`.execute(db);
    });
    const broken = await runCli(['audit', 'verify', '--json'], env);
    expect(broken.code).toBe(1);
    expect(parseJson(broken.stdout)).toEqual({ ok: false, events: 1, brokenAt: 2 });
    expect(broken.stderr).toMatch(/audit chain broken at event 2/);
  });
});
