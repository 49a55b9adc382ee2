import { sql, type Kysely } from 'kysely';

/**
 * Frozen: never edit a migration that has shipped; add a new one.
 * Runs unchanged on PostgreSQL 15+ and on PGlite.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('email', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('bank_accounts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('iban', 'text', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('balance', 'numeric(20, 4)', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('bank_accounts_user_id').on('bank_accounts').column('user_id').execute();

  // Client metadata as oidc-provider reads it, minus the secret, which is kept encrypted.
  await db.schema
    .createTable('clients')
    .addColumn('client_id', 'text', (c) => c.primaryKey())
    .addColumn('metadata', 'jsonb', (c) => c.notNull())
    .addColumn('secret_enc', 'text')
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('tpp', 'resource_server')`))
    .addColumn('profile', 'text', (c) => c.notNull().check(sql`profile in ('fapi2', 'oidc')`))
    .addColumn('software_id', 'text', (c) => c.unique())
    .addColumn('disabled_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // Every model oidc-provider persists. `key` is the SHA-256 (base64url) of the model id,
  // so a leaked table holds no usable token, code or session id.
  await db.schema
    .createTable('oidc_models')
    .addColumn('model', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('uid', 'text')
    .addColumn('user_code', 'text')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('consumed_at', 'timestamptz')
    .addPrimaryKeyConstraint('oidc_models_pkey', ['model', 'key'])
    .execute();
  await db.schema.createIndex('oidc_models_grant_id').on('oidc_models').column('grant_id')
    .where(sql.ref('grant_id'), 'is not', null).execute();
  await db.schema.createIndex('oidc_models_uid').on('oidc_models').columns(['model', 'uid'])
    .where(sql.ref('uid'), 'is not', null).execute();
  await db.schema.createIndex('oidc_models_user_code').on('oidc_models').columns(['model', 'user_code'])
    .where(sql.ref('user_code'), 'is not', null).execute();
  await db.schema.createIndex('oidc_models_expires_at').on('oidc_models').column('expires_at')
    .where(sql.ref('expires_at'), 'is not', null).execute();

  // Signing keys: the private JWK encrypted under MASTER_KEY (AES-256-GCM).
  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'text', (c) => c.primaryKey())
    .addColumn('alg', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('published', 'active', 'retired', 'removed')`))
    .addColumn('public_jwk', 'jsonb', (c) => c.notNull())
    .addColumn('private_jwk_enc', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('activated_at', 'timestamptz')
    .addColumn('retired_at', 'timestamptz')
    .execute();

  // Secrets every instance must share (cookie signing keys, …), encrypted under MASTER_KEY.
  await db.schema
    .createTable('server_secrets')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value_enc', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['server_secrets', 'signing_keys', 'oidc_models', 'clients', 'bank_accounts', 'users']) {
    await db.schema.dropTable(table).execute();
  }
}
