import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { PACKAGE_ROOT } from '../../src/paths.js';
import { createScratchDatabase } from '../../test/support/database.js';
import { freePort, startMeasured, type Measured } from './process.js';

/** Portcullis under measurement: its database, its environment, its process. */

const BENCH_MASTER_KEY = Buffer.alloc(32, 42).toString('base64');
const DIST_MAIN = join(PACKAGE_ROOT, 'dist', 'src', 'main.js');

/**
 * How `npm start` runs the server (package.json): its environment assignments and Node
 * flags, so that the bench measures the server as it is run; BENCH_NODE_FLAGS replaces the
 * flags for an experiment.
 */
export function startCommand(): { env: Record<string, string>; flags: string[] } {
  const start = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const match = /^((?:[A-Z_]+=\S+ )*)node (.*?)\s*dist\/src\/main\.js$/.exec(start);
  if (match === null) throw new Error(`unexpected start script: ${start}`);
  const env = Object.fromEntries(match[1]!.trim().split(' ').filter(Boolean).map((assignment) => assignment.split('=') as [string, string]));
  const flags = process.env.BENCH_NODE_FLAGS ?? match[2]!;
  return { env, flags: flags.split(' ').filter(Boolean) };
}

/** DATABASE_URL as given, or a database created for this run and dropped after it. */
export async function throwawayDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (process.env.DATABASE_URL !== undefined) return { url: process.env.DATABASE_URL, drop: async () => undefined };
  return createScratchDatabase(process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', 'portcullis_bench');
}

export function serverEnv(databaseUrl: string, port: number, adminPort: number, dataDir: string): Record<string, string> {
  const generous = '1000000/60';
  return {
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    ISSUER: `http://127.0.0.1:${port}`,
    MASTER_KEY: BENCH_MASTER_KEY,
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    // Rate limiting stays on (it is part of every request's cost) with budgets no run reaches.
    ...Object.fromEntries(['SIGNIN', 'PAR', 'TOKEN', 'REGISTRATION', 'INTROSPECTION', 'REVOCATION', 'USERINFO', 'GRANTS', 'PAGES'].map((c) => [`RATE_LIMIT_${c}`, generous])),
    SIGNIN_IP_MAX_FAILURES: '100000',
    // Passed through so that a run can compare settings (e.g. ARGON2_MAX_CONCURRENT=64: unbounded).
    ...Object.fromEntries(['ARGON2_MAX_CONCURRENT', 'DATABASE_POOL_MAX', 'UV_THREADPOOL_SIZE', 'MALLOC_ARENA_MAX'].filter((name) => process.env[name] !== undefined).map((name) => [name, process.env[name]!])),
  };
}

export async function startPortcullis(databaseUrl: string, dataDir: string, nodeOptions: readonly string[] = []): Promise<Measured> {
  const port = await freePort();
  const start = startCommand();
  return startMeasured('portcullis', [...nodeOptions, ...start.flags, DIST_MAIN], { ...start.env, ...serverEnv(databaseUrl, port, await freePort(), dataDir) }, port, '/readyz');
}

