// The collector: an OTLP/HTTP receiver writing into the store.
import { OtlpReceiver, type ReceiverStats } from './receiver';
import { openStore, type Store, type StoreOptions } from '../db/index';
import type { Finding, Window } from '../common/types';
import { deriveFindings } from './findings';
import { defaultThresholds, type FindingThresholds } from './findings-config';
import { AlertEngine } from './alerts';
import { RoutesJob } from './routes/job';
import type { AlertRules } from '../common/types';
import { closeServer, isLoopbackHost, listen } from '../common/listen';
import { MemoryBudget } from './memory-budget';
import type { WriterHealth } from '../db/index';

/** What every OTLP request in flight may hold together unless told otherwise. */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;
/** The time a client has to send one request (headers and body) on the OTLP port. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** A refusal for the memory budget keeps the health degraded this long. */
const BUDGET_REFUSAL_WINDOW_MS = 5000;

/** What one OTLP request, and all of them together, may take. */
export interface ReceiverLimits {
  /** Default: what fits the memory budget, at most 64 MiB. */
  maxBodyBytes?: number;
  /** Bytes all OTLP requests in flight may hold together. */
  memoryBudgetBytes?: number;
  /** Time a client has to send a request's headers and body. */
  requestTimeoutMs?: number;
}

export interface CollectorOptions {
  store: StoreOptions;
  host: string;
  otlpPort: number;
  limits?: ReceiverLimits;
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

/** What /healthz answers: degraded whenever ingest is being refused. */
export interface CollectorHealth {
  status: 'ok' | 'degraded';
  /** One line per cause, e.g. "disk full: database or disk is full (since ...)". */
  reasons: string[];
  writer: WriterHealth;
  /** The memory budget: bytes held now and at most, refusals, and collections asked for. */
  memory: { budgetBytes: number; inUseBytes: number; peakBytes: number; refused: number; collections: number };
}

export interface Collector {
  store: Store;
  otlpPort: number;
  stats: ReceiverStats;
  health(): CollectorHealth;
  /** What costs time in the window, most costly first. */
  findings(w: Window): Promise<Finding[]>;
  alerts: AlertEngine;
  routes: RoutesJob;
  close(): Promise<void>;
}

export async function startCollector(o: CollectorOptions): Promise<Collector> {
  const store = await openStore(o.store);
  const thresholds = o.findingThresholds ?? defaultThresholds();
  const limits = o.limits ?? {};
  const budget = limits.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET;
  if (limits.maxBodyBytes !== undefined && limits.maxBodyBytes > MemoryBudget.largestBody(budget)) {
    await store.close();
    throw new Error(
      `a body limit of ${limits.maxBodyBytes} bytes cannot fit a memory budget of ${budget} bytes (at most ${MemoryBudget.largestBody(budget)})`,
    );
  }
  const receiver = new OtlpReceiver(store, {
    maxBodyBytes: limits.maxBodyBytes ?? Math.min(64 * 1024 * 1024, MemoryBudget.largestBody(budget)),
    memoryBudgetBytes: budget,
    retryAfterSeconds: 1,
    requestTimeoutMs: limits.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    token: o.otlpToken,
    // A web page can make a browser post to loopback (DNS rebinding); it cannot make it send our token.
    loopbackHostsOnly: isLoopbackHost(o.host) && o.otlpToken === undefined,
  });
  const health = (): CollectorHealth => {
    const writer = store.health();
    const b = receiver.budget;
    const reasons: string[] = [];
    if (writer.state !== 'ok') {
      reasons.push(`${writer.reason}: ${writer.error}${writer.since ? ` (since ${writer.since})` : ''}`);
    }
    if (Date.now() - receiver.lastBudgetRefusal < BUDGET_REFUSAL_WINDOW_MS) {
      reasons.push(
        `memory budget in use: requests are being refused (${b.inUse} of ${b.limit} bytes held by requests in flight)`,
      );
    }
    return {
      status: reasons.length ? 'degraded' : 'ok',
      reasons,
      writer,
      memory: {
        budgetBytes: b.limit,
        inUseBytes: b.inUse,
        peakBytes: b.peak,
        refused: b.refusals,
        collections: b.sweeps,
      },
    };
  };
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
    health,
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
