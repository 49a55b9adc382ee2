import { randomBytes } from 'node:crypto';

import type { Db } from '../db/database.js';
import * as repo from '../db/repositories/dashboard-sessions.js';
import { sha256Base64Url } from './secret-box.js';

/**
 * Sessions of the customer dashboard (/account). The cookie holds 256 random bits; the
 * database only their hash. Each use extends the session by `idleSeconds` (PSD2: five
 * minutes of inactivity end it). A session is "fresh" for sensitive changes (a new
 * authenticator) only within `idleSeconds` of the SCA that opened it.
 */
export class DashboardSessions {
  readonly #db: Db;
  readonly #idleSeconds: number;
  readonly #now: () => Date;

  constructor(db: Db, idleSeconds: number, now: () => Date) {
    this.#db = db;
    this.#idleSeconds = idleSeconds;
    this.#now = now;
  }

  async open(userId: string): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    await repo.deleteExpiredDashboardSessions(this.#db, now);
    await repo.insertDashboardSession(this.#db, { idHash: sha256Base64Url(token), userId, now, expiresAt: this.#expiry(now) });
    return token;
  }

  async resume(token: string | undefined): Promise<{ userId: string; fresh: boolean } | undefined> {
    if (token === undefined || !/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
    const now = this.#now();
    const session = await repo.touchDashboardSession(this.#db, sha256Base64Url(token), now, this.#expiry(now));
    if (session === undefined) return undefined;
    return { userId: session.userId, fresh: now.getTime() - session.createdAt.getTime() <= this.#idleSeconds * 1000 };
  }

  async close(token: string | undefined): Promise<void> {
    if (token !== undefined) await repo.deleteDashboardSession(this.#db, sha256Base64Url(token));
  }

  #expiry(now: Date): Date {
    return new Date(now.getTime() + this.#idleSeconds * 1000);
  }
}
