// The collector: an OTLP/HTTP receiver writing into the store.
import { OtlpReceiver, type ReceiverStats } from './receiver';
import { openStore, type Store } from '../db/index';
import type { Finding, Window } from '../common/types';
import { deriveFindings } from './findings';
import { defaultThresholds, type FindingThresholds } from './findings-config';
import { AlertEngine } from './alerts';
import { RoutesJob } from './routes/job';
import type { AlertRules } from '../common/types';
import { closeServer, listen } from '../common/listen';

export interface CollectorOptions {
  dbPath: string;
  host: string;
  otlpPort: number;
  retentionMs: number;
  retentionIntervalMs?: number;
  retentionBatchSize?: number;
  maxBodyBytes?: number;
  maxQueuedRows?: number;
  /** When set, OTLP requests must carry `Authorization: Bearer <otlpToken>`. */
  otlpToken?: string;
  /** When a measurement becomes a finding (the defaults, unless a findings file says otherwise). */
  findingThresholds?: FindingThresholds;
  /** Alert rules, the file they came from (the dashboard saves edits there) and its text. */
  alerts: { rules: AlertRules; file: string; text: string };
  /** Where alert notifications and evaluation problems are logged. */
  log: (line: string) => void;
  /** How often requests are broken down, and how long after they end (tests shorten both). */
  routes?: { intervalMs: number; lagMs: number };
  /** Receiver retry policy (tests shorten it). */
  alertRetry?: { maxAttempts: number; backoffMs: number; maxBackoffMs: number };
}

export interface Collector {
  store: Store;
  otlpPort: number;
  stats: ReceiverStats;
  /** What costs time in the window, most costly first. */
  findings(w: Window): Promise<Finding[]>;
  alerts: AlertEngine;
  routes: RoutesJob;
  close(): Promise<void>;
}

export async function startCollector(o: CollectorOptions): Promise<Collector> {
  const store = await openStore({
    path: o.dbPath,
    retentionMs: o.retentionMs,
    retentionIntervalMs: o.retentionIntervalMs,
    retentionBatchSize: o.retentionBatchSize,
    maxQueuedRows: o.maxQueuedRows,
  });
  const thresholds = o.findingThresholds ?? defaultThresholds();
  const receiver = new OtlpReceiver(store, {
    maxBodyBytes: o.maxBodyBytes ?? 64 * 1024 * 1024,
    retryAfterSeconds: 1,
    token: o.otlpToken,
  });
  const findings = (w: Window) => deriveFindings(store.read, w, thresholds);
  const alerts = new AlertEngine({ ...o.alerts, store, findings, log: o.log, retry: o.alertRetry });
  const routes = new RoutesJob({ store, log: o.log, ...o.routes });
  let otlpPort: number;
  try {
    await alerts.start();
    routes.start();
    otlpPort = await listen(receiver.server, o.otlpPort, o.host, '--otlp-port');
  } catch (err) {
    await alerts.close();
    await routes.close();
    await store.close();
    throw err;
  }
  return {
    store,
    otlpPort,
    stats: receiver.stats,
    findings,
    alerts,
    routes,
    async close() {
      // Stop taking requests first; those in flight are committed by the store's close.
      await closeServer(receiver.server);
      await alerts.close();
      await routes.close();
      await store.close();
    },
  };
}
