import { sql } from 'kysely';

import type { Executor } from '../database.js';

export interface StoredAuditEvent {
  seq: number;
  occurredAt: Date;
  type: string;
  actor: string | null;
  clientId: string | null;
  userId: string | null;
  ip: string | null;
  requestId: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** Serialises appends to the chain for the rest of the caller's transaction. */
export async function lockChain(trx: Executor): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('portcullis:audit-chain'))`.execute(trx);
}

export async function lastEvent(trx: Executor): Promise<{ seq: number; hash: string } | undefined> {
  const row = await trx.selectFrom('audit_events').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  return row === undefined ? undefined : { seq: Number(row.seq), hash: row.hash };
}

export async function insertEvents(trx: Executor, events: readonly StoredAuditEvent[]): Promise<void> {
  await trx.insertInto('audit_events').values(events.map((event) => ({
    seq: event.seq,
    occurred_at: event.occurredAt,
    type: event.type,
    actor: event.actor,
    client_id: event.clientId,
    user_id: event.userId,
    ip: event.ip,
    request_id: event.requestId,
    data: JSON.stringify(event.data),
    prev_hash: event.prevHash,
    hash: event.hash,
  }))).execute();
}

/** Events in chain order, `limit` at a time after `afterSeq`. */
export async function eventsAfter(db: Executor, afterSeq: number, limit: number): Promise<StoredAuditEvent[]> {
  const rows = await db.selectFrom('audit_events')
    .select(['seq', 'occurred_at', 'type', 'actor', 'client_id', 'user_id', 'ip', 'request_id', 'data', 'prev_hash', 'hash'])
    .where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
  return rows.map((r) => ({
    seq: Number(r.seq), occurredAt: r.occurred_at, type: r.type, actor: r.actor, clientId: r.client_id, userId: r.user_id,
    ip: r.ip, requestId: r.request_id, data: r.data, prevHash: r.prev_hash, hash: r.hash,
  }));
}

/** A page of events, newest first, optionally of one type or customer, before `beforeSeq`. */
export async function searchEvents(db: Executor, filter: { type?: string; userId?: string; clientId?: string; beforeSeq?: number }, limit: number): Promise<StoredAuditEvent[]> {
  let query = db.selectFrom('audit_events')
    .select(['seq', 'occurred_at', 'type', 'actor', 'client_id', 'user_id', 'ip', 'request_id', 'data', 'prev_hash', 'hash'])
    .orderBy('seq', 'desc').limit(limit);
  if (filter.type !== undefined) query = query.where('type', '=', filter.type);
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (filter.beforeSeq !== undefined) query = query.where('seq', '<', filter.beforeSeq);
  const rows = await query.execute();
  return rows.map((r) => ({
    seq: Number(r.seq), occurredAt: r.occurred_at, type: r.type, actor: r.actor, clientId: r.client_id, userId: r.user_id,
    ip: r.ip, requestId: r.request_id, data: r.data, prevHash: r.prev_hash, hash: r.hash,
  }));
}
