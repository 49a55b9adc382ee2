import type { Executor } from '../database.js';

/** Records (or replaces) the payment SCA of this interaction for this customer. */
export async function recordPaymentSca(db: Executor, row: { flowId: string; userId: string; detailsHash: string; at: Date }): Promise<void> {
  await db.insertInto('payment_sca')
    .values({ flow_id: row.flowId, user_id: row.userId, details_hash: row.detailsHash, authenticated_at: row.at })
    .onConflict((oc) => oc.columns(['flow_id', 'user_id']).doUpdateSet({ details_hash: row.detailsHash, authenticated_at: row.at, grant_id: null }))
    .execute();
}

export async function findPaymentSca(db: Executor, flowId: string, userId: string): Promise<{ detailsHash: string; authenticatedAt: Date; grantId: string | null } | undefined> {
  const row = await db.selectFrom('payment_sca').select(['details_hash', 'authenticated_at', 'grant_id'])
    .where('flow_id', '=', flowId).where('user_id', '=', userId).executeTakeFirst();
  return row === undefined ? undefined : { detailsHash: row.details_hash, authenticatedAt: row.authenticated_at, grantId: row.grant_id };
}

/** Ties the SCA to the consent it authorised; once only (a used SCA authorises nothing else). */
export async function bindPaymentScaToGrant(db: Executor, flowId: string, userId: string, detailsHash: string, grantId: string): Promise<boolean> {
  const rows = await db.updateTable('payment_sca').set({ grant_id: grantId })
    .where('flow_id', '=', flowId).where('user_id', '=', userId)
    .where('details_hash', '=', detailsHash).where('grant_id', 'is', null)
    .returning('flow_id').execute();
  return rows.length === 1;
}
