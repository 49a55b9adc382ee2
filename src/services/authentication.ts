import { RateLimiterMemory } from 'rate-limiter-flexible';

import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import * as usersRepo from '../db/repositories/users.js';
import { ACR_CA, ACR_SCA } from './acr.js';
import type { ServiceCounters } from './counters.js';
import type { AuditContext, AuditLog } from './audit.js';
import { normaliseUsername } from './customers.js';
import { StuffingDetector } from './stuffing-detector.js';
import type { PasswordHasher } from './passwords.js';
import type { TotpService } from './totp.js';

export type SignInOutcome =
  | { readonly ok: true; readonly userId: string; readonly acr: string; readonly amr: string[] }
  /** the password was right but SCA is needed and the customer has no authenticator yet */
  | { readonly ok: false; readonly reason: 'enrolment_required'; readonly userId: string }
  /** the same answer whatever went wrong: unknown user, wrong password, wrong code, blocked */
  | { readonly ok: false; readonly reason: 'failed' }
  /** this IP address caused too many failures lately */
  | { readonly ok: false; readonly reason: 'throttled'; readonly retryAfterSeconds: number };

export interface SignInRequest {
  readonly username: string;
  readonly password: string;
  /** one-time code or recovery code; required when `needSca` */
  readonly otp: string | undefined;
  readonly needSca: boolean;
  readonly context: AuditContext & { readonly ip: string };
}

const FAILED = { ok: false, reason: 'failed' } as const;

/**
 * Sign-in and step-up under the PSD2 RTS rules:
 * - knowledge (argon2id password) + possession (TOTP) for SCA;
 * - a failure never says which factor was wrong nor whether the customer exists: an
 *   unknown or blocked customer costs one dummy password verification, like a real one;
 * - at most `maxFailures` consecutive failures, counted in the database before the
 *   guess is evaluated (racing guesses cannot exceed it), then a block; the n-th block in
 *   a row is permanent; each block is audited (`account.locked`) so the bank can warn the
 *   customer before it becomes permanent;
 * - one IP address may cause only so many failures per window, so nobody can lock other
 *   people's accounts at speed.
 */
export class AuthenticationService {
  readonly #db: Db;
  readonly #passwords: PasswordHasher;
  readonly #totp: TotpService;
  readonly #audit: AuditLog;
  readonly #rules: Config['sca'];
  readonly #now: () => Date;
  readonly #ipFailures: RateLimiterMemory;
  readonly #metrics: ServiceCounters | undefined;
  readonly #stuffing = new StuffingDetector({ usernamesPerIp: 10, ipsPerUsername: 5, windowSeconds: 600 });

  constructor(deps: { db: Db; passwords: PasswordHasher; totp: TotpService; audit: AuditLog; rules: Config['sca']; now: () => Date; metrics?: ServiceCounters }) {
    this.#db = deps.db;
    this.#passwords = deps.passwords;
    this.#totp = deps.totp;
    this.#audit = deps.audit;
    this.#rules = deps.rules;
    this.#now = deps.now;
    this.#metrics = deps.metrics;
    this.#ipFailures = new RateLimiterMemory({ points: deps.rules.ipMaxFailures, duration: deps.rules.ipWindowSeconds, keyPrefix: 'signin-failures' });
  }

  async signIn(request: SignInRequest): Promise<SignInOutcome> {
    const outcome = await this.#signIn(request);
    const counters = this.#metrics?.counters;
    if (counters !== undefined) {
      const withOtp = request.needSca || (request.otp !== undefined && request.otp !== '');
      if (outcome.ok) counters.signIns.inc({ outcome: 'success' });
      else if (outcome.reason === 'failed') counters.signIns.inc({ outcome: 'failure' });
      else if (outcome.reason === 'throttled') counters.signIns.inc({ outcome: 'throttled' });
      if (withOtp) counters.sca.inc({ outcome: outcome.ok ? 'success' : outcome.reason === 'failed' ? 'failure' : outcome.reason });
    }
    return outcome;
  }

  async #signIn(request: SignInRequest): Promise<SignInOutcome> {
    const throttled = await this.#throttled(request.context.ip);
    if (throttled !== undefined) return throttled;

    let username: string | undefined;
    try {
      username = normaliseUsername(request.username);
    } catch {
      username = undefined;
    }
    const credentials = username === undefined ? undefined : await usersRepo.findCredentialsByUsername(this.#db, username);
    const slot = credentials === undefined ? undefined : await usersRepo.reserveAttempt(this.#db, credentials.id, this.#rules.maxFailures, this.#now());
    if (credentials === undefined || slot === undefined) {
      await this.#passwords.verifyAgainstDummy();
      await this.#failed(request.context, credentials?.id, { username: username ?? null, cause: credentials === undefined ? 'unknown_user' : 'blocked' });
      return FAILED;
    }

    const passwordOk = await this.#passwords.verify(credentials.passwordHash, request.password);
    const enrolled = await this.#totp.isEnrolled(credentials.id);
    if (passwordOk && request.needSca && !enrolled) {
      await usersRepo.clearFailures(this.#db, credentials.id);
      return { ok: false, reason: 'enrolment_required', userId: credentials.id };
    }
    // The code is checked (and so used up) only with the right password: a typo in the
    // password must not burn the customer's current code. The answer is the same either way.
    const otpWanted = request.needSca || (request.otp !== undefined && request.otp !== '');
    const otpOk = !otpWanted || (passwordOk && request.otp !== undefined && enrolled && await this.#totp.verifyCode(credentials.id, request.otp));

    if (!passwordOk || !otpOk) {
      await this.#failed(request.context, credentials.id, { username, cause: 'credentials' }, slot);
      return FAILED;
    }
    return this.#succeeded(request.context, credentials.id, request.otp !== undefined && request.otp !== '');
  }

  /** Step-up of a session that already holds the password: the one-time code alone. */
  async stepUp(userId: string, otp: string, context: AuditContext & { readonly ip: string }): Promise<SignInOutcome> {
    const outcome = await this.#stepUp(userId, otp, context);
    this.#metrics?.counters.sca.inc({ outcome: outcome.ok ? 'success' : outcome.reason === 'failed' ? 'failure' : outcome.reason });
    return outcome;
  }

  async #stepUp(userId: string, otp: string, context: AuditContext & { readonly ip: string }): Promise<SignInOutcome> {
    const throttled = await this.#throttled(context.ip);
    if (throttled !== undefined) return throttled;
    const slot = await usersRepo.reserveAttempt(this.#db, userId, this.#rules.maxFailures, this.#now());
    if (slot === undefined) {
      await this.#failed(context, userId, { cause: 'blocked', step: 'otp' });
      return FAILED;
    }
    if (!(await this.#totp.verifyCode(userId, otp))) {
      await this.#failed(context, userId, { cause: 'credentials', step: 'otp' }, slot);
      return FAILED;
    }
    return this.#succeeded(context, userId, true);
  }

  /** Lifts any block (temporary or permanent) and clears the counters. */
  async unlock(userId: string, context: AuditContext): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await usersRepo.unlockAccount(trx, userId);
      await this.#audit.record({ ...context, userId, type: 'account.unlocked' }, trx);
    });
  }

  async #throttled(ip: string): Promise<SignInOutcome | undefined> {
    const state = await this.#ipFailures.get(ip);
    if (state !== null && state.consumedPoints >= this.#rules.ipMaxFailures) {
      return { ok: false, reason: 'throttled', retryAfterSeconds: Math.max(1, Math.ceil(state.msBeforeNext / 1000)) };
    }
    return undefined;
  }

  async #succeeded(context: AuditContext, userId: string, withOtp: boolean): Promise<SignInOutcome> {
    const outcome = { ok: true as const, userId, acr: withOtp ? ACR_SCA : ACR_CA, amr: withOtp ? ['pwd', 'otp'] : ['pwd'] };
    await this.#db.transaction().execute(async (trx) => {
      await usersRepo.clearFailures(trx, userId);
      await this.#audit.record({ ...context, userId, type: withOtp ? 'sca.success' : 'signin.success', data: { acr: outcome.acr, amr: outcome.amr } }, trx);
    });
    return outcome;
  }

  /** Records a failure; the `maxFailures`-th taken slot blocks the account. */
  async #failed(context: AuditContext & { readonly ip: string }, userId: string | undefined, data: Record<string, unknown>, slot?: number): Promise<void> {
    await this.#ipFailures.penalty(context.ip, 1);
    const signals = typeof data.username === 'string' ? this.#stuffing.recordFailure(context.ip, data.username, this.#now()) : [];
    await this.#db.transaction().execute(async (trx) => {
      await this.#audit.record({ ...context, userId, type: 'signin.failure', data }, trx);
      for (const signal of signals) {
        await this.#audit.record({ ...context, type: 'security.credential_stuffing', data: { kind: signal.kind, key: signal.key, distinct: signal.distinct } }, trx);
      }
      if (userId !== undefined && slot !== undefined && slot >= this.#rules.maxFailures) {
        const until = new Date(this.#now().getTime() + this.#rules.blockSeconds * 1000);
        const { lockCount, permanent } = await usersRepo.blockAccount(trx, userId, until, this.#rules.permanentAfterBlocks);
        this.#metrics?.counters.locks.inc({ permanent: permanent ? 'true' : 'false' });
        await this.#audit.record({
          ...context, userId, type: 'account.locked',
          data: { permanent, lock_count: lockCount, until: permanent ? null : until.toISOString(), permanent_after_blocks: this.#rules.permanentAfterBlocks },
        }, trx);
      }
    });
    for (const signal of signals) this.#metrics?.counters.credentialStuffing.inc({ kind: signal.kind });
  }
}
