// `npm run screenshots`: the README's pictures, from the demo as anyone can run it. Starts the
// demo, waits until its services have their findings, and shoots the overview and a trace
// whose waterfall marks a lock wait (and a blocked loop, when a trace has both) in headless
// Chromium, as small JPEGs in docs/images/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { packageRoot } from '../common/package-root';
import type { Finding, TraceSummary } from '../common/types';
import { startDemo } from './demo';

const OUT = join(packageRoot(), 'docs', 'images');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Services whose findings the overview should show before it is shot. */
const AWAITED = ['catalog', 'wallet', 'sessions', 'images', 'crawler'];
const MAX_WAIT_MS = 180_000;
/** More of the demo after that, so that the overview's sparklines have a history. */
const SETTLE_MS = 60_000;

async function json<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return (await res.json()) as T;
}

async function until<T>(what: string, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + MAX_WAIT_MS;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`screenshots: gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** A trace with a lock wait, preferring one that also has a blocked loop (service by service). */
async function pickTrace(dashboard: string): Promise<string> {
  const list = (kind: string, service: string) =>
    json<TraceSummary[]>(
      `${dashboard}/api/traces?since=15m&kind=${kind}&service=${encodeURIComponent(service)}&limit=200`,
    ).then((ts) => ts.map((t) => t.traceId));
  return until('a trace with a lock wait', async () => {
    let fallback: string | undefined;
    for (const service of AWAITED) {
      const [waits, blocks] = await Promise.all([list('lock-wait', service), list('loop-block', service)]);
      const both = waits.find((id) => blocks.includes(id));
      if (both) return both;
      fallback ??= waits[0];
    }
    return fallback;
  });
}

async function shoot(page: Page, url: string, file: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  await page.screenshot({ path: join(OUT, file), type: 'jpeg', quality: 70 });
  console.log(`screenshots: ${join('docs', 'images', file)}`);
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const demo = await startDemo({ port: 0, otlpPort: 0, log: (line) => console.log(line) });
  const browser = await chromium.launch({
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
  try {
    await until('the demo services to have findings', async () => {
      const findings = await json<Finding[]>(`${demo.dashboard}/api/findings?since=15m`);
      return AWAITED.every((s) => findings.some((f) => f.service === s)) ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const traceId = await pickTrace(demo.dashboard);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await shoot(page, `${demo.dashboard}/?since=5m`, 'overview.jpg');
    await shoot(page, `${demo.dashboard}/trace?id=${traceId}&since=15m`, 'trace.jpg');
  } finally {
    await browser.close();
    await demo.stop();
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
