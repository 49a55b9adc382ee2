/**
 * `npm run demo`: the whole open-banking ecosystem on this machine (see ecosystem.ts),
 * on the embedded database in DATA_DIR (default ./data/demo), ports from DEMO_PORT_BASE
 * (default 3000, uses the four after it too). Prints where to go and how to sign in;
 * Ctrl+C (SIGINT) or SIGTERM stops everything.
 */
import QRCode from 'qrcode';

import { ConfigError } from '../src/config.js';
import { DemoStartError, startDemo, type Demo } from './ecosystem.js';
import { DemoSettingsError } from './settings.js';

function box(lines: readonly string[]): string {
  const width = Math.max(...lines.map((line) => [...line].length));
  const pad = (line: string) => line + ' '.repeat(width - [...line].length);
  return [`┌${'─'.repeat(width + 2)}┐`, ...lines.map((line) => `│ ${pad(line)} │`), `└${'─'.repeat(width + 2)}┘`].join('\n');
}

async function banner(demo: Demo): Promise<string> {
  const { settings, seed, registration } = demo;
  const { urls } = settings;
  const lines = [
    'Portcullis open-banking demo is running',
    '',
    `Open the TPP app:     ${urls.tpp}/`,
    `Portcullis (bank):    ${urls.portcullis}/`,
    `Customer dashboard:   ${urls.portcullis}/account`,
    '',
    'Demo customer (sign in at the bank):',
    `  username            ${seed.username}`,
    `  password            ${seed.password}`,
    `  TOTP secret         ${seed.totpSecret}`,
    '  Add the secret to an authenticator app (Google Authenticator,',
    '  1Password, Aegis, …): type it in as a time-based key, or scan',
    '  the QR code below, which holds this otpauth URI:',
    `  ${seed.otpauthUri}`,
    '  Each code is accepted once: wait for the next one to sign in again.',
    '',
    'Behind the scenes:',
    `  bank API            ${urls.bank}  (resource-server kit, DPoP)`,
    `  directory JWKS      ${urls.directory}/jwks  (signs software statements)`,
    `  admin API           ${urls.admin}/admin/v1/openapi.json`,
    `  TPP client_id       ${registration.clientId}  (registered by DCR)`,
    `  data                ${settings.dataDir}${seed.created ? '  (new)' : '  (reused)'}`,
    '',
    'Stop with Ctrl+C.',
  ];
  const qr = await QRCode.toString(seed.otpauthUri, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
  return `${box(lines)}\n${qr}`;
}

async function main(): Promise<void> {
  let demo: Demo;
  try {
    demo = await startDemo(process.env);
  } catch (error) {
    const known = error instanceof ConfigError || error instanceof DemoSettingsError || error instanceof DemoStartError;
    const debug = ['debug', 'trace'].includes(process.env.LOG_LEVEL ?? '');
    process.stderr.write(`demo: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    if (!known && debug && error instanceof Error && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
    if (!known && !debug) process.stderr.write('demo: LOG_LEVEL=debug shows where it failed\n');
    process.exit(1);
  }

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`demo: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`\ndemo: ${signal}: stopping…\n`);
    demo.close().then(
      () => { process.stdout.write('demo: stopped\n'); process.exit(0); },
      (error: unknown) => { process.stderr.write(`demo: shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`); process.exit(1); },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  process.stdout.write(`${await banner(demo)}\n`);
}

void main();
