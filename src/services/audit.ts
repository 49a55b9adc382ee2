import { createHash } from 'node:crypto';

import type { Db, Executor } from '../db/database.js';
import * as auditRepo from '../db/repositories/audit-events.js';
import { failpoint } from '../failpoints.js';
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

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Most events one group commit appends (one multi-row INSERT). */
const MAX_GROUP = 500;

/**
 * The tamper-evident audit trail. Each event's hash covers the previous event's hash and
 * the event's canonical JSON, so editing, deleting or reordering any row breaks every
 * later link; the database refuses UPDATE and DELETE outright (migration 0002).
 *
 * Appending is serialised cluster-wide (a transaction-scoped advisory lock, then the last
 * hash): that is what a chain is. So that it never becomes the bottleneck of the hot paths:
 * - an event recorded with the change's transaction is appended in that transaction (the
 *   change and its record commit or vanish together);
 * - events recorded on their own (token issuance from oidc-provider's events, the CLI,
 *   admin actions) are group-committed: whatever queued while the previous append was in
 *   flight goes in one transaction, one lock, one INSERT. `record` resolves when the event
 *   is committed. At most one group is in flight per instance, so an instance's own events
 *   keep their order.
 */
export class AuditLog {
  readonly #db: Db;
  readonly #now: () => Date;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;

  constructor(db: Db, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  /** Appends in `trx` (the transaction of the change), or group-committed in its own transaction. */
  async record(event: AuditEvent, trx?: Executor): Promise<void> {
    if (trx !== undefined && trx.isTransaction) {
      await this.#append(trx, [event]);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      this.#flushing ??= this.#drain();
    });
  }

  /** Resolves once every event queued so far is committed (or has failed). */
  async flush(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
  }

  async #drain(): Promise<void> {
    // Let the events of requests running concurrently join this group.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, MAX_GROUP);
      try {
        await this.#appendOwn(group.map((p) => p.event));
        for (const pending of group) pending.resolve();
      } catch (error) {
        if (group.length === 1) {
          group[0]!.reject(error);
          continue;
        }
        // One event the database refuses must not cost the others their record: retry alone.
        for (const pending of group) await this.#appendOwn([pending.event]).then(pending.resolve, pending.reject);
      }
    }
    this.#flushing = undefined;
  }

  #appendOwn(events: readonly AuditEvent[]): Promise<void> {
    return this.#db.transaction().execute((own) => this.#append(own, events));
  }

  async #append(trx: Executor, events: readonly AuditEvent[]): Promise<void> {
    await auditRepo.lockChain(trx);
    const last = await auditRepo.lastEvent(trx);
    failpoint('audit.appending');
    let seq = last?.seq ?? 0;
    let prevHash = last?.hash ?? GENESIS;
    const occurredAt = new Date(Math.floor(this.#now().getTime()));
    const rows: StoredAuditEvent[] = events.map((event) => {
      seq += 1;
      const stored = {
        seq,
        occurredAt,
        type: event.type,
        actor: event.actor ?? null,
        clientId: event.clientId ?? null,
        userId: event.userId ?? null,
        ip: event.ip ?? null,
        requestId: event.requestId ?? null,
        // Hash exactly what the database will hold: JSON round-trip (Dates → strings, undefined → null/absent).
        data: JSON.parse(JSON.stringify(event.data ?? {})) as Record<string, unknown>,
      };
      const row = { ...stored, prevHash, hash: chainHash(prevHash, stored) };
      prevHash = row.hash;
      return row;
    });
    await auditRepo.insertEvents(trx, rows);
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
