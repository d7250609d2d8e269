/**
 * The flight recorder: each job row keeps the transitions its job actor took (state, event type, time —
 * never a message or an event's payload), written with the job's terminal event. Null for jobs that
 * ended before this migration, or whose end was not written by the gateway (an interrupted job).
 * Frozen in time like every migration.
 */
import type { Kysely } from 'kysely';

// `any` is kysely's convention for migrations (and allowed only in this folder).
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('jobs').addColumn('trace', 'jsonb').execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.alterTable('jobs').dropColumn('trace').execute();
}
