import { randomUUID } from 'node:crypto';

import type { Db } from '../db/database.js';
import * as repo from '../db/repositories/consents.js';
import type { ConsentRecord } from '../db/repositories/consents.js';
import { revokeGrantCompletely } from '../db/repositories/oidc-models.js';
import type { ConsentStatus, ConsentType } from '../db/schema.js';
import type { ServiceCounters } from './counters.js';
import type { AuditContext, AuditLog } from './audit.js';
import { PAYMENT_INITIATION, paymentLinkHash, type AuthorizationDetail } from './authorization-details.js';
import { NotFoundError } from './errors.js';

export type { ConsentRecord };

/** Where a transition came from; it decides the audit event and whom it may touch. */
export type ConsentTransition = 'revoked' | 'expired' | 'consumed';

function consentType(details: readonly AuthorizationDetail[]): ConsentType {
  const types = new Set(details.map((d) => d.type));
  if (types.size === 0) return 'scopes';
  if (types.size > 1) return 'mixed';
  return types.has(PAYMENT_INITIATION) ? 'payment_initiation' : 'account_information';
}

/**
 * Consents are first-class state: one row per grant, with the approved details.
 *
 *   (request) ──allow──▶ authorised ──▶ revoked | expired | consumed
 *             ──deny───▶ rejected
 *
 * Every change goes through `transition`: one conditional UPDATE from `authorised`
 * (two racing transitions → exactly one wins), and in the same transaction the grant
 * and every token of it are deleted (introspection is inactive at once, on every
 * instance) and the change is audited.
 */
export class ConsentService {
  readonly #db: Db;
  readonly #audit: AuditLog;
  readonly #now: () => Date;

  readonly #metrics: ServiceCounters | undefined;

  constructor(db: Db, audit: AuditLog, now: () => Date, metrics?: ServiceCounters) {
    this.#db = db;
    this.#audit = audit;
    this.#now = now;
    this.#metrics = metrics;
  }

  async recordGranted(input: {
    grantId: string; clientId: string; userId: string; scopes: string; details: AuthorizationDetail[]; expiresAt: Date | null;
  }, context: AuditContext): Promise<void> {
    const type = consentType(input.details);
    await this.#db.transaction().execute(async (trx) => {
      await repo.insertConsent(trx, {
        grantId: input.grantId, clientId: input.clientId, userId: input.userId, type, scopes: input.scopes,
        details: input.details as unknown as Record<string, unknown>[], status: 'authorised',
        scaHash: paymentLinkHash(input.details) ?? null, createdAt: this.#now(), expiresAt: input.expiresAt,
      });
      await this.#audit.record({ ...context, clientId: input.clientId, userId: input.userId, type: 'consent.granted', data: { grant_id: input.grantId, consent_type: type } }, trx);
    });
    this.#metrics?.counters.consents.inc({ status: 'authorised' });
  }

  async recordRejected(input: { clientId: string; userId: string; scopes: string; details: AuthorizationDetail[] }, context: AuditContext): Promise<string> {
    const id = `rejected-${randomUUID()}`;
    const type = consentType(input.details);
    await this.#db.transaction().execute(async (trx) => {
      await repo.insertConsent(trx, {
        grantId: id, clientId: input.clientId, userId: input.userId, type, scopes: input.scopes,
        details: input.details as unknown as Record<string, unknown>[], status: 'rejected', scaHash: null, createdAt: this.#now(), expiresAt: null,
      });
      await this.#audit.record({ ...context, clientId: input.clientId, userId: input.userId, type: 'consent.denied', data: { consent_id: id, consent_type: type } }, trx);
    });
    this.#metrics?.counters.consents.inc({ status: 'rejected' });
    return id;
  }

  /**
   * Moves an authorised consent to `to`, if it still is authorised and belongs to `owner`
   * (when given). Returns the consent as it now is, or undefined when nothing changed.
   */
  async transition(
    grantId: string, to: ConsentTransition, owner: { userId?: string; clientId?: string; type?: ConsentType }, context: AuditContext, reason?: string,
  ): Promise<ConsentRecord | undefined> {
    const changed = await this.#db.transaction().execute(async (trx) => {
      const moved = await repo.transitionFromAuthorised(trx, grantId, to, owner, this.#now());
      if (moved === undefined) return undefined;
      await revokeGrantCompletely(trx, grantId);
      await this.#audit.record({ ...context, clientId: moved.clientId, userId: moved.userId, type: `consent.${to}`, data: { grant_id: grantId, version: moved.version, ...(reason === undefined ? {} : { reason }) } }, trx);
      return moved;
    });
    if (changed !== undefined) this.#metrics?.counters.consents.inc({ status: to });
    return changed;
  }

  /** A payment consent is used once: the payment API marks it consumed. */
  consume(grantId: string, context: AuditContext): Promise<ConsentRecord | undefined> {
    return this.transition(grantId, 'consumed', { type: 'payment_initiation' }, context);
  }

  async get(grantId: string): Promise<ConsentRecord> {
    const consent = await repo.findConsent(this.#db, grantId);
    if (consent === undefined) throw new NotFoundError('CONSENT_NOT_FOUND', 'no such consent');
    return consent;
  }

  find(grantId: string): Promise<ConsentRecord | undefined> {
    return repo.findConsent(this.#db, grantId);
  }

  list(filter: { userId?: string; clientId?: string }, limit = 200): Promise<ConsentRecord[]> {
    return repo.listConsents(this.#db, filter, limit);
  }

  /** Marks consents whose time is up as expired (bounded batch); returns how many. */
  async expireDue(batch = 500): Promise<number> {
    let count = 0;
    for (const grantId of await repo.dueForExpiry(this.#db, this.#now(), batch)) {
      if (await this.transition(grantId, 'expired', {}, { actor: 'system' })) count += 1;
    }
    return count;
  }

  /** The status a customer should see: an authorised consent past its expiry reads as expired. */
  effectiveStatus(consent: ConsentRecord): ConsentStatus {
    return consent.status === 'authorised' && consent.expiresAt !== null && consent.expiresAt <= this.#now() ? 'expired' : consent.status;
  }
}

