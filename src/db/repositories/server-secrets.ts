import type { Executor } from '../database.js';

export async function findServerSecret(db: Executor, name: string): Promise<string | undefined> {
  const row = await db.selectFrom('server_secrets').select('value_enc').where('name', '=', name).executeTakeFirst();
  return row?.value_enc;
}

/** Stores the secret unless one of that name exists; returns whichever is stored. */
export async function insertServerSecretOnce(db: Executor, name: string, valueEnc: string): Promise<string> {
  await db.insertInto('server_secrets').values({ name, value_enc: valueEnc })
    .onConflict((oc) => oc.column('name').doNothing()).execute();
  const stored = await findServerSecret(db, name);
  if (stored === undefined) throw new Error(`server secret ${name} vanished`);
  return stored;
}
