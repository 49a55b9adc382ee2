import { randomInt } from 'node:crypto';
import { join } from 'node:path';

import type { Container } from '../src/container.js';
import { NotFoundError } from '../src/services/errors.js';
import { readJson, writeJson } from './store.js';

/**
 * The demo's fixed cast, created once and reused: a second start on the same DATA_DIR
 * finds everything in the database and the secrets that cannot be read back from it
 * (password, TOTP secret, client secret, API key) in DATA_DIR/demo-secrets.json.
 */
export const DEMO_USERNAME = 'demo';

export const DEMO_ACCOUNTS = [
  { id: 'demo-current', name: 'Everyday current account', iban: 'GB82WEST12345698765432', currency: 'GBP', balance: '1250.00' },
  { id: 'demo-savings', name: 'Euro savings', iban: 'DE89370400440532013000', currency: 'EUR', balance: '5400.00' },
] as const;

export interface DemoSecrets {
  customer: { username: string; password: string; userId: string; totpSecret?: string; otpauthUri?: string };
  resourceServer?: { client_id: string; client_secret: string };
  apiKey?: { id: string; key: string };
}

export interface SeededDemo {
  readonly userId: string;
  readonly username: string;
  readonly password: string;
  readonly totpSecret: string;
  readonly otpauthUri: string;
  readonly resourceServer: { readonly client_id: string; readonly client_secret: string };
  readonly apiKey: { readonly id: string; readonly key: string };
  /** false when this start reused an earlier seed */
  readonly created: boolean;
}

const WORDS = [
  'amber', 'anchor', 'apple', 'badger', 'bamboo', 'beacon', 'birch', 'bison', 'cactus', 'canal', 'cedar', 'cobalt', 'comet', 'coral', 'delta', 'ember',
  'falcon', 'fern', 'fjord', 'garnet', 'glacier', 'harbor', 'hazel', 'heron', 'indigo', 'island', 'jasper', 'juniper', 'kettle', 'lagoon', 'lantern', 'lemon',
  'maple', 'marble', 'meadow', 'nickel', 'nutmeg', 'oasis', 'olive', 'orchid', 'otter', 'pebble', 'pepper', 'pine', 'plum', 'quartz', 'quill', 'raven',
  'ribbon', 'saffron', 'sable', 'spruce', 'summit', 'tango', 'thistle', 'tulip', 'umber', 'velvet', 'walnut', 'willow', 'yarrow', 'zephyr', 'zinc', 'cobble',
];

/** Three words and four digits: easy to type into a sign-in form, not guessable. */
function readablePassword(): string {
  const word = () => WORDS[randomInt(WORDS.length)]!;
  return `${word()}-${word()}-${word()}-${String(randomInt(10_000)).padStart(4, '0')}`;
}

export function secretsPath(dataDir: string): string {
  return join(dataDir, 'demo-secrets.json');
}

async function findCustomer(container: Container): Promise<string | undefined> {
  try {
    return (await container.customers.requireByUsername(DEMO_USERNAME)).id;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

async function clientExists(container: Container, clientId: string): Promise<boolean> {
  try {
    await container.clients.get(clientId);
    return true;
  } catch (error) {
    if (error instanceof NotFoundError) return false;
    throw error;
  }
}

export async function seedDemo(container: Container, dataDir: string): Promise<SeededDemo> {
  const path = secretsPath(dataDir);
  const stored = readJson<DemoSecrets>(path);
  const audit = { actor: 'demo' };
  let created = false;

  // The customer: the password is only in the secrets file (the database keeps a hash).
  let userId = await findCustomer(container);
  let secrets: DemoSecrets;
  if (userId === undefined) {
    const password = stored?.customer.password ?? readablePassword();
    userId = (await container.customers.create({ username: DEMO_USERNAME, password, name: 'Dana Demo', email: 'demo@example.com' })).id;
    secrets = { customer: { username: DEMO_USERNAME, password, userId } };
    writeJson(path, secrets);
    created = true;
  } else if (stored?.customer.password === undefined || stored.customer.userId !== userId) {
    throw new Error(`the customer "${DEMO_USERNAME}" exists in ${dataDir} but ${path} does not hold its password: delete ${dataDir} to start the demo afresh`);
  } else {
    secrets = stored;
  }

  const owned = new Set((await container.customers.bankAccounts(userId)).map((account) => account.id));
  for (const account of DEMO_ACCOUNTS) {
    if (!owned.has(account.id)) await container.customers.addBankAccount(DEMO_USERNAME, { ...account });
  }

  // TOTP: enrolled like an operator would (`portcullis user totp`), the secret kept for the printout.
  if (secrets.customer.totpSecret === undefined || secrets.customer.otpauthUri === undefined || !(await container.totp.isEnrolled(userId))) {
    const enrolment = await container.totp.enrol(userId, DEMO_USERNAME, audit);
    secrets.customer.totpSecret = enrolment.secret;
    secrets.customer.otpauthUri = enrolment.otpauthUri;
    writeJson(path, secrets);
  }

  // The bank API introspects tokens as a resource server.
  if (secrets.resourceServer === undefined || !(await clientExists(container, secrets.resourceServer.client_id))) {
    secrets.resourceServer = await container.clients.createResourceServer('Demo bank API');
    writeJson(path, secrets);
  }

  // The payment API consumes payment consents through the admin API.
  if (secrets.apiKey === undefined || (await container.apiKeys.authenticate(secrets.apiKey.key)) === undefined) {
    secrets.apiKey = await container.apiKeys.create('Demo payment API', ['admin:read', 'admin:write'], audit);
    writeJson(path, secrets);
  }

  return {
    userId,
    username: DEMO_USERNAME,
    password: secrets.customer.password,
    totpSecret: secrets.customer.totpSecret,
    otpauthUri: secrets.customer.otpauthUri,
    resourceServer: secrets.resourceServer,
    apiKey: secrets.apiKey,
    created,
  };
}
