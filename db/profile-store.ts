// Loop CPU profiles as stored: each distinct stack once (profile_stacks), every sample with its
// time for two hours (profile_samples: what the loop was doing while a request waited), and the
// weight per stack per minute and per hour for as long as the data is kept (profile_rollup).
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { ProfileWrite } from '../common/types';
import { key } from '../common/keys';
import { NS_PER_HOUR, NS_PER_MINUTE, nowNs } from '../common/time';

/** How long single samples are kept; older windows read the per-minute rollup. */
export const SAMPLE_HORIZON_NS = 2n * NS_PER_HOUR;

/** Stack ids remembered by hash; past this the memory starts over. */
const MAX_CACHED_STACKS = 50_000;

export class ProfileStore {
  private readonly stackIds = new Map<string, number>();
  private readonly insertStack: Database.Statement;
  private readonly findStack: Database.Statement;
  private readonly insertProfile: Database.Statement;
  private readonly insertSample: Database.Statement;
  private readonly upsertRollup: Database.Statement;
  private readonly prune: Database.Statement;
  private prunedAtNs = 0n;

  constructor(db: Database.Database) {
    this.insertStack = db.prepare('INSERT INTO profile_stacks (hash, frames) VALUES (?, ?) ON CONFLICT DO NOTHING');
    this.findStack = db.prepare('SELECT id FROM profile_stacks WHERE hash = ?').pluck();
    this.insertProfile = db.prepare(
      `INSERT INTO profiles (service, instance, start_ns, duration_ns, period_ns, samples, requested_hz, resource)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertSample = db.prepare(
      'INSERT INTO profile_samples (service, instance, time_ns, stack_id, weight_ns) VALUES (?, ?, ?, ?, ?)',
    );
    this.upsertRollup = db.prepare(
      `INSERT INTO profile_rollup (size, bucket, service, stack_id, samples, weight_ns) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET samples = samples + excluded.samples, weight_ns = weight_ns + excluded.weight_ns`,
    );
    this.prune = db.prepare('DELETE FROM profile_samples WHERE time_ns < ?');
  }

  /** Forgets cached stack ids: a rolled-back write took its new stacks with it. */
  reset(): void {
    this.stackIds.clear();
  }

  write(p: ProfileWrite): void {
    const ids = p.stacks.map((frames) => this.stackId(JSON.stringify(frames)));
    this.insertProfile.run(
      p.service,
      p.instance,
      p.startNs,
      p.durationNs,
      p.periodNs,
      p.samples.length,
      p.requestedHz,
      JSON.stringify(p.resource),
    );
    const exactSince = nowNs() - SAMPLE_HORIZON_NS;
    const rollup = new Map<string, { size: number; bucket: bigint; stack: number; samples: number; ns: bigint }>();
    for (const s of p.samples) {
      const stack = ids[s.stack];
      if (s.timeNs >= exactSince) this.insertSample.run(p.service, p.instance, s.timeNs, stack, s.weightNs);
      for (const [size, width] of [
        [1, NS_PER_MINUTE],
        [60, NS_PER_HOUR],
      ] as const) {
        const bucket = s.timeNs / width;
        const id = key(size, bucket, stack);
        const e = rollup.get(id);
        if (e) {
          e.samples++;
          e.ns += s.weightNs;
        } else rollup.set(id, { size, bucket, stack, samples: 1, ns: s.weightNs });
      }
    }
    for (const r of rollup.values()) this.upsertRollup.run(r.size, r.bucket, p.service, r.stack, r.samples, r.ns);
    const now = nowNs();
    if (now - this.prunedAtNs >= NS_PER_MINUTE) {
      this.prune.run(now - SAMPLE_HORIZON_NS);
      this.prunedAtNs = now;
    }
  }

  private stackId(frames: string): number {
    const hash = createHash('sha1').update(frames).digest('hex');
    let id = this.stackIds.get(hash);
    if (id === undefined) {
      this.insertStack.run(hash, frames);
      id = Number(this.findStack.get(hash));
      if (this.stackIds.size >= MAX_CACHED_STACKS) this.stackIds.clear();
      this.stackIds.set(hash, id);
    }
    return id;
  }
}
