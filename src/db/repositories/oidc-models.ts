import { sql } from 'kysely';

import type { Executor } from '../database.js';

/**
 * Storage of oidc-provider's models. Rows are keyed by (model, key) where key is the
 * SHA-256 of the model id (see oidc/adapter.ts). All one-time-use decisions are single
 * statements so that the database, not the caller, decides which racer wins.
 */

export interface StoredModel {
  payload: Record<string, unknown>;
  consumedAt: Date | null;
  expiresAt: Date | null;
}

export interface UpsertInput {
  model: string;
  key: string;
  payload: Record<string, unknown>;
  grantId: string | null;
  uid: string | null;
  userCode: string | null;
  expiresAt: Date | null;
}

export async function upsertModel(db: Executor, row: UpsertInput): Promise<void> {
  await db
    .insertInto('oidc_models')
    .values({
      model: row.model,
      key: row.key,
      payload: JSON.stringify(row.payload),
      grant_id: row.grantId,
      uid: row.uid,
      user_code: row.userCode,
      expires_at: row.expiresAt,
    })
    .onConflict((oc) => oc.columns(['model', 'key']).doUpdateSet({
      payload: (eb) => eb.ref('excluded.payload'),
      grant_id: (eb) => eb.ref('excluded.grant_id'),
      uid: (eb) => eb.ref('excluded.uid'),
      user_code: (eb) => eb.ref('excluded.user_code'),
      expires_at: (eb) => eb.ref('excluded.expires_at'),
    }))
    .execute();
}

type Lookup = { column: 'key' | 'uid' | 'user_code'; value: string };

/** The row, unless it has expired (expired rows are invisible until swept). */
export async function findModel(db: Executor, model: string, by: Lookup, now: Date): Promise<StoredModel | undefined> {
  const row = await db
    .selectFrom('oidc_models')
    .select(['payload', 'consumed_at', 'expires_at'])
    .where('model', '=', model)
    .where(by.column, '=', by.value)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .limit(1)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  return { payload: row.payload, consumedAt: row.consumed_at, expiresAt: row.expires_at };
}

/**
 * Marks the row consumed if, and only if, nobody did before. Returns false when the row
 * is missing, expired or already consumed: exactly one of any number of racers gets true.
 */
export async function consumeModel(db: Executor, model: string, key: string, now: Date): Promise<boolean> {
  const rows = await db
    .updateTable('oidc_models')
    .set({ consumed_at: now })
    .where('model', '=', model)
    .where('key', '=', key)
    .where('consumed_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .returning('key')
    .execute();
  return rows.length === 1;
}

export async function grantIdOf(db: Executor, model: string, key: string): Promise<string | null> {
  const row = await db
    .selectFrom('oidc_models')
    .select('grant_id')
    .where('model', '=', model)
    .where('key', '=', key)
    .executeTakeFirst();
  return row?.grant_id ?? null;
}

export async function destroyModel(db: Executor, model: string, key: string): Promise<void> {
  await db.deleteFrom('oidc_models').where('model', '=', model).where('key', '=', key).execute();
}

/**
 * Removes, in one statement, every token, code and request that belongs to the grant.
 * The Grant row itself is kept: oidc-provider decides separately whether the grant goes.
 */
export async function revokeTokensOfGrant(db: Executor, grantId: string): Promise<number> {
  const result = await db
    .deleteFrom('oidc_models')
    .where('grant_id', '=', grantId)
    .where('model', '!=', 'Grant')
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Removes every grant, token, code and request of a client (it was deleted), in one statement. */
export async function revokeEverythingOfClient(db: Executor, clientId: string): Promise<number> {
  const result = await sql`delete from oidc_models where payload->>'clientId' = ${clientId}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** Removes the grant and everything issued under it, in one statement. */
export async function revokeGrantCompletely(db: Executor, grantId: string): Promise<void> {
  await db.deleteFrom('oidc_models').where('grant_id', '=', grantId).execute();
}

/**
 * Replay detection: records the key unless a live row holds it. Returns true when this
 * call recorded it (first use), false when it was already there (replay). An expired
 * row is taken over, since its window has passed.
 */
export async function insertUnique(
  db: Executor,
  model: string,
  key: string,
  payload: Record<string, unknown>,
  expiresAt: Date,
  now: Date,
): Promise<boolean> {
  const rows = await db
    .insertInto('oidc_models')
    .values({ model, key, payload: JSON.stringify(payload), expires_at: expiresAt })
    .onConflict((oc) => oc.columns(['model', 'key'])
      .doUpdateSet({ payload: (eb) => eb.ref('excluded.payload'), expires_at: (eb) => eb.ref('excluded.expires_at'), consumed_at: null })
      .where('oidc_models.expires_at', '<=', now))
    .returning('key')
    .execute();
  return rows.length === 1;
}

/**
 * Deletes at most `batchSize` expired rows; the caller repeats while a full batch came
 * back. SKIP LOCKED lets several instances sweep at once without waiting on each other.
 */
export async function sweepExpired(db: Executor, now: Date, batchSize: number): Promise<number> {
  const result = await sql`
    delete from oidc_models
    where (model, key) in (
      select model, key from oidc_models
      where expires_at <= ${now}
      limit ${batchSize}
      for update skip locked
    )`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
