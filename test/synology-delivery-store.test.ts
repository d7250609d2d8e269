/**
 * The Synology delivery store (migration 0003) on every supported database (PGlite always, PostgreSQL
 * when TEST_DATABASE_URL is set): a reply owed goes waiting → sending → progress → removed; `pending`
 * lists what is left oldest first, finding the job by its `client_msg_id` when the job id was never
 * written; a Synology user's newest conversation is found again; the migration goes down and up.
 */
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { createMigrator, runMigrations } from '../src/actors/store/create-database.js';
import { createStore } from '../src/actors/store/store.js';
import { migrations } from '../migrations/index.js';
import { forEachDatabase } from './helpers/databases.js';
import { accept, id } from './helpers/store-writes.js';

forEachDatabase((getDatabase) => {
  it('keeps a reply owed from waiting to sent, and lists what is left oldest first', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const deliveries = store.synologyDeliveries;
    const [first, second, third] = [id('delivery'), id('delivery'), id('delivery')];
    await deliveries.create({ id: first, userId: 'u-1', language: 'ko' });
    await deliveries.create({ id: second, userId: 'u-1', language: 'en' });
    await deliveries.create({ id: third, userId: 'u-2', language: 'en' });
    await deliveries.setJob(first, 'job-1');
    await deliveries.setParts(first, ['one', '둘', 'three']);
    await deliveries.setProgress(first, 1, 2);

    const mine = (await deliveries.pending()).filter((row) => [first, second, third].includes(row.id));
    expect(mine.map((row) => row.id)).toEqual([first, second, third]);
    expect(mine[0]).toMatchObject({ userId: 'u-1', jobId: 'job-1', language: 'ko', state: 'sending', parts: ['one', '둘', 'three'], nextPart: 1, attempts: 2 });
    expect(mine[0]?.createdAt).toBeInstanceOf(Date);
    expect(mine[1]).toMatchObject({ userId: 'u-1', jobId: null, language: 'en', state: 'waiting', parts: [], nextPart: 0, attempts: 0 });

    for (const delivery of [first, second, third]) await deliveries.remove(delivery);
    expect((await deliveries.pending()).filter((row) => [first, second, third].includes(row.id))).toEqual([]);
    await store.close();
  });

  it('finds the job of a reply whose job id was never written, by its client_msg_id and the Synology owner', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const delivery = id('delivery');
    await store.synologyDeliveries.create({ id: delivery, userId: 'u-7', language: 'en' });
    // The same client_msg_id from someone else is not it.
    await accept(store, { source: 'ws', owner: 'anonymous', clientMsgId: delivery });
    const job = await accept(store, { source: 'synology', owner: 'synology:u-7', externalUser: 'u-7', clientMsgId: delivery });
    const row = (await store.synologyDeliveries.pending()).find((pending) => pending.id === delivery);
    expect(row?.jobId).toBe(job.jobId);
    await store.synologyDeliveries.remove(delivery);
    await store.close();
  });

  it("finds a Synology user's newest conversation of their own", async () => {
    const { db } = getDatabase();
    let at = Date.now();
    const store = createStore(db, { now: () => new Date((at += 1000)) });
    const user = id('user');
    expect(await store.synologyDeliveries.latestConversation(user, `synology:${user}`)).toBeNull();
    await accept(store, { source: 'synology', owner: `synology:${user}`, externalUser: user });
    const newer = await accept(store, { source: 'synology', owner: `synology:${user}`, externalUser: user });
    await accept(store, { source: 'ws', owner: 'anonymous', externalUser: user });
    expect(await store.synologyDeliveries.latestConversation(user, `synology:${user}`)).toBe(newer.conversationId);
    expect(await store.synologyDeliveries.latestConversation(user, 'synology:someone-else')).toBeNull();
    await store.close();
  });

  it('migration 0003 goes down and up again', async () => {
    const { db } = getDatabase();
    expect((await createMigrator(db).migrateTo('0002-owners')).error).toBeUndefined();
    expect((await db.introspection.getTables()).map((table) => table.name)).not.toContain('synology_deliveries');
    expect(await runMigrations(db)).toEqual(Object.keys(migrations).filter((name) => name > '0002-owners'));
    const count = await sql<{ n: number }>`select count(*)::int as n from synology_deliveries`.execute(db);
    expect(count.rows[0]?.n).toBe(0);
  });
});
