import { describe, it } from 'vitest';
import { POSTGRES_BINARIES_MISSING, postgresClusterAvailability } from './postgres-cluster.js';

/**
 * A suite that starts PostgreSQL clusters of its own (`startPostgresCluster`): skipped where the server
 * binaries are missing, except under CI=true, where it is one failing test that says so.
 */
export function describeOnOwnCluster(title: string, body: () => void): void {
  const availability = postgresClusterAvailability();
  describe.skipIf(availability === 'skip')(title, () => {
    if (availability === 'fail') {
      it('has PostgreSQL server binaries to run a cluster of its own', () => {
        throw new Error(`CI=true: ${POSTGRES_BINARIES_MISSING}`);
      });
      return;
    }
    body();
  });
}
