/**
 * Long property-based fuzz run (issue #9 point 5): every target of test/fuzz/targets.ts,
 * ≥ 10,000 generated cases each, against a real app it starts itself (PGlite, or
 * PostgreSQL on TEST_DATABASE_URL / DATABASE_URL, as scripts/lib/database.ts says).
 *
 *   tsx scripts/fuzz.ts
 *
 * Environment:
 *   FUZZ_RUNS     cases per target (default 10000)
 *   FUZZ_SEED     fast-check seed (default: random; always printed)
 *   FUZZ_TARGETS  comma-separated target names (details, registration, admin, par, token)
 *   FUZZ_PATH     replay one case: with FUZZ_SEED and a single FUZZ_TARGETS, the case index
 *                 printed for a failure; shrinks it and prints the smallest failing input
 *   FUZZ_SHRINK   0: do not shrink the first failure of each target (default: shrink, ≤ 60 s)
 *   FUZZ_JSON     write the results as JSON to this file
 *
 * Prints one line per target (cases, failures, 5xx, leaks, seconds) and the first
 * failures with their reproduction command; exits 1 on any failure.
 *
 * The generated inputs are a pure function of the seed; the app's state is not (ids,
 * clocks, consents already consumed by earlier cases), so a replayed case runs against
 * a fresh app and may, rarely, behave differently.
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import fc from 'fast-check';

import { createLogger } from '../src/logger.js';
import { startFuzzEnv, isLeak, type Outcome } from '../test/fuzz/harness.js';
import { TARGETS, type FuzzTarget } from '../test/fuzz/targets.js';
import { scriptDatabase } from './lib/database.js';

interface Failure {
  readonly index: number;
  readonly status: number;
  readonly problems: string[];
  readonly input: string;
  /** the server's error for this request (5xx), when it logged one */
  readonly serverError: string | undefined;
}

interface TargetResult {
  readonly name: string;
  readonly title: string;
  readonly cases: number;
  readonly failures: number;
  readonly fivexx: number;
  readonly leaks: number;
  readonly accepted: number;
  readonly seconds: number;
  readonly casesPerSecond: number;
  readonly statuses: Record<string, number>;
  /** failing cases per kind of problem (the problem text with quoted values and numbers blanked) */
  readonly problemKinds: Record<string, number>;
  readonly firstFailures: Failure[];
  readonly shrunk: { readonly input: string; readonly problems: string[] } | undefined;
}

function integer(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d{1,10}$/.test(raw)) throw new Error(`${name} must be an integer, got ${raw}`);
  return Number(raw);
}

const runs = integer('FUZZ_RUNS', 10_000);
const seed = integer('FUZZ_SEED', Math.floor(Math.random() * 2 ** 31));
const replayPath = process.env.FUZZ_PATH;
const shrink = process.env.FUZZ_SHRINK !== '0';
const wanted = process.env.FUZZ_TARGETS?.split(',').map((name) => name.trim()).filter(Boolean);
const KEEP_FAILURES = 20;

type AnyTarget = FuzzTarget<unknown, unknown>;
const targets = (TARGETS as readonly AnyTarget[]).filter((target) => wanted === undefined || wanted.includes(target.name));
if (targets.length === 0) throw new Error(`FUZZ_TARGETS matches no target (known: ${TARGETS.map((t) => t.name).join(', ')})`);
if (replayPath !== undefined && targets.length !== 1) throw new Error('FUZZ_PATH replays one case: set FUZZ_TARGETS to one target');

/** error-level log lines of the app, by request id: the cause of a 5xx. */
const serverErrors = new Map<string, string>();
function remember(requestId: unknown, error: unknown): void {
  if (typeof requestId !== 'string' || requestId === '') return;
  // the request-log line (no error object) comes last: it must not replace the cause
  if (serverErrors.has(requestId) && (error as { stack?: unknown } | undefined)?.stack === undefined) return;
  const err = error as { message?: unknown; type?: unknown; stack?: unknown } | undefined;
  // (the app's logger writes line breaks as the two characters \ and n)
  const stack = typeof err?.stack === 'string' ? err.stack.split(/\n|\\n/).slice(0, 3).join(' | ') : '';
  serverErrors.set(requestId, `${String(err?.type ?? '')} ${String(err?.message ?? '')} ${stack}`.trim().slice(0, 800));
  if (serverErrors.size > 10_000) serverErrors.delete(serverErrors.keys().next().value!);
}
const log = createLogger('error', {
  write(line: string) {
    try {
      const entry = JSON.parse(line) as { requestId?: unknown; err?: unknown; msg?: unknown; error?: unknown };
      remember(entry.requestId, entry.err ?? entry.error ?? { message: entry.msg });
    } catch {
      // not JSON: ignore
    }
  },
});

async function runTarget(target: AnyTarget, state: unknown): Promise<TargetResult> {
  const statuses: Record<string, number> = {};
  const problemKinds: Record<string, number> = {};
  const firstFailures: Failure[] = [];
  let cases = 0;
  let failures = 0;
  let fivexx = 0;
  let leaks = 0;
  let accepted = 0;
  const runOne = async (input: unknown): Promise<Outcome> => {
    try {
      return await target.property(state, input);
    } catch (error) {
      return { status: -1, problems: [`exception in the harness: ${(error as Error).message}`], accepted: false };
    }
  };
  const started = performance.now();
  let lastReport = started;
  await fc.check(fc.asyncProperty(target.arbitrary, async (input) => {
    const index = cases;
    cases += 1;
    const result = await runOne(input);
    statuses[String(result.status)] = (statuses[String(result.status)] ?? 0) + 1;
    if (result.accepted) accepted += 1;
    if (result.status >= 500) fivexx += 1;
    if (result.problems.some(isLeak)) leaks += 1;
    if (result.problems.length > 0) {
      failures += 1;
      for (const kind of new Set(result.problems.map(problemKind))) problemKinds[kind] = (problemKinds[kind] ?? 0) + 1;
      const kindsSeen = new Set(firstFailures.flatMap((f) => f.problems.map(problemKind)));
      // keep the first failure of every kind, then any, up to KEEP_FAILURES
      if (firstFailures.length < KEEP_FAILURES && (result.problems.some((p) => !kindsSeen.has(problemKind(p))) || firstFailures.length < KEEP_FAILURES / 2)) {
        firstFailures.push({
          index, status: result.status, problems: result.problems, input: fc.stringify(input).slice(0, 3000),
          serverError: result.requestId === undefined ? undefined : serverErrors.get(result.requestId),
        });
      }
    }
    const now = performance.now();
    if (now - lastReport > 15_000) {
      lastReport = now;
      process.stderr.write(`  … ${target.name}: ${cases}/${runs} cases, ${failures} failures, ${((now - started) / 1000).toFixed(0)} s\n`);
    }
    return true;
  }), { seed, numRuns: runs });
  const seconds = (performance.now() - started) / 1000;

  let shrunk: TargetResult['shrunk'];
  if (shrink && firstFailures.length > 0) shrunk = await shrinkFailure(target, state, firstFailures[0]!.index);
  return {
    name: target.name, title: target.title, cases, failures, fivexx, leaks, accepted, seconds,
    casesPerSecond: cases / seconds, statuses, problemKinds, firstFailures, shrunk,
  };
}

/** Replays case `index` of this seed and shrinks it to a smallest failing input. */
async function shrinkFailure(target: AnyTarget, state: unknown, index: number): Promise<TargetResult['shrunk']> {
  let lastProblems: string[] = [];
  let lastRequestId: string | undefined;
  const result = await fc.check(fc.asyncProperty(target.arbitrary, async (input) => {
    let outcome: Outcome;
    try {
      outcome = await target.property(state, input);
    } catch (error) {
      outcome = { status: -1, problems: [`exception in the harness: ${(error as Error).message}`], accepted: false };
    }
    if (outcome.problems.length > 0) {
      lastProblems = outcome.problems;
      lastRequestId = outcome.requestId;
    }
    return outcome.problems.length === 0;
  }), { seed, path: String(index), interruptAfterTimeLimit: 60_000, markInterruptAsFailure: false });
  if (!result.failed || result.counterexample === null) return undefined;
  const serverError = lastRequestId === undefined ? undefined : serverErrors.get(lastRequestId);
  return { input: fc.stringify(result.counterexample[0]).slice(0, 3000), problems: serverError === undefined ? lastProblems : [...lastProblems, `server: ${serverError}`] };
}

/** A problem with its specifics blanked: quoted text, numbers, excerpts. */
function problemKind(problem: string): string {
  return problem.replace(/….*$/s, '…').replace(/"(?:[^"\\]|\\.)*"|'[^']*'|\d+/g, '_').replace(/:\s.*$/s, ':…').slice(0, 120);
}

function pad(text: string | number, width: number, left = false): string {
  const value = String(text);
  return left ? value.padEnd(width) : value.padStart(width);
}

async function main(): Promise<void> {
  const { database, description } = await scriptDatabase();
  console.log(`fuzz: seed ${seed}, ${replayPath === undefined ? `${runs} cases per target` : `replaying case ${replayPath}`}, database ${description}`);
  const env = await startFuzzEnv(database, { log });
  env.app.container.providers.current.on('server_error', (ctx: { state?: { requestId?: unknown } }, error: unknown) => remember(ctx.state?.requestId, error));
  const results: TargetResult[] = [];
  try {
    for (const target of targets) {
      const state = await target.setup(target.kind === 'pure' ? undefined : env);
      if (replayPath !== undefined) {
        const shrunk = await shrinkFailure(target, state, Number(replayPath));
        console.log(shrunk === undefined ? `case ${replayPath} of ${target.name} passes` : `case ${replayPath} of ${target.name} fails; smallest failing input:\n  ${shrunk.input}\n  ⇒ ${shrunk.problems.join('\n  ⇒ ')}`);
        process.exitCode = shrunk === undefined ? 0 : 1;
        return;
      }
      process.stderr.write(`fuzzing ${target.name}: ${target.title}\n`);
      results.push(await runTarget(target, state));
    }
  } finally {
    await env.close();
    await database.drop();
  }

  console.log('');
  console.log(`${pad('target', 14, true)}${pad('cases', 8)}${pad('failures', 10)}${pad('5xx', 6)}${pad('leaks', 7)}${pad('accepted', 10)}${pad('seconds', 9)}${pad('cases/s', 9)}`);
  for (const r of results) {
    console.log(`${pad(r.name, 14, true)}${pad(r.cases, 8)}${pad(r.failures, 10)}${pad(r.fivexx, 6)}${pad(r.leaks, 7)}${pad(`${((100 * r.accepted) / Math.max(1, r.cases)).toFixed(0)}%`, 10)}${pad(r.seconds.toFixed(1), 9)}${pad(r.casesPerSecond.toFixed(0), 9)}`);
  }
  for (const r of results.filter((x) => x.failures > 0)) {
    console.log(`\n${r.name}: ${r.failures} failing cases; statuses ${JSON.stringify(r.statuses)}`);
    for (const [kind, count] of Object.entries(r.problemKinds).sort(([, a], [, b]) => b - a)) console.log(`  ${pad(count, 6)} × ${kind}`);
    const shown = new Set<string>();
    for (const failure of r.firstFailures) {
      const kinds = failure.problems.map(problemKind);
      if (kinds.every((k) => shown.has(k))) continue;
      for (const k of kinds) shown.add(k);
      console.log(`  case ${failure.index} → ${failure.status}: ${failure.problems.join(' ; ').slice(0, 600)}`);
      if (failure.serverError !== undefined) console.log(`    server: ${failure.serverError}`);
      console.log(`    input: ${failure.input.slice(0, 600)}`);
      console.log(`    replay: FUZZ_SEED=${seed} FUZZ_TARGETS=${r.name} FUZZ_PATH=${failure.index} tsx scripts/fuzz.ts`);
    }
    if (r.shrunk !== undefined) console.log(`  smallest failing input (shrunk from case ${r.firstFailures[0]!.index}): ${r.shrunk.input}\n    ⇒ ${r.shrunk.problems.join('\n    ⇒ ')}`);
  }
  if (process.env.FUZZ_JSON) {
    writeFileSync(process.env.FUZZ_JSON, `${JSON.stringify({ tool: 'fuzz', seed, runsPerTarget: runs, database: description, finishedAt: new Date().toISOString(), targets: results }, null, 2)}\n`);
  }
  process.exitCode = results.some((r) => r.failures > 0) ? 1 : 0;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 2;
});
