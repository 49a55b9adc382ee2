import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { generate } from 'otplib';

import type { Config } from '../../src/config.js';
import { openDatabase, type Database, type Db } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { ACR_CA, ACR_SCA } from '../../src/services/acr.js';
import { AuditLog } from '../../src/services/audit.js';
import { AuthenticationService, type SignInOutcome } from '../../src/services/authentication.js';
import { CustomerService } from '../../src/services/customers.js';
import { PasswordHasher } from '../../src/services/passwords.js';
import { SecretBox } from '../../src/services/secret-box.js';
import { TOTP_PERIOD, TotpService } from '../../src/services/totp.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/** Counts the real password verifications (the dummy ones for unknown or blocked customers do not count). */
class CountingHasher extends PasswordHasher {
  verifications = 0;

  override async verify(hash: string, password: string): Promise<boolean> {
    this.verifications += 1;
    return super.verify(hash, password);
  }
}

const RULES: Config['sca'] = { maxFailures: 5, blockSeconds: 1800, permanentAfterBlocks: 3, ipMaxFailures: 1000, ipWindowSeconds: 900, sessionIdleSeconds: 300 };
const PASSWORD = 'correct horse battery staple';
const WRONG_PASSWORD = 'incorrect horse battery staple';
const FAILED = { ok: false, reason: 'failed' };
const BASE_STEP = Math.floor(Date.parse('2030-06-01T12:00:00.000Z') / 1000 / TOTP_PERIOD);

let testDb: TestDatabase;
let database: Database;
let db: Db;
let clock = new Date(BASE_STEP * TOTP_PERIOD * 1000);
const now = (): Date => clock;
const passwords = new CountingHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1, maxConcurrent: 2 });
let audit: AuditLog;
let totp: TotpService;
let authentication: AuthenticationService;
let customers: CustomerService;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = await openDatabase({
    databaseUrl: testDb.url,
    dataDir: '/nonexistent',
    pglite: testDb.kind === 'pglite' ? await testDb.pglite() : undefined,
  });
  await migrateToLatest(database.db);
  db = database.db;
  audit = new AuditLog(db, now);
  totp = new TotpService({ db, box: new SecretBox(Buffer.alloc(32, 7).toString('base64')), recoveryKey: Buffer.alloc(32, 1).toString('base64url'), audit, now });
  authentication = new AuthenticationService({ db, passwords, totp, audit, rules: RULES, now });
  customers = new CustomerService(db, passwords);
  await passwords.warmUp();
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

// ---- helpers -------------------------------------------------------------------------

function advance(seconds: number): void {
  clock = new Date(clock.getTime() + seconds * 1000);
}

/** Puts the clock `offsetMs` into time step `step`. */
function atStep(step: number, offsetMs = 0): void {
  clock = new Date(step * TOTP_PERIOD * 1000 + offsetMs);
}

function currentStep(): number {
  return Math.floor(clock.getTime() / 1000 / TOTP_PERIOD);
}

function codeAt(secret: string, step: number): Promise<string> {
  return generate({ secret, epoch: step * TOTP_PERIOD });
}

/**
 * A step at or after `from` around which the codes of steps −2..+2 are all different,
 * so that "accepted" and "rejected" can only be explained by the step, never by chance.
 */
async function distinctStep(secret: string, from: number): Promise<number> {
  for (let step = from; ; step += 1) {
    const codes = await Promise.all([-2, -1, 0, 1, 2].map((d) => codeAt(secret, step + d)));
    if (new Set(codes).size === codes.length) return step;
  }
}

/** A well-formed code accepted by none of the steps the server could accept now. */
async function wrongCode(secret: string): Promise<string> {
  const step = currentStep();
  const window = new Set(await Promise.all([-1, 0, 1].map((d) => codeAt(secret, step + d))));
  for (let n = 0; ; n += 1) {
    const candidate = String(n).padStart(6, '0');
    if (!window.has(candidate)) return candidate;
  }
}

let customerCount = 0;
async function newCustomer(prefix: string): Promise<{ id: string; username: string }> {
  customerCount += 1;
  return customers.create({ username: `${prefix}-${customerCount}`, password: PASSWORD });
}

async function enrolledCustomer(prefix: string): Promise<{ id: string; username: string; secret: string; recoveryCodes: string[] }> {
  const customer = await newCustomer(prefix);
  const { secret, recoveryCodes } = await totp.enrol(customer.id, customer.username, { actor: 'test' });
  return { ...customer, secret, recoveryCodes };
}

let ipCount = 0;
function freshIp(): string {
  ipCount += 1;
  return `198.51.100.${ipCount}`;
}

function signIn(
  service: AuthenticationService,
  username: string,
  password: string,
  options: { otp?: string; needSca?: boolean; ip?: string } = {},
): Promise<SignInOutcome> {
  return service.signIn({
    username, password, otp: options.otp, needSca: options.needSca ?? false,
    context: { ip: options.ip ?? '203.0.113.1', requestId: 'req-test' },
  });
}

async function lockState(userId: string) {
  return db.selectFrom('users').select(['failed_attempts', 'locked_until', 'lock_count', 'locked_permanently']).where('id', '=', userId).executeTakeFirstOrThrow();
}

async function auditEvents(userId: string, type: string) {
  return db.selectFrom('audit_events').selectAll().where('user_id', '=', userId).where('type', '=', type).orderBy('seq').execute();
}

/** `maxFailures` wrong passwords in a row, one after the other. */
async function failFive(username: string, ip: string): Promise<void> {
  for (let i = 0; i < RULES.maxFailures; i += 1) {
    expect(await signIn(authentication, username, WRONG_PASSWORD, { ip })).toEqual(FAILED);
  }
}

// ---- TOTP ----------------------------------------------------------------------------

describe('TOTP enrolment', () => {
  test('enrol returns a base32 secret, an otpauth URI and 10 distinct recovery codes', async () => {
    const customer = await newCustomer('enrol');
    const enrolment = await totp.enrol(customer.id, customer.username, { actor: 'test' });

    expect(enrolment.secret).toMatch(/^[A-Z2-7]{16,}$/);
    const uri = new URL(enrolment.otpauthUri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe(`/Portcullis:${customer.username}`);
    expect(uri.searchParams.get('secret')).toBe(enrolment.secret);
    expect(uri.searchParams.get('issuer')).toBe('Portcullis');
    // SHA-1, 6 digits, 30 s: stated or left to the authenticator's default
    expect([null, 'SHA1']).toContain(uri.searchParams.get('algorithm'));
    expect([null, '6']).toContain(uri.searchParams.get('digits'));
    expect([null, '30']).toContain(uri.searchParams.get('period'));

    expect(enrolment.recoveryCodes).toHaveLength(10);
    expect(new Set(enrolment.recoveryCodes).size).toBe(10);
    for (const code of enrolment.recoveryCodes) expect(code).toMatch(/^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/);

    expect(await totp.isEnrolled(customer.id)).toBe(true);
    // the secret stored is the one returned: its codes are accepted
    atStep(await distinctStep(enrolment.secret, BASE_STEP));
    expect(await totp.verifyCode(customer.id, await codeAt(enrolment.secret, currentStep()))).toBe(true);
  });

  test('neither the secret nor the recovery codes are stored in the clear', async () => {
    const customer = await newCustomer('stored');
    const { secret, recoveryCodes } = await totp.enrol(customer.id, customer.username, { actor: 'test' });

    const user = await db.selectFrom('users').select(['totp_secret_enc', 'totp_enrolled_at', 'totp_last_step']).where('id', '=', customer.id).executeTakeFirstOrThrow();
    expect(user.totp_secret_enc).toEqual(expect.any(String));
    expect(user.totp_secret_enc).not.toContain(secret);
    expect(user.totp_secret_enc?.toUpperCase()).not.toContain(secret);
    expect(user.totp_enrolled_at).toEqual(clock);
    expect(user.totp_last_step).toBeNull();

    const stored = await db.selectFrom('recovery_codes').select(['code_hash', 'used_at']).where('user_id', '=', customer.id).execute();
    expect(stored).toHaveLength(10);
    for (const row of stored) {
      expect(row.used_at).toBeNull();
      for (const code of recoveryCodes) {
        expect(row.code_hash).not.toContain(code);
        expect(row.code_hash.toUpperCase()).not.toContain(code.replaceAll('-', ''));
      }
    }
  });

  test('an operator enrolment is audited as totp.enrolled', async () => {
    const customer = await newCustomer('audited');
    const { secret } = await totp.enrol(customer.id, customer.username, { actor: 'test' });
    const events = await auditEvents(customer.id, 'totp.enrolled');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: 'test', user_id: customer.id, data: { by: 'operator' } });
    expect(JSON.stringify(events[0])).not.toContain(secret);
    expect((await audit.verify()).ok).toBe(true);
  });

  test('a new enrolment replaces the old secret and recovery codes', async () => {
    const first = await enrolledCustomer('reenrol');
    const second = await totp.enrol(first.id, first.username, { actor: 'test' });
    expect(second.secret).not.toBe(first.secret);
    expect(await totp.verifyCode(first.id, first.recoveryCodes[0] ?? '')).toBe(false);
    expect(await totp.verifyCode(first.id, second.recoveryCodes[0] ?? '')).toBe(true);
    expect(await db.selectFrom('recovery_codes').select('code_hash').where('user_id', '=', first.id).execute()).toHaveLength(10);
  });

  test('a customer without an authenticator has no code that works', async () => {
    const customer = await newCustomer('noauth');
    expect(await totp.isEnrolled(customer.id)).toBe(false);
    expect(await totp.verifyCode(customer.id, '123456')).toBe(false);
    expect(await totp.verifyCode(customer.id, 'ABCD-EFGH-JKLM')).toBe(false);
  });
});

describe('TOTP verification window', () => {
  test.each([
    ['at the first millisecond of the current step', 0],
    ['in the middle of the current step', 15_000],
    ['at the last millisecond of the current step', TOTP_PERIOD * 1000 - 1],
  ])('%s the codes of the previous, current and next step are accepted', async (_name, offsetMs) => {
    const customer = await enrolledCustomer('window');
    const step = await distinctStep(customer.secret, BASE_STEP + 100);
    atStep(step, offsetMs);
    // in increasing order: each accepted step is later than the one before (no replay)
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step - 1))).toBe(true);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step))).toBe(true);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step + 1))).toBe(true);
  });

  test.each([
    ['at the first millisecond of the current step', 0],
    ['at the last millisecond of the current step', TOTP_PERIOD * 1000 - 1],
  ])('%s codes two steps away are rejected', async (_name, offsetMs) => {
    const customer = await enrolledCustomer('far');
    const step = await distinctStep(customer.secret, BASE_STEP + 200);
    atStep(step, offsetMs);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step + 2))).toBe(false);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step - 2))).toBe(false);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step + 20))).toBe(false);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step - 20))).toBe(false);
    // nothing was used up: the current code still works
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step))).toBe(true);
  });

  test('malformed codes are rejected without throwing', async () => {
    const customer = await enrolledCustomer('malformed');
    const step = await distinctStep(customer.secret, BASE_STEP + 300);
    atStep(step);
    const valid = await codeAt(customer.secret, step);
    for (const code of ['12345', 'abcdef', '1234567', '', `${valid}0`, valid.slice(1), '１２３４５６', '12 345', '-12345', '1e5000', 'ABCD-EFGH-JKL', 'x'.repeat(10_000)]) {
      await expect(totp.verifyCode(customer.id, code)).resolves.toBe(false);
    }
    // the malformed attempts did not consume anything
    expect(await totp.verifyCode(customer.id, valid)).toBe(true);
  });
});

describe('TOTP replay', () => {
  test('the same code is accepted once', async () => {
    const customer = await enrolledCustomer('replay');
    const step = await distinctStep(customer.secret, BASE_STEP + 400);
    atStep(step, 10_000);
    const code = await codeAt(customer.secret, step);
    expect(await totp.verifyCode(customer.id, code)).toBe(true);
    expect(await totp.verifyCode(customer.id, code)).toBe(false);
    advance(5);
    expect(await totp.verifyCode(customer.id, code)).toBe(false);
  });

  test('a code of an earlier step than the last accepted one is rejected', async () => {
    const customer = await enrolledCustomer('earlier');
    const step = await distinctStep(customer.secret, BASE_STEP + 500);
    atStep(step);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step + 1))).toBe(true);
    // both still inside the window, both earlier than step + 1
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step))).toBe(false);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step - 1))).toBe(false);
    // and when time has moved on, the next step's code works
    atStep(step + 2);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step + 1))).toBe(false);
    expect(await totp.verifyCode(customer.id, await codeAt(customer.secret, step + 2))).toBe(true);
  });

  test('of 10 concurrent uses of one valid code exactly one succeeds', async () => {
    const customer = await enrolledCustomer('race');
    const step = await distinctStep(customer.secret, BASE_STEP + 600);
    atStep(step);
    const code = await codeAt(customer.secret, step);
    const results = await Promise.all(Array.from({ length: 10 }, () => totp.verifyCode(customer.id, code)));
    expect(results.filter((r) => r)).toHaveLength(1);
    const user = await db.selectFrom('users').select('totp_last_step').where('id', '=', customer.id).executeTakeFirstOrThrow();
    expect(Number(user.totp_last_step)).toBe(step);
  });
});

describe('recovery codes', () => {
  test('each works exactly once, also lower-cased, without dashes or with spaces', async () => {
    const customer = await enrolledCustomer('recovery');
    const [c0, c1, c2, c3, ...rest] = customer.recoveryCodes;
    if (c0 === undefined || c1 === undefined || c2 === undefined || c3 === undefined) throw new Error('expected 10 codes');

    expect(await totp.verifyCode(customer.id, c0)).toBe(true);
    expect(await totp.verifyCode(customer.id, c0)).toBe(false);

    expect(await totp.verifyCode(customer.id, c1.toLowerCase())).toBe(true);
    expect(await totp.verifyCode(customer.id, c1)).toBe(false);

    expect(await totp.verifyCode(customer.id, c2.replaceAll('-', ''))).toBe(true);
    expect(await totp.verifyCode(customer.id, c2)).toBe(false);
    expect(await totp.verifyCode(customer.id, c2.replaceAll('-', '').toLowerCase())).toBe(false);

    expect(await totp.verifyCode(customer.id, ` ${c3.replaceAll('-', ' ')} `)).toBe(true);
    expect(await totp.verifyCode(customer.id, c3)).toBe(false);

    for (const code of rest) expect(await totp.verifyCode(customer.id, code)).toBe(true);
    for (const code of customer.recoveryCodes) expect(await totp.verifyCode(customer.id, code)).toBe(false);

    const used = await db.selectFrom('recovery_codes').select('used_at').where('user_id', '=', customer.id).execute();
    expect(used).toHaveLength(10);
    for (const row of used) expect(row.used_at).toEqual(clock);
  });

  test('an unknown code, or another customer\'s code, fails', async () => {
    const customer = await enrolledCustomer('unknownrc');
    const other = await enrolledCustomer('otherrc');
    expect(await totp.verifyCode(customer.id, 'AAAA-BBBB-CCCC')).toBe(false);
    expect(await totp.verifyCode(customer.id, other.recoveryCodes[0] ?? '')).toBe(false);
    // the other customer's code was not consumed by the attempt
    expect(await totp.verifyCode(other.id, other.recoveryCodes[0] ?? '')).toBe(true);
  });

  test('of 5 concurrent uses of one recovery code exactly one succeeds', async () => {
    const customer = await enrolledCustomer('rcrace');
    const code = customer.recoveryCodes[4] ?? '';
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => totp.verifyCode(customer.id, i % 2 === 0 ? code : code.toLowerCase())));
    expect(results.filter((r) => r)).toHaveLength(1);
  });
});

// ---- authentication ------------------------------------------------------------------

describe('sign-in', () => {
  test('the right password without SCA gives acr CA and amr pwd', async () => {
    const customer = await newCustomer('plain');
    const outcome = await signIn(authentication, customer.username, PASSWORD);
    expect(outcome).toEqual({ ok: true, userId: customer.id, acr: ACR_CA, amr: ['pwd'] });
    // the username is compared lower-cased
    expect(await signIn(authentication, ` ${customer.username.toUpperCase()} `, PASSWORD)).toEqual({ ok: true, userId: customer.id, acr: ACR_CA, amr: ['pwd'] });
    const events = await auditEvents(customer.id, 'signin.success');
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ ip: '203.0.113.1', request_id: 'req-test', data: { acr: ACR_CA, amr: ['pwd'] } });
  });

  test('an enrolled customer signing in without SCA gets CA', async () => {
    const customer = await enrolledCustomer('plainenrolled');
    expect(await signIn(authentication, customer.username, PASSWORD)).toEqual({ ok: true, userId: customer.id, acr: ACR_CA, amr: ['pwd'] });
  });

  test('with SCA, the right password and a valid code give acr SCA and amr pwd, otp', async () => {
    const customer = await enrolledCustomer('sca');
    atStep(await distinctStep(customer.secret, BASE_STEP + 700));
    const outcome = await signIn(authentication, customer.username, PASSWORD, { otp: await codeAt(customer.secret, currentStep()), needSca: true });
    expect(outcome).toEqual({ ok: true, userId: customer.id, acr: ACR_SCA, amr: ['pwd', 'otp'] });
    const events = await auditEvents(customer.id, 'sca.success');
    expect(events).toHaveLength(1);
    expect(events[0]?.data).toEqual({ acr: ACR_SCA, amr: ['pwd', 'otp'] });
  });

  test('with SCA, a recovery code instead of the one-time code works once', async () => {
    const customer = await enrolledCustomer('scarecovery');
    const code = customer.recoveryCodes[0] ?? '';
    expect(await signIn(authentication, customer.username, PASSWORD, { otp: code, needSca: true })).toEqual({ ok: true, userId: customer.id, acr: ACR_SCA, amr: ['pwd', 'otp'] });
    expect(await signIn(authentication, customer.username, PASSWORD, { otp: code, needSca: true })).toStrictEqual(FAILED);
  });

  test('unknown user, wrong password, wrong code and missing code all give exactly { ok: false, reason: failed }', async () => {
    const customer = await enrolledCustomer('failures');
    atStep(await distinctStep(customer.secret, BASE_STEP + 800));
    const valid = await codeAt(customer.secret, currentStep());
    const wrong = await wrongCode(customer.secret);
    const before = passwords.verifications;

    const outcomes = [
      await signIn(authentication, 'nobody-at-all', PASSWORD, { otp: valid, needSca: true }),
      await signIn(authentication, 'nobody-at-all', PASSWORD),
      await signIn(authentication, 'x', PASSWORD), // not even a valid username
      await signIn(authentication, customer.username, WRONG_PASSWORD, { otp: valid, needSca: true }),
      await signIn(authentication, customer.username, PASSWORD, { otp: wrong, needSca: true }),
      await signIn(authentication, customer.username, PASSWORD, { otp: undefined, needSca: true }),
    ];
    for (const outcome of outcomes) expect(outcome).toStrictEqual(FAILED);
    // unknown users cost a dummy verification, not a real one
    expect(passwords.verifications - before).toBe(3);
    expect((await lockState(customer.id)).failed_attempts).toBe(3);

    // a wrong code when SCA is not needed but a code is given is a failure too
    expect(await signIn(authentication, customer.username, PASSWORD, { otp: wrong })).toStrictEqual(FAILED);
    const next = await codeAt(customer.secret, currentStep() + 1);
    expect(await signIn(authentication, customer.username, PASSWORD, { otp: next, needSca: true })).toEqual({ ok: true, userId: customer.id, acr: ACR_SCA, amr: ['pwd', 'otp'] });
    expect((await lockState(customer.id)).failed_attempts).toBe(0);

    const failures = await auditEvents(customer.id, 'signin.failure');
    expect(failures.map((e) => e.data.cause)).toEqual(['credentials', 'credentials', 'credentials', 'credentials']);
  });

  test('an empty code when SCA is needed fails', async () => {
    const customer = await enrolledCustomer('emptycode');
    expect(await signIn(authentication, customer.username, PASSWORD, { otp: '', needSca: true })).toStrictEqual(FAILED);
  });

  test('SCA needed, right password, no authenticator: enrolment_required', async () => {
    const customer = await newCustomer('needsenrol');
    expect(await signIn(authentication, customer.username, PASSWORD, { needSca: true })).toEqual({ ok: false, reason: 'enrolment_required', userId: customer.id });
    // with the wrong password it is an ordinary failure: nothing tells the customer exists
    expect(await signIn(authentication, customer.username, WRONG_PASSWORD, { needSca: true })).toStrictEqual(FAILED);
  });
});

describe('lockout', () => {
  test('after 5 failures even the right password fails until the block ends; then it works and resets the counter', async () => {
    const customer = await newCustomer('lockout');
    const ip = freshIp();
    await failFive(customer.username, ip);

    const blocked = await lockState(customer.id);
    expect(blocked.lock_count).toBe(1);
    expect(blocked.locked_permanently).toBe(false);
    expect(blocked.locked_until).toEqual(new Date(clock.getTime() + RULES.blockSeconds * 1000));

    const before = passwords.verifications;
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toStrictEqual(FAILED);
    advance(RULES.blockSeconds - 1);
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toStrictEqual(FAILED);
    // a blocked account's password is not even evaluated
    expect(passwords.verifications).toBe(before);
    const blockedFailures = await auditEvents(customer.id, 'signin.failure');
    expect(blockedFailures.slice(-2).map((e) => e.data.cause)).toEqual(['blocked', 'blocked']);

    advance(1);
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toEqual({ ok: true, userId: customer.id, acr: ACR_CA, amr: ['pwd'] });
    const after = await lockState(customer.id);
    expect(after.failed_attempts).toBe(0);
    expect(after.lock_count).toBe(0);

    const locked = await auditEvents(customer.id, 'account.locked');
    expect(locked).toHaveLength(1);
    expect(locked[0]?.data).toMatchObject({ permanent: false, lock_count: 1, permanent_after_blocks: 3 });
  });

  test('4 failures and a success leave the counter at 0: only consecutive failures count', async () => {
    const customer = await newCustomer('consecutive');
    const ip = freshIp();
    for (let i = 0; i < 4; i += 1) expect(await signIn(authentication, customer.username, WRONG_PASSWORD, { ip })).toStrictEqual(FAILED);
    expect((await lockState(customer.id)).failed_attempts).toBe(4);
    expect((await signIn(authentication, customer.username, PASSWORD, { ip })).ok).toBe(true);
    expect((await lockState(customer.id)).failed_attempts).toBe(0);
    for (let i = 0; i < 4; i += 1) expect(await signIn(authentication, customer.username, WRONG_PASSWORD, { ip })).toStrictEqual(FAILED);
    expect((await signIn(authentication, customer.username, PASSWORD, { ip })).ok).toBe(true);
  });

  test('20 parallel wrong attempts: the account is blocked and at most 5 passwords were evaluated', async () => {
    const customer = await newCustomer('parallel');
    const ip = freshIp();
    const before = passwords.verifications;

    const outcomes = await Promise.all(Array.from({ length: 20 }, () => signIn(authentication, customer.username, WRONG_PASSWORD, { ip })));
    for (const outcome of outcomes) expect(outcome).toStrictEqual(FAILED);

    expect(passwords.verifications - before).toBeLessThanOrEqual(RULES.maxFailures);
    const state = await lockState(customer.id);
    expect(state.locked_until?.getTime()).toBeGreaterThan(clock.getTime());
    expect(state.lock_count).toBe(1);
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toStrictEqual(FAILED);

    const failures = await auditEvents(customer.id, 'signin.failure');
    expect(failures.filter((e) => e.data.cause === 'credentials')).toHaveLength(RULES.maxFailures);
    expect(failures.filter((e) => e.data.cause === 'blocked')).toHaveLength(20 - RULES.maxFailures + 1);
    expect(await auditEvents(customer.id, 'account.locked')).toHaveLength(1);
    expect((await audit.verify()).ok).toBe(true);
  });

  test('the 3rd block in a row is permanent; each block is audited; unlock lifts it', async () => {
    const customer = await newCustomer('escalate');
    const ip = freshIp();

    await failFive(customer.username, ip);
    expect(await lockState(customer.id)).toMatchObject({ lock_count: 1, locked_permanently: false });
    advance(RULES.blockSeconds);
    await failFive(customer.username, ip);
    expect(await lockState(customer.id)).toMatchObject({ lock_count: 2, locked_permanently: false });
    advance(RULES.blockSeconds);
    await failFive(customer.username, ip);
    expect(await lockState(customer.id)).toMatchObject({ lock_count: 3, locked_permanently: true });

    // permanent: long after every block would have ended, the right password still fails
    advance(RULES.blockSeconds);
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toStrictEqual(FAILED);
    advance(365 * 86400);
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toStrictEqual(FAILED);
    expect((await db.selectFrom('users').select('locked_permanently').where('id', '=', customer.id).executeTakeFirstOrThrow()).locked_permanently).toBe(true);

    const locked = await auditEvents(customer.id, 'account.locked');
    expect(locked.map((e) => e.data.permanent)).toEqual([false, false, true]);
    expect(locked.map((e) => e.data.lock_count)).toEqual([1, 2, 3]);
    expect(locked[0]?.data.until).toEqual(expect.any(String));
    expect(locked[2]?.data.until).toBeNull();

    await authentication.unlock(customer.id, { actor: 'test' });
    const unlocked = await auditEvents(customer.id, 'account.unlocked');
    expect(unlocked).toHaveLength(1);
    expect(unlocked[0]?.actor).toBe('test');
    expect(await lockState(customer.id)).toMatchObject({ failed_attempts: 0, lock_count: 0, locked_permanently: false, locked_until: null });
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toEqual({ ok: true, userId: customer.id, acr: ACR_CA, amr: ['pwd'] });
  });

  test('unlock also lifts a temporary block at once', async () => {
    const customer = await newCustomer('unlocktemp');
    const ip = freshIp();
    await failFive(customer.username, ip);
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toStrictEqual(FAILED);
    await authentication.unlock(customer.id, { actor: 'test' });
    expect((await signIn(authentication, customer.username, PASSWORD, { ip })).ok).toBe(true);
  });

  test('a success between blocks resets the escalation', async () => {
    const customer = await newCustomer('resetesc');
    const ip = freshIp();

    await failFive(customer.username, ip);
    advance(RULES.blockSeconds);
    await failFive(customer.username, ip);
    expect((await lockState(customer.id)).lock_count).toBe(2);
    advance(RULES.blockSeconds);
    expect((await signIn(authentication, customer.username, PASSWORD, { ip })).ok).toBe(true);
    expect((await lockState(customer.id)).lock_count).toBe(0);

    // two more blocks: without the reset the first of them would have been permanent
    await failFive(customer.username, ip);
    expect(await lockState(customer.id)).toMatchObject({ lock_count: 1, locked_permanently: false });
    advance(RULES.blockSeconds);
    await failFive(customer.username, ip);
    expect(await lockState(customer.id)).toMatchObject({ lock_count: 2, locked_permanently: false });
    advance(RULES.blockSeconds);
    expect((await signIn(authentication, customer.username, PASSWORD, { ip })).ok).toBe(true);

    const locked = await auditEvents(customer.id, 'account.locked');
    expect(locked.map((e) => e.data.lock_count)).toEqual([1, 2, 1, 2]);
    expect(locked.every((e) => e.data.permanent === false)).toBe(true);
  });
});

describe('step-up', () => {
  test('a valid code gives the SCA outcome', async () => {
    const customer = await enrolledCustomer('stepup');
    atStep(await distinctStep(customer.secret, BASE_STEP + 900));
    const ip = freshIp();
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toEqual({ ok: true, userId: customer.id, acr: ACR_CA, amr: ['pwd'] });
    const outcome = await authentication.stepUp(customer.id, await codeAt(customer.secret, currentStep()), { ip, requestId: 'req-stepup' });
    expect(outcome).toEqual({ ok: true, userId: customer.id, acr: ACR_SCA, amr: ['pwd', 'otp'] });
    expect(await auditEvents(customer.id, 'sca.success')).toHaveLength(1);
    // the code is used up
    expect(await authentication.stepUp(customer.id, await codeAt(customer.secret, currentStep()), { ip })).toStrictEqual(FAILED);
  });

  test('wrong codes count towards the same lockout as wrong passwords', async () => {
    const customer = await enrolledCustomer('stepuplock');
    const step = await distinctStep(customer.secret, BASE_STEP + 1000);
    atStep(step);
    const ip = freshIp();
    const wrong = await wrongCode(customer.secret);

    for (let i = 0; i < 2; i += 1) expect(await signIn(authentication, customer.username, WRONG_PASSWORD, { ip })).toStrictEqual(FAILED);
    for (let i = 0; i < 3; i += 1) expect(await authentication.stepUp(customer.id, wrong, { ip })).toStrictEqual(FAILED);
    expect(await lockState(customer.id)).toMatchObject({ lock_count: 1, locked_permanently: false });

    // blocked: neither a valid code nor the right password with a valid code works
    expect(await authentication.stepUp(customer.id, await codeAt(customer.secret, step), { ip })).toStrictEqual(FAILED);
    expect(await signIn(authentication, customer.username, PASSWORD, { otp: await codeAt(customer.secret, step), needSca: true, ip })).toStrictEqual(FAILED);

    const failures = await auditEvents(customer.id, 'signin.failure');
    expect(failures.filter((e) => e.data.step === 'otp' && e.data.cause === 'credentials')).toHaveLength(3);
    expect(await auditEvents(customer.id, 'account.locked')).toHaveLength(1);

    advance(RULES.blockSeconds);
    const later = currentStep();
    expect(await authentication.stepUp(customer.id, await codeAt(customer.secret, later), { ip })).toEqual({ ok: true, userId: customer.id, acr: ACR_SCA, amr: ['pwd', 'otp'] });
  });

  test('5 wrong codes in step-up alone block the account', async () => {
    const customer = await enrolledCustomer('stepupfive');
    atStep(await distinctStep(customer.secret, BASE_STEP + 1100));
    const ip = freshIp();
    const wrong = await wrongCode(customer.secret);
    for (let i = 0; i < RULES.maxFailures; i += 1) expect(await authentication.stepUp(customer.id, wrong, { ip })).toStrictEqual(FAILED);
    expect((await lockState(customer.id)).lock_count).toBe(1);
    expect(await signIn(authentication, customer.username, PASSWORD, { ip })).toStrictEqual(FAILED);
  });
});

describe('per-IP throttle', () => {
  test('after ipMaxFailures failures an IP is throttled without evaluating anything; other IPs are not', async () => {
    const throttling = new AuthenticationService({ db, passwords, totp, audit, rules: { ...RULES, ipMaxFailures: 3 }, now });
    const victim = await newCustomer('victim');
    const other = await newCustomer('otherone');
    const ip = '10.0.0.1';

    expect(await signIn(throttling, 'nobody-one', PASSWORD, { ip })).toStrictEqual(FAILED);
    expect(await signIn(throttling, 'nobody-two', PASSWORD, { ip })).toStrictEqual(FAILED);
    expect(await signIn(throttling, other.username, WRONG_PASSWORD, { ip })).toStrictEqual(FAILED);

    const before = passwords.verifications;
    const throttled = await signIn(throttling, victim.username, PASSWORD, { ip });
    expect(throttled).toEqual({ ok: false, reason: 'throttled', retryAfterSeconds: expect.any(Number) });
    if (throttled.ok || throttled.reason !== 'throttled') throw new Error('expected throttled');
    expect(throttled.retryAfterSeconds).toBeGreaterThan(0);
    expect(throttled.retryAfterSeconds).toBeLessThanOrEqual(900);
    expect(passwords.verifications).toBe(before);
    expect((await lockState(victim.id)).failed_attempts).toBe(0);
    expect(await auditEvents(victim.id, 'signin.failure')).toHaveLength(0);

    // unknown users and step-up from that IP are throttled too
    expect((await signIn(throttling, 'nobody-three', PASSWORD, { ip })).ok).toBe(false);
    expect(await signIn(throttling, 'nobody-three', PASSWORD, { ip })).toMatchObject({ reason: 'throttled' });
    expect(await throttling.stepUp(victim.id, '123456', { ip })).toMatchObject({ ok: false, reason: 'throttled' });
    expect((await lockState(victim.id)).failed_attempts).toBe(0);

    // another IP is unaffected
    expect(await signIn(throttling, victim.username, PASSWORD, { ip: '10.0.0.2' })).toEqual({ ok: true, userId: victim.id, acr: ACR_CA, amr: ['pwd'] });
  });
});

describe('credential-stuffing signals', () => {
  test('one IP failing for ten usernames is audited once as security.credential_stuffing', async () => {
    const before = await db.selectFrom('audit_events').select('seq').where('type', '=', 'security.credential_stuffing').execute();
    for (let i = 0; i < 12; i += 1) {
      await authentication.signIn({ username: `stuffed${i}`, password: 'guess', otp: undefined, needSca: false, context: { ip: '203.0.113.77' } });
    }
    const after = await db.selectFrom('audit_events').select(['ip', 'data']).where('type', '=', 'security.credential_stuffing').execute();
    expect(after.length - before.length).toBe(1);
    expect(after.at(-1)).toMatchObject({ ip: '203.0.113.77', data: { kind: 'many_usernames_one_ip', key: '203.0.113.77' } });
  });
});
