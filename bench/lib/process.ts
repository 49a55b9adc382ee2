import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export { freePort } from '../../test/support/processes.js';

/**
 * Child processes under measurement: the server (or a ceiling) runs in its own process so
 * its CPU time and memory can be read from /proc without counting the load generator.
 */

export interface Measured {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  /** milliseconds from spawn until the readiness URL answered 200 */
  readonly readyMs: number;
  stop(): Promise<void>;
}

const CLOCK_TICKS_PER_SECOND = 100; // Linux USER_HZ

/** Starts `node args…` with `env` and waits until `readyPath` answers 200 (polling, 30 s at most). */
export async function startMeasured(name: string, args: readonly string[], env: Record<string, string>, port: number, readyPath: string): Promise<Measured> {
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited during start-up (${child.exitCode}): ${stderr}`);
    if (performance.now() - started > 30_000) {
      child.kill('SIGKILL');
      throw new Error(`${name} was not ready within 30 s: ${stderr}`);
    }
    try {
      if ((await fetch(`${url}${readyPath}`)).status === 200) break;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const readyMs = performance.now() - started;
  return {
    name,
    url,
    pid: child.pid!,
    readyMs,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** user + system CPU time of a process, in milliseconds */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** resident set size of a process, in MiB */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match === null ? 0 : Number(match[1]) / 1024;
}

/** Samples a process's RSS every 100 ms until stopped; returns the peak. */
export function sampleRss(pid: number): { stop(): number } {
  let peak = rssMiB(pid);
  const timer = setInterval(() => { try { peak = Math.max(peak, rssMiB(pid)); } catch { /* exited */ } }, 100);
  return {
    stop() {
      clearInterval(timer);
      try { peak = Math.max(peak, rssMiB(pid)); } catch { /* exited */ }
      return peak;
    },
  };
}
