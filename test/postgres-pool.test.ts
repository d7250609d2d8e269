import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createPostgresPool } from '../src/actors/store/postgres-pool.js';
import { StoreUnavailableError } from '../src/actors/store/store-errors.js';
import { testDialects } from './helpers/databases.js';

/**
 * The pool in front of PostgreSQL, on a real server: a connection the server ends while the store holds
 * it between statements (57P01 when PostgreSQL shuts down) must not become an uncaught exception.
 */
describe.runIf(testDialects().includes('postgres'))('the PostgreSQL pool', () => {
  it('reports a checked-out connection the server terminates between statements once, and never reuses it', async () => {
    const url = process.env['TEST_DATABASE_URL'];
    if (!url) throw new Error('CI=true but TEST_DATABASE_URL is not set: source .ci/postgres.sh before the tests');
    const reported: Error[] = [];
    const pool = createPostgresPool(url, { connectTimeoutMs: 5_000, statementTimeoutMs: 5_000, maxConnections: 1, onIdleError: (error) => reported.push(error) });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const client = await pool.connect();
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid', []);
      // Checked out, no statement running: the server ends it (what a shutdown does to every connection).
      await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
      await expect.poll(() => reported.length, { timeout: 5_000 }).toBe(1);
      expect(reported[0]).toBeInstanceOf(StoreUnavailableError);
      await expect(client.query('select 1', [])).rejects.toBeInstanceOf(StoreUnavailableError);
      client.release();
      // The pool's only place went to a fresh connection.
      const next = await pool.connect();
      expect((await next.query<{ one: number }>('select 1 as one', [])).rows).toEqual([{ one: 1 }]);
      next.release();
      expect(reported).toHaveLength(1);
    } finally {
      await admin.end();
      await pool.end();
    }
  });
});
