import { describe, expect, test } from '@jest/globals';

import { ClientMetadataCache } from '../../src/services/client-metadata-cache.js';

function setUp(options: { live?: boolean; ttlMs?: number; maxEntries?: number } = {}) {
  let live = options.live ?? true;
  let clock = 0;
  let loads = 0;
  let stored: Record<string, unknown> | undefined = { client_id: 'c1', client_name: 'v1' };
  const cache = new ClientMetadataCache({ live: () => live, now: () => clock, ttlMs: options.ttlMs ?? 1000, maxEntries: options.maxEntries ?? 10 });
  const load = async () => { loads += 1; return stored === undefined ? undefined : { ...stored }; };
  return {
    cache, load,
    get loads() { return loads; },
    setLive(value: boolean) { live = value; },
    advance(ms: number) { clock += ms; },
    store(value: Record<string, unknown> | undefined) { stored = value; },
  };
}

describe('client metadata cache', () => {
  test('serves a loaded client from memory while the feed is live', async () => {
    const t = setUp();
    expect(await t.cache.get('c1', t.load)).toEqual({ client_id: 'c1', client_name: 'v1' });
    expect(await t.cache.get('c1', t.load)).toEqual({ client_id: 'c1', client_name: 'v1' });
    expect(t.loads).toBe(1);
  });

  test('an eviction (a change notification) makes the next read load again', async () => {
    const t = setUp();
    await t.cache.get('c1', t.load);
    t.store({ client_id: 'c1', client_name: 'v2' });
    t.cache.evict('c1');
    expect(await t.cache.get('c1', t.load)).toMatchObject({ client_name: 'v2' });
    expect(t.loads).toBe(2);
  });

  test('while the feed is not live nothing is served from memory or stored', async () => {
    const t = setUp({ live: false });
    await t.cache.get('c1', t.load);
    await t.cache.get('c1', t.load);
    expect(t.loads).toBe(2);
    expect(t.cache.size).toBe(0);
  });

  test('a gap in the feed (clear) forgets everything', async () => {
    const t = setUp();
    await t.cache.get('c1', t.load);
    t.cache.clear();
    await t.cache.get('c1', t.load);
    expect(t.loads).toBe(2);
  });

  test('a load that raced an eviction is returned but not stored (it may predate the change)', async () => {
    const t = setUp();
    const racing = t.cache.get('c1', async () => {
      const value = await t.load();
      t.store({ client_id: 'c1', client_name: 'v2' });
      t.cache.evict('c1'); // the change commits while the old row is on its way back
      return value;
    });
    expect(await racing).toMatchObject({ client_name: 'v1' });
    expect(await t.cache.get('c1', t.load)).toMatchObject({ client_name: 'v2' });
  });

  test('unknown (or disabled) clients are never cached', async () => {
    const t = setUp();
    t.store(undefined);
    expect(await t.cache.get('nope', t.load)).toBeUndefined();
    expect(await t.cache.get('nope', t.load)).toBeUndefined();
    expect(t.loads).toBe(2);
    expect(t.cache.size).toBe(0);
  });

  test('entries expire after the TTL, a backstop against a notification lost unnoticed', async () => {
    const t = setUp({ ttlMs: 1000 });
    await t.cache.get('c1', t.load);
    t.advance(999);
    await t.cache.get('c1', t.load);
    expect(t.loads).toBe(1);
    t.advance(1);
    await t.cache.get('c1', t.load);
    expect(t.loads).toBe(2);
  });

  test('holds at most maxEntries clients, the oldest leaving first', async () => {
    const t = setUp({ maxEntries: 3 });
    for (const id of ['a', 'b', 'c', 'd']) await t.cache.get(id, t.load);
    expect(t.cache.size).toBe(3);
    await t.cache.get('a', t.load);
    expect(t.loads).toBe(5);
  });

  test('callers cannot change the cached value', async () => {
    const t = setUp();
    const first = await t.cache.get('c1', t.load);
    first!.client_name = 'mutated';
    expect(await t.cache.get('c1', t.load)).toMatchObject({ client_name: 'v1' });
  });
});
