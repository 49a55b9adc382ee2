import autocannon from 'autocannon';
import pg from 'pg';

import { cpuMs, sampleRss } from './process.js';

/** One request as the load generator sends it. */
export interface BenchRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

export interface LoadSpec {
  readonly url: string;
  readonly connections: number;
  /** run for this long … */
  readonly seconds?: number;
  /** … or send exactly this many requests (pre-generated one-time material) */
  readonly amount?: number;
  /** requests per second over all connections (open-loop load); unset = as fast as possible */
  readonly rate?: number;
  /** the next request; one-time material (codes, assertions) is handed out once each */
  readonly next: () => BenchRequest;
  /** the status every response must have */
  readonly expectStatus: number;
  /** the process whose CPU and memory are measured */
  readonly pid: number;
  /** database transactions committed or rolled back so far (see transactionCounter) */
  readonly transactions?: () => Promise<number>;
}

export interface LoadFigures {
  readonly requests: number;
  /** responses with another status than expected, plus socket errors and timeouts */
  readonly failures: number;
  readonly statuses: Record<string, number>;
  readonly seconds: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly peakRssMiB: number;
  readonly cpuMsPerRequest: number;
  /** database transactions per request (each statement outside a transaction is one) */
  readonly transactionsPerRequest?: number;
}

/** Runs autocannon against one process and reads that process's CPU time and peak RSS. */
export async function runLoad(spec: LoadSpec): Promise<LoadFigures> {
  // Let statistics of what ran before (e.g. preparing codes through the pages) be published first.
  if (spec.transactions !== undefined) await new Promise((resolve) => setTimeout(resolve, STATS_FLUSH_MS));
  const transactionsBefore = await spec.transactions?.();
  const rss = sampleRss(spec.pid);
  const cpuBefore = cpuMs(spec.pid);
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    ...(spec.amount === undefined ? { duration: spec.seconds ?? 10 } : { amount: spec.amount }),
    ...(spec.rate === undefined ? {} : { overallRate: spec.rate }),
    timeout: 30,
    requests: [{
      setupRequest: (request: autocannon.Request) => {
        const next = spec.next();
        return { ...request, method: next.method, path: next.path, headers: { ...next.headers }, ...(next.body === undefined ? {} : { body: next.body }) };
      },
    }],
  });
  const cpu = cpuMs(spec.pid) - cpuBefore;
  const peakRssMiB = rss.stop();
  const statuses: Record<string, number> = {};
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) statuses[status] = stat.count ?? 0;
  const ok = statuses[String(spec.expectStatus)] ?? 0;
  const answered = Object.values(statuses).reduce((sum, n) => sum + n, 0);
  let transactionsPerRequest: number | undefined;
  if (spec.transactions !== undefined && transactionsBefore !== undefined && answered > 0) {
    await new Promise((resolve) => setTimeout(resolve, STATS_FLUSH_MS));
    transactionsPerRequest = ((await spec.transactions()) - transactionsBefore) / answered;
  }
  return {
    requests: ok,
    failures: answered - ok + result.errors + result.timeouts,
    statuses,
    seconds: result.duration,
    rps: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    peakRssMiB,
    cpuMsPerRequest: answered === 0 ? 0 : cpu / answered,
    ...(transactionsPerRequest === undefined ? {} : { transactionsPerRequest }),
  };
}

/** PostgreSQL publishes a backend's statistics at most once a second. */
const STATS_FLUSH_MS = 2_000;

/**
 * Reads pg_stat_database's committed + rolled back transactions of one database: every
 * statement run outside a transaction is one, so per request it counts round trips (a
 * transaction of several statements counts once). A load generator's own connection adds
 * its one read per call.
 */
export async function transactionCounter(databaseUrl: string): Promise<{ read: () => Promise<number>; close: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  return {
    async read() {
      const { rows } = await client.query<{ n: string }>('select (xact_commit + xact_rollback)::text as n from pg_stat_database where datname = current_database()');
      return Number(rows[0]?.n ?? 0);
    },
    close: () => client.end(),
  };
}

/** Hands out pre-generated one-time requests in order; throws when they run out. */
export function oneTimePool(requests: readonly BenchRequest[]): () => BenchRequest {
  let index = 0;
  return () => {
    const next = requests[index];
    index += 1;
    if (next === undefined) throw new Error('pre-generated requests exhausted');
    return next;
  };
}
