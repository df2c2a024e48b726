// Delivers alert notifications to webhook receivers in the Alertmanager v4 payload shape, so that
// anything that takes Alertmanager's webhooks takes ours. Each receiver has its own queue, sent
// in order, with a timeout per request and retries with backoff: a receiver that fails or hangs
// delays only its own notifications, never the evaluation or ingest.
import type { AlertInstance, AlertReceiver } from '../common/types';

/** Alertmanager's "no end yet". */
const ZERO_TIME = '0001-01-01T00:00:00Z';
const MAX_QUEUE = 1000;

export interface NotifierOptions {
  /** The dashboard's alerts page, for externalURL and generatorURL. */
  externalUrl: () => string;
  maxAttempts: number;
  /** First retry delay; doubled per attempt up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  log: (line: string) => void;
}

interface Job {
  alert: AlertInstance;
  status: 'firing' | 'resolved';
  /** Called once: delivered, or given up. */
  done: (delivered: boolean) => void;
}

export function describeAlert(a: AlertInstance): string {
  const labels = Object.entries(a.labels)
    .filter(([k]) => k !== 'alertname')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  return `alert "${a.rule}" {${labels}}`;
}

/** The Alertmanager v4 webhook body for one alert. */
export function webhookPayload(
  a: AlertInstance,
  status: 'firing' | 'resolved',
  receiver: string,
  externalUrl: string,
): object {
  const generatorURL = `${externalUrl}?rule=${encodeURIComponent(a.rule)}`;
  return {
    version: '4',
    groupKey: `{}:{alertname=${JSON.stringify(a.rule)}, fingerprint=${JSON.stringify(a.fingerprint)}}`,
    truncatedAlerts: 0,
    status,
    receiver,
    groupLabels: { alertname: a.rule },
    commonLabels: a.labels,
    commonAnnotations: a.annotations,
    externalURL: externalUrl,
    alerts: [
      {
        status,
        labels: a.labels,
        annotations: a.annotations,
        startsAt: new Date(a.firedAtMs ?? a.activeSinceMs).toISOString(),
        endsAt: status === 'resolved' && a.resolvedAtMs !== null ? new Date(a.resolvedAtMs).toISOString() : ZERO_TIME,
        generatorURL,
        fingerprint: a.fingerprint,
      },
    ],
  };
}

class ReceiverQueue {
  private readonly jobs: Job[] = [];
  private running = false;

  constructor(
    private readonly receiver: AlertReceiver,
    private readonly o: NotifierOptions,
    private readonly stopped: AbortSignal,
  ) {}

  push(job: Job): void {
    if (this.jobs.length >= MAX_QUEUE) {
      const dropped = this.jobs.shift()!;
      this.o.log(
        `stallscope: ${describeAlert(dropped.alert)} ${dropped.status} -> ${this.receiver.name}: dropped, ${MAX_QUEUE} notifications already queued`,
      );
      dropped.done(false);
    }
    this.jobs.push(job);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.jobs.length && !this.stopped.aborted) {
      const job = this.jobs[0];
      let delivered = false;
      for (let attempt = 1; attempt <= this.o.maxAttempts && !this.stopped.aborted; attempt++) {
        const outcome = await this.post(job);
        const what = `stallscope: ${describeAlert(job.alert)} ${job.status} -> ${this.receiver.name}`;
        if (outcome === 'ok') {
          this.o.log(`${what}: delivered`);
          delivered = true;
          break;
        }
        if (attempt === this.o.maxAttempts) {
          this.o.log(`${what}: ${outcome}; gave up after ${attempt} attempts`);
          break;
        }
        const delay = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (attempt - 1));
        this.o.log(`${what}: ${outcome}; attempt ${attempt} of ${this.o.maxAttempts}, retrying in ${delay} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.stopped.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        });
      }
      this.jobs.shift();
      if (!this.stopped.aborted) job.done(delivered);
    }
    this.running = false;
  }

  /** 'ok', or what went wrong. */
  private async post(job: Job): Promise<string> {
    try {
      const res = await fetch(this.receiver.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.receiver.headers },
        body: JSON.stringify(webhookPayload(job.alert, job.status, this.receiver.name, this.o.externalUrl())),
        signal: AbortSignal.any([this.stopped, AbortSignal.timeout(this.receiver.timeoutMs)]),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? 'ok' : `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error;
      if (e.name === 'TimeoutError') return `no answer within ${this.receiver.timeoutMs} ms`;
      return ((e.cause as Error | undefined)?.message ?? e.message) || 'request failed';
    }
  }
}

export class Notifier {
  private readonly queues = new Map<string, ReceiverQueue>();
  private readonly stop = new AbortController();

  constructor(private readonly o: NotifierOptions) {}

  /** Queues the alert for each receiver; `done` runs once all have delivered or given up. */
  send(
    receivers: AlertReceiver[],
    alert: AlertInstance,
    status: 'firing' | 'resolved',
    done: (deliveredToAny: boolean) => void,
  ): void {
    if (receivers.length === 0) return done(false);
    let left = receivers.length;
    let any = false;
    const snapshot = { ...alert, labels: { ...alert.labels }, annotations: { ...alert.annotations } };
    for (const r of receivers) {
      let q = this.queues.get(r.name);
      if (!q) this.queues.set(r.name, (q = new ReceiverQueue(r, this.o, this.stop.signal)));
      q.push({
        alert: snapshot,
        status,
        done: (delivered) => {
          any ||= delivered;
          if (--left === 0) done(any);
        },
      });
    }
  }

  /** Receivers whose settings changed get fresh queues; what is queued for them goes on. */
  forget(name: string): void {
    this.queues.delete(name);
  }

  close(): void {
    this.stop.abort();
  }
}
