import type { ColumnType, Generated, JSONColumnType } from 'kysely';

/** Row types of the tables created in migrations/. Keep in step with them. */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface UsersTable {
  id: Generated<string>;
  username: string;
  password_hash: string;
  name: string | null;
  email: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  totp_secret_enc: string | null;
  /** int8: parsed as a number (see database.ts) */
  totp_last_step: number | null;
  totp_enrolled_at: NullableTimestamp;
  failed_attempts: Generated<number>;
  locked_until: NullableTimestamp;
  lock_count: Generated<number>;
  locked_permanently: Generated<boolean>;
}

export interface RecoveryCodesTable {
  user_id: string;
  code_hash: string;
  used_at: NullableTimestamp;
  created_at: Timestamp;
}

export interface AuditEventsTable {
  seq: number;
  occurred_at: Timestamp;
  type: string;
  actor: string | null;
  client_id: string | null;
  user_id: string | null;
  ip: string | null;
  request_id: string | null;
  data: JSONColumnType<Record<string, unknown>>;
  prev_hash: string;
  hash: string;
}

export interface PaymentScaTable {
  flow_id: string;
  user_id: string;
  details_hash: string;
  authenticated_at: Timestamp;
  grant_id: string | null;
  created_at: Timestamp;
}

export type ConsentStatus = 'authorised' | 'rejected' | 'revoked' | 'expired' | 'consumed';
export type ConsentType = 'account_information' | 'payment_initiation' | 'mixed' | 'scopes';

export interface ConsentsTable {
  grant_id: string;
  client_id: string;
  user_id: string;
  type: ConsentType;
  scopes: string;
  details: JSONColumnType<Record<string, unknown>[]>;
  status: ConsentStatus;
  sca_hash: string | null;
  version: Generated<number>;
  created_at: Timestamp;
  status_changed_at: Timestamp;
  expires_at: NullableTimestamp;
}

export interface DashboardSessionsTable {
  id_hash: string;
  user_id: string;
  created_at: Timestamp;
  expires_at: Timestamp;
}

export interface ApiKeysTable {
  id: string;
  name: string;
  key_hash: string;
  scopes: JSONColumnType<string[]>;
  created_at: Timestamp;
  expires_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

export interface BankAccountsTable {
  id: string;
  user_id: string;
  name: string;
  iban: string;
  currency: string;
  /** numeric: read back as a decimal string, never a float */
  balance: ColumnType<string, string | undefined, string>;
  created_at: Timestamp;
}

export interface ClientsTable {
  client_id: string;
  metadata: JSONColumnType<Record<string, unknown>>;
  secret_enc: string | null;
  kind: 'tpp' | 'resource_server';
  profile: 'fapi2' | 'oidc';
  software_id: string | null;
  disabled_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface OidcModelsTable {
  model: string;
  key: string;
  payload: JSONColumnType<Record<string, unknown>>;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: NullableTimestamp;
  consumed_at: NullableTimestamp;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  state: 'published' | 'active' | 'retired' | 'removed';
  public_jwk: JSONColumnType<Record<string, unknown>>;
  private_jwk_enc: string;
  created_at: Timestamp;
  activated_at: NullableTimestamp;
  retired_at: NullableTimestamp;
}

export interface ServerSecretsTable {
  name: string;
  value_enc: string;
  created_at: Timestamp;
}

export interface DB {
  users: UsersTable;
  recovery_codes: RecoveryCodesTable;
  audit_events: AuditEventsTable;
  payment_sca: PaymentScaTable;
  consents: ConsentsTable;
  dashboard_sessions: DashboardSessionsTable;
  api_keys: ApiKeysTable;
  bank_accounts: BankAccountsTable;
  clients: ClientsTable;
  oidc_models: OidcModelsTable;
  signing_keys: SigningKeysTable;
  server_secrets: ServerSecretsTable;
}
