/**
 * Replies owed to Synology Chat users, kept until the last part has been posted, so a reply survives a
 * restart (also a kill -9) between the webhook's 200 and the last post. Frozen in time like every migration.
 *
 * A row holds no target and no secret: the incoming webhook URL (it carries a token) and the mode come
 * from the config when the delivery is resumed. The row's id is also its job's `client_msg_id`, so a
 * job accepted just before a crash that left `job_id` unwritten is still found.
 */
import { sql, type Kysely } from 'kysely';

// `any` is kysely's convention for migrations (and allowed only in this folder).
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('synology_deliveries')
    .addColumn('id', 'text', (col) => col.primaryKey())
    // The order the replies were owed in (one user's are posted in this order, also after a restart).
    .addColumn('seq', 'bigserial', (col) => col.notNull().unique())
    .addColumn('user_id', 'text', (col) => col.notNull())
    // Null until the job is accepted (and after a crash before that was written: see the file comment).
    .addColumn('job_id', 'text')
    // The language of an apology written without the job's own words (the job was never accepted).
    .addColumn('language', 'text', (col) => col.notNull().check(sql`language in ('ko', 'en')`))
    // `waiting`: for the job's answer; `sending`: `parts` are the reply, from `next_part` on not yet posted.
    .addColumn('state', 'text', (col) => col.notNull().check(sql`state in ('waiting', 'sending')`))
    .addColumn('parts', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('next_part', 'integer', (col) => col.notNull().defaultTo(0))
    // Failed posts of the next part so far: a restart goes on counting instead of retrying for ever.
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  // A Synology user's conversation is looked up by the user after a restart (one conversation per user).
  await db.schema
    .createIndex('conversations_synology_user_idx')
    .on('conversations')
    .columns(['external_user', 'updated_at'])
    .where(sql.ref('source'), '=', 'synology')
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropIndex('conversations_synology_user_idx').ifExists().execute();
  await db.schema.dropTable('synology_deliveries').ifExists().execute();
}
