import { sql } from 'kysely';

import type { Executor } from '../database.js';

export interface UserCredentials {
  id: string;
  passwordHash: string;
}

export interface UserProfile {
  id: string;
  username: string;
  name: string | null;
  email: string | null;
}

export async function insertUser(
  db: Executor,
  user: { username: string; passwordHash: string; name: string | null; email: string | null },
): Promise<{ id: string; username: string } | undefined> {
  const row = await db.insertInto('users')
    .values({ username: user.username, password_hash: user.passwordHash, name: user.name, email: user.email })
    .onConflict((oc) => oc.column('username').doNothing())
    .returning(['id', 'username'])
    .executeTakeFirst();
  return row;
}

export async function findCredentialsByUsername(db: Executor, username: string): Promise<UserCredentials | undefined> {
  const row = await db.selectFrom('users').select(['id', 'password_hash']).where('username', '=', username).executeTakeFirst();
  return row === undefined ? undefined : { id: row.id, passwordHash: row.password_hash };
}

export async function findProfileById(db: Executor, id: string): Promise<UserProfile | undefined> {
  return db.selectFrom('users').select(['id', 'username', 'name', 'email']).where('id', '=', id).executeTakeFirst();
}

export async function findProfileByUsername(db: Executor, username: string): Promise<UserProfile | undefined> {
  return db.selectFrom('users').select(['id', 'username', 'name', 'email']).where('username', '=', username).executeTakeFirst();
}

export interface SignInState {
  id: string;
  passwordHash: string;
  totpSecretEnc: string | null;
  totpLastStep: number | null;
}

export async function findSignInStateById(db: Executor, id: string): Promise<SignInState | undefined> {
  const row = await db.selectFrom('users').select(['id', 'password_hash', 'totp_secret_enc', 'totp_last_step']).where('id', '=', id).executeTakeFirst();
  return row === undefined ? undefined : {
    id: row.id, passwordHash: row.password_hash, totpSecretEnc: row.totp_secret_enc, totpLastStep: row.totp_last_step === null ? null : Number(row.totp_last_step),
  };
}

/**
 * Takes one of the account's `maxFailures` attempt slots, unless the account is blocked
 * or every slot is taken. One statement: racing attempts cannot take more slots than
 * there are, so at most `maxFailures` guesses are ever evaluated before a block.
 * Returns the number of slots now taken, or undefined when no attempt may be evaluated.
 */
export async function reserveAttempt(db: Executor, userId: string, maxFailures: number, now: Date): Promise<number | undefined> {
  const row = await db.updateTable('users')
    .set((eb) => ({ failed_attempts: eb('failed_attempts', '+', 1) }))
    .where('id', '=', userId)
    .where('failed_attempts', '<', maxFailures)
    .where('locked_permanently', '=', false)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .returning('failed_attempts')
    .executeTakeFirst();
  return row?.failed_attempts;
}

/** A success: every slot is free again and the escalation count starts over. */
export async function clearFailures(db: Executor, userId: string): Promise<void> {
  await db.updateTable('users').set({ failed_attempts: 0, lock_count: 0, locked_until: null }).where('id', '=', userId).execute();
}

/** Blocks the account until `until`; the `permanentAfter`-th block in a row is permanent. */
export async function blockAccount(db: Executor, userId: string, until: Date, permanentAfter: number): Promise<{ lockCount: number; permanent: boolean }> {
  const row = await db.updateTable('users')
    .set((eb) => ({
      failed_attempts: 0,
      locked_until: until,
      lock_count: eb('lock_count', '+', 1),
      locked_permanently: sql<boolean>`${eb.ref('lock_count')} + 1 >= ${permanentAfter}`,
    }))
    .where('id', '=', userId)
    .returning(['lock_count', 'locked_permanently'])
    .executeTakeFirstOrThrow();
  return { lockCount: row.lock_count, permanent: row.locked_permanently };
}

export async function unlockAccount(db: Executor, userId: string): Promise<void> {
  await db.updateTable('users').set({ failed_attempts: 0, lock_count: 0, locked_until: null, locked_permanently: false }).where('id', '=', userId).execute();
}

/** Accepts a TOTP time step only if it is later than the last accepted one (atomic replay guard). */
export async function advanceTotpStep(db: Executor, userId: string, step: number): Promise<boolean> {
  const rows = await db.updateTable('users').set({ totp_last_step: step })
    .where('id', '=', userId)
    .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
    .returning('id').execute();
  return rows.length === 1;
}

export async function setTotpSecret(db: Executor, userId: string, secretEnc: string, now: Date): Promise<void> {
  await db.updateTable('users').set({ totp_secret_enc: secretEnc, totp_last_step: null, totp_enrolled_at: now, updated_at: now }).where('id', '=', userId).execute();
}

export async function replaceRecoveryCodes(db: Executor, userId: string, codeHashes: string[]): Promise<void> {
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
  await db.insertInto('recovery_codes').values(codeHashes.map((h) => ({ user_id: userId, code_hash: h }))).execute();
}

export async function useRecoveryCode(db: Executor, userId: string, codeHash: string, now: Date): Promise<boolean> {
  const rows = await db.updateTable('recovery_codes').set({ used_at: now })
    .where('user_id', '=', userId).where('code_hash', '=', codeHash).where('used_at', 'is', null)
    .returning('code_hash').execute();
  return rows.length === 1;
}

/** Removes the authenticator and its recovery codes (the customer enrols again). */
export async function clearTotp(db: Executor, userId: string): Promise<void> {
  await db.updateTable('users').set({ totp_secret_enc: null, totp_last_step: null, totp_enrolled_at: null }).where('id', '=', userId).execute();
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
}

export interface UserSummary {
  id: string;
  username: string;
  name: string | null;
  email: string | null;
  totpEnrolled: boolean;
  failedAttempts: number;
  lockedUntil: Date | null;
  lockedPermanently: boolean;
  createdAt: Date;
}

/** Customers for the back office, by username (no password hash, no TOTP secret). */
export async function listUserSummaries(db: Executor, filter: { username?: string; after?: string }, limit: number): Promise<UserSummary[]> {
  let query = db.selectFrom('users')
    .select(['id', 'username', 'name', 'email', 'totp_enrolled_at', 'failed_attempts', 'locked_until', 'locked_permanently', 'created_at'])
    .orderBy('username').limit(limit);
  if (filter.username !== undefined) query = query.where('username', '=', filter.username);
  if (filter.after !== undefined) query = query.where('username', '>', filter.after);
  const rows = await query.execute();
  return rows.map((r) => ({
    id: r.id, username: r.username, name: r.name, email: r.email, totpEnrolled: r.totp_enrolled_at !== null,
    failedAttempts: r.failed_attempts, lockedUntil: r.locked_until, lockedPermanently: r.locked_permanently, createdAt: r.created_at,
  }));
}
