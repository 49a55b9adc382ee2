/**
 * Sign-in timing (issue #9 point 6; DESIGN §4 "a failure never says … whether the user
 * exists (same page, same timing)"): the response time of a failed sign-in POST on the
 * real sign-in page, for three kinds of failure, sampled interleaved in random order:
 *   unknown   a username nobody has
 *   wrong     a real customer, wrong password
 *   locked    a real customer whose account is blocked (right or wrong password alike)
 *
 *   tsx scripts/timing-signin.ts
 *
 * Environment:
 *   TIMING_SAMPLES       samples per class (default 200), after 10 warm-up samples each
 *   TIMING_THRESHOLD_MS  largest acceptable difference of medians (default 5)
 *   TIMING_SEED          seed of the interleaving order (default random; printed)
 *   TIMING_SCA           1: a request that needs SCA (authorization_details), the form
 *                        carries a one-time code too (the customer has TOTP)
 *   TIMING_JSON          write the results as JSON to this file
 *   TEST_DATABASE_URL / DATABASE_URL: PostgreSQL instead of the embedded PGlite (scripts/lib/database.ts)
 *
 * The app runs with generous per-IP sign-in budgets (every sample comes from 127.0.0.1)
 * and the wrong-password customer's failure counter is reset after each of its samples
 * (outside the measured time), so nothing is throttled or locks in the middle. Every
 * response must be the same failure page (status 401, same text); exits 1 when the
 * medians differ by more than the threshold (or a response is not the failure page).
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { parse } from 'node-html-parser';

import { ACCOUNT_INFORMATION } from '../src/services/authorization-details.js';
import { startTestApp, type TestApp } from '../test/support/app.js';
import { FormBrowser, requirePage, type Page } from '../test/support/browser.js';
import { GENEROUS_LIMITS } from '../test/fuzz/harness.js';
import { enrolTotp, SIGN_IN_FAILED, withoutEchoedUsername } from '../test/support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, type Customer, type Tpp } from '../test/support/tpp.js';
import { scriptDatabase } from './lib/database.js';

const CLASSES = ['unknown', 'wrong', 'locked'] as const;
type FailureClass = (typeof CLASSES)[number];

function integer(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,9}$/.test(raw)) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return Number(raw);
}

const samples = integer('TIMING_SAMPLES', 200);
const threshold = Number(process.env.TIMING_THRESHOLD_MS ?? '5');
const seed = integer('TIMING_SEED', Math.floor(Math.random() * 2 ** 31));
const sca = process.env.TIMING_SCA === '1';
const WARM_UP = 10;
/** A fresh interaction (PAR + sign-in page) at least this often: interactions live 600 s. */
const PAGE_MAX_AGE_MS = 120_000;

/** mulberry32: a small seeded PRNG for the interleaving order. */
function random(seedValue: number): () => number {
  let state = seedValue >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: T[], next: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

interface SignInForm {
  readonly action: string;
  readonly hidden: [string, string][];
  readonly cookie: string;
  readonly openedAt: number;
}

/** PAR, then the real sign-in page, as a browser reaches it; the form's action, CSRF field and cookies. */
async function openSignIn(app: TestApp, tpp: Tpp): Promise<SignInForm> {
  const started = await pushAuthorization(tpp, sca
    ? { scope: 'openid accounts', authorization_details: JSON.stringify([{ type: ACCOUNT_INFORMATION, actions: ['list_accounts'] }]) }
    : {});
  const browser = new FormBrowser();
  const page: Page = requirePage(await browser.navigate(started.url.toString()));
  const form = page.document.querySelector('form[action$="/login"]');
  if (form === null) throw new Error(`no sign-in form on ${page.url} (${page.status})`);
  if (sca !== (form.querySelector('input[name=otp]') !== null)) throw new Error(`the sign-in form ${sca ? 'lacks' : 'has'} a one-time-code field`);
  const action = new URL(form.getAttribute('action') ?? '', page.url).toString();
  const hidden = form.querySelectorAll('input[type=hidden]').map((input): [string, string] => [input.getAttribute('name') ?? '', input.getAttribute('value') ?? '']);
  return { action, hidden, cookie: await browser.jar.getCookieString(action), openedAt: performance.now() };
}

interface Sample {
  readonly status: number;
  readonly ms: number;
  readonly html: string;
}

/** One sign-in POST, timed from the request to the last byte of the answer. */
async function signIn(form: SignInForm, username: string, password: string): Promise<Sample> {
  const body = new URLSearchParams(form.hidden);
  body.append('username', username);
  body.append('password', password);
  if (sca) body.append('otp', '123456');
  const payload = body.toString();
  const start = performance.now();
  const response = await fetch(form.action, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', cookie: form.cookie },
    body: payload,
  });
  const html = await response.text();
  return { status: response.status, ms: performance.now() - start, html };
}

/** The failure page with what may legitimately differ blanked: the echoed username, the request id. */
function normalisedPage(html: string): string {
  return withoutEchoedUsername(html).replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>');
}

async function main(): Promise<void> {
  const { database, description } = await scriptDatabase();
  const app = await startTestApp(database, { ...GENEROUS_LIMITS });
  const next = random(seed);
  console.log(`timing-signin: ${samples} samples per class (+${WARM_UP} warm-up), seed ${seed}, ${sca ? 'SCA form (password + code)' : 'password form'}, database ${description}`);
  try {
    const tpp = await registerTpp(app);
    const known: Customer = await createCustomer(app, 'timing-known', 'the right password for timing');
    const locked: Customer = await createCustomer(app, 'timing-locked', 'the right password for locking');
    if (sca) {
      await enrolTotp(app, known);
      await enrolTotp(app, locked);
    }
    const unknownUsername = 'timing-nobody';
    // Lock the second customer the way an attacker would: consecutive wrong passwords.
    const context = { actor: 'timing', ip: '192.0.2.1', requestId: 'timing-setup' };
    for (let i = 0; i < app.container.config.sca.maxFailures; i += 1) {
      await app.container.authentication.signIn({ username: locked.username, password: `wrong ${i}`, otp: undefined, needSca: false, context });
    }
    const summary = await app.container.customers.summary(locked.username);
    if (summary.lockedUntil === null && !summary.lockedPermanently) throw new Error('setup: the locked customer is not locked');

    const credentials: Record<FailureClass, [string, string]> = {
      unknown: [unknownUsername, 'a wrong password for timing'],
      wrong: [known.username, 'a wrong password for timing'],
      locked: [locked.username, 'a wrong password for timing'],
    };
    let form = await openSignIn(app, tpp);
    const times: Record<FailureClass, number[]> = { unknown: [], wrong: [], locked: [] };
    const pages = new Map<FailureClass, string>();
    const problems: string[] = [];
    const order = [
      ...shuffled(CLASSES.flatMap((c) => Array.from({ length: WARM_UP }, () => ({ c, warm: true }))), next),
      ...shuffled(CLASSES.flatMap((c) => Array.from({ length: samples }, () => ({ c, warm: false }))), next),
    ];
    const started = performance.now();
    for (const { c, warm } of order) {
      if (performance.now() - form.openedAt > PAGE_MAX_AGE_MS) form = await openSignIn(app, tpp);
      const [username, password] = credentials[c];
      const sample = await signIn(form, username, password);
      // Not measured: keep the wrong-password customer below the lockout threshold.
      if (c === 'wrong') await app.container.authentication.unlock(known.id, { actor: 'timing' });
      if (sample.status !== 401 || parse(sample.html).querySelector('[role=alert]')?.text.trim() !== SIGN_IN_FAILED) {
        problems.push(`${c}: status ${sample.status}, not the sign-in failure page: ${sample.html.slice(0, 200)}`);
        continue;
      }
      const page = normalisedPage(sample.html);
      const first = pages.get(c);
      if (first === undefined) pages.set(c, page);
      if (!warm) times[c].push(sample.ms);
    }
    const seconds = (performance.now() - started) / 1000;
    const reference = pages.get('unknown');
    for (const c of CLASSES) {
      if (pages.get(c) !== undefined && pages.get(c) !== reference) problems.push(`the ${c} failure page differs from the unknown-user one`);
    }

    const stats = Object.fromEntries(CLASSES.map((c) => {
      const sorted = [...times[c]].sort((a, b) => a - b);
      const mean = sorted.reduce((sum, ms) => sum + ms, 0) / Math.max(1, sorted.length);
      return [c, { samples: sorted.length, median: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), mean, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN }];
    })) as Record<FailureClass, { samples: number; median: number; p90: number; mean: number; min: number; max: number }>;
    const medians = CLASSES.map((c) => stats[c].median);
    const maxDifference = Math.max(...medians) - Math.min(...medians);

    console.log('');
    console.log(`${'class'.padEnd(10)}${'samples'.padStart(9)}${'median ms'.padStart(11)}${'p90 ms'.padStart(9)}${'mean ms'.padStart(9)}${'min ms'.padStart(9)}${'max ms'.padStart(9)}`);
    for (const c of CLASSES) {
      const s = stats[c];
      console.log(`${c.padEnd(10)}${String(s.samples).padStart(9)}${s.median.toFixed(2).padStart(11)}${s.p90.toFixed(2).padStart(9)}${s.mean.toFixed(2).padStart(9)}${s.min.toFixed(2).padStart(9)}${s.max.toFixed(2).padStart(9)}`);
    }
    console.log(`max difference of medians: ${maxDifference.toFixed(2)} ms (threshold ${threshold} ms); ${(3 * (samples + WARM_UP))} sign-ins in ${seconds.toFixed(1)} s`);
    for (const problem of [...new Set(problems)].slice(0, 10)) console.log(`problem: ${problem}`);
    const ok = problems.length === 0 && maxDifference <= threshold;
    console.log(ok ? 'OK: the three failures look and take the same' : 'FAIL');

    if (process.env.TIMING_JSON) {
      writeFileSync(process.env.TIMING_JSON, `${JSON.stringify({
        tool: 'timing-signin', seed, samplesPerClass: samples, warmUp: WARM_UP, sca, database: description, thresholdMs: threshold,
        finishedAt: new Date().toISOString(), classes: stats, maxDifferenceOfMediansMs: maxDifference, problems: [...new Set(problems)], ok,
      }, null, 2)}\n`);
    }
    process.exitCode = ok ? 0 : 1;
  } finally {
    await app.close();
    await database.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 2;
});
