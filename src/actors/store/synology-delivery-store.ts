/**
 * Replies owed to Synology Chat users (DESIGN §5: "the user always gets a reply"), durable from the
 * webhook's 200 until the last part is posted. A row is written before its job is submitted, so every
 * accepted message has one; it learns the job's id, then the reply's parts, then how far the posting
 * got; it is deleted when the reply is delivered (or given up). At start the rows still here are the
 * replies a stopped process owed, and are resumed.
 *
 * Writes go straight to the database, not through the ordered writer: they are few (a handful per
 * message), and each must be committed before the step after it (the submit, the next post).
 */
import { sql, type Kysely } from 'kysely';
import type { DatabaseSchema } from './schema.js';

/** What language an apology is written in when the job's own words are not there. */
export type DeliveryLanguage = 'ko' | 'en';

/** A delivery as it was left: waiting for its job's answer, or part of the way through its parts. */
export interface PendingSynologyDelivery {
  id: string;
  userId: string;
  /** The job, also when only its `client_msg_id` (the delivery's id) tells which it is; null when none was accepted. */
  jobId: string | null;
  language: DeliveryLanguage;
  state: 'waiting' | 'sending';
  /** The whole reply, split; empty while waiting. */
  parts: string[];
  /** Index of the first part not known to have been posted. */
  nextPart: number;
  /** Failed posts of `parts[nextPart]` so far. */
  attempts: number;
  createdAt: Date;
}

/** The Synology deliveries table, as the webhook uses it. */
export interface SynologyDeliveryStore {
  /** Records a reply owed to `userId`; resolves once committed (only then is the job submitted). */
  create(input: { id: string; userId: string; language: DeliveryLanguage }): Promise<void>;
  /** The job the reply answers was accepted. */
  setJob(id: string, jobId: string): Promise<void>;
  /** The reply is known: its parts, none posted yet. */
  setParts(id: string, parts: readonly string[]): Promise<void>;
  /** Parts before `nextPart` were posted; `attempts` posts of `nextPart` have failed. */
  setProgress(id: string, nextPart: number, attempts: number): Promise<void>;
  /** The reply was delivered (or given up). */
  remove(id: string): Promise<void>;
  /** Every delivery still owed, oldest first. */
  pending(): Promise<PendingSynologyDelivery[]>;
  /** The newest conversation of Synology user `userId` owned by `owner`, or null. */
  latestConversation(userId: string, owner: string): Promise<string | null>;
}

/** Builds the delivery store over `db`. */
export function createSynologyDeliveryStore(db: Kysely<DatabaseSchema>, options: { now?: () => Date } = {}): SynologyDeliveryStore {
  const now = options.now ?? (() => new Date());
  return {
    async create({ id, userId, language }) {
      await db.insertInto('synology_deliveries').values({ id, user_id: userId, language, state: 'waiting', created_at: now() }).execute();
    },

    async setJob(id, jobId) {
      await db.updateTable('synology_deliveries').set({ job_id: jobId }).where('id', '=', id).execute();
    },

    async setParts(id, parts) {
      await db
        .updateTable('synology_deliveries')
        .set({ state: 'sending', parts: JSON.stringify(parts), next_part: 0, attempts: 0 })
        .where('id', '=', id)
        .execute();
    },

    async setProgress(id, nextPart, attempts) {
      await db.updateTable('synology_deliveries').set({ next_part: nextPart, attempts }).where('id', '=', id).execute();
    },

    async remove(id) {
      await db.deleteFrom('synology_deliveries').where('id', '=', id).execute();
    },

    async pending() {
      const rows = await db
        .selectFrom('synology_deliveries as d')
        .select([
          'd.id',
          'd.user_id',
          'd.language',
          'd.state',
          'd.parts',
          'd.next_part',
          'd.attempts',
          'd.created_at',
          // A crash between the job's accept and `setJob` leaves job_id null: the job carries the
          // delivery's id as its client_msg_id (and the Synology owner id).
          sql<string | null>`coalesce(d.job_id, (
            select j.id from jobs j
            where j.client_msg_id = d.id and j.owner = 'synology:' || d.user_id
            order by j.created_at desc limit 1))`.as('job_id'),
        ])
        .orderBy('d.seq')
        .execute();
      return rows.map((row) => ({
        id: row.id,
        userId: row.user_id,
        jobId: row.job_id,
        language: row.language,
        state: row.state,
        parts: row.parts,
        nextPart: row.next_part,
        attempts: row.attempts,
        createdAt: row.created_at,
      }));
    },

    async latestConversation(userId, owner) {
      const row = await db
        .selectFrom('conversations')
        .select('id')
        .where('source', '=', 'synology')
        .where('external_user', '=', userId)
        .where('owner', '=', owner)
        .orderBy('updated_at', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row?.id ?? null;
    },
  };
}
