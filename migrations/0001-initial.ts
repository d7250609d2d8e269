/**
 * The initial schema. Frozen in time: never edit a migration that has shipped, add a new one instead.
 * It therefore uses `Kysely<any>` (the schema type of today may not match the schema of then) and
 * imports nothing from `src/`.
 *
 * Everything here must behave identically on PGlite (PostgreSQL 17 in wasm) and on PostgreSQL ≥ 13.
 */
import { sql, type Kysely } from 'kysely';

// `any` is kysely's convention for migrations (and allowed only in this folder).
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('conversations')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('source', 'text', (col) =>
      col.notNull().check(sql`source in ('ws', 'openai', 'synology')`),
    )
    .addColumn('external_user', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  // Cleanup deletes by age.
  await db.schema
    .createIndex('conversations_updated_at_idx')
    .on('conversations')
    .column('updated_at')
    .execute();

  await db.schema
    .createTable('messages')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('conversation_id', 'text', (col) =>
      col.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('role', 'text', (col) => col.notNull().check(sql`role in ('user', 'assistant')`))
    .addColumn('content', 'text', (col) => col.notNull())
    .addColumn('job_id', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  // "The last N messages of a conversation" is the one hot read.
  await db.schema
    .createIndex('messages_conversation_id_id_idx')
    .on('messages')
    .columns(['conversation_id', 'id'])
    .execute();
  await db.schema
    .createIndex('messages_created_at_idx')
    .on('messages')
    .column('created_at')
    .execute();

  // No foreign key to conversations: a job is recorded before anything else about it, and an
  // OpenAI-compatible request carries its own history instead of a stored conversation.
  await db.schema
    .createTable('jobs')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('conversation_id', 'text', (col) => col.notNull())
    .addColumn('source', 'text', (col) =>
      col.notNull().check(sql`source in ('ws', 'openai', 'synology')`),
    )
    .addColumn('mode', 'text', (col) => col.notNull())
    // Who submitted it (the auth principal): only they may subscribe to it or cancel it.
    .addColumn('owner', 'text', (col) => col.notNull().defaultTo('anonymous'))
    .addColumn('status', 'text', (col) =>
      col.notNull().check(sql`status in ('running', 'done', 'error', 'cancelled')`),
    )
    .addColumn('branch', 'text')
    // jsonb, not text[]: node-postgres and PGlite both hand jsonb back as parsed JSON, while array
    // parameters are encoded differently by the two drivers.
    .addColumn('models_used', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('reason', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('first_byte_ms', 'integer')
    .addColumn('total_ms', 'integer')
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('jobs_conversation_id_idx').on('jobs').column('conversation_id').execute();
  await db.schema.createIndex('jobs_created_at_idx').on('jobs').column('created_at').execute();
  // Partial: at start only the (few) jobs still running are looked up.
  await db.schema
    .createIndex('jobs_running_idx')
    .on('jobs')
    .column('id')
    .where(sql.ref('status'), '=', 'running')
    .execute();

  // No foreign key to jobs: the journal writes in batches off the hot path, and one event of an
  // unknown job must not make the whole batch (and every retry of it) fail.
  await db.schema
    .createTable('job_events')
    .addColumn('job_id', 'text', (col) => col.notNull())
    .addColumn('seq', 'integer', (col) => col.notNull())
    .addColumn('event', 'text', (col) => col.notNull())
    .addColumn('data', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('at', 'timestamptz', (col) => col.notNull())
    .addPrimaryKeyConstraint('job_events_pk', ['job_id', 'seq'])
    .execute();
  await db.schema.createIndex('job_events_at_idx').on('job_events').column('at').execute();

  await db.schema
    .createTable('drafts')
    .addColumn('conversation_id', 'text', (col) =>
      col.primaryKey().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('draft', 'jsonb', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .execute();

  // 'simple' lower-cases and splits on non-letters without stemming or stop words: the only built-in
  // configuration that treats Korean and English alike, and it exists on PGlite and PostgreSQL.
  // The title weighs more (A) than the body (B).
  await db.schema
    .createTable('documents')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('title', 'text', (col) => col.notNull())
    .addColumn('path', 'text')
    .addColumn('body', 'text', (col) => col.notNull())
    .addColumn('tsv', sql`tsvector`, (col) =>
      col
        .notNull()
        .generatedAlwaysAs(
          sql`setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', body), 'B')`,
        )
        .stored(),
    )
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('documents_tsv_idx')
    .on('documents')
    .using('gin')
    .column('tsv')
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  for (const table of ['documents', 'drafts', 'job_events', 'jobs', 'messages', 'conversations']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
