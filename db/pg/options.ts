// Settings of the PostgreSQL engine (tests shorten the lease interval).

export interface PgOptions {
  /** How often a collector tries to take the leader lease, and the leader checks it still holds it. */
  leaseIntervalMs?: number;
  /** Connections for reads (the dashboard, findings, alerts); writes use one more, retention another. */
  readPoolSize?: number;
}

export const DEFAULT_LEASE_INTERVAL_MS = 2000;
export const DEFAULT_READ_POOL_SIZE = 4;
