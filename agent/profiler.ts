// The loop's CPU profile, on the watchdog thread: V8's sampling profiler runs on the main thread,
// owned by this thread's inspector session (connectToMainThread); each window's profile arrives
// here, is turned into a pprof here and posted from here, so the main thread pays V8's own work
// only.
//
// That work (measured; docs/architecture.md has the figures): starting V8's profiler logs every
// compiled function on the main thread (tens of milliseconds for a small app, hundreds for a
// large one), and stopping it tears that down. So windows are relayed, not restarted: the next
// window's profile starts in the same V8 profiler just before the last one ends (about a
// millisecond). The profiler is rebuilt only to change its rate, and stopped when the loop idles
// or must be spared.
//
// Starting and ending profiles is asked of the main thread (inspector.console.profile() there
// reaches this session's profiler), which does it between two callbacks and times it: an
// inspector command would instead run inside whatever JavaScript was running, lengthening it
// and making a blocking stack taken meanwhile look like the app's. Every decision is taken here,
// from outside the main thread: its utilization and delays (from the shared heartbeat) and what
// each command cost it.
import { Session } from 'node:inspector';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import {
  PROFILER_COMMANDS,
  PROFILER_OUTCOMES,
  PROFILER_REASONS,
  PROFILER_STATES,
  PROFILE_REQUESTED_HZ,
  type ProfilerCommand,
  type ProfilerReason,
  type ProfilerState,
} from '../common/conventions';
import { postProfile } from './profile-export';
import { toPprof, type V8Profile } from './pprof';
import {
  BEAT,
  type ProfilerCommandMessage,
  type ProfilerDone,
  type ProfilerMessage,
  type ProfilerSettings,
} from './watchdog-protocol';

/** Start sampling once the loop is at least this busy over a second. */
const BUSY_ELU = 0.1;
const BUSY_SPAN_NS = 1_000_000_000n;
/** A window this idle ends the sampling until the loop is busy again. */
const IDLE_ELU = 0.05;
/**
 * A window this busy, with the loop held up for half the blocking threshold at least, leaves no
 * headroom: the profiler samples less.
 */
const SATURATED_ELU = 0.9;
/** The loop must be under this for the profiler to resume or return to the full rate. */
const CALM_ELU = 0.7;
/** Backing off divides the rate by this (and, for cost, then stops). */
const REDUCE_BY = 4;
/** The relay may hold the main thread for this share of a window (and at most half the blocking threshold). */
const COST_SHARE = 0.01;
/** After a back-off to a stop, the windows waited before trying again (doubling up to the last). */
const MAX_PAUSED_WINDOWS = 16;
/** A main thread that stamped its heartbeat this recently is turning. */
const RESPONSIVE_NS = 50_000_000n;
/** Inspector calls (enable, sampling interval) are served at once by a main thread that turns. */
const CALL_TIMEOUT_MS = 2000;
/** A command waits its turn in the main thread's queue; one not done by then is given up. */
const COMMAND_TIMEOUT_MS = 60_000;

const TITLES = ['stallscope-a', 'stallscope-b'] as const;
type Title = (typeof TITLES)[number];

/** Captures of blocking stacks in progress: the profiler sends nothing meanwhile. */
export interface CaptureGate {
  captures: number;
}

interface Reading {
  stampHr: bigint;
  /** Microseconds of loop activity. */
  active: bigint;
}

/** The loop's utilization between two heartbeat readings. */
function utilization(a: Reading, b: Reading): number {
  const wallUs = Number(b.stampHr - a.stampHr) / 1000;
  return wallUs > 0 ? Math.min(1, Number(b.active - a.active) / wallUs) : 0;
}

export interface Policy {
  requestedHz: number;
  reducedHz: number;
  /** The longest a relay may hold the main thread. */
  costBudgetMs: number;
  /** A loop held up this long (in a busy window) has no headroom. */
  saturatedGapMs: number;
}

export function policyFor(settings: { hz: number; windowMs: number }, thresholdMs: number): Policy {
  return {
    requestedHz: settings.hz,
    reducedHz: Math.max(1, Math.round(settings.hz / REDUCE_BY)),
    costBudgetMs: Math.min(thresholdMs / 2, settings.windowMs * COST_SHARE),
    saturatedGapMs: thresholdMs / 2,
  };
}

/** What was measured over the window that just ended, and the rate it was sampled at. */
export interface WindowFacts {
  hz: number;
  state: ProfilerState;
  reason?: ProfilerReason;
  /** The loop's utilization. */
  elu: number;
  /** The longest the loop went without a heartbeat. */
  maxGapMs: number;
  /** Main-thread time of the relay that opened the window (0 after a start). */
  relayMs: number;
}

export interface NextWindow {
  /** 0: stop sampling. */
  hz: number;
  state: ProfilerState;
  reason?: ProfilerReason;
  /** Set when this decision is a back-off. */
  backoff?: ProfilerReason;
}

/**
 * The next window's rate. A loop with no headroom is sampled at a quarter of the rate (sampling
 * costs in proportion to it; a quarter still ranks the hot functions), never left unprofiled for
 * that alone; a relay that held the main thread too long lowers the rate, then stops sampling
 * for a while. A calm window brings the full rate back; an idle one stops until the loop is busy.
 */
export function nextWindow(policy: Policy, w: WindowFacts): NextWindow {
  const full = w.hz === policy.requestedHz;
  const canReduce = full && policy.reducedHz < w.hz;
  if (w.relayMs >= policy.costBudgetMs) {
    const reason = PROFILER_REASONS.cost;
    return canReduce
      ? { hz: policy.reducedHz, state: PROFILER_STATES.reduced, reason, backoff: reason }
      : { hz: 0, state: PROFILER_STATES.paused, reason, backoff: reason };
  }
  if (w.elu >= SATURATED_ELU && w.maxGapMs >= policy.saturatedGapMs) {
    const reason = PROFILER_REASONS.saturated;
    if (canReduce) return { hz: policy.reducedHz, state: PROFILER_STATES.reduced, reason, backoff: reason };
    return { hz: w.hz, state: w.state, reason: w.reason };
  }
  if (w.elu < IDLE_ELU) return { hz: 0, state: PROFILER_STATES.idle };
  if (!full && w.elu < CALM_ELU) return { hz: policy.requestedHz, state: PROFILER_STATES.sampling };
  return { hz: w.hz, state: w.state, reason: w.reason };
}

/** Samples V8 took while the loop waited in its poll. */
function idleSamples(profile: V8Profile): number {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  let n = 0;
  for (const id of profile.samples ?? []) if (idle.has(id)) n++;
  return n;
}

export class LoopProfiler {
  private session: Session | undefined;
  private recording: Title | undefined;
  /** The rate each running profile was started at. */
  private readonly rates = new Map<Title, number>();
  private hz = 0;
  private state: ProfilerState = PROFILER_STATES.idle;
  private reason: ProfilerReason | undefined;
  private pending = false;
  /** A decision waits for the loop's next turn. */
  private onTurn = false;
  private window = { startHr: 0n, reading: { stampHr: 0n, active: 0n }, maxGapNs: 0n };
  /** The reading `recent` was measured from, and the loop's utilization over the second before it. */
  private last: Reading | undefined;
  private recent = 0;
  /** Main-thread time of the last relay (0 right after a start). */
  private boundaryMs = 0;
  private pausedWindows = 0;
  private notBeforeHr = 0n;
  private exporting = false;
  private resource: Record<string, string> = {};
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private commands = 0;
  /** Who waits for a profile V8 is handing over, and its share of busy samples. */
  private readonly finishing = new Map<Title, (busy?: number) => void>();
  private waiting:
    { id: number; resolve: (ms: number) => void; reject: (err: Error) => void; timer: NodeJS.Timeout } | undefined;
  private readonly windowNs: bigint;
  private readonly policy: Policy;

  constructor(
    private readonly settings: ProfilerSettings,
    thresholdMs: number,
    private readonly beat: BigInt64Array,
    private readonly gate: CaptureGate,
    private readonly post: (m: ProfilerMessage) => void,
  ) {
    this.windowNs = BigInt(Math.round(settings.windowMs * 1e6));
    this.policy = policyFor(settings, thresholdMs);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), Math.min(1000, this.settings.windowMs / 5));
  }

  setResource(attributes: Record<string, string>): void {
    this.resource = attributes;
  }

  /** From the watchdog's poll: how long the loop has gone without a heartbeat. */
  observe(gapNs: bigint): void {
    if (gapNs > this.window.maxGapNs) this.window.maxGapNs = gapNs;
    // A saturated loop turns only between long stretches, rarely at a tick: catch its next turn.
    if (this.onTurn && gapNs <= RESPONSIVE_NS) {
      this.onTurn = false;
      this.tick();
    }
  }

  /** The main thread did what it was asked. */
  onDone(m: ProfilerDone): void {
    const waiting = this.waiting;
    if (!waiting || waiting.id !== m.id) return;
    this.waiting = undefined;
    clearTimeout(waiting.timer);
    if (m.error) waiting.reject(new Error(m.error));
    else waiting.resolve(m.ms);
  }

  /** Lets go of the main thread for good (the process is exiting, or the agent stopping). */
  release(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.waiting) {
      clearTimeout(this.waiting.timer);
      this.waiting.reject(new Error('released'));
      this.waiting = undefined;
    }
    this.disconnect();
  }

  private tick(): void {
    if (this.closed || this.pending || this.gate.captures > 0) return;
    const now = process.hrtime.bigint();
    const reading: Reading = {
      stampHr: Atomics.load(this.beat, BEAT.time),
      active: Atomics.load(this.beat, BEAT.active),
    };
    if (reading.stampHr === 0n) return; // the app has not started yet
    if (!this.last || reading.stampHr - this.last.stampHr >= BUSY_SPAN_NS) {
      this.recent = this.last ? utilization(this.last, reading) : 0;
      this.last = reading;
    }
    const recent = this.recent;
    if (this.recording) {
      // The main thread ends the window when it next turns, however long that takes.
      if (now - this.window.startHr >= this.windowNs) this.run(() => this.endWindow(reading));
      // Starting calls the inspector, served at once only by a loop that turns: ask later.
    } else if (now < this.notBeforeHr) {
      return;
    } else if (now - reading.stampHr > RESPONSIVE_NS) {
      this.onTurn = true;
    } else if (this.state === PROFILER_STATES.idle && recent >= BUSY_ELU) {
      this.run(() => this.begin(this.settings.hz, PROFILER_STATES.sampling));
    } else if (this.state === PROFILER_STATES.paused) {
      if (recent < BUSY_ELU) this.setState(PROFILER_STATES.idle, 0);
      else if (recent < CALM_ELU)
        this.run(() => this.begin(this.policy.reducedHz, PROFILER_STATES.reduced, this.reason));
    }
  }

  /** Runs one step; a failure lets go of the main thread and tries again a window later. */
  private run(step: () => Promise<void>): void {
    this.pending = true;
    step()
      .catch((err: Error) => {
        if (this.closed) return; // released meanwhile: nothing is wrong
        this.post({ type: 'profiler-error', error: err.message });
        this.disconnect();
        this.notBeforeHr = process.hrtime.bigint() + this.windowNs;
        if (this.state !== PROFILER_STATES.unavailable) this.setState(PROFILER_STATES.idle, 0);
      })
      .finally(() => (this.pending = false));
  }

  private connect(): Session {
    if (this.session) return this.session;
    if (this.closed) throw new Error('the profiler was released');
    const session = new Session();
    try {
      session.connectToMainThread();
    } catch (err) {
      this.closed = true;
      this.setState(PROFILER_STATES.unavailable, 0);
      throw new Error(`the inspector cannot attach to the main thread: ${(err as Error).message}`);
    }
    session.on('Profiler.consoleProfileFinished', (m: { params: { title?: string; profile: V8Profile } }) =>
      this.onFinished(m.params),
    );
    this.session = session;
    Atomics.store(this.beat, BEAT.profilerConnected, 1n);
    return session;
  }

  private disconnect(): void {
    this.recording = undefined;
    this.rates.clear();
    try {
      this.session?.disconnect();
    } catch {
      // already gone
    }
    this.session = undefined;
    Atomics.store(this.beat, BEAT.profilerConnected, 0n);
    Atomics.notify(this.beat, BEAT.profilerConnected);
  }

  private call(method: string, params: object = {}): Promise<unknown> {
    const session = this.connect();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${method} got no answer within ${CALL_TIMEOUT_MS} ms`)),
        CALL_TIMEOUT_MS,
      );
      session.post(method, params, (err, result) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(result);
      });
    });
  }

  /**
   * Asks the main thread to start and/or end profiles; resolves with how long that held it (ms).
   * Starting first keeps V8's profiler alive across a relay.
   */
  private command(command: ProfilerCommand, start?: Title, end?: Title): Promise<number> {
    this.connect();
    const id = ++this.commands;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`the main thread did not ${command} the profile within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      this.waiting = { id, resolve, reject, timer };
      const m: ProfilerCommandMessage = { type: 'profiler-command', id, command, start, end };
      this.post(m);
    });
  }

  private async begin(hz: number, state: ProfilerState, reason?: ProfilerReason): Promise<void> {
    await this.call('Profiler.enable');
    await this.call('Profiler.setSamplingInterval', { interval: Math.round(1e6 / hz) });
    const title = TITLES[0];
    await this.command(PROFILER_COMMANDS.start, title);
    this.recording = title;
    this.rates.set(title, hz);
    this.hz = hz;
    this.boundaryMs = 0;
    this.openWindow();
    this.setState(state, hz, reason);
  }

  private openWindow(): void {
    this.window = {
      startHr: process.hrtime.bigint(),
      reading: { stampHr: Atomics.load(this.beat, BEAT.time), active: Atomics.load(this.beat, BEAT.active) },
      maxGapNs: 0n,
    };
  }

  /**
   * Relays to the next window, then judges the one that ended from its own profile: while V8
   * samples, its signals interrupt the loop's poll and libuv loses the idle time (utilization
   * reads 0.5 for a loop 10% busy), but the profile's (idle) samples count it faithfully. A change
   * of rate then rebuilds the profiler, and stopping ends the window just begun.
   */
  private async endWindow(reading: Reading): Promise<void> {
    const current = this.recording!;
    const other = TITLES[1 - TITLES.indexOf(current)];
    const maxGapMs = Number(this.window.maxGapNs) / 1e6;
    const heartbeatElu = utilization(this.window.reading, reading);
    const handedOver = this.handedOver(current);
    this.rates.set(other, this.hz);
    this.boundaryMs = await this.command(PROFILER_COMMANDS.boundary, other, current);
    this.recording = other;
    this.openWindow();
    const sampled = await handedOver;
    const next = nextWindow(this.policy, {
      hz: this.hz,
      state: this.state,
      reason: this.reason,
      elu: sampled ?? heartbeatElu,
      maxGapMs,
      relayMs: this.boundaryMs,
    });
    if (next.backoff) this.post({ type: 'profiler-backoff', reason: next.backoff });
    if (next.state === PROFILER_STATES.paused) {
      this.pausedWindows = Math.min(MAX_PAUSED_WINDOWS, Math.max(1, this.pausedWindows * 2));
      this.notBeforeHr = process.hrtime.bigint() + this.windowNs * BigInt(this.pausedWindows);
    } else if (next.state === PROFILER_STATES.sampling) this.pausedWindows = 0;
    if (next.hz === this.hz) {
      if (next.state !== this.state || next.reason !== this.reason) this.setState(next.state, this.hz, next.reason);
      return;
    }
    const stopped = this.handedOver(other);
    await this.command(PROFILER_COMMANDS.stop, undefined, other);
    await stopped;
    this.recording = undefined;
    if (next.hz > 0) await this.begin(next.hz, next.state, next.reason);
    else {
      this.disconnect();
      this.hz = 0;
      // The sampling signals made libuv's utilization read high: judge the loop afresh from now.
      this.last = undefined;
      this.setState(next.state, 0, next.reason);
    }
  }

  /**
   * Resolves with the loop's sampled utilization once V8 has handed over the profile `title`
   * (undefined if it never does, or it holds no samples).
   */
  private handedOver(title: Title): Promise<number | undefined> {
    return new Promise((resolve) => {
      const finishing = this.finishing;
      const done = (busy?: number) => {
        clearTimeout(timer);
        finishing.delete(title);
        resolve(busy);
      };
      const timer = setTimeout(done, CALL_TIMEOUT_MS);
      finishing.set(title, done);
    });
  }

  private setState(state: ProfilerState, hz: number, reason?: ProfilerReason): void {
    this.state = state;
    this.reason = reason;
    this.post({ type: 'profiler-state', state, hz, reason });
  }

  /** A window's profile, handed over by V8 when it ended: built and posted from here. */
  private onFinished(params: { title?: string; profile: V8Profile }): void {
    const title = params.title as Title;
    if (!TITLES.includes(title)) return; // someone else's console.profile()
    const hz = this.rates.get(title) ?? this.hz;
    this.rates.delete(title);
    const all = params.profile.samples?.length ?? 0;
    const busy = all ? 1 - idleSamples(params.profile) / all : undefined;
    this.finishing.get(title)?.(busy);
    if (busy !== undefined)
      this.post({
        type: 'profile-utilization',
        busy,
        seconds: (params.profile.endTime - params.profile.startTime) / 1e6,
      });
    try {
      // One profile in flight at most: a collector that is slow costs this window, not memory.
      if (this.exporting) {
        this.post({ type: 'profile', outcome: PROFILER_OUTCOMES.dropped });
        return;
      }
      const epochOffsetNs =
        BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();
      const comments = Object.entries(this.resource).map(([k, v]) => `${k}=${v}`);
      comments.push(`${PROFILE_REQUESTED_HZ}=${hz}`);
      const pprof = toPprof(params.profile, { epochOffsetNs, comments });
      if (!pprof || pprof.samples === 0) return; // the loop was idle throughout: nothing to say
      this.exporting = true;
      postProfile(this.settings.target, gzipSync(pprof.bytes))
        .then(
          () => this.post({ type: 'profile', outcome: PROFILER_OUTCOMES.sent }),
          (err: Error) => this.post({ type: 'profile', outcome: PROFILER_OUTCOMES.failed, error: err.message }),
        )
        .finally(() => (this.exporting = false));
    } catch (err) {
      this.post({ type: 'profiler-error', error: (err as Error).message });
    }
  }
}
