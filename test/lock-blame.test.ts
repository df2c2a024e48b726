// Lock blame on ordinary load: closed-loop keep-alive clients without think time, each
// alternating two routes whose functions share one lock, with each lock library. Every wait is
// charged to the holds it overlapped, so the spans, the matrix and the findings must name both
// functions (a waiter re-queues behind its own path as often as behind the other one); and a hot
// lock whose second path is rare and short must not be taken for a shared one. Then the same on
// a library's own lock: isomorphic-git's, under a notes service that stages and asks status.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REGISTER, agentEnv, closedLoop, markLine, startApp, stop, type App } from './agent-apps';
import { eventually, getJson, startServer, type TestServer } from './helpers';
import { LOCK_HANDOFF_MS, LOCK_HOLDER_MS, LOCK_HOLDER_SITES, LOCK_NAME, SPAN_NAMES } from '../common/conventions';
import type { Finding, LockPage, SpanView, TraceSummary } from '../common/types';

const CLIENTS = 12;
const LOAD_MS = 3000;
const LIBS = ['async-mutex', 'async-lock', 'p-limit', 'stallscope'] as const;

const fnOf = (site: string) => site.replace(/ \(.*\)$/, '');

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.close();
});

async function lockWaits(service: string): Promise<SpanView[]> {
  const { body: traces } = await getJson<TraceSummary[]>(
    `${server.api}/api/traces?service=${service}&kind=lock-wait&limit=20&since=15m`,
  );
  const spans: SpanView[] = [];
  for (const t of traces) {
    const { body } = await getJson<{ spans: SpanView[] }>(`${server.api}/api/traces/${t.traceId}`);
    spans.push(...body.spans.filter((s) => s.name === SPAN_NAMES.lockWait));
  }
  return spans;
}

/** The holder sites the waits were charged to; each wait's charges add up to it. */
function chargedHolders(waits: SpanView[]): Set<string> {
  assert.ok(waits.length >= 10, `${waits.length} lock waits`);
  const holders = new Set<string>();
  for (const w of waits) {
    const sites = w.attributes[LOCK_HOLDER_SITES] as string[];
    const ms = w.attributes[LOCK_HOLDER_MS] as number[];
    sites.forEach((s) => holders.add(s));
    const sum = ms.reduce((a, b) => a + b, 0) + Number(w.attributes[LOCK_HANDOFF_MS]);
    assert.ok(Math.abs(sum - w.durationMs) < 0.01, `charges ${sum} ms for a wait of ${w.durationMs} ms`);
  }
  return holders;
}

async function lockPage(service: string, lock: string): Promise<LockPage> {
  const url = `${server.api}/api/dash/lock?name=${encodeURIComponent(lock)}&service=${service}&since=15m`;
  return (await getJson<LockPage>(url)).body;
}

/** The wait charged in the matrix's cells that `cell` picks. */
const charged = (page: LockPage, cell: (p: LockPage['pairs'][number]) => boolean) =>
  page.pairs.filter(cell).reduce((a, p) => a + p.totalMs, 0);

async function findings(service: string): Promise<Finding[]> {
  return (await getJson<Finding[]>(`${server.api}/api/findings?service=${service}&since=15m`)).body;
}

/** The service's shared-lock finding, once there; the kinds found instead, if it never comes. */
function sharedLock(service: string): Promise<Finding> {
  return eventually(
    async () => (await findings(service)).find((f) => f.kind === 'shared-lock'),
    15_000,
    `a shared-lock finding for ${service}`,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify((await findings(service)).map((f) => [f.kind, f.title]))}`);
  });
}

describe('lock blame under closed-loop load', { timeout: 240_000 }, () => {
  for (const lib of LIBS) {
    it(`${lib}: both functions are charged, both cross pairs show, and the finding is shared-lock`, async () => {
      const service = `ledger-${lib}`;
      const app: App = await startApp(
        ['--import', REGISTER, 'ledger-app.mjs'],
        agentEnv(server, service, { LOCK_LIB: lib }),
      );
      try {
        const counts = new Map<string, number>();
        await closedLoop(app.port, ['/pay', '/order'], CLIENTS, LOAD_MS, { counts });
        const requests = [...counts.values()].reduce((a, b) => a + b, 0);
        assert.ok(requests > 50, `${requests} requests`);
      } finally {
        await stop(app);
      }
      const shared = await sharedLock(service);
      assert.match(shared.title, /debit/);
      assert.match(shared.title, /nextOrderId/);
      assert.ok(shared.figures.crossSiteShare >= 0.3, JSON.stringify(shared.figures));
      assert.ok(shared.figures.firstWaitedOnSecondMs > 0 && shared.figures.secondWaitedOnFirstMs > 0);

      const waits = await lockWaits(service);
      const holders = new Set([...chargedHolders(waits)].map(fnOf));
      assert.ok(holders.has('debit') && holders.has('nextOrderId'), [...holders].join(', '));

      // The matrix: debit waited on nextOrderId and the other way round.
      const page = await lockPage(service, String(waits[0].attributes[LOCK_NAME]));
      const cell = (waiter: string, holder: string) =>
        charged(page, (p) => fnOf(p.waiterSite) === waiter && fnOf(p.holderSite) === holder);
      assert.ok(cell('debit', 'nextOrderId') > 100, JSON.stringify(page.pairs));
      assert.ok(cell('nextOrderId', 'debit') > 100, JSON.stringify(page.pairs));
      assert.deepEqual(
        page.holders
          .map((h) => fnOf(h.site))
          .slice(0, 2)
          .sort(),
        ['debit', 'nextOrderId'],
      );
    });
  }

  it('isomorphic-git from npm: its one index lock, taken by staging and by status, is a shared lock', async () => {
    // A library's own lock, taken inside the library: the sites named are the app's calls into it.
    const service = 'git-notes';
    const app = await startApp(['--require', REGISTER, 'git-notes-app.js'], agentEnv(server, service));
    const statuses = new Map<number, number>();
    try {
      const save = (id: number) => ({ path: `/notes/${id}`, method: 'PUT', body: `note ${id}, edited` });
      await closedLoop(app.port, [save(1), '/notes/2/status', save(3), '/notes/4/status'], 8, 5000, { statuses });
    } finally {
      await stop(app);
    }
    assert.deepEqual([...statuses.keys()].sort(), [200, 204], JSON.stringify([...statuses]));
    const saveSite = `saveNote (git-notes-app.js:${markLine('git-notes-app.js', 'save')})`;
    const statusSite = `<anonymous> (git-notes-app.js:${markLine('git-notes-app.js', 'status')})`;

    const shared = await sharedLock(service);
    // The resource is the key isomorphic-git locks: the repository's index file.
    assert.match(shared.resource ?? '', /[\\/]\.git[\\/]index$/);
    assert.ok(shared.detail.includes(saveSite) && shared.detail.includes(statusSite), shared.detail);
    assert.ok(shared.figures.crossSiteShare >= 0.3, JSON.stringify(shared.figures));
    assert.ok(shared.figures.firstWaitedOnSecondMs > 0 && shared.figures.secondWaitedOnFirstMs > 0);
    // A holder that queued for this lock itself did not wait on it while holding it.
    assert.doesNotMatch(shared.detail, /waited on a wait for lock/);

    const waits = (await lockWaits(service)).filter((w) => w.attributes[LOCK_NAME] === shared.resource);
    const holders = chargedHolders(waits);
    assert.ok(holders.has(saveSite) && holders.has(statusSite), [...holders].join(', '));
    const page = await lockPage(service, shared.resource!);
    const cell = (waiter: string, holder: string) =>
      charged(page, (p) => p.waiterSite === waiter && p.holderSite === holder);
    assert.ok(cell(statusSite, saveSite) > 100 && cell(saveSite, statusSite) > 100, JSON.stringify(page.pairs));
  });

  it('a hot lock whose second path is rare and short is lock-contention, not shared-lock', async () => {
    const service = 'ledger-hot';
    const app = await startApp(
      ['--import', REGISTER, 'ledger-app.mjs'],
      agentEnv(server, service, { LOCK_LIB: 'async-mutex', MODE: 'hot' }),
    );
    try {
      // Many debits contend; an order now and then takes the lock for no time.
      await Promise.all([closedLoop(app.port, ['/pay'], 10, LOAD_MS), closedLoop(app.port, ['/order'], 1, LOAD_MS)]);
    } finally {
      await stop(app);
    }
    const hot = await eventually(
      async () => (await findings(service)).find((f) => f.kind === 'lock-contention'),
      15_000,
      'a lock-contention finding',
    );
    assert.equal((await findings(service)).filter((f) => f.kind === 'shared-lock').length, 0);
    assert.match(hot.detail, /while debit \(/);
    assert.equal(hot.location?.function, 'debit');
  });
});
