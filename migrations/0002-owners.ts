/**
 * Conversations belong to their owner, and owners are stored as ids, never as tokens; a chat's
 * `clientMsgId` is kept with its job so a repeated one finds it. Frozen in time like every migration.
 *
 * Owner ids are `token:` and the first 16 hex digits of SHA-256 over `switchboard-owner:` + the token
 * (the same function as `src/transport/owner-id.ts`), or `anonymous`. Rows written before this
 * migration held the raw token in `jobs.owner`: they are rewritten to the id here.
 */
import { sql, type Kysely } from 'kysely';

// `any` is kysely's convention for migrations (and allowed only in this folder).
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  await sql`
    update jobs
    set owner = 'token:' || left(encode(sha256(convert_to('switchboard-owner:' || owner, 'UTF8')), 'hex'), 16)
    where owner <> 'anonymous' and owner not like 'token:%'`.execute(db);

  await db.schema.alterTable('conversations').addColumn('owner', 'text', (col) => col.notNull().defaultTo('anonymous')).execute();
  // A conversation is its first job's owner's.
  await sql`
    update conversations c
    set owner = first.owner
    from (select distinct on (conversation_id) conversation_id, owner from jobs order by conversation_id, created_at) as first
    where first.conversation_id = c.id`.execute(db);

  await db.schema.alterTable('jobs').addColumn('client_msg_id', 'text').execute();
  // "This owner's job for this clientMsgId" is looked up for every chat that carries one.
  await db.schema
    .createIndex('jobs_owner_client_msg_id_idx')
    .on('jobs')
    .columns(['owner', 'client_msg_id'])
    .where(sql.ref('client_msg_id'), 'is not', null)
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropIndex('jobs_owner_client_msg_id_idx').ifExists().execute();
  await db.schema.alterTable('jobs').dropColumn('client_msg_id').execute();
  await db.schema.alterTable('conversations').dropColumn('owner').execute();
}
