import { createHash } from 'node:crypto';

import type { Db, Executor } from '../db/database.js';
import * as auditRepo from '../db/repositories/audit-events.js';
import type { StoredAuditEvent } from '../db/repositories/audit-events.js';

/** Who did what, from where: every audit event names these (DESIGN: services get them passed in). */
export interface AuditContext {
  readonly actor?: string | undefined;
  readonly clientId?: string | undefined;
  readonly userId?: string | undefined;
  readonly ip?: string | undefined;
  readonly requestId?: string | undefined;
}

export interface AuditEvent extends AuditContext {
  readonly type: string;
  readonly data?: Record<string, unknown>;
}

const GENESIS = '0'.repeat(64);
const VERIFY_BATCH = 1000;

/** JSON with object keys sorted at every depth: one byte sequence per value. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function chainHash(prevHash: string, event: Omit<StoredAuditEvent, 'prevHash' | 'hash'>): string {
  const body = canonicalJson({
    seq: event.seq, occurred_at: event.occurredAt.toISOString(), type: event.type, actor: event.actor, client_id: event.clientId,
    user_id: event.userId, ip: event.ip, request_id: event.requestId, data: event.data,
  });
  return createHash('sha256').update(prevHash).update(body).digest('hex');
}

/**
 * The tamper-evident audit trail. Each event's hash covers the previous event's hash and
 * the event's canonical JSON, so editing, deleting or reordering any row breaks every
 * later link; the database refuses UPDATE and DELETE outright (migration 0002). Events
 * are written in the caller's transaction, with the change they record.
 */
export class AuditLog {
  readonly #db: Db;
  readonly #now: () => Date;

  constructor(db: Db, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  /** Appends in `trx` (the transaction of the change), or in its own transaction. */
  async record(event: AuditEvent, trx?: Executor): Promise<void> {
    if (trx === undefined || !trx.isTransaction) {
      await this.#db.transaction().execute((own) => this.#append(own, event));
      return;
    }
    await this.#append(trx, event);
  }

  async #append(trx: Executor, event: AuditEvent): Promise<void> {
    await auditRepo.lockChain(trx);
    const last = await auditRepo.lastEvent(trx);
    const stored = {
      seq: (last?.seq ?? 0) + 1,
      occurredAt: new Date(Math.floor(this.#now().getTime())),
      type: event.type,
      actor: event.actor ?? null,
      clientId: event.clientId ?? null,
      userId: event.userId ?? null,
      ip: event.ip ?? null,
      requestId: event.requestId ?? null,
      // Hash exactly what the database will hold: JSON round-trip (Dates → strings, undefined → null/absent).
      data: JSON.parse(JSON.stringify(event.data ?? {})) as Record<string, unknown>,
    };
    const prevHash = last?.hash ?? GENESIS;
    await auditRepo.insertEvent(trx, { ...stored, prevHash, hash: chainHash(prevHash, stored) });
  }

  search(filter: { type?: string; userId?: string; clientId?: string; beforeSeq?: number }, limit: number): Promise<StoredAuditEvent[]> {
    return auditRepo.searchEvents(this.#db, filter, limit);
  }

  /** Recomputes the whole chain. `brokenAt` is the first event that does not follow from the one before. */
  async verify(): Promise<{ ok: boolean; events: number; brokenAt?: number }> {
    let prevHash = GENESIS;
    let expectedSeq = 1;
    let count = 0;
    for (;;) {
      const batch = await auditRepo.eventsAfter(this.#db, expectedSeq - 1, VERIFY_BATCH);
      for (const event of batch) {
        const { hash, prevHash: storedPrev, ...rest } = event;
        if (event.seq !== expectedSeq || storedPrev !== prevHash || hash !== chainHash(prevHash, rest)) {
          return { ok: false, events: count, brokenAt: event.seq };
        }
        prevHash = hash;
        expectedSeq += 1;
        count += 1;
      }
      if (batch.length < VERIFY_BATCH) return { ok: true, events: count };
    }
  }
}
