import type { Executor } from '../database.js';
import type { ClientsTable } from '../schema.js';

export interface ClientRecord {
  clientId: string;
  metadata: Record<string, unknown>;
  secretEnc: string | null;
  kind: ClientsTable['kind'];
  profile: ClientsTable['profile'];
  softwareId: string | null;
  disabledAt: Date | null;
  createdAt: Date;
}

export interface NewClient {
  clientId: string;
  metadata: Record<string, unknown>;
  secretEnc: string | null;
  kind: ClientsTable['kind'];
  profile: ClientsTable['profile'];
  softwareId: string | null;
}

const COLUMNS = ['client_id', 'metadata', 'secret_enc', 'kind', 'profile', 'software_id', 'disabled_at', 'created_at'] as const;

export async function findClient(db: Executor, clientId: string): Promise<ClientRecord | undefined> {
  const row = await db.selectFrom('clients').select(COLUMNS).where('client_id', '=', clientId).executeTakeFirst();
  if (row === undefined) return undefined;
  return {
    clientId: row.client_id,
    metadata: row.metadata,
    secretEnc: row.secret_enc,
    kind: row.kind,
    profile: row.profile,
    softwareId: row.software_id,
    disabledAt: row.disabled_at,
    createdAt: row.created_at,
  };
}

export async function findClientBySoftwareId(db: Executor, softwareId: string): Promise<ClientRecord | undefined> {
  const row = await db.selectFrom('clients').select('client_id').where('software_id', '=', softwareId).executeTakeFirst();
  return row === undefined ? undefined : findClient(db, row.client_id);
}

export async function insertClient(db: Executor, client: NewClient): Promise<void> {
  await db.insertInto('clients').values({
    client_id: client.clientId,
    metadata: JSON.stringify(client.metadata),
    secret_enc: client.secretEnc,
    kind: client.kind,
    profile: client.profile,
    software_id: client.softwareId,
  }).execute();
}

export async function updateClientMetadata(
  db: Executor,
  clientId: string,
  metadata: Record<string, unknown>,
  secretEnc: string | null,
): Promise<boolean> {
  const rows = await db.updateTable('clients')
    .set({ metadata: JSON.stringify(metadata), secret_enc: secretEnc, updated_at: new Date() })
    .where('client_id', '=', clientId)
    .returning('client_id')
    .execute();
  return rows.length === 1;
}

export async function deleteClient(db: Executor, clientId: string): Promise<boolean> {
  const rows = await db.deleteFrom('clients').where('client_id', '=', clientId).returning('client_id').execute();
  return rows.length === 1;
}

export async function listClients(db: Executor, limit: number, afterClientId?: string): Promise<ClientRecord[]> {
  let query = db.selectFrom('clients').select(COLUMNS).orderBy('client_id').limit(limit);
  if (afterClientId !== undefined) query = query.where('client_id', '>', afterClientId);
  const rows = await query.execute();
  return rows.map((row) => ({
    clientId: row.client_id, metadata: row.metadata, secretEnc: row.secret_enc, kind: row.kind, profile: row.profile,
    softwareId: row.software_id, disabledAt: row.disabled_at, createdAt: row.created_at,
  }));
}

/** Sets or clears disabled_at; false when the client does not exist. */
export async function setClientDisabled(db: Executor, clientId: string, disabledAt: Date | null): Promise<boolean> {
  const rows = await db.updateTable('clients').set({ disabled_at: disabledAt, updated_at: new Date() }).where('client_id', '=', clientId).returning('client_id').execute();
  return rows.length === 1;
}
