// The dashboard's pages in real headless Chromium (Debian's chromium, driven by playwright-core),
// against a real collector fed by real agent-instrumented services, plus spans with hostile
// names. Screenshots of every page go to a folder this test prints.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REGISTER, agentEnv, call, markLine, startApp, stop, type App } from './agent-apps';
import { eventually, getJson, startServer, tempDir, type TestServer } from './helpers';
import { parseFindingsConfig } from '../collector/findings-config';
import { pprof } from './pprof';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HOSTILE = '<img src=x onerror="window.__xss=1">';

let server: TestServer;
let shop: App;
let worker: App;
let browser: Browser;
const shots = join(tempDir('stallscope-screens-'), 'screens');

/** One span of each hostile kind, sent as OTLP/JSON like any exporter would. */
async function sendHostileSpans(): Promise<void> {
  const now = BigInt(Date.now()) * 1_000_000n;
  const attr = (key: string, value: string) => ({ key, value: { stringValue: value } });
  const span = (id: string, name: string, attributes: unknown[]) => ({
    traceId: 'ab'.repeat(16),
    spanId: id,
    name,
    kind: 1,
    startTimeUnixNano: String(now - 50_000_000n),
    endTimeUnixNano: String(now),
    attributes,
  });
  const body = {
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', `evil ${HOSTILE}`)] },
        scopeSpans: [
          {
            spans: [
              span('0102030405060708', `GET ${HOSTILE}`, [attr('http.route', HOSTILE)]),
              span('0102030405060709', 'lock wait', [
                attr('stallscope.kind', 'lock-wait'),
                attr('stallscope.lock.name', HOSTILE),
                attr('stallscope.lock.acquire_site', HOSTILE),
                attr('stallscope.lock.outcome', 'granted'),
              ]),
              span('010203040506070a', 'event loop blocked', [
                attr('stallscope.kind', 'loop-block'),
                attr('code.function.name', HOSTILE),
                attr('code.file.path', '/x.js'),
                attr('code.line.number', '1'),
                attr('code.stacktrace', HOSTILE),
              ]),
            ],
          },
        ],
      },
    ],
  };
  const res = await fetch(`${server.otlp}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  mkdirSync(shots, { recursive: true });
  // Thresholds low enough for the few requests below to make findings.
  const findingThresholds = parseFindingsConfig(
    'loop-blocked: {min-total: 100ms, min-count: 1}\nlock-contention: {min-total-wait: 50ms, min-p95: 1ms}\npool-queueing: {min-total-wait: 20ms, min-wait-to-run: 0.5}\n',
    'ui-findings.yaml',
  );
  server = await startServer({ findingThresholds, routes: { intervalMs: 300, lagMs: 1000 } });
  [shop, worker] = await Promise.all([
    startApp(['--require', REGISTER, 'blocking-app.js'], agentEnv(server, 'shop')),
    startApp(['--import', REGISTER, 'offload-app.mjs'], agentEnv(server, 'worker')),
  ]);
  await call(shop, '/busy?ms=250');
  await call(shop, '/parse');
  for (const path of ['/keyed', '/limit', '/queue', '/piscina', '/workerpool', '/pbkdf2'])
    await Promise.all([call(worker, path), call(worker, path), call(worker, path)]);
  // Again on the now hot lock: holders' sites are recorded too.
  await Promise.all([call(worker, '/keyed'), call(worker, '/keyed')]);
  await sendHostileSpans();
  await eventually(
    async () => {
      const [locks, offload, lock] = await Promise.all([
        getJson(`${server.api}/api/dash/locks?since=15m`),
        getJson(`${server.api}/api/dash/offload?since=15m`),
        getJson(`${server.api}/api/dash/lock?name=account%3A7&since=15m`),
      ]);
      const hot = lock.body.pairs?.some((p: { holderSite: string }) => p.holderSite.endsWith(')'));
      return hot &&
        locks.body.locks?.some(
          (l: { lock: string; contended: number }) => l.lock === 'account:7' && l.contended >= 2,
        ) &&
        offload.body.poolWait?.series.length
        ? true
        : undefined;
    },
    20_000,
    'lock and pool metrics in the collector',
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  process.stdout.write(`# dashboard screenshots: ${shots}\n`);
});
after(async () => {
  await browser?.close();
  await Promise.all([shop && stop(shop), worker && stop(worker)]);
  await server?.close();
});

/** Opens a page, waits for it to render, and fails on any console error (CSP included). */
async function open(path: string, shot: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.api}${path}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
  await page.screenshot({ path: join(shots, `${shot}.png`), fullPage: true });
  assert.deepEqual(errors, [], `console errors on ${path}`);
  return page;
}

/** Whether a canvas has anything drawn on it. */
async function drawn(page: Page, selector: string): Promise<boolean> {
  // Runs in the page: the test's own TypeScript has no DOM types.
  return page.$eval(selector, (c) => {
    const canvas = c as unknown as {
      width: number;
      height: number;
      getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
    };
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
    return false;
  });
}

const legendOf = (page: Page) => page.$$eval('.legend li', (items) => items.map((i) => i.textContent ?? ''));

describe('dashboard pages in Chromium', () => {
  it('overview: services at a glance, loop delay charted per service, top locks, latest episodes', async () => {
    const page = await open('/?since=15m', 'overview');
    // The service table first: each service's state, and its loop delay as a sparkline.
    const shop = page.locator('#services tbody tr', { hasText: 'shop' });
    assert.match((await shop.textContent())!, /critical|warning/);
    assert.match((await shop.textContent())!, /Event loop blocked in spinFor/);
    assert.ok(await drawn(page, '#services canvas.spark'), 'a sparkline is drawn');
    assert.ok(await drawn(page, '.chart canvas'), 'the loop-delay chart is drawn');
    const legend = await legendOf(page);
    assert.ok(legend.includes('shop p99'), legend.join(' | '));
    assert.ok((await page.textContent('#locks'))!.includes('account:7'));
    assert.match((await page.textContent('#episodes'))!, /spinFor/);
    await page.close();
  });

  it('locks: the table sorts by any column, and the chart names the resources', async () => {
    const page = await open('/locks?since=15m&service=worker', 'locks');
    assert.ok(await drawn(page, 'canvas'));
    assert.ok((await legendOf(page)).includes('account:7'));
    const column = async (i: number) =>
      page.$$eval(`#locks tbody tr td:nth-child(${i})`, (cells) => cells.map((c) => c.textContent ?? ''));
    const acquisitions = async () => (await column(4)).map((t) => Number(t.replace(/[^0-9.]/g, '')));
    await page.click('#locks th a[data-sort="acquisitions"]');
    await page.waitForSelector('body[data-ready="true"]');
    const desc = await acquisitions();
    assert.deepEqual(
      desc,
      [...desc].sort((a, b) => b - a),
    );
    await page.click('#locks th a[data-sort="acquisitions"]');
    await page.waitForSelector('body[data-ready="true"]');
    const asc = await acquisitions();
    assert.deepEqual(
      asc,
      [...asc].sort((a, b) => a - b),
    );
    assert.match(page.url(), /locks\.sort=acquisitions&locks\.dir=asc/);
    assert.ok((await column(1)).includes('account:7'));
    await page.close();
  });

  it('a lock: who waited on whom names the waiting and the holding site, and the slowest waits link to traces', async () => {
    const page = await open('/lock?name=account%3A7&since=15m', 'lock');
    const at = `(offload-app.mjs:${markLine('offload-app.mjs', 'keyed')})`;
    // A row where the waiter and the holder both acquired at the planted line.
    const rows = await page.$$eval('#pairs tbody tr', (trs) =>
      trs.map((tr) =>
        Array.from(
          (
            tr as unknown as { querySelectorAll(s: string): ArrayLike<{ textContent: string | null }> }
          ).querySelectorAll('td'),
          (td) => td.textContent ?? '',
        ),
      ),
    );
    assert.ok(
      rows.some(([waiter, holder]) => waiter.endsWith(at) && holder.endsWith(at)),
      JSON.stringify(rows),
    );
    assert.ok((await page.$$('#slowest a.trace-link')).length >= 2);
    assert.ok(await drawn(page, 'canvas'));
    await page.close();
  });

  it('blocking: the planted function is a group that opens its stack and episodes', async () => {
    const page = await open('/blocking?since=15m&service=shop', 'blocking');
    const group = page.locator('details.group', { hasText: 'spinFor' });
    await group.locator('summary').click();
    await group.locator('pre.stack').waitFor();
    assert.match((await group.locator('pre.stack').textContent())!, /spinFor/);
    assert.ok((await group.locator('a.trace-link').count()) >= 1);
    await page.screenshot({ path: join(shots, 'blocking-open.png'), fullPage: true });
    await page.close();
  });

  it('offload: threadpool and worker pools charted', async () => {
    const page = await open('/offload?since=15m&service=worker', 'offload');
    assert.ok(await drawn(page, 'canvas'));
    const legend = await legendOf(page);
    assert.ok(
      legend.some((l) => l.includes('piscina-worker.js (piscina) queue wait')),
      legend.join(' | '),
    );
    assert.match((await page.textContent('#threadpool'))!, /PBKDF2REQUEST/);
    await page.close();
  });

  it('traces: a search for lock waits opens a waterfall that marks the wait and shows its attributes', async () => {
    const page = await open('/traces?since=15m&service=worker&kind=lock-wait', 'traces');
    await page.click('#traces tbody tr:first-child td:first-child a');
    await page.waitForSelector('body[data-ready="true"] .wf-row');
    const wait = page.locator('.wf-row.kind-lock-wait').first();
    assert.match((await wait.textContent())!, /lock wait/);
    await wait.click();
    assert.match((await page.textContent('#span-details'))!, /stallscope\.lock\.name/);
    await page.screenshot({ path: join(shots, 'trace.png'), fullPage: true });
    await page.close();
  });

  it('traces: a scatter of duration over time marks stalled traces, and a point opens its trace', async () => {
    const page = await open('/traces?since=15m&service=worker', 'traces-scatter');
    assert.ok(await drawn(page, '#trace-scatter'), 'the scatter is drawn');
    // Chart.js knows where it drew each point: click the first of the stalled ones.
    const at = await page.evaluate(() => {
      const g = globalThis as unknown as {
        Chart: { getChart(id: string): { getDatasetMeta(i: number): { data: Array<{ x: number; y: number }> } } };
      };
      const p = g.Chart.getChart('trace-scatter').getDatasetMeta(0).data[0];
      return { x: p.x, y: p.y };
    });
    const box = (await page.$('#trace-scatter'))!;
    const b = (await box.boundingBox())!;
    await page.mouse.click(b.x + at.x, b.y + at.y);
    await page.waitForURL(/\/trace\?.*\bid=[0-9a-f]{32}/);
    await page.waitForSelector('body[data-ready="true"] .wf-row');
    assert.ok((await page.locator('.wf-row[class*="kind-"]').count()) > 0, 'the trace holds an agent span');
    await page.close();
  });

  it('shows hostile names as text, never as markup', async () => {
    for (const path of [
      '/traces?since=15m',
      `/lock?name=${encodeURIComponent(HOSTILE)}&since=15m`,
      '/blocking?since=15m',
      `/trace?id=${'ab'.repeat(16)}`,
    ]) {
      const page = await open(path, `hostile-${path.split('?')[0].slice(1)}`);
      assert.equal(await page.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined, path);
      assert.equal(await page.$$eval('main img', (imgs) => imgs.length), 0, path);
      assert.ok((await page.textContent('main'))!.includes(HOSTILE), `${path} shows the name as text`);
      await page.close();
    }
  });

  it('cuts a 10 kB lock name in the layout, keeping the whole name in the page', async () => {
    const name = `orders-${'x'.repeat(10_000)}`;
    const site = `/srv/app/${'y'.repeat(10_000)}.js:1`;
    const now = BigInt(Date.now()) * 1_000_000n;
    const attr = (key: string, value: string) => ({ key, value: { stringValue: value } });
    const res = await fetch(`${server.otlp}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        resourceSpans: [
          {
            resource: { attributes: [attr('service.name', 'wide')] },
            scopeSpans: [
              {
                spans: [
                  {
                    traceId: 'cd'.repeat(16),
                    spanId: '0102030405060708',
                    name: 'lock wait',
                    kind: 1,
                    startTimeUnixNano: String(now - 40_000_000n),
                    endTimeUnixNano: String(now),
                    attributes: [
                      attr('stallscope.kind', 'lock-wait'),
                      attr('stallscope.lock.name', name),
                      attr('stallscope.lock.acquire_site', site),
                      attr('stallscope.lock.outcome', 'granted'),
                    ],
                  },
                ],
              },
            ],
          },
        ],
      }),
    });
    assert.equal(res.status, 200);
    const page = await open(`/lock?name=${encodeURIComponent(name)}&since=15m`, 'long-name');
    // Runs in the page: the widest element, not just the document (cards scroll on their own).
    const widest = await page.evaluate(() =>
      Math.max(
        ...[...(globalThis as any).document.querySelectorAll('body *')].map(
          (e: any) => e.getBoundingClientRect().right,
        ),
      ),
    );
    assert.ok(widest <= 1400, `an element reaches ${widest} px in a 1400 px window`);
    assert.equal(await page.getAttribute('h1', 'title'), `Lock ${name}`);
    const cut = await page.$$eval('.cut', (els) => els.map((e) => [e.getAttribute('title'), e.textContent]));
    assert.ok(
      cut.some(([title, text]) => title === site && text === site),
      'the acquire site is cut in the layout, whole in its text and title',
    );
    assert.ok(
      cut.some(([title]) => title?.includes(name)),
      'the legend keeps the whole lock name',
    );
    await page.close();
  });

  it('shows and takes a custom window in the time zone of the browser', async () => {
    const context = await browser.newContext({ timezoneId: 'Europe/Berlin' });
    const page = await context.newPage();
    await page.goto(`${server.api}/locks?from=2026-01-15T12:00:00.000Z&to=2026-01-15T13:00:00.000Z`);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.inputValue('input[name=from]'), '2026-01-15T13:00');
    await page.fill('input[name=to]', '2026-01-15T15:30');
    await page.click('form.custom button');
    await page.waitForURL(/to=/);
    assert.match(decodeURIComponent(page.url()), /to=2026-01-15T14:30:00\.000Z/);
    await context.close();
  });

  it('findings: each page lists its kinds with the culprit, the fix and example traces', async () => {
    const overview = await open('/?since=15m', 'overview-findings');
    const blocked = overview.locator('.finding[data-kind="loop-blocked"][data-service="shop"]');
    assert.match(
      (await blocked.textContent())!,
      /Event loop blocked in spinFor.*blocking-app\.js:\d+.*Move the CPU work off the main thread/s,
    );
    await blocked.locator('summary').click(); // one line each until opened
    await blocked.locator('a.trace-link').first().click();
    await overview.waitForSelector('body[data-ready="true"] .wf-row.kind-loop-block');
    await overview.close();

    const lock = await open('/lock?name=account%3A7&since=15m', 'lock-findings');
    const contention = lock.locator('.finding[data-kind="lock-contention"]');
    assert.match((await contention.textContent())!, /Hot lock account:7.*async-lock/s);
    await lock.close();

    const offload = await open('/offload?since=15m&service=worker', 'offload-findings');
    assert.match(
      (await offload.locator('.finding[data-kind="pool-queueing"]').first().textContent())!,
      /Tasks wait longer than they run in/,
    );
    assert.equal(
      await offload.locator('.finding[data-kind="loop-blocked"]').count(),
      0,
      'the offload page shows offload findings only',
    );
    await offload.close();
  });

  it('alerts: the header shows what fires on every page; the alerts page lists it and checks edited rules', async () => {
    const rules =
      'interval: 1s\nrules:\n  - { name: nobody home, signal: loop-delay-p99, service: nobody, above: 1s, no-data: alerting, annotations: { summary: "no data from {{rule}}" } }\n';
    const put = await fetch(`${server.api}/api/alerts/rules`, { method: 'PUT', body: rules });
    assert.equal(put.status, 200);
    await eventually(
      async () => ((await getJson(`${server.api}/api/alerts/summary`)).body.firing === 1 ? true : undefined),
      10_000,
      'the rule to fire',
    );
    const locks = await open('/locks?since=15m', 'locks-alert-badge');
    assert.equal(await locks.textContent('#alert-badge'), '1 firing');
    await locks.close();

    const page = await open('/alerts', 'alerts');
    assert.match((await page.textContent('#active'))!, /firing.*nobody home.*nodata=true.*no data from nobody home/s);
    assert.match((await page.textContent('#rules'))!, /nobody home.*loop-delay-p99.*nobody.*> 1\.00 s/s);
    assert.match((await page.textContent('#history'))!, /inactive → firing/);
    await page.fill('#rules-text', 'rules:\n  - name: broken\n    signal: loop-delay-p99\n    above: soon\n');
    await page.click('#rules-save');
    await page.waitForSelector('#rules-message.error');
    assert.match(
      (await page.textContent('#rules-message'))!,
      /rules\.yaml:4: rule "broken": above \(loop-delay-p99 is a duration\): "soon" is not a duration/,
    );
    assert.equal((await getJson(`${server.api}/api/alerts`)).body.text, rules, 'a bad edit changes nothing');
    await page.close();
    // Leave no rule behind for the other tests.
    assert.equal((await fetch(`${server.api}/api/alerts/rules`, { method: 'PUT', body: '' })).status, 200);
  });

  it('routes: each route with its time by cause; a route opens its slowest requests broken down', async () => {
    await eventually(
      async () =>
        (await getJson(`${server.api}/api/dash/routes?since=15m&service=shop`)).body.routes?.some(
          (r: { route: string }) => r.route === 'GET /busy',
        ) || undefined,
      15_000,
      'the shop routes broken down',
    );
    const page = await open('/routes?since=15m', 'routes');
    assert.ok(await drawn(page, 'main canvas'), 'the stacked bars are drawn');
    const rows = await page.$$eval('#routes tbody tr', (trs) =>
      trs.map((tr) => (tr as unknown as { textContent: string }).textContent),
    );
    const busy = rows.find((r) => r.includes('GET /busy'));
    assert.ok(busy && /its own blocking: spinFor/.test(busy), JSON.stringify(rows));
    await page.click('#routes a:text("GET /busy")');
    await page.waitForSelector('#causes');
    assert.match((await page.textContent('#causes'))!, /its own blocking.*spinFor/s);
    await page.click('.requests details summary');
    assert.match((await page.textContent('.requests'))!, /spinFor/);
    await page.screenshot({ path: join(shots, 'route.png'), fullPage: true });
    await page.close();
  });

  it('profile: the loop CPU flame graph names a frame with its file and line when clicked', async () => {
    const start = BigInt(Date.now() - 20_000) * 1_000_000n;
    // A service of its own: the agent-attached ones send their own loop profiles.
    const body = pprof('renderer', start, [
      {
        stack: [
          ['handle', '/srv/app.js', 3, 'app'],
          ['renderTable', '/srv/render.js', 12, 'app'],
        ],
        count: 200,
      },
      {
        stack: [
          ['handle', '/srv/app.js', 3, 'app'],
          ['parse', '/srv/node_modules/qs/lib/parse.js', 40, 'dependency'],
        ],
        count: 50,
      },
    ]);
    const res = await fetch(`${server.otlp}/v1/profiles/pprof`, { method: 'POST', body });
    assert.equal(res.status, 200);
    const page = await open('/profile?since=15m&service=renderer', 'profile');
    assert.ok(await drawn(page, '#cpu'), 'the CPU flame graph is drawn');
    // The root is the first row; renderTable (200 of 250 samples) sits two rows down, from the left edge.
    const box = (await page.$('#cpu'))!;
    const b = (await box.boundingBox())!;
    await page.mouse.click(b.x + 20, b.y + 18 * 2 + 9);
    assert.match(
      (await page.textContent('#cpu-detail'))!,
      /renderTable \(\/srv\/render\.js:12\) · 2\.00 s in all \(80%\)/,
    );
    assert.match((await page.getAttribute('a[download]', 'href'))!, /\/api\/dash\/profile\.pb\.gz\?/);
    await page.close();
  });

  it('fits every page to 1280 px without scrolling sideways, and shoots it at 1280×800 and 1920×1080', async () => {
    const pages = [
      '/',
      '/routes',
      '/locks',
      '/lock?name=account%3A7',
      '/blocking',
      '/profile',
      '/offload',
      '/traces',
      '/alerts',
    ];
    for (const [width, height] of [
      [1280, 800],
      [1920, 1080],
    ]) {
      for (const path of pages) {
        const page = await browser.newPage({ viewport: { width, height } });
        await page.goto(`${server.api}${path}${path.includes('?') ? '&' : '?'}since=15m`);
        await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
        const name = `${width}x${height}-${path.replace(/[^a-z]+/g, '-').replace(/^-|-$/g, '') || 'overview'}`;
        await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
        // Runs in the page: the test's own TypeScript has no DOM types.
        const over = await page.evaluate(() => {
          const d = (
            globalThis as unknown as {
              document: {
                documentElement: { scrollWidth: number; clientWidth: number };
                querySelectorAll(s: string): ArrayLike<{
                  scrollWidth: number;
                  clientWidth: number;
                  querySelector(s: string): { textContent: string } | null;
                }>;
              };
            }
          ).document;
          const cards = Array.from(d.querySelectorAll('.card'))
            .filter((c) => c.scrollWidth > c.clientWidth + 1)
            .map((c) => `${c.querySelector('h2')?.textContent}: ${c.scrollWidth} > ${c.clientWidth}`);
          return { page: d.documentElement.scrollWidth - d.documentElement.clientWidth, cards };
        });
        assert.ok(over.page <= 0, `${path} at ${width} px scrolls sideways by ${over.page} px`);
        if (width === 1280) assert.deepEqual(over.cards, [], `${path}: cards wider than the page`);
        await page.close();
      }
    }
  });

  it('alert on this: a lock row drafts a rule in the editor that saves as it is; an empty file opens with an example', async () => {
    const empty = await open('/alerts', 'alerts-empty');
    assert.match(await empty.inputValue('#rules-text'), /^# No rules yet\. An example/);
    await empty.close();

    const locks = await open('/locks?since=15m&service=worker', 'locks-alert-on');
    const row = locks.locator('#locks tbody tr', { hasText: 'account:7' });
    await row.locator('a.alert-on').click();
    await locks.waitForSelector('body[data-ready="true"] #rules-text');
    const text = await locks.inputValue('#rules-text');
    assert.match(text, /signal: lock-wait-p95\n\s+service: "worker"\n\s+resource: "account:7"\n\s+above: \d+ms/);
    await locks.click('#rules-save');
    await locks.waitForSelector('#rules-message.ok');
    const { body } = await getJson(`${server.api}/api/alerts`);
    assert.ok(
      body.rules.some(
        (r: { name: string; resource: string }) => r.name === 'slow lock account:7' && r.resource === 'account:7',
      ),
      JSON.stringify(body.rules),
    );
    await locks.close();
    assert.equal((await fetch(`${server.api}/api/alerts/rules`, { method: 'PUT', body: '' })).status, 200);
  });

  it('says so when a window has no data', async () => {
    const page = await open('/locks?from=2020-01-01T00:00:00.000Z&to=2020-01-01T01:00:00.000Z', 'empty');
    assert.match((await page.textContent('main'))!, /No lock costs time over the thresholds in this window/);
    assert.match((await page.textContent('main'))!, /No lock was acquired in this window/);
    assert.match((await page.textContent('main'))!, /No lock wait of 1 ms or more in this window/);
    await page.close();
  });
});
