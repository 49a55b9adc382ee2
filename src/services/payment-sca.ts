import type { Db, Executor } from '../db/database.js';
import * as repo from '../db/repositories/payment-sca.js';
import type { AuditContext, AuditLog } from './audit.js';
import { paymentLinkHash, type AuthorizationDetail } from './authorization-details.js';

/**
 * Dynamic linking: a payment is authorised only by an SCA performed in the same
 * authorization request, on a page showing its amount and payee, and recorded against
 * the hash of exactly those. An earlier SCA (the session's), an SCA of another request,
 * or one for other amounts or payees authorises nothing; each SCA authorises one consent.
 */
export class PaymentScaService {
  readonly #db: Db;
  readonly #audit: AuditLog;
  readonly #now: () => Date;

  constructor(db: Db, audit: AuditLog, now: () => Date) {
    this.#db = db;
    this.#audit = audit;
    this.#now = now;
  }

  /** Records that the customer just passed SCA for these payment details in this interaction. */
  async record(flowId: string, userId: string, details: readonly AuthorizationDetail[], context: AuditContext): Promise<void> {
    const detailsHash = paymentLinkHash(details);
    if (detailsHash === undefined) return;
    await this.#db.transaction().execute(async (trx) => {
      await repo.recordPaymentSca(trx, { flowId, userId, detailsHash, at: this.#now() });
      await this.#audit.record({ ...context, userId, type: 'sca.payment_linked', data: { interaction: flowId, details_hash: detailsHash } }, trx);
    });
  }

  /**
   * True when this request holds an SCA for exactly these payment details that is unused,
   * or used by `ownGrantId` (the consent this same request just created).
   */
  async isLinked(flowId: string, userId: string, details: readonly AuthorizationDetail[], ownGrantId?: string): Promise<boolean> {
    const detailsHash = paymentLinkHash(details);
    if (detailsHash === undefined) return true;
    const found = await repo.findPaymentSca(this.#db, flowId, userId);
    return found !== undefined && found.detailsHash === detailsHash && (found.grantId === null || found.grantId === ownGrantId);
  }

  /** Spends the SCA on the consent it authorised; false if it was not there, not matching, or spent. */
  async bindToGrant(flowId: string, userId: string, details: readonly AuthorizationDetail[], grantId: string, trx: Executor = this.#db): Promise<boolean> {
    const detailsHash = paymentLinkHash(details);
    if (detailsHash === undefined) return true;
    return repo.bindPaymentScaToGrant(trx, flowId, userId, detailsHash, grantId);
  }
}
