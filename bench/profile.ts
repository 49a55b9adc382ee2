/**
 * `npm run bench:profile -- [introspection|client_credentials|code|revocation]`: one
 * scenario against Portcullis started with `--cpu-prof`. Prints where the server's CPU went
 * (self time by package or our module, then the hottest functions) and keeps the
 * .cpuprofile under bench/results/profiles/ (open it in Chrome DevTools or speedscope for
 * the flame graph). Env as for `npm run bench` (DATABASE_URL, BENCH_SECONDS, …).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';
import { createLogger } from '../src/logger.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import {
  clientCredentialsRequests, createFixtures, customerAccessToken, introspectionRequest, issueMachineTokens, prepareCodes,
  redemptionRequests, revocationRequest, type BenchFixtures,
} from './lib/fixtures.js';
import { oneTimePool, runLoad, type BenchRequest } from './lib/load.js';
import { serverEnv, startPortcullis, throwawayDatabase } from './lib/portcullis.js';

const SCENARIOS = ['introspection', 'client_credentials', 'code', 'revocation'] as const;
type Scenario = typeof SCENARIOS[number];
const scenario = (process.argv[2] ?? 'introspection') as Scenario;
if (!SCENARIOS.includes(scenario)) throw new Error(`scenario must be one of ${SCENARIOS.join(', ')}`);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 10;
const PROFILE_DIR = join(PACKAGE_ROOT, 'bench', 'results', 'profiles');

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[] }

/** Where a frame belongs: an npm package, one of our modules, Node itself, or V8. */
function owner(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return pkg[1]!;
  const ours = /\/dist\/(src\/.+)\.js$/.exec(url);
  if (ours !== null) return ours[1]!;
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?([^/]+).*$/, 'node:$2');
  return url;
}

function summarise(profile: CpuProfile): string {
  const microsPerSample = (profile.endTime - profile.startTime) / Math.max(1, profile.samples.length);
  const total = profile.samples.length;
  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    const where = owner(node.callFrame);
    byOwner.set(where, (byOwner.get(where) ?? 0) + hits);
    const name = `${node.callFrame.functionName || '(anonymous)'}  ${where}:${node.callFrame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
  }
  const top = (map: Map<string, number>, n: number) => [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([name, hits]) => `${((100 * hits) / total).toFixed(1).padStart(5)} %  ${name}`).join('\n');
  return `${total} samples of ${(microsPerSample / 1000).toFixed(2)} ms\n\nself time by owner\n${top(byOwner, 20)}\n\nhottest functions (self time)\n${top(byFunction, 30)}\n`;
}

async function requestsFor(f: BenchFixtures): Promise<{ next: () => BenchRequest; amount?: number }> {
  switch (scenario) {
    case 'introspection': {
      const request = introspectionRequest(f, await customerAccessToken(f));
      return { next: () => request };
    }
    case 'client_credentials': {
      const requests = await clientCredentialsRequests(f, 1500 * SECONDS);
      return { next: oneTimePool(requests), amount: requests.length - 4 * CONNECTIONS };
    }
    case 'code': {
      const requests = await redemptionRequests(f, await prepareCodes(f, 2000));
      return { next: oneTimePool(requests), amount: requests.length - 4 * CONNECTIONS };
    }
    case 'revocation': {
      const requests = (await issueMachineTokens(f, 5000)).map((token) => revocationRequest(f, token));
      return { next: oneTimePool(requests), amount: requests.length - 4 * CONNECTIONS };
    }
  }
}

async function main(): Promise<void> {
  const database = await throwawayDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-profile-'));
  mkdirSync(PROFILE_DIR, { recursive: true });
  const startedAt = Date.now();
  try {
    await (await startPortcullis(database.url, dataDir)).stop(); // migrates, unprofiled
    const server = await startPortcullis(database.url, dataDir, ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${scenario}-${startedAt}.cpuprofile`]);
    const container = await buildContainer(loadConfig({ ...serverEnv(database.url, Number(new URL(server.url).port), 0, dataDir), LOG_LEVEL: 'silent' }), { log: createLogger('silent') });
    try {
      const f = await createFixtures(container, server.url, 'correct horse battery staple');
      const { next, amount } = await requestsFor(f);
      const figures = await runLoad({ url: server.url, connections: CONNECTIONS, ...(amount === undefined ? { seconds: SECONDS } : { amount }), next, expectStatus: 200, pid: server.pid });
      process.stdout.write(`${scenario} @${CONNECTIONS}: ${figures.rps.toFixed(0)} req/s, ${figures.cpuMsPerRequest.toFixed(2)} CPU ms/req, ${figures.failures} failed\n`);
    } finally {
      await container.close();
      await server.stop();
    }
    const file = readdirSync(PROFILE_DIR).filter((name) => name.startsWith(`${scenario}-${startedAt}`)).map((name) => join(PROFILE_DIR, name))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
    if (file === undefined) throw new Error('the server wrote no profile');
    process.stdout.write(`\nprofile: ${file}\n${summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile)}`);
  } finally {
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
