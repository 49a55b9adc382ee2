import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { ConfigError, loadConfig } from '../config.js';
import { buildContainer, openMigratedDatabase, type Container } from '../container.js';
import { acquireDataDirLock } from '../db/data-dir-lock.js';
import { migrateToLatest } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { ServiceError } from '../services/errors.js';

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: AsyncIterable<Buffer | string>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** A usage or input error: printed as one line on stderr, exit code 2. */
class UsageError extends Error {}

const MAX_STDIN_BYTES = 1024 * 1024;

const USAGE = `usage: portcullis <command> [--json]
  migrate
  user create --username U --password-stdin [--name N] [--email E]
  user totp --username U
  user unlock --username U
  account add --username U --id ID --name NAME --iban IBAN --currency CUR [--balance AMOUNT]
  client create --metadata-file F|-
  resource-server create --name N
  apikey create --name N --scopes S[,S] [--expires-days D]
  keys list
  keys rotate
  audit verify
`;

type Options = Record<string, string | boolean | undefined>;

interface Command {
  readonly options: Record<string, { type: 'string' | 'boolean' }>;
  readonly required: readonly string[];
  run(container: Container, options: Options, io: CliIo): Promise<{ json: unknown; text: string }>;
}

async function readStdin(stdin: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > MAX_STDIN_BYTES) throw new UsageError('standard input is larger than 1 MiB');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function str(options: Options, name: string): string {
  const value = options[name];
  if (typeof value !== 'string') throw new UsageError(`--${name} is required`);
  return value;
}

function optionalStr(options: Options, name: string): string | undefined {
  const value = options[name];
  return typeof value === 'string' ? value : undefined;
}

/** Audit events of CLI actions name the operator's tool as the actor. */
const CLI_AUDIT = { actor: 'cli' } as const;

const COMMANDS: Record<string, Command> = {
  'user create': {
    options: { username: { type: 'string' }, 'password-stdin': { type: 'boolean' }, name: { type: 'string' }, email: { type: 'string' } },
    required: ['username', 'password-stdin'],
    async run(container, options, io) {
      // One line from stdin; a trailing newline (echo, heredoc) is not part of the password.
      const password = (await readStdin(io.stdin)).replace(/\r?\n$/, '');
      const created = await container.customers.create({
        username: str(options, 'username'), password, name: optionalStr(options, 'name'), email: optionalStr(options, 'email'),
      });
      await container.audit.record({ ...CLI_AUDIT, userId: created.id, type: 'customer.created' });
      return { json: created, text: `created user ${created.username} (${created.id})\n` };
    },
  },
  'user totp': {
    options: { username: { type: 'string' } },
    required: ['username'],
    async run(container, options) {
      const user = await container.customers.requireByUsername(str(options, 'username'));
      const enrolment = await container.totp.enrol(user.id, user.username, CLI_AUDIT);
      return {
        json: { secret: enrolment.secret, otpauth_uri: enrolment.otpauthUri, recovery_codes: enrolment.recoveryCodes },
        text: `secret: ${enrolment.secret}\notpauth_uri: ${enrolment.otpauthUri}\nrecovery codes (each works once): ${enrolment.recoveryCodes.join(' ')}\n`,
      };
    },
  },
  'user unlock': {
    options: { username: { type: 'string' } },
    required: ['username'],
    async run(container, options) {
      const user = await container.customers.requireByUsername(str(options, 'username'));
      await container.authentication.unlock(user.id, CLI_AUDIT);
      return { json: { username: user.username, unlocked: true }, text: `unlocked ${user.username}\n` };
    },
  },
  'account add': {
    options: { username: { type: 'string' }, id: { type: 'string' }, name: { type: 'string' }, iban: { type: 'string' }, currency: { type: 'string' }, balance: { type: 'string' } },
    required: ['username', 'id', 'name', 'iban', 'currency'],
    async run(container, options) {
      const account = await container.customers.addBankAccount(str(options, 'username'), {
        id: str(options, 'id'), name: str(options, 'name'), iban: str(options, 'iban'), currency: str(options, 'currency'), balance: optionalStr(options, 'balance'),
      });
      const json = { id: account.id, username: str(options, 'username').toLowerCase(), name: account.name, iban: account.iban, currency: account.currency, balance: account.balance };
      return { json, text: `added account ${account.id} (${account.iban}) for ${json.username}\n` };
    },
  },
  'client create': {
    options: { 'metadata-file': { type: 'string' } },
    required: ['metadata-file'],
    async run(container, options, io) {
      const file = str(options, 'metadata-file');
      const raw = file === '-' ? await readStdin(io.stdin) : await readFile(file, 'utf8').catch(() => { throw new UsageError(`cannot read ${file}`); });
      let metadata: unknown;
      try {
        metadata = JSON.parse(raw);
      } catch {
        throw new UsageError('metadata is not valid JSON');
      }
      const created = await container.clients.createClient(metadata);
      await container.audit.record({ ...CLI_AUDIT, clientId: created.client_id, type: 'client.registered', data: { by: 'cli', profile: created.profile } });
      return { json: { ...created.metadata, profile: created.profile }, text: `created client ${created.client_id} (profile ${created.profile})\n` };
    },
  },
  'resource-server create': {
    options: { name: { type: 'string' } },
    required: ['name'],
    async run(container, options) {
      const created = await container.clients.createResourceServer(str(options, 'name'));
      await container.audit.record({ ...CLI_AUDIT, clientId: created.client_id, type: 'client.registered', data: { by: 'cli', kind: 'resource_server' } });
      return { json: created, text: `client_id: ${created.client_id}\nclient_secret: ${created.client_secret}\n(the secret is shown once)\n` };
    },
  },
  'apikey create': {
    options: { name: { type: 'string' }, scopes: { type: 'string' }, 'expires-days': { type: 'string' } },
    required: ['name', 'scopes'],
    async run(container, options) {
      const days = optionalStr(options, 'expires-days');
      if (days !== undefined && !/^\d{1,4}$/.test(days)) throw new UsageError('--expires-days must be a number of days');
      const created = await container.apiKeys.create(str(options, 'name'), str(options, 'scopes').split(',').map((s) => s.trim()), CLI_AUDIT, days === undefined ? undefined : Number(days));
      return { json: created, text: `id: ${created.id}\nkey: ${created.key}\n(the key is shown once)\n` };
    },
  },
  'keys list': {
    options: {},
    required: [],
    async run(container) {
      const keys = await container.keys.list();
      return { json: { keys }, text: keys.map((k) => `${k.kid}  ${k.alg.padEnd(6)} ${k.state.padEnd(9)} ${k.created_at}\n`).join('') };
    },
  },
  'keys rotate': {
    options: {},
    required: [],
    async run(container) {
      const published = await container.keys.rotate();
      await container.audit.record({ ...CLI_AUDIT, type: 'keys.rotated', data: { kids: published.map((k) => k.kid) } });
      const when = published[0]?.activates_after ?? 'now';
      return {
        json: { published },
        text: `${published.map((k) => `published ${k.kid} (${k.alg})\n`).join('')}they start signing after ${when}; running instances follow within ${container.config.keys.refreshSeconds} s\n`,
      };
    },
  },
};

/** Runs one CLI invocation; returns the exit code. Secrets are never accepted from argv. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const json = argv.includes('--json');
  const args = argv.filter((a) => a !== '--json');
  const fail = (message: string, code: number): number => {
    if (json) io.stdout(`${JSON.stringify({ error: { message } })}\n`);
    io.stderr(`portcullis: ${message}\n`);
    return code;
  };

  if (args.some((a) => a === '--password' || a.startsWith('--password=') || a === '--client-secret')) {
    return fail('secrets are never read from the command line; use --password-stdin', 2);
  }
  if (args.length === 0 || args[0] === '--help' || args[0] === 'help') {
    io.stderr(USAGE);
    return args.length === 0 ? 2 : 0;
  }

  let config;
  try {
    config = loadConfig(io.env);
  } catch (error) {
    if (error instanceof ConfigError) return fail(`configuration error: ${error.message}`, 2);
    throw error;
  }

  let release = () => undefined as void;
  try {
    if (config.databaseUrl === undefined) release = acquireDataDirLock(config.dataDir);
  } catch (error) {
    return fail(error instanceof Error ? error.message : 'cannot open the embedded database', 1);
  }

  try {
    if (args[0] === 'audit' && args[1] === 'verify' && args.length === 2) {
      const container = await buildContainer(config, { log: createLogger('silent') });
      try {
        const result = await container.audit.verify();
        io.stdout(json ? `${JSON.stringify(result)}\n` : result.ok ? `audit chain intact: ${result.events} events\n` : `audit chain BROKEN at event ${result.brokenAt} (after ${result.events} good events)\n`);
        if (!result.ok) io.stderr(`portcullis: audit chain broken at event ${result.brokenAt}\n`);
        return result.ok ? 0 : 1;
      } finally {
        await container.close();
      }
    }
    if (args[0] === 'migrate' && args.length === 1) {
      const database = await openMigratedDatabase(config);
      try {
        const applied = await migrateToLatest(database.db);
        io.stdout(json ? `${JSON.stringify({ ok: true, applied })}\n` : 'database schema is up to date\n');
        return 0;
      } finally {
        await database.close();
      }
    }

    const name = args.slice(0, 2).join(' ');
    const command = COMMANDS[name];
    if (command === undefined) return fail(`unknown command "${args.slice(0, 2).join(' ')}" (portcullis --help lists the commands)`, 2);

    let parsed: Options;
    try {
      parsed = parseArgs({ args: args.slice(2), options: command.options, strict: true, allowPositionals: false }).values as Options;
    } catch (error) {
      return fail(error instanceof Error ? error.message.split('\n')[0] ?? 'invalid arguments' : 'invalid arguments', 2);
    }
    for (const option of command.required) {
      if (parsed[option] === undefined) return fail(`--${option} is required`, 2);
    }

    const container = await buildContainer(config, { log: createLogger('silent') });
    try {
      const result = await command.run(container, parsed, io);
      io.stdout(json ? `${JSON.stringify(result.json)}\n` : result.text);
      return 0;
    } finally {
      await container.close();
    }
  } catch (error) {
    if (error instanceof UsageError) return fail(error.message, 2);
    if (error instanceof ServiceError) return fail(error.message, 1);
    return fail(`failed: ${error instanceof Error ? error.message : 'unknown error'}`, 1);
  } finally {
    release();
  }
}
