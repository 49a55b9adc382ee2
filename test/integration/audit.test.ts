import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { sql } from 'kysely';

import { openDatabase, type Database, type Db, type Executor } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { AuditLog, canonicalJson, type AuditEvent } from '../../src/services/audit.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let testDb: TestDatabase;
let database: Database;
let db: Db;
let clock = new Date('2030-03-01T08:00:00.000Z');
const now = (): Date => clock;
let audit: AuditLog;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = await openDatabase({
    databaseUrl: testDb.url,
    dataDir: '/nonexistent',
    pglite: testDb.kind === 'pglite' ? await testDb.pglite() : undefined,
  });
  await migrateToLatest(database.db);
  db = database.db;
  audit = new AuditLog(db, now);
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

const GENESIS = '0'.repeat(64);

function tick(ms = 1000): void {
  clock = new Date(clock.getTime() + ms);
}

async function rows() {
  return db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
}

async function count(): Promise<number> {
  return (await rows()).length;
}

/** Changes history behind the trigger's back, in one transaction (the trigger is never off for anyone else). */
async function tamper(change: (trx: Executor) => Promise<void>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`alter table audit_events disable trigger audit_events_no_update_delete`.execute(trx);
    await change(trx);
    await sql`alter table audit_events enable trigger audit_events_no_update_delete`.execute(trx);
  });
}

function event(n: number, extra: Partial<AuditEvent> = {}): AuditEvent {
  return { type: 'test.event', actor: 'test', ip: '192.0.2.1', requestId: `req-${n}`, data: { n, nested: { b: [n, { y: 1, x: 2 }], a: 'ä ✓' } }, ...extra };
}

describe('recording and verifying', () => {
  test('an empty chain verifies', async () => {
    expect(await audit.verify()).toEqual({ ok: true, events: 0 });
  });

  test('events recorded alone and in caller transactions form one valid chain', async () => {
    await audit.record(event(1, { userId: 'u-1', clientId: 'client-1' }));
    tick();
    await audit.record(event(2));
    tick();
    await db.transaction().execute(async (trx) => {
      await audit.record(event(3), trx);
      await audit.record(event(4, { type: 'test.other' }), trx);
    });
    tick();
    await audit.record({ type: 'test.minimal' });
    // a non-transaction executor gets its own transaction
    await audit.record(event(6), db);

    expect(await audit.verify()).toEqual({ ok: true, events: 6 });
    const stored = await rows();
    expect(stored.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(stored[0]?.prev_hash).toBe(GENESIS);
    for (let i = 1; i < stored.length; i += 1) expect(stored[i]?.prev_hash).toBe(stored[i - 1]?.hash);
    expect(new Set(stored.map((r) => r.hash)).size).toBe(6);
    expect(stored[0]).toMatchObject({ type: 'test.event', actor: 'test', client_id: 'client-1', user_id: 'u-1', ip: '192.0.2.1', request_id: 'req-1' });
    expect(stored[0]?.occurred_at).toEqual(new Date('2030-03-01T08:00:00.000Z'));
    expect(stored[0]?.data).toEqual({ n: 1, nested: { b: [1, { y: 1, x: 2 }], a: 'ä ✓' } });
    expect(stored[4]).toMatchObject({ type: 'test.minimal', actor: null, client_id: null, user_id: null, ip: null, request_id: null, data: {} });
  });

  test('an event recorded in a transaction that rolls back is not in the chain, and the chain stays valid', async () => {
    const before = await count();
    await expect(db.transaction().execute(async (trx) => {
      await audit.record(event(100, { type: 'test.rolled-back' }), trx);
      throw new Error('the change failed');
    })).rejects.toThrow('the change failed');

    expect(await count()).toBe(before);
    expect((await rows()).some((r) => r.type === 'test.rolled-back')).toBe(false);
    expect(await audit.verify()).toEqual({ ok: true, events: before });

    // the next event takes the seq the rolled-back one had: no gap
    await audit.record(event(101));
    const stored = await rows();
    expect(Number(stored.at(-1)?.seq)).toBe(before + 1);
    expect(await audit.verify()).toEqual({ ok: true, events: before + 1 });
  });

  test('the table refuses UPDATE, DELETE and TRUNCATE', async () => {
    const before = await rows();
    await expect(db.updateTable('audit_events').set({ type: 'rewritten' }).where('seq', '=', 2).execute()).rejects.toThrow(/append-only/);
    await expect(db.updateTable('audit_events').set({ data: JSON.stringify({ n: 999 }) }).execute()).rejects.toThrow(/append-only/);
    await expect(db.deleteFrom('audit_events').where('seq', '=', 2).execute()).rejects.toThrow(/append-only/);
    await expect(db.deleteFrom('audit_events').execute()).rejects.toThrow(/append-only/);
    await expect(sql`truncate audit_events`.execute(db)).rejects.toThrow(/append-only/);
    expect(await rows()).toEqual(before);
    expect(await audit.verify()).toEqual({ ok: true, events: before.length });
  });

  test('50 concurrent records get seqs 1..N without gaps and a valid chain', async () => {
    const before = await count();
    await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 5 === 0
      ? db.transaction().execute((trx) => audit.record(event(1000 + i, { type: 'test.concurrent' }), trx))
      : audit.record(event(1000 + i, { type: 'test.concurrent' })))));

    const stored = await rows();
    expect(stored.map((r) => Number(r.seq))).toEqual(Array.from({ length: before + 50 }, (_, i) => i + 1));
    expect(stored.filter((r) => r.type === 'test.concurrent')).toHaveLength(50);
    expect(new Set(stored.filter((r) => r.type === 'test.concurrent').map((r) => r.request_id)).size).toBe(50);
    expect(await audit.verify()).toEqual({ ok: true, events: before + 50 });
  });
});

describe('group commit of events recorded on their own', () => {
  test('1,200 events recorded at once are appended in a few transactions, in order, as one valid chain', async () => {
    let appends = 0;
    const grouped = new AuditLog(db, () => { appends += 1; return clock; });
    const before = await count();
    await Promise.all(Array.from({ length: 1200 }, (_, i) => grouped.record(event(5000 + i, { type: 'test.grouped' }))));

    const stored = (await rows()).filter((r) => r.type === 'test.grouped');
    expect(stored).toHaveLength(1200);
    // Queued in call order, appended in that order: request ids ascend with seq.
    expect(stored.map((r) => r.request_id)).toEqual(Array.from({ length: 1200 }, (_, i) => event(5000 + i).requestId));
    expect(appends).toBeLessThanOrEqual(4); // ≤ 500 per group
    expect(await audit.verify()).toEqual({ ok: true, events: before + 1200 });
  });

  test('an event the database refuses fails alone: the others of its group are still recorded', async () => {
    const grouped = new AuditLog(db, now);
    const before = await count();
    const outcomes = await Promise.allSettled([
      grouped.record(event(7000, { type: 'test.group-ok' })),
      // jsonb cannot hold U+0000: PostgreSQL refuses the row (and with it a whole multi-row INSERT)
      grouped.record(event(7001, { type: 'test.group-bad', data: { text: 'a\u0000b' } })),
      grouped.record(event(7002, { type: 'test.group-ok' })),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await rows()).filter((r) => r.type === 'test.group-ok')).toHaveLength(2);
    expect(await count()).toBe(before + 2);
    expect(await audit.verify()).toEqual({ ok: true, events: before + 2 });
  });
});

describe('tampering is detected', () => {
  test('changing one row\'s data breaks the chain at that row', async () => {
    const total = await count();
    const target = 3;
    const original = (await rows()).find((r) => Number(r.seq) === target);
    expect(original).toBeDefined();

    await tamper(async (trx) => {
      await trx.updateTable('audit_events').set({ data: JSON.stringify({ ...original?.data, n: 666 }) }).where('seq', '=', target).execute();
    });
    expect(await audit.verify()).toEqual({ ok: false, events: target - 1, brokenAt: target });

    await tamper(async (trx) => {
      await trx.updateTable('audit_events').set({ data: JSON.stringify(original?.data) }).where('seq', '=', target).execute();
    });
    expect(await audit.verify()).toEqual({ ok: true, events: total });
  });

  test('changing one row\'s type, actor or time breaks the chain at that row', async () => {
    const total = await count();
    const target = 5;
    const original = (await rows()).find((r) => Number(r.seq) === target);
    if (original === undefined) throw new Error('no row to tamper with');

    for (const change of [{ type: 'test.innocent' }, { actor: 'someone-else' }, { occurred_at: new Date(original.occurred_at.getTime() + 1) }, { user_id: 'u-999' }]) {
      await tamper(async (trx) => {
        await trx.updateTable('audit_events').set(change).where('seq', '=', target).execute();
      });
      expect(await audit.verify()).toEqual({ ok: false, events: target - 1, brokenAt: target });
      await tamper(async (trx) => {
        await trx.updateTable('audit_events')
          .set({ type: original.type, actor: original.actor, occurred_at: original.occurred_at, user_id: original.user_id })
          .where('seq', '=', target).execute();
      });
      expect(await audit.verify()).toEqual({ ok: true, events: total });
    }
  });

  test('deleting a middle row breaks the chain at the row after it', async () => {
    const total = await count();
    const target = 4;
    const original = (await rows()).find((r) => Number(r.seq) === target);
    if (original === undefined) throw new Error('no row to tamper with');

    await tamper(async (trx) => {
      await trx.deleteFrom('audit_events').where('seq', '=', target).execute();
    });
    // the first event that does not follow from the one before it is the one after the gap
    expect(await audit.verify()).toEqual({ ok: false, events: target - 1, brokenAt: target + 1 });

    // INSERT is allowed: putting the row back repairs the chain
    await db.insertInto('audit_events').values({ ...original, data: JSON.stringify(original.data) }).execute();
    expect(await audit.verify()).toEqual({ ok: true, events: total });
  });

  test('a deleted middle row cannot be hidden by renumbering the rows after it', async () => {
    const total = await count();
    const target = 2;
    const all = await rows();
    await tamper(async (trx) => {
      await trx.deleteFrom('audit_events').where('seq', '=', target).execute();
      // in two steps: the primary key is checked row by row
      await trx.updateTable('audit_events').set((eb) => ({ seq: eb.neg(eb.ref('seq')) })).where('seq', '>', target).execute();
      await trx.updateTable('audit_events').set((eb) => ({ seq: eb(eb.neg(eb.ref('seq')), '-', 1) })).where('seq', '<', 0).execute();
    });
    expect(await audit.verify()).toEqual({ ok: false, events: target - 1, brokenAt: target });

    await tamper(async (trx) => {
      await trx.deleteFrom('audit_events').execute();
    });
    await db.insertInto('audit_events').values(all.map((r) => ({ ...r, data: JSON.stringify(r.data) }))).execute();
    expect(await audit.verify()).toEqual({ ok: true, events: total });
  });

  test('swapping two rows\' seq breaks the chain at the lower seq', async () => {
    const total = await count();
    const [a, b] = [3, 6];
    const swap = async (trx: Executor): Promise<void> => {
      await trx.updateTable('audit_events').set({ seq: -1 }).where('seq', '=', a).execute();
      await trx.updateTable('audit_events').set({ seq: a }).where('seq', '=', b).execute();
      await trx.updateTable('audit_events').set({ seq: b }).where('seq', '=', -1).execute();
    };
    await tamper(swap);
    expect(await audit.verify()).toEqual({ ok: false, events: a - 1, brokenAt: a });

    await tamper(swap);
    expect(await audit.verify()).toEqual({ ok: true, events: total });
  });

  test('swapping two adjacent rows breaks the chain at the first of them', async () => {
    const total = await count();
    const [a, b] = [7, 8];
    const swap = async (trx: Executor): Promise<void> => {
      await trx.updateTable('audit_events').set({ seq: -1 }).where('seq', '=', a).execute();
      await trx.updateTable('audit_events').set({ seq: a }).where('seq', '=', b).execute();
      await trx.updateTable('audit_events').set({ seq: b }).where('seq', '=', -1).execute();
    };
    await tamper(swap);
    expect(await audit.verify()).toEqual({ ok: false, events: a - 1, brokenAt: a });
    await tamper(swap);
    expect(await audit.verify()).toEqual({ ok: true, events: total });
  });

  test('after tampering is repaired, new records continue the chain', async () => {
    const total = await count();
    await audit.record(event(2000));
    expect(await audit.verify()).toEqual({ ok: true, events: total + 1 });
  });
});

describe('data that JSON changes on the way to the database', () => {
  // Each case on its own database: a broken chain here must not affect the other tests.
  async function withFreshChain(run: (log: AuditLog) => Promise<void>): Promise<void> {
    const fresh = await createTestDatabase();
    const opened = await openDatabase({
      databaseUrl: fresh.url,
      dataDir: '/nonexistent',
      pglite: fresh.kind === 'pglite' ? await fresh.pglite() : undefined,
    });
    try {
      await migrateToLatest(opened.db);
      await run(new AuditLog(opened.db, now));
    } finally {
      await opened.close();
      await fresh.drop();
    }
  }

  test('an event whose data holds a Date still verifies (the hash must cover what is stored)', async () => {
    await withFreshChain(async (log) => {
      await log.record({ type: 'test.plain', data: { when: '2030-03-01T08:00:00.000Z' } });
      await log.record({ type: 'test.date', data: { when: new Date('2030-03-01T08:00:00.000Z') } });
      await log.record({ type: 'test.after' });
      expect(await log.verify()).toEqual({ ok: true, events: 3 });
    });
  });

  test('an event whose data holds an array with an undefined element still verifies', async () => {
    await withFreshChain(async (log) => {
      await log.record({ type: 'test.sparse', data: { list: [1, undefined, 3] } });
      await log.record({ type: 'test.after' });
      expect(await log.verify()).toEqual({ ok: true, events: 2 });
    });
  });
});

describe('canonicalJson', () => {
  test('sorts object keys at every depth', () => {
    const value = { b: 1, a: { d: [{ z: 1, y: { q: true, p: null } }, 'x'], c: null } };
    expect(canonicalJson(value)).toBe('{"a":{"c":null,"d":[{"y":{"p":null,"q":true},"z":1},"x"]},"b":1}');
  });

  test('one byte sequence per value, whatever the key order it was built in', () => {
    const one = { type: 't', data: { x: 1, y: [1, 2, { k: 'v', j: 'w' }] }, seq: 3 };
    const two = { seq: 3, data: { y: [1, 2, { j: 'w', k: 'v' }], x: 1 }, type: 't' };
    expect(canonicalJson(one)).toBe(canonicalJson(two));
    expect(JSON.parse(canonicalJson(one))).toEqual(one);
  });

  test('array order is kept, undefined members are left out, strings are escaped', () => {
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
    expect(canonicalJson({ b: undefined, a: 1 })).toBe('{"a":1}');
    expect(canonicalJson({ 'k"ey': 'va\nl', 'ä': 'ü' })).toBe('{"k\\"ey":"va\\nl","ä":"ü"}');
    expect(canonicalJson({ B: 1, a: 2, _: 3, 10: 4, 9: 5 })).toBe('{"10":4,"9":5,"B":1,"_":3,"a":2}');
  });

  test('scalars are plain JSON', () => {
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson(1.5)).toBe('1.5');
    expect(canonicalJson('s')).toBe('"s"');
    expect(canonicalJson(false)).toBe('false');
  });
});
