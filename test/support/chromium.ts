import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium, type Browser, type Page } from 'playwright-core';

/**
 * A real Chromium for browser tests: Debian's `chromium` package driven by playwright-core
 * (no downloaded browser builds). The network is loopback-only, so everything that phones
 * home is switched off; playwright's launch gives each browser a fresh --user-data-dir.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
}

/**
 * Launches headless Chromium. `args` are appended to CHROMIUM_ARGS, e.g.
 * `--host-resolver-rules=MAP tpp.example:443 127.0.0.1:<port>` to send a client's
 * redirect_uri host to a loopback server.
 */
export async function launchChromium({ args = [] }: { args?: readonly string[] } = {}): Promise<Browser> {
  const executablePath = chromiumPath();
  try {
    accessSync(executablePath, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium not found at ${executablePath}: the browser tests need it. Install it with ` +
      '`apt-get update && apt-get install -y chromium` (or set CHROMIUM_PATH to a Chromium executable). ' +
      'Do not run `npx playwright install`.',
    );
  }
  return chromium.launch({ executablePath, headless: true, chromiumSandbox: false, args: [...CHROMIUM_ARGS, ...args], timeout: 30_000 });
}

/** test-artifacts/ at the repository root (git-ignored). */
export const ARTIFACTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../test-artifacts');

/** Saves a full-page PNG to test-artifacts/screenshots/<name>.png and returns its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`screenshot name must be a plain file name: ${name}`);
  const dir = join(ARTIFACTS_DIR, 'screenshots');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
