/**
 * Retention: conversations, messages, jobs and job events are kept 7 days, drafts until they expire.
 * Run at start and daily.
 */
import type { Kysely } from 'kysely';
import type { DatabaseSchema } from './schema.js';

/** Rows deleted by one cleanup. */
export interface CleanupResult {
  conversations: number;
  messages: number;
  jobs: number;
  jobEvents: number;
  drafts: number;
}

/** Options of {@link cleanupOldRows}. */
export interface CleanupOptions {
  /** Rows older than this many days go (default 7). */
  olderThanDays?: number;
  now?: Date;
}

/**
 * Deletes rows older than the cutoff: messages by their time, conversations idle since before it
 * (with whatever they still hold), jobs by creation, events by their time, and expired drafts.
 * One transaction, so a crash never leaves a conversation half cleaned.
 */
export async function cleanupOldRows(
  db: Kysely<DatabaseSchema>,
  options: CleanupOptions = {},
): Promise<CleanupResult> {
  const now = options.now ?? new Date();
  const cutoff = new Date(now.getTime() - (options.olderThanDays ?? 7) * 24 * 60 * 60 * 1000);
  // Only `trx` inside: PGlite has a single connection, and `db` would wait for it forever.
  return db.transaction().execute(async (trx) => {
    const messages = await trx.deleteFrom('messages').where('created_at', '<', cutoff).executeTakeFirst();
    // Messages and drafts of these conversations go with them (on delete cascade).
    const conversations = await trx
      .deleteFrom('conversations')
      .where('updated_at', '<', cutoff)
      .executeTakeFirst();
    const jobEvents = await trx.deleteFrom('job_events').where('at', '<', cutoff).executeTakeFirst();
    const jobs = await trx.deleteFrom('jobs').where('created_at', '<', cutoff).executeTakeFirst();
    const drafts = await trx.deleteFrom('drafts').where('expires_at', '<=', now).executeTakeFirst();
    return {
      conversations: Number(conversations.numDeletedRows),
      messages: Number(messages.numDeletedRows),
      jobs: Number(jobs.numDeletedRows),
      jobEvents: Number(jobEvents.numDeletedRows),
      drafts: Number(drafts.numDeletedRows),
    };
  });
}
