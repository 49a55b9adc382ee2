import type { Executor } from '../database.js';
import type { ConsentStatus, ConsentType } from '../schema.js';

export interface ConsentRecord {
  grantId: string;
  clientId: string;
  userId: string;
  type: ConsentType;
  scopes: string;
  details: Record<string, unknown>[];
  status: ConsentStatus;
  scaHash: string | null;
  version: number;
  createdAt: Date;
  statusChangedAt: Date;
  expiresAt: Date | null;
}

const COLUMNS = ['grant_id', 'client_id', 'user_id', 'type', 'scopes', 'details', 'status', 'sca_hash', 'version', 'created_at', 'status_changed_at', 'expires_at'] as const;

type Row = { grant_id: string; client_id: string; user_id: string; type: ConsentType; scopes: string; details: Record<string, unknown>[]; status: ConsentStatus; sca_hash: string | null; version: number; created_at: Date; status_changed_at: Date; expires_at: Date | null };

function toRecord(r: Row): ConsentRecord {
  return {
    grantId: r.grant_id, clientId: r.client_id, userId: r.user_id, type: r.type, scopes: r.scopes, details: r.details, status: r.status,
    scaHash: r.sca_hash, version: r.version, createdAt: r.created_at, statusChangedAt: r.status_changed_at, expiresAt: r.expires_at,
  };
}

export async function insertConsent(db: Executor, consent: Omit<ConsentRecord, 'version' | 'statusChangedAt'>): Promise<void> {
  await db.insertInto('consents').values({
    grant_id: consent.grantId, client_id: consent.clientId, user_id: consent.userId, type: consent.type, scopes: consent.scopes,
    details: JSON.stringify(consent.details), status: consent.status, sca_hash: consent.scaHash,
    created_at: consent.createdAt, status_changed_at: consent.createdAt, expires_at: consent.expiresAt,
  }).execute();
}

export async function findConsent(db: Executor, grantId: string): Promise<ConsentRecord | undefined> {
  const row = await db.selectFrom('consents').select(COLUMNS).where('grant_id', '=', grantId).executeTakeFirst();
  return row === undefined ? undefined : toRecord(row);
}

export async function listConsents(db: Executor, filter: { userId?: string; clientId?: string }, limit: number): Promise<ConsentRecord[]> {
  let query = db.selectFrom('consents').select(COLUMNS);
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  const rows = await query.orderBy('created_at', 'desc').orderBy('grant_id').limit(limit).execute();
  return rows.map(toRecord);
}

/**
 * The one guarded transition: from `authorised` only, optionally only for the given owner.
 * Of racing transitions exactly one changes the row (the others see no longer authorised).
 */
export async function transitionFromAuthorised(
  db: Executor,
  grantId: string,
  to: Exclude<ConsentStatus, 'authorised' | 'rejected'>,
  owner: { userId?: string; clientId?: string; type?: ConsentType },
  now: Date,
): Promise<ConsentRecord | undefined> {
  let query = db.updateTable('consents')
    .set((eb) => ({ status: to, status_changed_at: now, version: eb('version', '+', 1) }))
    .where('grant_id', '=', grantId)
    .where('status', '=', 'authorised');
  if (owner.userId !== undefined) query = query.where('user_id', '=', owner.userId);
  if (owner.clientId !== undefined) query = query.where('client_id', '=', owner.clientId);
  if (owner.type !== undefined) query = query.where('type', '=', owner.type);
  const row = await query.returning(COLUMNS).executeTakeFirst();
  return row === undefined ? undefined : toRecord(row);
}

export async function dueForExpiry(db: Executor, now: Date, limit: number): Promise<string[]> {
  const rows = await db.selectFrom('consents').select('grant_id')
    .where('status', '=', 'authorised').where('expires_at', '<=', now).limit(limit).execute();
  return rows.map((r) => r.grant_id);
}

/** Every authorised consent of a client becomes revoked (the client was deleted or disabled). */
export async function revokeAllOfClient(db: Executor, clientId: string, now: Date): Promise<string[]> {
  const rows = await db.updateTable('consents')
    .set((eb) => ({ status: 'revoked' as const, status_changed_at: now, version: eb('version', '+', 1) }))
    .where('client_id', '=', clientId).where('status', '=', 'authorised')
    .returning('grant_id').execute();
  return rows.map((r) => r.grant_id);
}
