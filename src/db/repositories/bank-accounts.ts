import type { Executor } from '../database.js';

export interface BankAccount {
  id: string;
  userId: string;
  name: string;
  iban: string;
  currency: string;
  balance: string;
}

const COLUMNS = ['id', 'user_id', 'name', 'iban', 'currency', 'balance'] as const;

function toAccount(row: { id: string; user_id: string; name: string; iban: string; currency: string; balance: string }): BankAccount {
  return { id: row.id, userId: row.user_id, name: row.name, iban: row.iban, currency: row.currency, balance: String(row.balance) };
}

/** Inserts the account; false when the id is taken. */
export async function insertBankAccount(db: Executor, account: BankAccount): Promise<boolean> {
  const rows = await db.insertInto('bank_accounts')
    .values({
      id: account.id,
      user_id: account.userId,
      name: account.name,
      iban: account.iban,
      currency: account.currency,
      balance: account.balance,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .execute();
  return rows.length === 1;
}

export async function listBankAccountsOfUser(db: Executor, userId: string): Promise<BankAccount[]> {
  const rows = await db.selectFrom('bank_accounts').select(COLUMNS).where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
  return rows.map(toAccount);
}
