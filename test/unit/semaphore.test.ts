import { describe, expect, test } from '@jest/globals';

import { Semaphore } from '../../src/services/passwords.js';

/** A task that finishes when the test says so. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => { open = resolve; });
  return { open, opened };
}

describe('Semaphore (bounded argon2 concurrency)', () => {
  test('runs at most `limit` tasks at once; the others start in arrival order as slots free', async () => {
    const semaphore = new Semaphore(2);
    const gates = Array.from({ length: 5 }, gate);
    const started: number[] = [];
    let running = 0;
    let peak = 0;
    const done = gates.map((g, i) => semaphore.run(async () => {
      started.push(i);
      running += 1;
      peak = Math.max(peak, running);
      await g.opened;
      running -= 1;
      return i;
    }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1]);
    expect(semaphore.waiting).toBe(3);
    gates[1]!.open();
    await done[1];
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.open();
    expect(await Promise.all(done)).toEqual([0, 1, 2, 3, 4]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(peak).toBe(2);
    expect(semaphore.waiting).toBe(0);
  });

  test('a failing task frees its slot', async () => {
    const semaphore = new Semaphore(1);
    await expect(semaphore.run(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await semaphore.run(async () => 'next')).toBe('next');
  });
});
