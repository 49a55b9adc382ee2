/**
 * Ceiling for sign-in: how many argon2id verifications per second this machine does at the
 * configured parameters, with as many in flight as libuv's thread pool runs (the best a
 * process can do). Prints one JSON line: {"verifiesPerSecond": n}.
 * Env: ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM, SECONDS, IN_FLIGHT.
 */
import argon2 from 'argon2';

const options: argon2.HashOptions = {
  type: argon2.argon2id,
  memoryCost: Number(process.env.ARGON2_MEMORY_KIB ?? 19456),
  timeCost: Number(process.env.ARGON2_TIME_COST ?? 2),
  parallelism: Number(process.env.ARGON2_PARALLELISM ?? 1),
};
const hash = await argon2.hash('correct horse battery staple', options);
const seconds = Number(process.env.SECONDS ?? 5);
const inFlight = Number(process.env.IN_FLIGHT ?? 4);

async function worker(until: number): Promise<number> {
  let done = 0;
  while (performance.now() < until) {
    if (!(await argon2.verify(hash, 'correct horse battery staple'))) throw new Error('verification failed');
    done += 1;
  }
  return done;
}

await Promise.all(Array.from({ length: inFlight }, () => worker(performance.now() + 1000))); // warm-up
const started = performance.now();
const counts = await Promise.all(Array.from({ length: inFlight }, () => worker(started + seconds * 1000)));
const elapsed = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ verifiesPerSecond: counts.reduce((a, b) => a + b, 0) / elapsed })}\n`);
