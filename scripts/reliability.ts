/**
 * `npm run reliability [-- --quick]`: the reliability suite on real PostgreSQL, then one
 * table of figures.
 *
 * Runs (each a separate process, figures collected as JSON in a temporary directory):
 *   - database faults (a private PostgreSQL cluster stopped and started under load; a slow
 *     database with a pool of 2), SIGTERM under load, process faults (failpoints), races
 *     across two instances: jest with RELIABILITY_JSON_DIR;
 *   - the hostile-input corpus (both files), every exchange dumped (HOSTILE_DUMP);
 *   - property-based fuzzing of every JSON body and parameter set (scripts/fuzz.ts,
 *     10,000 cases per target; --quick: 300);
 *   - sign-in timing for unknown, known and locked users (scripts/timing-signin.ts).
 * `npm test` runs the same jest files (with smaller fuzz slices) in CI.
 *
 * Env: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), FUZZ_RUNS,
 * TIMING_SAMPLES. Exits 1 if any part failed or any figure misses its bar.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PACKAGE_ROOT } from '../src/paths.js';

const quick = process.argv.includes('--quick');
const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const dir = mkdtempSync(join(tmpdir(), 'portcullis-reliability-'));
const file = (name: string) => join(dir, name);

interface Step { readonly name: string; readonly command: string[]; readonly env: Record<string, string> }

const JEST = [join(PACKAGE_ROOT, 'node_modules', 'jest', 'bin', 'jest.js')];
const TSX = [join(PACKAGE_ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs')];
const common = { TEST_DATABASE_URL: databaseUrl, NODE_OPTIONS: '--experimental-vm-modules' };

const steps: Step[] = [
  {
    name: 'faults and races',
    command: [...JEST, 'test/e2e/database-faults.test.ts', 'test/e2e/sigterm-drain.test.ts', 'test/e2e/process-faults.test.ts', 'test/e2e/races.test.ts'],
    env: { ...common, RELIABILITY_JSON_DIR: dir },
  },
  { name: 'hostile corpus (1)', command: [...JEST, 'test/e2e/hostile-input.test.ts'], env: { ...common, HOSTILE_DUMP: file('hostile-1.jsonl') } },
  { name: 'hostile corpus (2)', command: [...JEST, 'test/e2e/hostile-input-extended.test.ts'], env: { ...common, HOSTILE_DUMP: file('hostile-2.jsonl') } },
  { name: 'fuzzing', command: [...TSX, 'scripts/fuzz.ts'], env: { TEST_DATABASE_URL: databaseUrl, FUZZ_RUNS: process.env.FUZZ_RUNS ?? (quick ? '300' : '10000'), FUZZ_JSON: file('fuzz.json') } },
  { name: 'sign-in timing', command: [...TSX, 'scripts/timing-signin.ts'], env: { TEST_DATABASE_URL: databaseUrl, TIMING_SAMPLES: process.env.TIMING_SAMPLES ?? (quick ? '60' : '200'), TIMING_JSON: file('timing.json') } },
];

function run(step: Step): Promise<number> {
  process.stderr.write(`\nreliability: ${step.name}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, step.command, { cwd: PACKAGE_ROOT, env: { ...process.env, ...step.env }, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

function json<T>(name: string): T | undefined {
  return existsSync(file(name)) ? JSON.parse(readFileSync(file(name), 'utf8')) as T : undefined;
}

interface Row { area: string; check: string; figures: string; bar: string; ok: boolean }
const rows: Row[] = [];
function row(area: string, check: string, figures: string, bar: string, ok: boolean): void {
  rows.push({ area, check, figures, bar, ok });
}
function missing(area: string, what: string): void {
  row(area, what, 'no figures (the run failed before writing them)', '—', false);
}

function databaseFaults(): void {
  type Stopped = { stop_mode: string; requests_total: number; requests_while_down: number; max_time_to_first_503_s: number; max_latency_while_down_s: number; recovery_s: number; wrong_answers: number };
  type Slow = { requests_while_slow: number; unavailable_while_slow: number; max_latency_while_slow_s: number; burst_requests: number; burst_max_latency_s: number; pool_max_waiting: number; recovery_s: number; wrong_answers: number };
  const figures = json<Record<string, Stopped | Slow>>('database-faults.json');
  if (figures === undefined) return missing('database', 'database stopped / slow under load');
  for (const [name, f] of Object.entries(figures)) {
    if ('stop_mode' in f) {
      row('database', `stopped (${f.stop_mode}) under load`, `${f.requests_total} requests, ${f.requests_while_down} while down; first 503 after ${f.max_time_to_first_503_s.toFixed(2)} s; slowest answer while down ${f.max_latency_while_down_s.toFixed(2)} s; recovered in ${f.recovery_s.toFixed(2)} s; ${f.wrong_answers} wrong answers`,
        '503 ≤ 5 s, recovery ≤ 10 s, 0 wrong', f.max_time_to_first_503_s <= 5 && f.recovery_s <= 10 && f.wrong_answers === 0);
    } else if (name === 'slow_database') {
      row('database', 'slow database, pool of 2', `${f.requests_while_slow} requests while locked (${f.unavailable_while_slow} × 503), slowest ${f.max_latency_while_slow_s.toFixed(2)} s; burst of ${f.burst_requests}: slowest ${f.burst_max_latency_s.toFixed(2)} s; pool queue ≤ ${f.pool_max_waiting}; recovered in ${f.recovery_s.toFixed(2)} s; ${f.wrong_answers} wrong`,
        'fast 503s, bounded queue, 0 wrong', f.wrong_answers === 0 && f.recovery_s <= 10);
    }
  }
}

function drain(): void {
  const f = json<{ requests_total: number; loop_requests_in_flight_at_sigterm: number; slow_requests_in_flight_at_sigterm: number; responses_5xx: number; drain_s: number; exit_code: number }>('sigterm-drain.json');
  if (f === undefined) return missing('process', 'SIGTERM under load');
  row('process', 'SIGTERM under load', `${f.requests_total} requests, ${f.loop_requests_in_flight_at_sigterm + f.slow_requests_in_flight_at_sigterm} in flight at SIGTERM; ${f.responses_5xx} × 5xx; drained in ${f.drain_s.toFixed(2)} s, exit ${f.exit_code}`,
    '0 5xx, exit 0', f.responses_5xx === 0 && f.exit_code === 0);
}

function processFaults(): void {
  const figures = json<Record<string, { killed: boolean; restartMs: number; invariants: string }>>('process-faults.json');
  if (figures === undefined) return missing('process', 'SIGKILL at failpoints');
  for (const [failpoint, f] of Object.entries(figures)) {
    row('process', `SIGKILL at ${failpoint}`, `${f.killed ? 'killed' : 'not killed'}; restarted in ${(f.restartMs / 1000).toFixed(2)} s; ${f.invariants}`, 'invariants hold', f.killed && f.invariants !== 'pending');
  }
}

function races(): void {
  const figures = json<{ scenarios: Record<string, { trials: number; parallel: number; winnersPerTrial: number[]; fiveXx: number }> }>('races.json');
  if (figures === undefined) return missing('races', 'two instances, one PostgreSQL');
  for (const [name, s] of Object.entries(figures.scenarios)) {
    const winners = [...new Set(s.winnersPerTrial)].join('/');
    row('races', name, `${s.trials} trials × ${s.parallel} parallel; winners per trial: ${winners}; ${s.fiveXx} × 5xx`, 'exactly 1 winner, 0 5xx', s.winnersPerTrial.every((w) => w === 1) && s.fiveXx === 0);
  }
}

function hostile(): void {
  let cases = 0;
  let fiveXx = 0;
  let leaks = 0;
  let found = false;
  for (const name of ['hostile-1.jsonl', 'hostile-2.jsonl']) {
    if (!existsSync(file(name))) continue;
    found = true;
    for (const line of readFileSync(file(name), 'utf8').split('\n').filter(Boolean)) {
      const exchange = JSON.parse(line) as { family: string; status: number; problems: string[] };
      if (exchange.family === 'setup') continue;
      cases += 1;
      if (exchange.status >= 500) fiveXx += 1;
      if (exchange.problems.some((p) => !p.startsWith('status'))) leaks += 1;
    }
  }
  if (!found) return missing('input', 'hostile-input corpus');
  row('input', 'hostile-input corpus, every endpoint and page', `${cases} requests; ${fiveXx} × 5xx; ${leaks} with a leak or missing header`, '≥ 300, 0 5xx, 0 leaks', cases >= 300 && fiveXx === 0 && leaks === 0);
}

function fuzz(): void {
  const figures = json<{ seed: number; targets: { name: string; cases: number; failures: number; fivexx: number; leaks: number; seconds: number }[] }>('fuzz.json');
  if (figures === undefined) return missing('input', 'property-based fuzzing');
  for (const t of figures.targets) {
    row('input', `fuzz ${t.name}`, `${t.cases} cases in ${t.seconds.toFixed(0)} s (seed ${figures.seed}); ${t.failures} failures, ${t.fivexx} × 5xx, ${t.leaks} leaks`, `${quick ? '≥ 300 (quick)' : '≥ 10,000'}, 0 failures`, t.failures === 0 && t.cases >= (quick ? 300 : 10_000));
  }
}

function timing(): void {
  const f = json<{ classes: Record<string, { samples: number; median: number }>; maxDifferenceOfMediansMs: number; thresholdMs: number; ok: boolean }>('timing.json');
  if (f === undefined) return missing('timing', 'sign-in response time by failure class');
  const medians = Object.entries(f.classes).map(([c, s]) => `${c} ${s.median.toFixed(1)} ms (n=${s.samples})`).join(', ');
  row('timing', 'sign-in: unknown / known / locked user', `medians ${medians}; largest difference ${f.maxDifferenceOfMediansMs.toFixed(2)} ms`, `≤ ${f.thresholdMs} ms`, f.ok);
}

function printTable(exitCodes: Map<string, number>): boolean {
  for (const [name, code] of exitCodes) if (code !== 0) row('run', name, `exited ${code}`, 'exit 0', false);
  const widths = [8, 44, 0, 30];
  const lines = rows.map((r) => `${r.ok ? 'ok    ' : 'FAILED'}  ${r.area.padEnd(widths[0]!)}  ${r.check.padEnd(widths[1]!)}  ${r.bar.padEnd(widths[3]!)}  ${r.figures}`);
  process.stdout.write(`\nPortcullis reliability (${quick ? 'quick' : 'full'} run, PostgreSQL ${new URL(databaseUrl).host})\n\n${'verdict'}  ${'area'.padEnd(widths[0]!)}  ${'check'.padEnd(widths[1]!)}  ${'bar'.padEnd(widths[3]!)}  figures\n${lines.join('\n')}\n`);
  return rows.every((r) => r.ok);
}

const exitCodes = new Map<string, number>();
try {
  for (const step of steps) exitCodes.set(step.name, await run(step));
  databaseFaults();
  drain();
  processFaults();
  races();
  hostile();
  fuzz();
  timing();
  process.exitCode = printTable(exitCodes) ? 0 : 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
