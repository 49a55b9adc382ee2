/**
 * `npm run bench`: Portcullis on real PostgreSQL against ceilings measured in the same run.
 *
 * Everything under measurement runs in its own process (its CPU time and RSS are read from
 * /proc); this process only generates load (autocannon) and prepares one-time material
 * (codes, assertions, DPoP proofs, sign-in forms) outside the timed windows. These 2-core
 * machines are noisy and the load generator shares them, so only ratios to a ceiling
 * measured minutes apart in the same run mean anything.
 *
 * Env: DATABASE_URL (a database the bench may fill; unset → a throwaway database created on
 * BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres, dropped at the
 * end), BENCH_SECONDS (10), BENCH_CONNECTIONS (10,50), BENCH_TOKEN_REQUESTS (8000),
 * BENCH_CODES (1500), BENCH_REVOCATIONS (5000), BENCH_ONLY (comma-separated scenario names),
 * BENCH_LOG_LEVEL (info), BENCH_GROWTH=1 or `--growth` (1 M tokens / 100 k customers).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

import { exportJWK, generateKeyPair } from 'jose';

import { loadConfig } from '../src/config.js';
import { buildContainer, type Container } from '../src/container.js';
import { createLogger } from '../src/logger.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import {
  clientCredentialsRequests, createFixtures, customerAccessToken, introspectionRequest, issueMachineTokens, prepareCodes, redemptionRequests, revocationRequest, signInRequests,
  type BenchFixtures, type SigningClient,
} from './lib/fixtures.js';
import { oneTimePool, runLoad, transactionCounter, type BenchRequest, type LoadFigures } from './lib/load.js';
import { freePort, startMeasured, type Measured } from './lib/process.js';
import { serverEnv, startPortcullis, throwawayDatabase } from './lib/portcullis.js';
import { populateGrowth, sweepGrowth, type GrowthFigures } from './lib/growth.js';

const env = process.env;
const SECONDS = Number(env.BENCH_SECONDS ?? 10);
const CONNECTIONS = (env.BENCH_CONNECTIONS ?? '10,50').split(',').map(Number);
const TOKEN_REQUESTS = Number(env.BENCH_TOKEN_REQUESTS ?? 8000);
const CODES = Number(env.BENCH_CODES ?? 1500);
const REVOCATIONS = Number(env.BENCH_REVOCATIONS ?? 5000);
const ONLY = env.BENCH_ONLY === undefined ? undefined : new Set(env.BENCH_ONLY.split(','));
const GROWTH = env.BENCH_GROWTH === '1' || process.argv.includes('--growth');
const PASSWORD = 'correct horse battery staple';
const WARM_UP_SECONDS = 2;
const TSX = ['--import', 'tsx'];

interface Row extends LoadFigures {
  readonly scenario: string;
  readonly connections: number;
  readonly ceiling?: string;
  readonly ceilingRps?: number;
  readonly ratio?: number;
}

const rows: Row[] = [];
let transactions: (() => Promise<number>) | undefined;
const wanted = (scenario: string): boolean => ONLY === undefined || ONLY.has(scenario);
const log = (line: string): void => { process.stderr.write(`bench: ${line}\n`); };

async function record(scenario: string, connections: number, figures: LoadFigures, ceiling?: { name: string; rps: number }): Promise<Row> {
  const row: Row = {
    scenario, connections, ...figures,
    ...(ceiling === undefined ? {} : { ceiling: ceiling.name, ceilingRps: ceiling.rps, ratio: figures.rps / ceiling.rps }),
  };
  rows.push(row);
  log(`${scenario} @${connections}: ${figures.rps.toFixed(0)} req/s, p50 ${figures.p50} ms, p99 ${figures.p99} ms, ` +
    `${figures.cpuMsPerRequest.toFixed(2)} CPU ms/req, ${figures.transactionsPerRequest?.toFixed(2) ?? '?'} DB xact/req, RSS ${figures.peakRssMiB.toFixed(0)} MiB` +
    (row.ratio === undefined ? '' : `, ${(row.ratio * 100).toFixed(0)} % of ${ceiling!.name}`) +
    (figures.failures > 0 ? `, ${figures.failures} FAILED ${JSON.stringify(figures.statuses)}` : ''));
  return row;
}

/** Sends one request outside autocannon and fails loudly when it is not answered as expected. */
async function probe(target: Measured, request: BenchRequest, expectStatus: number): Promise<void> {
  const response = await fetch(`${target.url}${request.path}`, { method: request.method, headers: request.headers, body: request.body, redirect: 'manual' });
  if (response.status !== expectStatus) {
    throw new Error(`${target.name} ${request.method} ${request.path} answered ${response.status} (expected ${expectStatus}): ${(await response.text()).slice(0, 500)}`);
  }
}

/** A constant request, warmed up, then run for SECONDS. */
async function steady(target: Measured, connections: number, request: BenchRequest, expectStatus: number): Promise<LoadFigures> {
  await probe(target, request, expectStatus);
  const base = { url: target.url, connections, next: () => request, expectStatus, pid: target.pid, ...(transactions === undefined ? {} : { transactions }) };
  await runLoad({ ...base, seconds: WARM_UP_SECONDS });
  return runLoad({ ...base, seconds: SECONDS });
}

/** Pre-generated one-time requests: a probe, a warm-up slice (≤ 10 %), then the measured rest. */
async function oneTime(target: Measured, connections: number, requests: BenchRequest[], warmUp: number, expectStatus: number): Promise<LoadFigures> {
  const spare = 2 * connections; // autocannon may prepare a request per connection beyond `amount`
  // autocannon needs at least one request per connection
  const tenth = Math.floor(requests.length / 10);
  const warmUpAmount = Math.min(Math.max(warmUp, connections), tenth) < connections ? 0 : Math.min(Math.max(warmUp, connections), tenth);
  const measured = requests.length - 1 - warmUpAmount - spare;
  if (measured < 4 * connections) throw new Error(`too few pre-generated requests (${requests.length}) for ${connections} connections`);
  const next = oneTimePool(requests);
  await probe(target, next(), expectStatus);
  const base = { url: target.url, connections, next, expectStatus, pid: target.pid, ...(transactions === undefined ? {} : { transactions }) };
  if (warmUpAmount > 0) await runLoad({ ...base, amount: warmUpAmount });
  return runLoad({ ...base, amount: measured });
}

async function argon2Ceiling(config: ReturnType<typeof loadConfig>): Promise<number> {
  const child = spawn(process.execPath, [...TSX, join(PACKAGE_ROOT, 'bench', 'ceilings', 'argon2.ts')], {
    env: {
      PATH: env.PATH ?? '', SECONDS: String(Math.max(5, SECONDS / 2)), IN_FLIGHT: '4',
      ARGON2_MEMORY_KIB: String(config.argon2.memoryCost), ARGON2_TIME_COST: String(config.argon2.timeCost), ARGON2_PARALLELISM: String(config.argon2.parallelism),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  await new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`argon2 ceiling exited ${code}`)))));
  return (JSON.parse(out) as { verifiesPerSecond: number }).verifiesPerSecond;
}

async function startMemoryProvider(machine: SigningClient): Promise<Measured> {
  const port = await freePort();
  const signing = await generateKeyPair('ES256', { extractable: true });
  return startMeasured('oidc-provider (memory)', [...TSX, join(PACKAGE_ROOT, 'bench', 'ceilings', 'memory-provider.ts')], {
    PORT: String(port), CLIENT_ID: machine.clientId, CLIENT_JWK: JSON.stringify(machine.publicJwk),
    SIGNING_JWK: JSON.stringify({ ...(await exportJWK(signing.privateKey)), kid: 'ceiling', alg: 'ES256', use: 'sig' }),
  }, port, '/.well-known/openid-configuration');
}

async function startKoaSelect(databaseUrl: string, rowId: string): Promise<Measured> {
  const port = await freePort();
  return startMeasured('koa + one SELECT', [...TSX, join(PACKAGE_ROOT, 'bench', 'ceilings', 'koa-select.ts')], {
    PORT: String(port), DATABASE_URL: databaseUrl, POOL_MAX: '10', ROW_ID: rowId,
  }, port, '/ready');
}

/** Client-credentials requests for the in-memory ceiling: its own issuer in aud and htu. */
async function memoryRequests(memory: Measured, f: BenchFixtures, count: number): Promise<BenchRequest[]> {
  return clientCredentialsRequests({ ...f, url: memory.url }, count);
}

interface Baselines { koa: Map<number, number>; memoryCc: Map<number, number>; argon2: number }

async function measureAll(portcullis: Measured, f: BenchFixtures, baselines: Baselines, memory: Measured, koa: Measured, suffix = ''): Promise<void> {
  const accessToken = await customerAccessToken(f);
  for (const connections of CONNECTIONS) {
    log(`— ${connections} connections${suffix}`);
    if (suffix === '') {
      const koaFigures = await steady(koa, connections, { method: 'GET', path: '/row' }, 200);
      baselines.koa.set(connections, koaFigures.rps);
      await record('ceiling: koa + one SELECT', connections, koaFigures);
      const memoryFigures = await oneTime(memory, connections, await memoryRequests(memory, f, TOKEN_REQUESTS), 500, 200);
      baselines.memoryCc.set(connections, memoryFigures.rps);
      await record('ceiling: oidc-provider memory, client credentials', connections, memoryFigures);
    }
    const koaCeiling = { name: 'koa + one SELECT', rps: baselines.koa.get(connections) ?? NaN };
    const ccCeiling = { name: 'in-memory client credentials', rps: baselines.memoryCc.get(connections) ?? NaN };

    if (wanted('introspection')) {
      await record(`introspection${suffix}`, connections, await steady(portcullis, connections, introspectionRequest(f, accessToken), 200), koaCeiling);
    }
    if (wanted('client_credentials')) {
      await record(`client credentials${suffix}`, connections, await oneTime(portcullis, connections, await clientCredentialsRequests(f, TOKEN_REQUESTS), 500, 200), ccCeiling);
    }
    if (suffix !== '') continue;
    if (wanted('code')) {
      const codes = await prepareCodes(f, CODES);
      await record('code redemption', connections, await oneTime(portcullis, connections, await redemptionRequests(f, codes), 200, 200), ccCeiling);
    }
    if (wanted('revocation')) {
      const tokens = await issueMachineTokens(f, REVOCATIONS);
      await record('revocation', connections, await oneTime(portcullis, connections, tokens.map((t) => revocationRequest(f, t)), 200, 200), koaCeiling);
    }
    if (wanted('signin')) {
      const count = Math.ceil(baselines.argon2 * SECONDS) + 12 * connections + 50;
      await record('sign-in POST', connections, await oneTime(portcullis, connections, await signInRequests(f, count), 20, 303), { name: 'argon2id verify', rps: baselines.argon2 });
    }
  }
}

interface Isolation { readonly idle: Record<string, number>; readonly underSignIns: Record<string, number>; readonly signInRps: number; readonly signInTargetRps: number }

/**
 * Token and introspection latency while sign-ins run at 80 % of the argon2 ceiling, against
 * the same open-loop load without them (argon2 and jose share libuv's thread pool).
 */
async function isolation(portcullis: Measured, f: BenchFixtures, argon2Rps: number): Promise<Isolation> {
  const accessToken = await customerAccessToken(f);
  const introspectionRate = 300;
  const tokenRate = 100;
  const run = async (signInRate: number) => {
    const tokens = await clientCredentialsRequests(f, tokenRate * SECONDS + 100);
    const signIns = signInRate === 0 ? [] : await signInRequests(f, Math.ceil(signInRate * SECONDS) + 40);
    const loads: Promise<LoadFigures>[] = [
      runLoad({ url: portcullis.url, connections: 10, seconds: SECONDS, rate: introspectionRate, next: () => introspectionRequest(f, accessToken), expectStatus: 200, pid: portcullis.pid }),
      runLoad({ url: portcullis.url, connections: 10, seconds: SECONDS, rate: tokenRate, next: oneTimePool(tokens), expectStatus: 200, pid: portcullis.pid }),
    ];
    if (signInRate > 0) loads.push(runLoad({ url: portcullis.url, connections: 20, seconds: SECONDS, rate: signInRate, next: oneTimePool(signIns), expectStatus: 303, pid: portcullis.pid }));
    return Promise.all(loads);
  };
  const [idleIntrospection, idleToken] = await run(0);
  const target = 0.8 * argon2Rps;
  const [busyIntrospection, busyToken, signIn] = await run(target);
  const figures = {
    idle: { introspectionP99: idleIntrospection!.p99, tokenP99: idleToken!.p99 },
    underSignIns: { introspectionP99: busyIntrospection!.p99, tokenP99: busyToken!.p99 },
    signInRps: signIn!.rps,
    signInTargetRps: target,
  };
  log(`isolation: introspection p99 ${figures.idle.introspectionP99} → ${figures.underSignIns.introspectionP99} ms, token p99 ${figures.idle.tokenP99} → ${figures.underSignIns.tokenP99} ms, sign-ins ${signIn!.rps.toFixed(1)}/s (target ${target.toFixed(1)})`);
  for (const figuresOf of [busyIntrospection, busyToken, signIn]) if (figuresOf!.failures > 0) log(`isolation: ${figuresOf!.failures} failures ${JSON.stringify(figuresOf!.statuses)}`);
  return figures;
}

function pct(ratio: number | undefined): string {
  return ratio === undefined || Number.isNaN(ratio) ? '' : `${(ratio * 100).toFixed(0)} %`;
}

function printTable(): void {
  const header = ['scenario', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'RSS MiB', 'CPU ms/req', 'DB xact/req', 'failed', 'ratio to ceiling'];
  const lines = rows.map((r) => [
    r.scenario, String(r.connections), r.rps.toFixed(0), String(r.p50), String(r.p99), r.peakRssMiB.toFixed(0),
    r.cpuMsPerRequest.toFixed(2), r.transactionsPerRequest?.toFixed(2) ?? '', String(r.failures), r.ratio === undefined ? '' : `${pct(r.ratio)} of ${r.ceiling} (${r.ceilingRps!.toFixed(0)}/s)`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write(`\n${format(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${lines.map(format).join('\n')}\n`);
}

interface Goal { readonly goal: string; readonly measured: string; readonly met: boolean }

function goals(readyMs: number, isolationFigures: Isolation | undefined): Goal[] {
  const out: Goal[] = [];
  const find = (scenario: string, connections: number) => rows.find((r) => r.scenario === scenario && r.connections === connections);
  const ratioGoal = (scenario: string, minimum: number) => {
    for (const connections of CONNECTIONS) {
      const row = find(scenario, connections);
      if (row?.ratio !== undefined) out.push({ goal: `${scenario} @${connections} ≥ ${minimum * 100} % of ${row.ceiling}`, measured: pct(row.ratio), met: row.ratio >= minimum });
    }
  };
  ratioGoal('introspection', 0.8);
  const introspection50 = find('introspection', 50);
  if (introspection50 !== undefined) out.push({ goal: 'introspection p99 ≤ 25 ms @50', measured: `${introspection50.p99} ms`, met: introspection50.p99 <= 25 });
  ratioGoal('client credentials', 0.7);
  ratioGoal('code redemption', 0.6);
  ratioGoal('sign-in POST', 0.9);
  const portcullisRows = rows.filter((r) => !r.scenario.startsWith('ceiling'));
  if (portcullisRows.length > 0) {
    const peak = Math.max(...portcullisRows.map((r) => r.peakRssMiB));
    out.push({ goal: 'RSS ≤ 256 MB under load', measured: `${peak.toFixed(0)} MiB`, met: peak * 1.048576 <= 256 });
  }
  out.push({ goal: 'ready ≤ 2 s after start on an existing database', measured: `${(readyMs / 1000).toFixed(2)} s`, met: readyMs <= 2000 });
  if (isolationFigures !== undefined) {
    for (const kind of ['introspectionP99', 'tokenP99'] as const) {
      const ratio = isolationFigures.underSignIns[kind]! / Math.max(1, isolationFigures.idle[kind]!);
      out.push({ goal: `${kind === 'tokenP99' ? 'token' : 'introspection'} p99 under sign-ins at 80 % of argon2 ≤ 1.5× idle`, measured: `${isolationFigures.idle[kind]} → ${isolationFigures.underSignIns[kind]} ms (${ratio.toFixed(2)}×)`, met: ratio <= 1.5 });
    }
  }
  return out;
}

function growthGoals(): Goal[] {
  const out: Goal[] = [];
  for (const scenario of ['introspection', 'client credentials']) {
    for (const connections of CONNECTIONS) {
      const empty = rows.find((r) => r.scenario === scenario && r.connections === connections);
      const grown = rows.find((r) => r.scenario === `${scenario} (1 M tokens)` && r.connections === connections);
      if (empty === undefined || grown === undefined) continue;
      const change = grown.rps / empty.rps - 1;
      out.push({ goal: `${scenario} @${connections} with 1 M tokens within 20 % of empty`, measured: `${(change * 100).toFixed(0)} %`, met: change >= -0.2 });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const database = await throwawayDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const started: Measured[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  let container: Container | undefined;
  try {
    log(`database ${new URL(database.url).pathname.slice(1)}; ${SECONDS} s per run; connections ${CONNECTIONS.join(', ')}`);
    // First start migrates; the second measures readiness on an existing database.
    const counter = await transactionCounter(database.url);
    cleanups.push(() => counter.close());
    transactions = counter.read;
    const first = await startPortcullis(database.url, dataDir);
    await first.stop();
    const portcullis = await startPortcullis(database.url, dataDir);
    started.push(portcullis);
    log(`ready in ${portcullis.readyMs.toFixed(0)} ms on an existing database (first start with migrations: ${first.readyMs.toFixed(0)} ms)`);

    const config = loadConfig({ ...serverEnv(database.url, Number(new URL(portcullis.url).port), 0, dataDir), LOG_LEVEL: 'silent' });
    container = await buildContainer(config, { log: createLogger('silent') });
    const f = await createFixtures(container, portcullis.url, PASSWORD);

    const argon2 = await argon2Ceiling(config);
    log(`ceiling: argon2id verify ${argon2.toFixed(1)}/s (m=${config.argon2.memoryCost} KiB, t=${config.argon2.timeCost}, p=${config.argon2.parallelism})`);
    const koa = await startKoaSelect(database.url, f.customers[0]!.id);
    started.push(koa);
    const memory = await startMemoryProvider(f.machine);
    started.push(memory);
    const baselines: Baselines = { koa: new Map(), memoryCc: new Map(), argon2 };

    await measureAll(portcullis, f, baselines, memory, koa);
    const isolationFigures = wanted('isolation') ? await isolation(portcullis, f, argon2) : undefined;

    let growth: GrowthFigures | undefined;
    if (GROWTH) {
      log('growth: inserting 1 M live tokens, 100 k customers and 300 k expired rows');
      growth = await populateGrowth(container.database.db);
      log(`growth: populated in ${growth.populateSeconds.toFixed(0)} s; oidc_models ${growth.rowsBefore} rows`);
      await measureAll(portcullis, f, baselines, memory, koa, ' (1 M tokens)');
      growth = { ...growth, ...(await sweepGrowth(container)) };
      log(`growth: sweeper removed ${growth.swept} expired rows in ${growth.sweepSeconds.toFixed(1)} s (${growth.sweepRuns} runs); ${growth.expiredLeft} expired left; oidc_models ${growth.rowsAfter} rows`);
    }

    printTable();
    const allGoals = [...goals(portcullis.readyMs, isolationFigures), ...growthGoals()];
    if (growth !== undefined) allGoals.push({ goal: 'sweeper leaves no expired row behind', measured: `${growth.expiredLeft} left of ${growth.expiredInserted}`, met: growth.expiredLeft === 0 });
    process.stdout.write(`\n${allGoals.map((g) => `${g.met ? 'met   ' : 'MISSED'}  ${g.goal}: ${g.measured}`).join('\n')}\n`);
    const failures = rows.reduce((sum, r) => sum + r.failures, 0);
    if (failures > 0) process.stdout.write(`\n${failures} requests failed during measured runs (see the log above)\n`);

    const resultsDir = join(PACKAGE_ROOT, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify({
      date: new Date().toISOString(), node: process.version, cpus: (await import('node:os')).cpus().length,
      seconds: SECONDS, readyMs: portcullis.readyMs, argon2VerifiesPerSecond: argon2, rows, isolation: isolationFigures, growth, goals: allGoals,
    }, null, 2)}\n`);
    process.stdout.write(`\nresults: ${file}\n`);
    if (failures > 0) process.exitCode = 1;
  } finally {
    await container?.close();
    for (const child of started.reverse()) await child.stop();
    for (const cleanup of cleanups) await cleanup();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
