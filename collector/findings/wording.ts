// Findings in plain words: the title and the explanation with its fix, from what a detector
// found. Only wording lives here; every figure it quotes is in the finding's `figures`.
import type { CodeLocation, Finding } from '../../common/types';
import type { Detected } from './detect';
import type { Culprit } from '../loop-profile';

export function formatMs(ms: number): string {
  if (ms >= 10_000) return `${Math.round(ms / 1000)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms)} ms`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The function of a site `fn (file:line)`. */
const fnName = (site: string) => /^(.*) \(.*:\d+\)$/.exec(site)?.[1] ?? site;

export const showLocation = (l: CodeLocation) =>
  l.function ? `${l.function} (${l.file}:${l.line})` : `${l.file}:${l.line}`;

/** Python's blocking calls (from the Python agent) and what a coroutine should await instead. */
const PYTHON_ALTERNATIVES: Array<[RegExp, string]> = [
  [/^time\.sleep$/, 'await asyncio.sleep(), which lets the loop run other tasks meanwhile'],
  [/^socket\./, "asyncio streams (asyncio.open_connection) or the loop's sock_* methods on a non-blocking socket"],
  [/^subprocess\./, 'asyncio.create_subprocess_exec() and await the process'],
  [/^(os\.read|pathlib\.)/, 'await asyncio.to_thread() around the file work, so a worker thread waits for the disk'],
  [/^json\.loads$/, 'await asyncio.to_thread(json.loads, text) for documents this large, or smaller payloads'],
  [
    /^threading\.Lock\.acquire$/,
    'an asyncio.Lock between coroutines; a lock shared with threads is taken in asyncio.to_thread()',
  ],
];

/** What to call instead of a blocking API. */
function alternative(api: string): string {
  const python = PYTHON_ALTERNATIVES.find(([re]) => re.test(api));
  if (python) return python[1];
  const [module, fn = ''] = api.split('.');
  if (module === 'JSON') {
    return `a worker thread (e.g. Piscina) to parse or serialise payloads this large off the request path, a streaming parser, or smaller payloads`;
  }
  const asyncName = fn.replace(/Sync$/, '');
  if (module === 'fs') {
    const promised = fn === 'existsSync' ? 'access' : asyncName;
    return `await fs.promises.${promised}() (or the callback fs.${promised}), which leaves the loop free while the disk works`;
  }
  if (module === 'child_process') {
    const async = fn === 'spawnSync' ? 'spawn' : asyncName;
    return `child_process.${async}() (promisified with util.promisify), so the loop runs while the child does`;
  }
  if (module === 'zlib')
    return `zlib.${asyncName}() (promisified) or a zlib stream, which compress on the libuv threadpool`;
  if (module === 'Atomics')
    return 'Atomics.waitAsync(), or an asynchronous lock (async-mutex), so that the main thread is never put to sleep';
  if (module === 'crypto') {
    return `crypto.${asyncName}(), which runs on the libuv threadpool; at a high rate, run it in a worker pool instead so it does not fill that pool`;
  }
  return 'its asynchronous form';
}

function limiterAdvice(type: string): string {
  return type === 'p-limit' || type === 'p-queue'
    ? 'It is a limiter: tasks wait for one of its slots. Raise its concurrency if what it protects can take more, make each task shorter, or shed load before queueing.'
    : 'Hold it for less time (do slow I/O and computation outside the critical section), or split it per resource or per key so that unrelated requests do not queue together.';
}

/** libuv request types as the code that makes them knows them. */
const OPERATIONS: Record<string, string> = {
  FSREQCALLBACK: 'fs callbacks and streams',
  GETADDRINFOREQWRAP: 'dns.lookup',
  GETNAMEINFOREQWRAP: 'dns.lookupService',
  PBKDF2REQUEST: 'crypto.pbkdf2',
  SCRYPTREQUEST: 'crypto.scrypt',
  RANDOMBYTESREQUEST: 'crypto.randomBytes',
  DERIVEBITSREQUEST: 'crypto.hkdf',
  ZLIB: 'zlib',
};
const opName = (op: string) => (OPERATIONS[op] ? `${OPERATIONS[op]} (${op})` : op);
/** Threadpool work that keeps a thread on the CPU rather than waiting for I/O. */
const CPU_BOUND = new Set(['PBKDF2REQUEST', 'SCRYPTREQUEST', 'ZLIB', 'DERIVEBITSREQUEST']);

function words(d: Detected): { title: string; detail: string } {
  const f = d.figures;
  switch (d.kind) {
    case 'sync-call': {
      const api = d.facts.api;
      return {
        title: `${api} blocks the event loop in ${d.location!.function}`,
        detail:
          `${api} at ${showLocation(d.location!)} ran ${plural(d.count, 'time')} while serving, blocking the event loop for ` +
          `${formatMs(f.totalMs)} in all (${f.maxMs !== undefined ? `the longest ${formatMs(f.maxMs)}` : `${formatMs(f.meanMs)} each on average`}). A synchronous call holds the only JavaScript thread until it returns. ` +
          `Use ${alternative(api)}.`,
      };
    }
    case 'loop-blocked': {
      const { pkg, inDependency } = d.facts;
      const location = d.location!;
      return {
        title: `Event loop blocked in ${location.function}${pkg ? ` (${pkg})` : ''}`,
        detail:
          `The event loop stopped for ${formatMs(f.totalMs)} in ${plural(f.episodes, 'episode')} (the longest ${formatMs(f.maxMs)}) while running ` +
          `${showLocation(location)}${inDependency ? `, code of the dependency ${pkg ?? ''} with no code of yours on the stack` : ''}. ` +
          `While it runs, this process does nothing else: every other request, timer and I/O callback waits. ` +
          (location.file.endsWith('.py')
            ? `Move the CPU work off the loop (loop.run_in_executor with a ProcessPoolExecutor: threads share the GIL), split it into chunks with await asyncio.sleep(0) between them, or make it cheaper.`
            : `Move the CPU work off the main thread (a worker pool such as Piscina), split it into chunks that yield with setImmediate, or make it cheaper.`),
      };
    }
    case 'lock-held': {
      const { lock, holderSite } = d.facts;
      return {
        title: `Lock ${lock} held for ${formatMs(f.heldMs)} while others wait`,
        detail:
          `Lock ${lock} was held for ${formatMs(f.heldMs)}${holderSite ? ` by the code that acquired it at ${holderSite}` : ''} with ${plural(f.waiters, 'request')} ` +
          `waiting behind it (${plural(f.reports, 'report')}; each is made while the lock is still held). Either slow work runs inside the critical section, ` +
          `or a code path returns or throws between acquire and release, so the lock is never released and every later request waits forever. ` +
          `Release in a finally block (or use runExclusive), keep slow I/O outside the lock, and give acquisitions a timeout.`,
      };
    }
    case 'shared-lock':
    case 'lock-contention': {
      const stats =
        `${plural(f.contended, 'acquisition')} of ${f.acquisitions} had to wait, ${formatMs(f.totalWaitMs)} in all; 95% of acquisitions waited ` +
        `under ${formatMs(f.waitP95Ms)}, the longest ${formatMs(f.waitMaxMs)}, with up to ${f.maxQueue} queued`;
      const across = d.facts.heldAcross ? ` The holder waited on ${d.facts.heldAcross} while it held the lock.` : '';
      if (d.kind === 'shared-lock') {
        const { lock, type, first, second } = d.facts;
        const [a, b] = [fnName(first), fnName(second)];
        return {
          title: `One lock, ${lock}, serialises ${a} and ${b}`,
          detail:
            `Lock ${lock} (${type}) is held by two code paths that make each other wait: ${first} and ${second}. ` +
            `${Math.round(f.crossSiteShare * 100)}% of the waiting charged to holders (${formatMs(f.crossSiteWaitMs)}) was one path ` +
            `waiting for the other: ${b} waited ${formatMs(f.secondWaitedOnFirstMs)} while ${a} held it, and ${a} ` +
            `${formatMs(f.firstWaitedOnSecondMs)} while ${b} held it. ${stats}.${across} ` +
            `Timing cannot see data, so it depends on what they guard: if these paths touch different data (a balance and ` +
            `an order counter, for example), give each its own lock so that neither waits for the other; if they touch ` +
            `the same data, shorten what each does while holding it (no I/O or slow work inside the critical section).`,
        };
      }
      const { lock, type, topHolder, topWaiter } = d.facts;
      const where = topHolder
        ? ` Others waited ${formatMs(f.topHolderMs)} while ${topHolder} held it: that is the critical section to shorten` +
          (topWaiter && topWaiter !== topHolder ? `; the waiting is mostly at ${topWaiter}.` : '.')
        : topWaiter
          ? ` Most of the waiting is at ${topWaiter}.`
          : '';
      return {
        title: `Hot lock ${lock}`,
        detail: `Lock ${lock} (${type}) is contended: ${stats}.${where}${across} ${limiterAdvice(type)}`,
      };
    }
    case 'threadpool-saturated': {
      const { culprit, busy, waits, submitter, waiter } = d.facts;
      const busyText = busy
        .slice(0, 3)
        .map((b) => `${opName(b.op)} ${Math.round(100 * b.share)}%`)
        .join(', ');
      const waitText = waits
        .slice(0, 3)
        .map((x) => `${opName(x.op)} ${formatMs(x.totalMs)}`)
        .join(', ');
      return {
        title: `libuv threadpool saturated${culprit ? ` by ${OPERATIONS[culprit] ?? culprit}` : ''}`,
        detail: [
          `All ${f.size} libuv threads were busy: ${plural(f.waits, 'operation')} waited ${formatMs(f.totalWaitMs)} in all for a thread (${waitText}).`,
          busyText
            ? `The threads were busy with ${busyText}${submitter ? `, submitted at ${showLocation(submitter)}` : ''}.`
            : '',
          !submitter && waiter ? `Most waiting was at ${showLocation(waiter)}.` : '',
          f.canaryMeanMs !== undefined ? `A tiny fs.stat took ${formatMs(f.canaryMeanMs)} on average.` : '',
          culprit !== undefined && CPU_BOUND.has(culprit)
            ? 'CPU-heavy work fills the pool and everything behind it waits: run it in a worker pool (e.g. Piscina) sized to your cores and keep the libuv threads for I/O; raising UV_THREADPOOL_SIZE helps only while cores are idle.'
            : 'Raise UV_THREADPOOL_SIZE (in the environment before the process starts, e.g. UV_THREADPOOL_SIZE=16) if the work is I/O, or submit less at once.',
          waits.some((x) => x.op === 'GETADDRINFOREQWRAP')
            ? 'dns.lookup shares this pool: dns.resolve* does not, and caching lookups avoids the wait.'
            : '',
        ]
          .filter(Boolean)
          .join(' '),
      };
    }
    case 'loop-saturated': {
      const counted = (cs: Culprit[]) => {
        const told = cs.filter((c) => (c.countedMs ?? 0) > 0);
        if (told.length === 0) return '';
        const ms = told.reduce((a, c) => a + (c.countedMs ?? 0), 0);
        return (
          `${formatMs(ms)} of this, in ${told.map((c) => c.frame.fn).join(' and ')}, is already counted by ` +
          `${told.length > 1 ? 'their own findings' : 'its own finding'} (a blocked loop or a blocking call), so it is not counted again here. `
        );
      };
      const [top, ...rest] = d.facts.culprits;
      const frame = (f: { fn: string; file: string; line: number }) => `${f.fn} (${f.file}:${f.line})`;
      const one = (c: Culprit) =>
        `${c.calls ? `${c.calls} in ` : ''}${frame(c.frame)}${c.via.map((v) => `, called from ${frame(v)}`).join('')}: ` +
        `${Math.round(c.share * 100)}% of the loop's time`;
      const pkg = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(top.frame.file)?.[1];
      const python = top.frame.file.endsWith('.py');
      return {
        title: `Event loop saturated by ${top.calls ? `${top.calls} in ` : ''}${top.frame.fn}${pkg ? ` (${pkg})` : ''}`,
        detail:
          `The event loop was busy ${Math.round(f.utilization * 100)}% of the window (${formatMs(f.sampledMs)} of CPU sampled), ` +
          `not in one long block but in many calls: ${[top, ...rest].map(one).join('; ')}. ` +
          counted(d.facts.culprits) +
          `While the loop is busy every other request waits its turn, so latency grows with load although no single call is slow. ` +
          (pkg
            ? `The time is spent inside ${pkg}: call it less often (cache its result, batch writes, write on a timer rather than per request) or give it less data. `
            : '') +
          (python
            ? `Move the work off the loop (loop.run_in_executor with a ProcessPoolExecutor), do it less often, or make it cheaper.`
            : `Move the work off the main thread (a worker pool such as Piscina), do it less often (cache, batch), or make it cheaper.`),
      };
    }
    case 'slowed-by-others': {
      const { route, culprit } = d.facts;
      const [what, by] = culprit.split(', in ');
      return {
        title: `${route} waits for other work on the event loop`,
        detail:
          `${route} spends ${Math.round(f.share * 100)}% of its time (${formatMs(f.waitedMs)} over ${plural(f.requests, 'request')}) waiting ` +
          `while other requests hold the loop, most of all ${what}${by ? ` (in ${by})` : ''}: ${formatMs(f.topMs)}. ` +
          `Nothing in ${route} is slow itself; it waits its turn. Move that work off the loop (a worker pool), break it ` +
          `into chunks that yield (setImmediate), or serve it from another process, and ${route} gets its time back.`,
      };
    }
    case 'pool-queueing': {
      const { pool, type } = d.facts;
      return {
        title: `Tasks wait longer than they run in ${pool}`,
        detail:
          `Tasks of the ${type} pool ${pool} waited ${formatMs(f.meanWaitMs)} on average for a worker but ran ${formatMs(f.meanRunMs)}: ` +
          `${plural(f.tasks, 'task')}, ${formatMs(f.totalWaitMs)} of waiting in all. The pool has fewer threads than the work needs at this rate. ` +
          `Raise maxThreads as far as there are idle cores, make tasks cheaper or batch small ones, and cap the queue (maxQueue) ` +
          `so that overload is refused early instead of waiting unboundedly.`,
      };
    }
  }
}

/** A detected finding with its title and explanation, and the routes it slows down. */
export function word(d: Detected): Finding {
  const { facts: _facts, ...finding } = d;
  const w = words(d);
  if (d.slows?.length && d.kind !== 'slowed-by-others')
    w.detail += ` It cost ${d.slows.map((s) => `${s.route} ${formatMs(s.ms)}`).join(', ')}.`;
  return { ...finding, ...w };
}
