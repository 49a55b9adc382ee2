import { sql, type Kysely } from 'kysely';

/**
 * Dynamic linking (PSD2 RTS art. 5): an SCA done for a payment is recorded against the
 * hash of exactly its amount, currency and payee, within one authorization request
 * (`flow_id`: oidc-provider's interaction chain id, stable across the request's pages).
 * Frozen.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('payment_sca')
    .addColumn('flow_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('details_hash', 'text', (c) => c.notNull())
    .addColumn('authenticated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('payment_sca_pkey', ['flow_id', 'user_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('payment_sca').execute();
}
