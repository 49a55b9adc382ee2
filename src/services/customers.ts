import type { Db } from '../db/database.js';
import * as accountsRepo from '../db/repositories/bank-accounts.js';
import type { BankAccount } from '../db/repositories/bank-accounts.js';
import * as usersRepo from '../db/repositories/users.js';
import { ConflictError, NotFoundError, ValidationError } from './errors.js';
import { MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH, type PasswordHasher } from './passwords.js';
import { assertCleanText, isValidIban, normaliseIban } from './validation.js';

export type { BankAccount };

export interface CustomerProfile {
  id: string;
  username: string;
  name: string | null;
  email: string | null;
}

/**
 * Usernames are ASCII only (letters, digits, . _ - @), compared lower-cased: no two
 * customers can have names that look alike through Unicode confusables.
 */
export function normaliseUsername(input: string): string {
  // ASCII is checked before lower-casing: some non-ASCII letters lower-case to ASCII (U+212A → k).
  const username = /^[\t\n\r\x20-\x7E]*$/.test(input) ? input.trim().toLowerCase() : '';
  if (!/^[a-z0-9][a-z0-9._@-]{2,63}$/.test(username)) {
    throw new ValidationError('INVALID_USERNAME', 'username must be 3–64 characters: letters, digits, ".", "_", "-", "@"');
  }
  return username;
}

function checkPassword(password: string): void {
  if (!password.isWellFormed() || password.includes('\u0000')) {
    throw new ValidationError('INVALID_PASSWORD', 'password contains invalid characters');
  }
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new ValidationError('INVALID_PASSWORD', `password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new ValidationError('INVALID_PASSWORD', `password must be at most ${MAX_PASSWORD_BYTES} bytes`);
  }
}

const DECIMAL = /^-?\d{1,16}(\.\d{1,4})?$/;

export class CustomerService {
  readonly #db: Db;
  readonly #passwords: PasswordHasher;

  constructor(db: Db, passwords: PasswordHasher) {
    this.#db = db;
    this.#passwords = passwords;
  }

  async create(input: { username: string; password: string; name?: string; email?: string }): Promise<{ id: string; username: string }> {
    const username = normaliseUsername(input.username);
    checkPassword(input.password);
    const name = input.name === undefined ? null : assertCleanText('name', input.name.trim(), 200);
    const email = input.email === undefined ? null : input.email.trim();
    if (email !== null && !/^[^\s@]{1,64}@[^\s@]{1,255}$/.test(email)) {
      throw new ValidationError('INVALID_EMAIL', 'email must look like name@example.com');
    }
    const passwordHash = await this.#passwords.hash(input.password);
    const created = await usersRepo.insertUser(this.#db, { username, passwordHash, name, email });
    if (created === undefined) throw new ConflictError('USERNAME_TAKEN', `username ${username} is already taken`);
    return created;
  }

  list(limit: number, after?: string): Promise<usersRepo.UserSummary[]> {
    return usersRepo.listUserSummaries(this.#db, { after }, limit);
  }

  async summary(usernameInput: string): Promise<usersRepo.UserSummary> {
    const [found] = await usersRepo.listUserSummaries(this.#db, { username: normaliseUsername(usernameInput) }, 1);
    if (found === undefined) throw new NotFoundError('USER_NOT_FOUND', 'no such user');
    return found;
  }

  profile(userId: string): Promise<CustomerProfile | undefined> {
    return usersRepo.findProfileById(this.#db, userId);
  }

  async requireByUsername(usernameInput: string): Promise<CustomerProfile> {
    const profile = await usersRepo.findProfileByUsername(this.#db, normaliseUsername(usernameInput));
    if (profile === undefined) throw new NotFoundError('USER_NOT_FOUND', 'no such user');
    return profile;
  }

  async addBankAccount(
    usernameInput: string,
    input: { id: string; name: string; iban: string; currency: string; balance?: string },
  ): Promise<BankAccount> {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(input.id)) {
      throw new ValidationError('INVALID_ACCOUNT_ID', 'account id must be 1–64 characters: letters, digits, ".", "_", "-"');
    }
    const name = assertCleanText('name', input.name.trim(), 100);
    if (name === '') throw new ValidationError('INVALID_ACCOUNT_NAME', 'account name must not be empty');
    if (!isValidIban(input.iban)) throw new ValidationError('INVALID_IBAN', 'iban is not a valid IBAN (checksum or format)');
    if (!/^[A-Z]{3}$/.test(input.currency)) throw new ValidationError('INVALID_CURRENCY', 'currency must be an ISO 4217 code such as EUR');
    const balance = input.balance ?? '0';
    if (!DECIMAL.test(balance)) throw new ValidationError('INVALID_BALANCE', 'balance must be a decimal number such as 1250.00');

    const owner = await this.requireByUsername(usernameInput);
    const account: BankAccount = {
      id: input.id, userId: owner.id, name, iban: normaliseIban(input.iban), currency: input.currency, balance,
    };
    if (!(await accountsRepo.insertBankAccount(this.#db, account))) {
      throw new ConflictError('ACCOUNT_ID_TAKEN', `account id ${input.id} already exists`);
    }
    return account;
  }

  bankAccounts(userId: string): Promise<BankAccount[]> {
    return accountsRepo.listBankAccountsOfUser(this.#db, userId);
  }
}
