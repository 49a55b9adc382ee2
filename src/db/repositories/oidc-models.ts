import { sql } from 'kysely';

import type { Database, Executor } from '../database.js';

/** Runs a named prepared statement (Database.prepared): what the hot paths use. */
export type Prepared = Database['prepared'];

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

const UPSERT = `
  insert into oidc_models (model, key, payload, grant_id, uid, user_code, expires_at)
  values ($1, $2, $3, $4, $5, $6, $7)
  on conflict (model, key) do update set
    payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
    user_code = excluded.user_code, expires_at = excluded.expires_at`;

export async function upsertModel(prepared: Prepared, row: UpsertInput): Promise<void> {
  await prepared('oidc_models_upsert', UPSERT, [row.model, row.key, JSON.stringify(row.payload), row.grantId, row.uid, row.userCode, row.expiresAt]);
}

interface ModelRow { payload: Record<string, unknown>; consumed_at: Date | null; expires_at: Date | null }

const FIND_BY_KEY = `
  select payload, consumed_at, expires_at from oidc_models
  where model = $1 and key = $2 and (expires_at is null or expires_at > $3)`;

/** The row with this key, unless it has expired (expired rows are invisible until swept). */
export async function findByKey(prepared: Prepared, model: string, key: string, now: Date): Promise<StoredModel | undefined> {
  const [row] = await prepared<ModelRow>('oidc_models_find', FIND_BY_KEY, [model, key, now]);
  return row === undefined ? undefined : { payload: row.payload, consumedAt: row.consumed_at, expiresAt: row.expires_at };
}

/** The grant row's key computed in SQL exactly as sha256Base64Url computes it in JS. */
const GRANT_KEY_OF_TOKEN = `rtrim(translate(encode(sha256(convert_to(t.grant_id, 'UTF8')), 'base64'), '+/', '-_'), '=')`;

/** Models whose ids are bearer tokens: a presented token may be any of them. */
export const TOKEN_MODELS = ['AccessToken', 'ClientCredentials', 'RefreshToken'] as const;
export type TokenModel = typeof TOKEN_MODELS[number];

const FIND_TOKEN_WITH_GRANT = `
  select t.model, t.payload, t.consumed_at, t.expires_at, t.grant_id,
         g.payload as grant_payload, g.consumed_at as grant_consumed_at, g.expires_at as grant_expires_at
  from oidc_models t
  left join oidc_models g
    on g.model = 'Grant' and g.key = ${GRANT_KEY_OF_TOKEN} and (g.expires_at is null or g.expires_at > $2)
  where t.model in ('AccessToken', 'ClientCredentials', 'RefreshToken') and t.key = $1
    and (t.expires_at is null or t.expires_at > $2)`;

interface TokenWithGrantRow extends ModelRow {
  model: TokenModel;
  grant_id: string | null;
  grant_payload: Record<string, unknown> | null;
  grant_consumed_at: Date | null;
  grant_expires_at: Date | null;
}

export interface TokenWithGrant {
  readonly token: StoredModel;
  /** null when the token names no grant */
  readonly grantId: string | null;
  /** null when the token names no grant, or the grant is gone or expired */
  readonly grant: StoredModel | null;
}

/**
 * Whatever live token has this key, of any token model, each with the live grant it
 * belongs to: one statement (one round trip, one snapshot) for what oidc-provider looks up
 * as two or three parallel finds (introspection, revocation) followed by its grant.
 */
export async function findTokenWithGrant(prepared: Prepared, key: string, now: Date): Promise<Partial<Record<TokenModel, TokenWithGrant>>> {
  const rows = await prepared<TokenWithGrantRow>('oidc_models_find_token_with_grant', FIND_TOKEN_WITH_GRANT, [key, now]);
  const found: Partial<Record<TokenModel, TokenWithGrant>> = {};
  for (const row of rows) {
    found[row.model] = {
      token: { payload: row.payload, consumedAt: row.consumed_at, expiresAt: row.expires_at },
      grantId: row.grant_id,
      grant: row.grant_payload === null ? null : { payload: row.grant_payload, consumedAt: row.grant_consumed_at, expiresAt: row.grant_expires_at },
    };
  }
  return found;
}

type Lookup = { column: 'uid' | 'user_code'; value: string };

/** The row found by uid or user code, unless it has expired. */
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
const CONSUME = `
  update oidc_models set consumed_at = $3
  where model = $1 and key = $2 and consumed_at is null and (expires_at is null or expires_at > $3)
  returning key`;

export async function consumeModel(prepared: Prepared, model: string, key: string, now: Date): Promise<boolean> {
  return (await prepared('oidc_models_consume', CONSUME, [model, key, now])).length === 1;
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
const INSERT_UNIQUE = `
  insert into oidc_models (model, key, payload, expires_at) values ($1, $2, $3, $4)
  on conflict (model, key) do update set payload = excluded.payload, expires_at = excluded.expires_at, consumed_at = null
    where oidc_models.expires_at <= $5
  returning key`;

export async function insertUnique(
  prepared: Prepared,
  model: string,
  key: string,
  payload: Record<string, unknown>,
  expiresAt: Date,
  now: Date,
): Promise<boolean> {
  return (await prepared('oidc_models_insert_unique', INSERT_UNIQUE, [model, key, JSON.stringify(payload), expiresAt, now])).length === 1;
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
