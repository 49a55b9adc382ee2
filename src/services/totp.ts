import { createHmac, randomBytes } from 'node:crypto';

import { generateSecret, generateURI, verify } from 'otplib';

import type { Db, Executor } from '../db/database.js';
import * as usersRepo from '../db/repositories/users.js';
import type { AuditContext, AuditLog } from './audit.js';
import type { SecretBox } from './secret-box.js';

/**
 * TOTP (RFC 6238) as authenticator apps expect it: SHA-1, 6 digits, 30 s, ± 1 step.
 * Secrets are sealed under MASTER_KEY; a code is accepted once (the last accepted time
 * step only moves forward, in one conditional UPDATE). Ten single-use recovery codes are
 * stored as HMACs.
 */
export const TOTP_PERIOD = 30;
const ISSUER_LABEL = 'Portcullis';
const SECRET_PURPOSE = 'totp_secret';
const RECOVERY_CODES = 10;
const RECOVERY_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

export interface Enrolment {
  secret: string;
  otpauthUri: string;
  recoveryCodes: string[];
}

function recoveryCode(): string {
  const bytes = randomBytes(12);
  const chars = [...bytes].map((b) => RECOVERY_ALPHABET[b % RECOVERY_ALPHABET.length]).join('');
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}`;
}

export function normaliseRecoveryCode(input: string): string | undefined {
  const compact = input.replace(/[\s-]/g, '').toUpperCase();
  return /^[A-Z2-9]{12}$/.test(compact) ? `${compact.slice(0, 4)}-${compact.slice(4, 8)}-${compact.slice(8, 12)}` : undefined;
}

export class TotpService {
  readonly #db: Db;
  readonly #box: SecretBox;
  readonly #recoveryKey: Buffer;
  readonly #audit: AuditLog;
  readonly #now: () => Date;

  constructor(deps: { db: Db; box: SecretBox; recoveryKey: string; audit: AuditLog; now: () => Date }) {
    this.#db = deps.db;
    this.#box = deps.box;
    this.#recoveryKey = Buffer.from(deps.recoveryKey, 'base64url');
    this.#audit = deps.audit;
    this.#now = deps.now;
  }

  /**
   * A new secret and recovery codes, replacing any previous enrolment. For operators
   * (`portcullis user totp`): the caller has established the right to do it.
   */
  async enrol(userId: string, username: string, context: AuditContext): Promise<Enrolment> {
    const { secret, otpauthUri } = this.proposeSecret(username);
    const recoveryCodes = await this.#db.transaction().execute(async (trx) => {
      const codes = await this.#store(trx, userId, secret, undefined);
      await this.#audit.record({ ...context, userId, type: 'totp.enrolled', data: { by: 'operator' } }, trx);
      return codes;
    });
    return { secret, otpauthUri, recoveryCodes };
  }

  /** A fresh secret for an enrolment page, not stored until confirmed with a first code. */
  proposeSecret(username: string): { secret: string; otpauthUri: string } {
    const secret = generateSecret();
    return { secret, otpauthUri: this.uriFor(username, secret) };
  }

  uriFor(username: string, secret: string): string {
    return generateURI({ issuer: ISSUER_LABEL, label: username, secret });
  }

  /** Does `code` match `secret` now (± 1 step)? Used to confirm an enrolment before storing it. */
  async matches(secret: string, code: string): Promise<number | undefined> {
    if (!/^\d{6}$/.test(code)) return undefined;
    const result = await verify({ secret, token: code, epoch: Math.floor(this.#now().getTime() / 1000), epochTolerance: TOTP_PERIOD, period: TOTP_PERIOD });
    return result.valid && 'timeStep' in result ? result.timeStep : undefined;
  }

  /**
   * Verifies a one-time code (or a recovery code) of an enrolled customer. True at most
   * once per time step: of two concurrent uses of one code exactly one succeeds.
   */
  async verifyCode(userId: string, code: string): Promise<boolean> {
    const state = await usersRepo.findSignInStateById(this.#db, userId);
    if (state?.totpSecretEnc == null) return false;
    const recovery = normaliseRecoveryCode(code);
    if (recovery !== undefined) return usersRepo.useRecoveryCode(this.#db, userId, this.#hashRecovery(userId, recovery), this.#now());
    if (!/^\d{6}$/.test(code)) return false;
    const result = await verify({
      secret: this.#box.open(state.totpSecretEnc, SECRET_PURPOSE),
      token: code,
      epoch: Math.floor(this.#now().getTime() / 1000),
      epochTolerance: TOTP_PERIOD,
      period: TOTP_PERIOD,
      ...(state.totpLastStep === null ? {} : { afterTimeStep: state.totpLastStep }),
    }).catch(() => ({ valid: false as const }));
    if (!result.valid || !('timeStep' in result)) return false;
    return usersRepo.advanceTotpStep(this.#db, userId, result.timeStep);
  }

  /** Stores a self-service enrolment confirmed by a first code (its `step` counts as used). */
  async confirmEnrolment(userId: string, secret: string, step: number, context: AuditContext): Promise<string[]> {
    return this.#db.transaction().execute(async (trx) => {
      const codes = await this.#store(trx, userId, secret, step);
      await this.#audit.record({ ...context, userId, type: 'totp.enrolled', data: { by: 'customer' } }, trx);
      return codes;
    });
  }

  async #store(trx: Executor, userId: string, secret: string, usedStep: number | undefined): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    await usersRepo.setTotpSecret(trx, userId, this.#box.seal(secret, SECRET_PURPOSE), this.#now());
    if (usedStep !== undefined) await usersRepo.advanceTotpStep(trx, userId, usedStep);
    await usersRepo.replaceRecoveryCodes(trx, userId, codes.map((c) => this.#hashRecovery(userId, c)));
    return codes;
  }

  /** Bank staff: the customer lost the authenticator; the next SCA enrols a new one. */
  async reset(userId: string, context: AuditContext): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await usersRepo.clearTotp(trx, userId);
      await this.#audit.record({ ...context, userId, type: 'totp.reset' }, trx);
    });
  }

  async isEnrolled(userId: string): Promise<boolean> {
    return (await usersRepo.findSignInStateById(this.#db, userId))?.totpSecretEnc != null;
  }

  #hashRecovery(userId: string, code: string): string {
    return createHmac('sha256', this.#recoveryKey).update(`${userId}:${code}`).digest('base64url');
  }
}
