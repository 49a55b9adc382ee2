import type { Executor } from '../database.js';

export async function insertDashboardSession(db: Executor, row: { idHash: string; userId: string; now: Date; expiresAt: Date }): Promise<void> {
  await db.insertInto('dashboard_sessions').values({ id_hash: row.idHash, user_id: row.userId, created_at: row.now, expires_at: row.expiresAt }).execute();
}

/** Extends a live session (sliding idle timeout) and returns it; undefined when expired or unknown. */
export async function touchDashboardSession(db: Executor, idHash: string, now: Date, expiresAt: Date): Promise<{ userId: string; createdAt: Date } | undefined> {
  const row = await db.updateTable('dashboard_sessions').set({ expires_at: expiresAt })
    .where('id_hash', '=', idHash).where('expires_at', '>', now)
    .returning(['user_id', 'created_at']).executeTakeFirst();
  return row === undefined ? undefined : { userId: row.user_id, createdAt: row.created_at };
}

export async function deleteDashboardSession(db: Executor, idHash: string): Promise<void> {
  await db.deleteFrom('dashboard_sessions').where('id_hash', '=', idHash).execute();
}

export async function deleteExpiredDashboardSessions(db: Executor, now: Date): Promise<void> {
  await db.deleteFrom('dashboard_sessions').where('expires_at', '<=', now).execute();
}
