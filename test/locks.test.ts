// Lock tracking on the real async-mutex, in this process, with a real tracer provider (the SDK's
// in-memory exporter) and a real meter provider read by collect().
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { assertWaited, durationMs, enableContext, inMemoryTelemetry, sleep, tick } from './telemetry';
import { LockTracker, captureLockStack } from '../agent/locks/tracker';
import { codeSiteOf, siteOf } from '../agent/sites';
import { AsyncMutexInstrumentation } from '../agent/locks/async-mutex';
import { BlameLedger } from '../agent/locks/blame';
import type { GaugeMetricData, SumMetricData } from '@opentelemetry/sdk-metrics';
import { AsyncLockInstrumentation, MAX_KEYS } from '../agent/locks/async-lock';
import { fullGc } from './gc';
import { nameLock, Mutex as NamedMutex, Semaphore as NamedSemaphore, LockTimeoutError } from '../agent/index';
import {
  LOCK_ACQUIRE_SITE,
  LOCK_CONTENDED,
  LOCK_HELD_MS,
  LOCK_HOLDER_SITE,
  LOCK_HOLDER_SPAN,
  LOCK_METRICS,
  LOCK_NAME,
  LOCK_OUTCOME,
  LOCK_HANDOFF_MS,
  LOCK_HOLDER_MS,
  LOCK_HOLDER_SITES,
  LOCK_QUEUE_DEPTH,
  LOCK_SITES,
  LOCK_TYPE,
  LOCK_WAITERS,
  SPAN_NAMES,
} from '../common/conventions';

const { exporter, tracer, meter, meterProvider, spans, metric, metrics } = inMemoryTelemetry('locks-test');
const tracker = new LockTracker({ waitThresholdMs: 1, heldThresholdMs: 200 }, tracer, meter);
const instrumentation = new AsyncMutexInstrumentation();
const asyncLockInstrumentation = new AsyncLockInstrumentation();

// Loaded after the instrumentation is enabled, as an app's require() would be.
type AsyncMutex = typeof import('async-mutex');
const { Mutex, Semaphore, E_CANCELED, E_TIMEOUT, E_ALREADY_LOCKED, withTimeout, tryAcquire } = createRequire(
  __filename,
)('async-mutex') as AsyncMutex;

const AsyncLock = createRequire(__filename)('async-lock') as typeof import('async-lock');

/** file:line of the caller, named the way the tracker names a lock by where it was made. */
function here(): string {
  return siteOf(captureLockStack(here));
}

/** The caller as `fn (file:line)`, the way the tracker names acquire and holder sites. */
function hereSite(): string {
  return codeSiteOf(captureLockStack(hereSite));
}

const waits = () => spans(SPAN_NAMES.lockWait);

before(() => {
  enableContext();
  tracker.start();
});
after(async () => {
  tracker.stop();
  await meterProvider.shutdown();
});

describe('async-mutex lock tracking', () => {
  it('measures the waits of tasks queued on one mutex, and who they waited behind', async () => {
    const [mutex, created] = [new Mutex(), here()];
    let holderSite = '';
    let waiterSite = '';
    const holder = () =>
      tracer.startActiveSpan('holder request', async (span) => {
        [holderSite] = [hereSite(), await mutex.runExclusive(() => sleep(50))];
        span.end();
        return span.spanContext().spanId;
      });
    const waiter = () =>
      tracer.startActiveSpan('waiter request', async (span) => {
        [waiterSite] = [hereSite(), await mutex.runExclusive(() => sleep(50))];
        span.end();
        return span.spanContext().spanId;
      });
    // Round one on a cold lock: the holder is known by its span only (no stack is taken on an
    // uncontended lock), its site unknown. Round two: the lock is hot, so the holder's site is known too.
    for (const round of [1, 2]) {
      exporter.reset();
      const started = performance.now();
      const [holderSpan, waiterSpan1, waiterSpan2] = await Promise.all([holder(), waiter(), waiter()]);
      const elapsed = performance.now() - started;
      const spans = waits().sort((a, b) => durationMs(a) - durationMs(b));
      assert.equal(spans.length, 2, 'the first acquisition is uncontended');
      const [first, second] = spans;
      // Each then holds 50 ms: the first waiter's wait ends 100 ms before the last release at least.
      assertWaited(durationMs(first), 50, elapsed - 100, 'the first waiter');
      assertWaited(durationMs(second), 100, elapsed - 50, 'the second waiter');
      assert.equal(first.attributes[LOCK_NAME], created);
      assert.equal(first.attributes[LOCK_TYPE], 'async-mutex.Mutex');
      assert.equal(first.attributes[LOCK_OUTCOME], 'granted');
      assert.deepEqual(
        spans.map((s) => s.attributes[LOCK_QUEUE_DEPTH]),
        [0, 1],
      );
      assert.equal(first.attributes[LOCK_ACQUIRE_SITE], waiterSite);
      assert.equal(first.attributes[LOCK_HOLDER_SPAN], holderSpan);
      assert.equal(first.attributes[LOCK_HOLDER_SITE], round === 1 ? LOCK_SITES.unknown : holderSite);
      assert.ok(
        [waiterSpan1, waiterSpan2].includes(first.parentSpanContext!.spanId),
        'the wait is a child of the waiting request',
      );
    }
  });

  it('keeps two mutexes created on different lines apart, and uses an explicit name', async () => {
    const [a, aSite] = [new Mutex(), here()];
    const [b, bSite] = [new Mutex(), here()];
    const named = nameLock(new Mutex(), 'orders');
    await a.runExclusive(() => undefined);
    await b.runExclusive(() => undefined);
    (await named.acquire())();
    const acquisitions = await metric(LOCK_METRICS.acquisitions);
    const names = new Set(acquisitions.dataPoints.map((p) => p.attributes[LOCK_NAME]));
    assert.notEqual(aSite, bSite);
    assert.ok(names.has(aSite) && names.has(bSite) && names.has('orders'), [...names].join(', '));
  });

  it('measures a Semaphore(2) as two slots', async () => {
    exporter.reset();
    const sem = new Semaphore(2);
    const started = performance.now();
    await Promise.all([1, 2, 3, 4].map(() => sem.runExclusive(() => sleep(50))));
    const elapsed = performance.now() - started;
    const spans = waits();
    assert.equal(spans.length, 2);
    for (const s of spans) assertWaited(durationMs(s), 50, elapsed - 50, 'a waiter for the second round');
    assert.equal(spans[0].attributes[LOCK_TYPE], 'async-mutex.Semaphore');
  });

  it('reports a lock never released while others wait, while it is still held', async () => {
    const mutex = new Mutex();
    await Promise.all([mutex.runExclusive(() => sleep(5)), mutex.runExclusive(() => undefined)]); // contended once: hot
    exporter.reset();
    let holderSite = '';
    const holderSpan = await tracer.startActiveSpan('leaky request', async (span) => {
      [holderSite] = [hereSite(), await mutex.acquire()]; // never released by this "buggy" code
      span.end();
      return span.spanContext().spanId;
    });
    const stuck = mutex.acquire();
    // The check runs on a timer: a loaded machine may run it late, never early.
    const heldSpans = () => exporter.getFinishedSpans().filter((s) => s.name === SPAN_NAMES.lockHeld);
    for (let waited = 0; heldSpans().length === 0 && waited < 10_000; waited += 50) await sleep(50);
    await sleep(250); // and no second report of the same hold
    const held = heldSpans();
    assert.equal(held.length, 1);
    assert.ok((held[0].attributes[LOCK_HELD_MS] as number) >= 200);
    assert.equal(held[0].attributes[LOCK_WAITERS], 1);
    assert.equal(held[0].attributes[LOCK_HOLDER_SITE], holderSite);
    assert.equal(held[0].attributes[LOCK_HOLDER_SPAN], holderSpan);
    mutex.release();
    (await stuck)();
  });

  it('records a cancelled wait and passes the cancel error through', async () => {
    exporter.reset();
    const mutex = new Mutex();
    const release = await mutex.acquire();
    const waiting = mutex.acquire();
    await sleep(5);
    mutex.cancel();
    await assert.rejects(waiting, (err) => err === E_CANCELED);
    release();
    assert.equal(waits()[0]?.attributes[LOCK_OUTCOME], 'cancelled');
  });

  it('records a withTimeout that expires as a timeout, and the app still gets its timeout error', async () => {
    exporter.reset();
    const [mutex, created] = [new Mutex(), here()];
    const release = await mutex.acquire();
    const timed = withTimeout(mutex, 40);
    const started = performance.now();
    await assert.rejects(timed.acquire(), (err) => err === E_TIMEOUT);
    const [span] = waits();
    assert.equal(span?.attributes[LOCK_OUTCOME], 'timeout');
    assert.equal(span.attributes[LOCK_NAME], created);
    assertWaited(durationMs(span), 40, performance.now() - started, 'the timed-out wait');
    // The library grants the abandoned request later and drops it at once: that is not a wait
    // that ended in a grant, and the lock is free afterwards.
    release(); // at once, before anything else runs, as apps do in their catch handler
    await sleep(5);
    assert.equal(mutex.isLocked(), false);
    assert.deepEqual(
      waits().map((s) => s.attributes[LOCK_OUTCOME]),
      ['timeout'],
    );
    // A timeout that does not expire is an ordinary grant.
    const holder = await mutex.acquire();
    setTimeout(holder, 20);
    const r = await timed.acquire();
    r();
    assert.deepEqual(
      waits().map((s) => s.attributes[LOCK_OUTCOME]),
      ['timeout', 'granted'],
    );
  });

  it('records a refused tryAcquire as a timeout in the wait metric', async () => {
    const mutex = nameLock(new Mutex(), 'try-me');
    const release = await mutex.acquire();
    await assert.rejects(tryAcquire(mutex).acquire(), (err) => err === E_ALREADY_LOCKED);
    await sleep(5);
    release();
    await sleep(1); // the library grants the refused request and drops it at once
    (await tryAcquire(mutex).acquire())();
    const wait = await metric(LOCK_METRICS.waitTime);
    const outcomes = wait.dataPoints
      .filter((p) => p.attributes[LOCK_NAME] === 'try-me')
      .map((p) => `${p.attributes[LOCK_OUTCOME]}:${(p.value as { count: number }).count}`);
    // Uncontended grants wait 0 and are counted by acquisitions, not recorded as waits.
    assert.deepEqual(outcomes, ['timeout:1']);
    const acquisitions = await metric(LOCK_METRICS.acquisitions);
    const granted = acquisitions.dataPoints
      .filter((p) => p.attributes[LOCK_NAME] === 'try-me')
      .map((p) => `${p.attributes[LOCK_CONTENDED]}:${p.value}`);
    assert.deepEqual(granted, ['false:2']);
  });

  it('measures waitForUnlock as a wait that takes nothing', async () => {
    exporter.reset();
    const mutex = new Mutex();
    const release = await mutex.acquire();
    const started = performance.now();
    void sleep(50).then(release);
    const asked = performance.now();
    await mutex.waitForUnlock();
    const elapsed = performance.now() - started;
    assert.equal(mutex.isLocked(), false);
    const [span] = waits();
    assert.equal(span?.attributes[LOCK_OUTCOME], 'unlocked');
    assertWaited(durationMs(span), 50 - (asked - started), elapsed, 'waitForUnlock');
  });

  it('changes no behaviour: the same values, errors and order with and without tracking', async () => {
    const scenario = async () => {
      const log: string[] = [];
      const mutex = new Mutex();
      const sem = new Semaphore(2);
      const tasks = [3, 1, 2].map((n) =>
        mutex.runExclusive(async () => {
          log.push(`start ${n}`);
          await tick(n * 5);
          log.push(`end ${n}`);
          return n * 10;
        }),
      );
      log.push(`values ${(await Promise.all(tasks)).join(',')}`);
      await mutex
        .runExclusive(() => Promise.reject(new Error('inside')))
        .catch((e: Error) => log.push(`error ${e.message}`));
      const [value, rel] = await sem.acquire();
      log.push(`semaphore value ${value} locked ${sem.isLocked()}`);
      rel();
      rel(); // a second call is harmless
      log.push(`after release ${sem.getValue()} mutex locked ${mutex.isLocked()}`);
      // Microtask order around a grant: tracking must not add a promise step.
      const first = await mutex.acquire();
      const granted = mutex.acquire().then((r) => {
        log.push('waiter granted');
        r();
      });
      first();
      void Promise.resolve()
        .then(() => log.push('tick 1'))
        .then(() => log.push('tick 2'));
      await granted;
      await tick(1);
      try {
        await sem.acquire(0);
      } catch (e) {
        log.push(`refused: ${(e as Error).message} locked ${sem.isLocked()}`);
      }
      const held = await mutex.acquire();
      await withTimeout(mutex, 10)
        .runExclusive(() => log.push('never'))
        .catch((e: Error) => log.push(`timed out: ${e === E_TIMEOUT}`));
      await tryAcquire(mutex)
        .acquire()
        .catch((e: Error) => log.push(`try: ${e === E_ALREADY_LOCKED}`));
      const unlocked = mutex.waitForUnlock().then(() => log.push(`unlocked ${mutex.isLocked()}`));
      held();
      await unlocked;
      await tick(1);
      log.push(`finally locked ${mutex.isLocked()}`);
      return log;
    };
    const tracked = await scenario();
    instrumentation.disable();
    try {
      const plain = await scenario();
      assert.deepEqual(tracked, plain);
      assert.deepEqual(plain.slice(0, 7), [
        'start 3',
        'end 3',
        'start 1',
        'end 1',
        'start 2',
        'end 2',
        'values 30,10,20',
      ]);
    } finally {
      instrumentation.enable();
    }
  });
});

describe('lock sites reached through an await', () => {
  it('name the awaiting async function as any other frame', async () => {
    // Library code that resumed after an await leaves only the app's awaiting frames on the
    // stack; V8 writes them `at async fn (file:line:col)`.
    let site = '';
    async function resumed() {
      await null;
      site = codeSiteOf(captureLockStack(resumed));
    }
    async function awaiting() {
      await resumed();
    }
    await awaiting();
    assert.match(site, /^awaiting \([^ ]*locks\.test\.(ts|js):\d+\)$/);
  });
});

describe('lock tracker memory', () => {
  it('lets go of acquisitions while a lock never empties (waiters do not keep their holders)', async () => {
    const owner = {};
    const resource = tracker.resource('busy', 'test', owner);
    const skip = () => undefined;
    let holder = tracker.request(resource, true, skip);
    tracker.granted(holder);
    const first = new WeakRef(holder);
    // Each waiter queues behind the holder, is granted as it releases, and becomes the holder.
    for (let i = 0; i < 200; i++) {
      const waiter = tracker.request(resource, false, skip);
      tracker.released(resource, holder);
      tracker.granted(waiter);
      holder = waiter;
    }
    await fullGc();
    assert.equal(first.deref(), undefined, 'the first acquisition is still reachable');
    tracker.released(resource, holder);
    assert.ok(owner);
  });
});

describe("stallscope's own named locks", () => {
  it('are fair, and tracked under their name', async () => {
    exporter.reset();
    const mutex = new NamedMutex('inventory');
    const order: number[] = [];
    const started = performance.now();
    await Promise.all(
      [1, 2, 3].map((n) =>
        mutex.runExclusive(async () => {
          order.push(n);
          await sleep(40);
        }),
      ),
    );
    const elapsed = performance.now() - started;
    assert.deepEqual(order, [1, 2, 3]);
    const spans = waits().sort((a, b) => durationMs(a) - durationMs(b));
    assert.equal(spans.length, 2);
    assertWaited(durationMs(spans[0]), 40, elapsed - 80, 'the first waiter');
    assertWaited(durationMs(spans[1]), 80, elapsed - 40, 'the second waiter');
    for (const s of spans) {
      assert.equal(s.attributes[LOCK_NAME], 'inventory');
      assert.equal(s.attributes[LOCK_TYPE], 'stallscope.Mutex');
    }
    assert.equal(mutex.locked, false);
  });

  it('are named by their creation site when unnamed', async () => {
    exporter.reset();
    const [sem, site] = [new NamedSemaphore(1), here()];
    const release = await sem.acquire();
    const waiting = sem.acquire();
    await sleep(5);
    release();
    (await waiting)();
    assert.equal(sem.name, site);
    assert.equal(waits()[0]?.attributes[LOCK_NAME], site);
    assert.equal(waits()[0]?.attributes[LOCK_TYPE], 'stallscope.Semaphore');
  });

  it('time out and cancel with the outcome recorded, and let the next request in', async () => {
    exporter.reset();
    const sem = new NamedSemaphore(2, 'pool');
    const big = await sem.acquire({ weight: 2 });
    await assert.rejects(
      sem.acquire({ timeoutMs: 30 }),
      (err) => err instanceof LockTimeoutError && /"pool"/.test(err.message),
    );
    const controller = new AbortController();
    const cancelled = sem.acquire({ signal: controller.signal });
    setTimeout(() => controller.abort(new Error('client went away')), 10);
    await assert.rejects(cancelled, /client went away/);
    const later = sem.acquire();
    big();
    (await later)();
    assert.equal(sem.available, 2);
    assert.equal(sem.waiting, 0);
    // The last request waits for big's release only, over the 1 ms threshold on a loaded machine.
    const outcomes = waits().map((s) => s.attributes[LOCK_OUTCOME]);
    assert.deepEqual(outcomes.slice(0, 2), ['timeout', 'cancelled']);
    assert.deepEqual(outcomes.slice(2), outcomes.length > 2 ? ['granted'] : []);
    await assert.rejects(sem.acquire({ weight: 3 }), RangeError);
    assert.throws(() => new NamedSemaphore(0), RangeError);
  });
});

describe('async-lock tracking', () => {
  it('keeps keys apart, and names who each waiter queued behind', async () => {
    exporter.reset();
    const lock = new AsyncLock();
    let holderSite = '';
    const hold = (key: string, ms: number) => lock.acquire(key, () => sleep(ms).then(() => key));
    let held = 0;
    const first = tracer.startActiveSpan('holder', (span) => {
      held = performance.now();
      [holderSite] = [here(), lock.acquire('user:1', () => sleep(60))];
      span.end();
      return span.spanContext().spanId;
    });
    const started = performance.now();
    const results = await Promise.all([hold('user:1', 10), hold('user:2', 10), hold('user:2', 10)]);
    const elapsed = performance.now() - started;
    assert.deepEqual(results, ['user:1', 'user:2', 'user:2']);
    const spans = waits();
    const byKey = new Map(spans.map((s) => [s.attributes[LOCK_NAME], s]));
    assert.equal(spans.length, 2, spans.map((s) => `${s.attributes[LOCK_NAME]} ${durationMs(s)}`).join(', '));
    // The holder's 60 ms began before the waiter asked, by as long as the lines between took.
    assertWaited(durationMs(byKey.get('user:1')!), 60 - (started - held), elapsed - 10, 'user:1');
    assertWaited(durationMs(byKey.get('user:2')!), 10, elapsed - 10, 'user:2');
    assert.equal(byKey.get('user:1')!.attributes[LOCK_TYPE], 'async-lock');
    assert.equal(byKey.get('user:1')!.attributes[LOCK_HOLDER_SPAN], first);
    assert.ok(holderSite);
  });

  it('records a wait that times out, and a request refused for too many pending', async () => {
    exporter.reset();
    const lock = nameLock(new AsyncLock({ maxPending: 1 }), 'jobs');
    const holding = lock.acquire('k', () => sleep(80));
    const timedOut = lock.acquire('k', () => 'never', { timeout: 30 });
    await assert.rejects(
      lock.acquire('k', () => 'refused'),
      /Too many pending/,
    );
    await assert.rejects(timedOut, /timed out/);
    await holding;
    await sleep(5);
    const outcomes = waits().map((s) => `${s.attributes[LOCK_NAME]} ${s.attributes[LOCK_OUTCOME]}`);
    assert.deepEqual(outcomes, ['jobs:k timeout']);
    const wait = await metric(LOCK_METRICS.waitTime);
    const jobs = wait.dataPoints
      .filter((p) => p.attributes[LOCK_NAME] === 'jobs:k')
      .map((p) => p.attributes[LOCK_OUTCOME])
      .sort();
    assert.deepEqual(jobs, ['error', 'timeout']);
  });

  it('bounds key cardinality: keys past the limit share one resource', async () => {
    const lock = new AsyncLock();
    const keys = Array.from({ length: MAX_KEYS + 20 }, (_, i) => `tenant-${i}`);
    // Every key contended once: two requests at once on each.
    await Promise.all(keys.flatMap((k) => [lock.acquire(k, () => sleep(1)), lock.acquire(k, () => sleep(1))]));
    const acquisitions = await metric(LOCK_METRICS.acquisitions);
    const names = new Set(
      acquisitions.dataPoints
        .map((p) => String(p.attributes[LOCK_NAME]))
        .filter((n) => n.startsWith('tenant-') || n.endsWith('(other keys)')),
    );
    assert.equal([...names].filter((n) => n.startsWith('tenant-')).length, MAX_KEYS);
    assert.ok([...names].some((n) => n.endsWith('(other keys)')));
  });

  it('changes no behaviour: multiple keys, callbacks, errors and order, with and without tracking', async () => {
    const scenario = async () => {
      const log: string[] = [];
      const lock = new AsyncLock();
      await Promise.all([
        lock.acquire(['a', 'b'], async () => {
          log.push('ab start');
          await tick(10);
          log.push('ab end');
          return 1;
        }),
        lock.acquire('b', () => log.push('b alone')),
        new Promise<void>((resolve) =>
          lock.acquire(
            'a',
            (done) => {
              log.push('a callback');
              setTimeout(() => done(undefined, 'cb value'), 5);
            },
            (err, ret) => {
              log.push(`a done ${String(err)} ${String(ret)}`);
              resolve();
            },
          ),
        ),
      ]);
      await lock
        .acquire('c', () => Promise.reject(new Error('inside')))
        .catch((e: Error) => log.push(`error ${e.message}`));
      await lock
        .acquire('c', () => {
          throw new Error('thrown');
        })
        .catch((e: Error) => log.push(`error ${e.message}`));
      log.push(`busy ${lock.isBusy()}`);
      return log;
    };
    const tracked = await scenario();
    asyncLockInstrumentation.disable();
    try {
      assert.deepEqual(tracked, await scenario());
    } finally {
      asyncLockInstrumentation.enable();
    }
    assert.deepEqual(tracked.slice(0, 4), ['ab start', 'ab end', 'a callback', 'b alone']);
  });
});

// Last in this file: it replaces the running tracker.
describe('lock blame', () => {
  it('splits a wait exactly among the holds it overlapped, the rest as handoff', () => {
    // Holds: X [0, 50), Y [50, 80); two slots: Y and Z together over [50, 70). A wait [10, 100),
    // and one [60, 75) queued behind it.
    const ledger = new BlameLedger<string>(0);
    const x = ledger.hold('X', 1, 'x', 0);
    const wait = ledger.waitStarts(10);
    ledger.release(x, 50);
    const y = ledger.hold('Y', 1, 'y', 50);
    const z = ledger.hold('Z', 1, 'z', 50);
    const later = ledger.waitStarts(60);
    ledger.release(z, 70);
    const second = ledger.waitEnds(later, 75);
    ledger.release(y, 80);
    const c = ledger.waitEnds(wait, 100);
    assert.deepEqual(Object.fromEntries(c.bySite), { X: 40, Y: 20, Z: 10 });
    assert.equal(c.handoffMs, 20);
    assert.equal(c.top, 'x');
    assert.deepEqual(Object.fromEntries(second.bySite), { Y: 10, Z: 5 });
    assert.equal(second.handoffMs, 0);
    assert.equal(ledger.waiters, 0);
  });

  it('charges 2,000 queued waits exactly, each adding up to its wait', () => {
    // A mutex held 1 ms at a time by alternating sites, every waiter queued at t=0.
    const ledger = new BlameLedger<number>(0);
    const starts = Array.from({ length: 2000 }, () => ledger.waitStarts(0));
    let t = 0;
    for (let i = 0; i < 2000; i++) {
      const hold = ledger.hold(i % 2 ? 'odd' : 'even', 1, i, t + 0.25); // a quarter ms of handoff each
      t += 1.25;
      ledger.release(hold, t);
      const c = ledger.waitEnds(starts[i], t);
      const sum = [...c.bySite.values()].reduce((a, b) => a + b, 0) + c.handoffMs;
      assert.ok(Math.abs(sum - t) < 1e-6, `wait ${i}: ${sum} of ${t}`);
      if (i === 1999) {
        assert.ok(Math.abs(c.bySite.get('even')! - 1000) < 1e-6 && Math.abs(c.bySite.get('odd')! - 1000) < 1e-6);
        assert.ok(Math.abs(c.handoffMs - 500) < 1e-6);
      }
    }
  });

  async function debit(mutex: InstanceType<typeof Mutex>, ms: number) {
    return mutex.runExclusive(() => sleep(ms));
  }
  async function nextOrderId(mutex: InstanceType<typeof Mutex>, ms: number) {
    return mutex.runExclusive(() => sleep(ms));
  }
  async function report(mutex: InstanceType<typeof Mutex>) {
    return mutex.runExclusive(() => undefined);
  }
  const holderMs = (s: { attributes: Record<string, unknown> }) => {
    const sites = s.attributes[LOCK_HOLDER_SITES] as string[];
    const ms = s.attributes[LOCK_HOLDER_MS] as number[];
    return new Map(sites.map((site, i) => [site.replace(/ \(.*$/, ''), ms[i]]));
  };

  it('charges a waiter queued behind two holders 50 ms to one and 30 ms to the other', async () => {
    const mutex = new Mutex();
    await Promise.all([debit(mutex, 1), report(mutex)]); // contended once, so holders' sites are taken
    exporter.reset();
    await Promise.all([debit(mutex, 50), nextOrderId(mutex, 30), report(mutex)]);
    const wait = waits().find((s) => String(s.attributes[LOCK_ACQUIRE_SITE]).startsWith('report '))!;
    const charged = holderMs(wait);
    assert.deepEqual([...charged.keys()].sort(), ['debit', 'nextOrderId']);
    // Each hold is charged whole: at least its sleep, and together no more than the wait.
    assertWaited(charged.get('debit')!, 50, durationMs(wait) - 28, 'charged to debit');
    assertWaited(charged.get('nextOrderId')!, 30, durationMs(wait) - 48, 'charged to nextOrderId');
    const sum = [...charged.values()].reduce((a, b) => a + b, 0) + Number(wait.attributes[LOCK_HANDOFF_MS]);
    assert.ok(Math.abs(sum - durationMs(wait)) < 0.001, `charges ${sum} ms, wait ${durationMs(wait)} ms`);
    assert.match(String(wait.attributes[LOCK_HOLDER_SITE]), /^debit \(/);
  });

  it('splits the time a Semaphore(2) is full between its two holders', async () => {
    const sem = new Semaphore(2);
    await Promise.all([1, 2, 3].map(() => sem.runExclusive(() => sleep(1)))); // hot
    exporter.reset();
    async function slow() {
      return sem.runExclusive(() => sleep(60));
    }
    async function fast() {
      return sem.runExclusive(() => sleep(40));
    }
    async function third() {
      return sem.runExclusive(() => undefined);
    }
    await Promise.all([slow(), fast(), third()]);
    const wait = waits().find((s) => String(s.attributes[LOCK_ACQUIRE_SITE]).startsWith('third '))!;
    const charged = holderMs(wait);
    // Both slots are taken until fast's 40 ms end and the third gets in: half of it to each.
    assertWaited(charged.get('slow')!, 20, durationMs(wait) - 20, 'charged to slow');
    assertWaited(charged.get('fast')!, 20, durationMs(wait) - 20, 'charged to fast');
  });

  it('says what waits now and since when, before any wait has ended', async () => {
    const mutex = nameLock(new Mutex(), 'stuck-now');
    const release = await mutex.acquire(); // held, as if never released
    const waiter = mutex.acquire();
    await sleep(120);
    // One collection reads both gauges (they are observed together).
    const [waiting, oldest] = await metrics<GaugeMetricData>(LOCK_METRICS.waiting, LOCK_METRICS.oldestWait);
    const mine = (g: GaugeMetricData | undefined) =>
      g?.dataPoints.find((p) => p.attributes[LOCK_NAME] === 'stuck-now')?.value;
    assert.equal(mine(waiting), 1);
    assert.ok(mine(oldest)! >= 0.1 && mine(oldest)! < 2, `oldest wait ${mine(oldest)} s`);
    release();
    (await waiter)();
    assert.equal(mine(await metric<GaugeMetricData>(LOCK_METRICS.waiting)), 0, 'nothing waits once granted');
  });

  it('counts every wait in wait_caused, by holder and waiter site', async () => {
    const mutex = nameLock(new Mutex(), 'blame-metric');
    await Promise.all([debit(mutex, 1), report(mutex)]);
    await Promise.all([debit(mutex, 30), nextOrderId(mutex, 20), report(mutex)]);
    const caused = await metric<SumMetricData>(LOCK_METRICS.waitCaused);
    const points = caused.dataPoints.filter((p) => p.attributes[LOCK_NAME] === 'blame-metric');
    const by = (holder: string, waiter: string) =>
      points
        .filter(
          (p) =>
            String(p.attributes[LOCK_HOLDER_SITE]).startsWith(`${holder} `) &&
            String(p.attributes[LOCK_ACQUIRE_SITE]).startsWith(`${waiter} `),
        )
        .reduce((a, p) => a + p.value, 0);
    assert.ok(by('debit', 'nextOrderId') > 0.02, `nextOrderId waited ${by('debit', 'nextOrderId')} s on debit`);
    assert.ok(by('nextOrderId', 'report') > 0.01, `report waited ${by('nextOrderId', 'report')} s on nextOrderId`);
  });
});

describe('lock key names switched off', () => {
  it('keeps async-lock keys out of telemetry: every key shares the lock resource', async () => {
    const spans = new InMemorySpanExporter();
    const quiet = new LockTracker(
      { waitThresholdMs: 1, heldThresholdMs: 5000, keyNames: false },
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }).getTracer('t'),
      new MeterProvider().getMeter('t'),
    );
    tracker.stop();
    quiet.start();
    try {
      const [lock, site] = [new AsyncLock(), here()];
      await Promise.all(['user:1', 'user:1', 'user:2', 'user:2'].map((k) => lock.acquire(k, () => sleep(10))));
      const names = new Set(spans.getFinishedSpans().map((s) => s.attributes[LOCK_NAME]));
      assert.deepEqual([...names], [`${site} (other keys)`]);
    } finally {
      quiet.stop();
    }
  });
});
