import type { Executor } from '../database.js';

export interface UserCredentials {
  id: string;
  passwordHash: string;
}

export interface UserProfile {
  id: string;
  username: string;
  name: string | null;
  email: string | null;
}

export async function insertUser(
  db: Executor,
  user: { username: string; passwordHash: string; name: string | null; email: string | null },
): Promise<{ id: string; username: string } | undefined> {
  const row = await db.insertInto('users')
    .values({ username: user.username, password_hash: user.passwordHash, name: user.name, email: user.email })
    .onConflict((oc) => oc.column('username').doNothing())
    .returning(['id', 'username'])
    .executeTakeFirst();
  return row;
}

export async function findCredentialsByUsername(db: Executor, username: string): Promise<UserCredentials | undefined> {
  const row = await db.selectFrom('users').select(['id', 'password_hash']).where('username', '=', username).executeTakeFirst();
  return row === undefined ? undefined : { id: row.id, passwordHash: row.password_hash };
}

export async function findProfileById(db: Executor, id: string): Promise<UserProfile | undefined> {
  return db.selectFrom('users').select(['id', 'username', 'name', 'email']).where('id', '=', id).executeTakeFirst();
}

export async function findProfileByUsername(db: Executor, username: string): Promise<UserProfile | undefined> {
  return db.selectFrom('users').select(['id', 'username', 'name', 'email']).where('username', '=', username).executeTakeFirst();
}
