import { sql, type Kysely } from 'kysely';

/** Strong customer authentication (TOTP, lockout, recovery codes) and the audit trail. Frozen. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users')
    .addColumn('totp_secret_enc', 'text')
    // The last accepted TOTP time step: a code is accepted only for a later step (replay).
    .addColumn('totp_last_step', 'bigint')
    .addColumn('totp_enrolled_at', 'timestamptz')
    .addColumn('failed_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('locked_until', 'timestamptz')
    .addColumn('lock_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('locked_permanently', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();

  await db.schema
    .createTable('recovery_codes')
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('code_hash', 'text', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('recovery_codes_pkey', ['user_id', 'code_hash'])
    .execute();

  // Append-only, hash-chained: hash = SHA-256(prev_hash || canonical JSON of the event).
  await db.schema
    .createTable('audit_events')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('occurred_at', 'timestamptz', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('client_id', 'text')
    .addColumn('user_id', 'text')
    .addColumn('ip', 'text')
    .addColumn('request_id', 'text')
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_events_type').on('audit_events').columns(['type', 'occurred_at']).execute();
  await db.schema.createIndex('audit_events_user').on('audit_events').column('user_id').where(sql.ref('user_id'), 'is not', null).execute();

  // The database itself refuses to change history.
  await sql`
    create function audit_events_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_events is append-only';
    end;
    $$`.execute(db);
  await sql`
    create trigger audit_events_no_update_delete
    before update or delete or truncate on audit_events
    for each statement execute function audit_events_append_only()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists audit_events_no_update_delete on audit_events`.execute(db);
  await sql`drop function if exists audit_events_append_only()`.execute(db);
  await db.schema.dropTable('audit_events').execute();
  await db.schema.dropTable('recovery_codes').execute();
  await db.schema.alterTable('users')
    .dropColumn('totp_secret_enc').dropColumn('totp_last_step').dropColumn('totp_enrolled_at')
    .dropColumn('failed_attempts').dropColumn('locked_until').dropColumn('lock_count').dropColumn('locked_permanently')
    .execute();
}
