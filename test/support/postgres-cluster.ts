import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';

import type { TestDatabase } from './database.js';
import { freePort } from './processes.js';

/**
 * A private PostgreSQL cluster a test can stop and start at will: its own data directory
 * (under a mkdtemp directory) and its own free port on 127.0.0.1. The postmaster is our
 * own child process (spawned directly, no pg_ctl daemonising), so every stop and the
 * final clean-up signal that one PID. initdb refuses root: as root both run as the
 * `postgres` OS user.
 */

const CANDIDATE_BIN_DIRS = [process.env.POSTGRES_BIN_DIR, ...[17, 16, 15, 14, 13].map((v) => `/usr/lib/postgresql/${v}/bin`)];

/** The directory holding initdb and postgres, or undefined when PostgreSQL is not installed. */
export function postgresBinDir(): string | undefined {
  return CANDIDATE_BIN_DIRS.find((dir): dir is string => dir !== undefined && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres')));
}

/** `postgres` in /etc/passwd: whom to run as when we are root. */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (line === undefined) throw new Error('running as root but there is no postgres OS user to run the cluster as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** How the postmaster stops: `immediate` is a crash (SIGQUIT), `fast` rolls back and disconnects (SIGINT). */
export type StopMode = 'immediate' | 'fast';

export interface PostgresCluster {
  readonly port: number;
  /** superuser URL of the `postgres` database */
  readonly adminUrl: string;
  /** URL of a database on this cluster */
  url(database: string): string;
  /** true while the postmaster process runs */
  readonly running: boolean;
  /** Stops the postmaster and waits until it has exited. */
  stop(mode?: StopMode): Promise<void>;
  /** Starts the postmaster again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** A new database on this cluster, in the TestDatabase shape the app helpers take. */
  createDatabase(name?: string): Promise<TestDatabase>;
  /** Stops the postmaster (if running) and deletes the data directory. */
  destroy(): Promise<void>;
}

function run(command: string, args: string[], ids: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', LC_ALL: 'C' }, ...(ids ?? {}) });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}: ${output}`))));
  });
}

async function waitUntilAccepting(adminUrl: string, child: ChildProcess, output: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited during start-up: ${output()}`);
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1_000 });
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) throw new Error(`postgres did not accept connections within ${timeoutMs} ms: ${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error('PostgreSQL server binaries not found (set POSTGRES_BIN_DIR)');
  const ids = process.getuid?.() === 0 ? postgresUser() : undefined;
  const root = mkdtempSync(join(tmpdir(), 'portcullis-pg-'));
  if (ids !== undefined) chownSync(root, ids.uid, ids.gid);
  const dataDir = join(root, 'data');
  await run(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'], ids);

  const port = await freePort();
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const start = async () => {
    if (child !== undefined) throw new Error('postgres is already running');
    log = '';
    // fsync off: this cluster only has to survive its own crash (SIGQUIT), never the
    // machine's, and WAL in the page cache covers that. synchronous_commit stays on: with it
    // off, a crash loses the last commits (a token issued just before the stop).
    const started = spawn(join(bin, 'postgres'), [
      '-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${root}`,
      '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=100',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', LC_ALL: 'C' }, ...(ids ?? {}) });
    started.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
    started.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
    child = started;
    exited = new Promise((resolve) => started.once('exit', () => { if (child === started) child = undefined; resolve(); }));
    try {
      await waitUntilAccepting(adminUrl, started, () => log);
    } catch (error) {
      started.kill('SIGKILL');
      await exited;
      throw error;
    }
  };

  const stop = async (mode: StopMode = 'fast') => {
    const running = child;
    if (running === undefined) return;
    running.kill(mode === 'immediate' ? 'SIGQUIT' : 'SIGINT');
    const killer = setTimeout(() => running.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(killer);
  };

  await start();
  return {
    port,
    adminUrl,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    get running() { return child !== undefined; },
    stop,
    start,
    async createDatabase(name = `portcullis_${Math.random().toString(36).slice(2, 10)}`) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`create database ${name}`);
      } finally {
        await admin.end();
      }
      return {
        kind: 'postgres',
        url: `postgres://postgres@127.0.0.1:${port}/${name}`,
        pglite: () => { throw new Error('not a PGlite test database'); },
        // The whole cluster goes with destroy(); nothing to do per database.
        drop: async () => undefined,
      } satisfies TestDatabase;
    },
    async destroy() {
      await stop('immediate');
      rmSync(root, { recursive: true, force: true });
    },
  };
}
