import { sql, type Kysely } from 'kysely';

/**
 * Every change to a client row is announced on the channel `portcullis_client_changes`
 * (payload: the client id), delivered when the change commits. Instances cache client
 * metadata and evict on these notifications. Frozen.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function clients_notify_change() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' then
        perform pg_notify('portcullis_client_changes', old.client_id);
      else
        perform pg_notify('portcullis_client_changes', new.client_id);
      end if;
      return null;
    end;
    $$`.execute(db);
  await sql`
    create trigger clients_notify_change
    after insert or update or delete on clients
    for each row execute function clients_notify_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists clients_notify_change on clients`.execute(db);
  await sql`drop function if exists clients_notify_change()`.execute(db);
}
