// The collector under hostile load, each time a real `stallscope serve` process on loopback: its
// memory (RSS, read from /proc) stays within the budget through a burst of gzip bombs and of
// large valid requests and comes back after; AnyValues nested thousands deep are answered as
// documented with nothing on stderr; a foreign Host cannot write on the OTLP port; health says
// 503 on a full disk and 200 again once space is freed; a request that stalls is cut off.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { tempDir } from './helpers';

const CLI = join(__dirname, '..', 'cli', 'main.js');
const MiB = 1024 * 1024;
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Collector {
  child: ChildProcess;
  otlp: string;
  api: string;
  otlpPort: number;
  stderr: () => string;
  rss: () => number;
  stop(): Promise<void>;
}

/** `stallscope serve` in its own process over a fresh database in `dir`. */
async function collector(dir: string, ...flags: string[]): Promise<Collector> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--db', join(dir, 'hostile.db'), '--otlp-port', '0', '--port', '0', '--retention', '0', ...flags],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const [, otlpPort, apiPort] = await new Promise<RegExpExecArray>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /collecting OTLP on http:\/\/127\.0\.0\.1:(\d+), dashboard on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}) before listening: ${err}`)));
  });
  return {
    child,
    otlpPort: Number(otlpPort),
    otlp: `http://127.0.0.1:${otlpPort}`,
    api: `http://127.0.0.1:${apiPort}`,
    stderr: () => err,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function spanRequest(spans: object[], service = 'hostile') {
  return {
    resourceSpans: [
      { resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] }, scopeSpans: [{ spans }] },
    ],
  };
}

function jsonSpan(traceId: string, spanId: string, attributes: object[] = []) {
  const now = BigInt(Date.now()) * 1_000_000n;
  return {
    traceId,
    spanId,
    name: 'op',
    kind: 1,
    startTimeUnixNano: String(now - 1_000_000n),
    endTimeUnixNano: String(now),
    attributes,
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A POST with full control of the headers (fetch does not let a test set Host). */
function post(url: string, body: Buffer | string, headers: Record<string, string | number>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const postJson = (c: Collector, path: string, body: object | string, headers: Record<string, string> = {}) =>
  post(`${c.otlp}${path}`, typeof body === 'string' ? body : JSON.stringify(body), {
    'content-type': 'application/json',
    ...headers,
  });

async function health(c: Collector): Promise<{ status: number; body: any }> {
  const res = await fetch(`${c.api}/healthz`);
  return { status: res.status, body: await res.json() };
}

describe('memory under a burst of gzip bombs and of large requests', () => {
  const BUDGET = 256 * MiB;
  /** What the process may hold beyond the budget: garbage awaiting collection, zlib's state, heap growth. */
  const MARGIN = 128 * MiB;
  let dir: string;
  let c: Collector;
  before(async () => {
    dir = tempDir();
    c = await collector(dir, '--memory-budget', '256MiB');
  });
  after(async () => {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `burst` while sampling the collector's RSS every few milliseconds; returns the peak. */
  async function peakDuring(burst: () => Promise<void>): Promise<number> {
    let peak = c.rss();
    const sampler = setInterval(() => (peak = Math.max(peak, c.rss())), 5);
    try {
      await burst();
    } finally {
      clearInterval(sampler);
    }
    return Math.max(peak, c.rss());
  }

  it('holds RSS within the budget plus a fixed margin, refuses the excess with 503, and gives the memory back', async () => {
    // 64 MiB of zeros in about 64 kB; the body limit is 1/16 of the budget, 16 MiB.
    const bomb = zlib.gzipSync(Buffer.alloc(64 * MiB), { level: 9 });
    // Its trailer says 64 MiB, which the collector refuses unread; a trailer that lies is only
    // found out by inflating, so those bombs are the ones that test the budget.
    const liar = Buffer.from(bomb);
    liar.writeUInt32LE(1000, liar.length - 4);
    await sleep(500);
    const before = c.rss();
    const statuses: Record<number, number> = {};
    let retryAfter = 0;
    const peak = await peakDuring(async () => {
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const res = await post(`${c.otlp}/v1/traces`, i % 4 === 0 ? bomb : liar, {
            'content-type': 'application/x-protobuf',
            'content-encoding': 'gzip',
          });
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status === 503 && res.headers['retry-after'] === '1') retryAfter++;
        }),
      );
    });
    assert.deepEqual(Object.keys(statuses).sort(), ['413', '503'], JSON.stringify(statuses));
    assert.equal(retryAfter, statuses[503], 'every 503 says when to retry');
    const h = await health(c);
    assert.equal(h.body.memory.budgetBytes, BUDGET);
    assert.ok(h.body.memory.refused >= statuses[503], `refusals counted: ${h.body.memory.refused}`);
    assert.ok(h.body.memory.peakBytes <= BUDGET);
    assert.ok(
      peak - before <= BUDGET + MARGIN,
      `RSS before ${before / MiB} MiB, peak ${(peak / MiB).toFixed(0)} MiB: over the budget plus ${MARGIN / MiB} MiB`,
    );
    // Back near where it was once the burst is over (the budget asks for a collection).
    const deadline = Date.now() + 5000;
    let afterward = c.rss();
    while (afterward - before > 64 * MiB && Date.now() < deadline) {
      await sleep(100);
      afterward = c.rss();
    }
    process.stdout.write(
      `# bombs: RSS before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, after ${(afterward / MiB).toFixed(0)} MiB; budget ${BUDGET / MiB} MiB; ${JSON.stringify(statuses)}\n`,
    );
    assert.ok(afterward - before <= 64 * MiB, `RSS still ${(afterward / MiB).toFixed(0)} MiB 5 s after the burst`);
  });

  it('holds RSS within the budget for large valid requests too, which are all stored once retried', async () => {
    const LARGE = 12;
    // One span each with a 4 MB attribute: a few kB gzipped, costly to decode and store.
    const bodies = Array.from({ length: LARGE }, (_, i) =>
      zlib.gzipSync(
        JSON.stringify(
          spanRequest(
            [jsonSpan(hex(0xb16 + i, 32), hex(1, 16), [{ key: 'payload', value: { stringValue: 'x'.repeat(4e6) } }])],
            'large',
          ),
        ),
      ),
    );
    const before = c.rss();
    let refused = 0;
    const peak = await peakDuring(async () => {
      await Promise.all(
        bodies.map(async (body) => {
          for (let attempt = 0; attempt < 100; attempt++) {
            const res = await post(`${c.otlp}/v1/traces`, body, {
              'content-type': 'application/json',
              'content-encoding': 'gzip',
            });
            if (res.status === 200) return;
            assert.equal(res.status, 503, res.body.toString());
            refused++;
            await sleep(50);
          }
          assert.fail('not stored after 100 attempts');
        }),
      );
    });
    process.stdout.write(
      `# large requests: RSS before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB; ${refused} refusals retried\n`,
    );
    assert.ok(refused > 0, 'twelve 4 MB requests at once do not fit a 256 MiB budget');
    assert.ok(peak - before <= BUDGET + MARGIN, `peak ${(peak / MiB).toFixed(0)} MiB from ${before / MiB} MiB`);
    const stored = await fetch(`${c.api}/api/traces/${hex(0xb16 + LARGE - 1, 32)}`);
    assert.equal(stored.status, 200);
  });
});

// ---- protobuf by hand: protobufjs will not encode messages nested past its own limit ----

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
const ld = (field: number, payload: Buffer | string) => {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  return Buffer.concat([varint((field << 3) | 2), varint(p.length), p]);
};
const fixed64 = (field: number, v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return Buffer.concat([varint((field << 3) | 1), b]);
};

/** An AnyValue that is `levels` arrays, one inside the other, around a string. */
function deepProtoValue(levels: number): Buffer {
  let v = ld(1, 'bottom');
  for (let i = 0; i < levels; i++) v = ld(5, ld(1, v));
  return v;
}

function protoTraces(spans: Array<{ spanId: number; levels?: number }>): Buffer {
  const now = BigInt(Date.now()) * 1_000_000n;
  const encoded = spans.map((s) =>
    Buffer.concat([
      ld(1, Buffer.from(hex(0xdee9, 32), 'hex')),
      ld(2, Buffer.from(hex(s.spanId, 16), 'hex')),
      ld(5, 'op'),
      fixed64(7, now - 1000n),
      fixed64(8, now),
      s.levels === undefined ? Buffer.alloc(0) : ld(9, Buffer.concat([ld(1, 'deep'), ld(2, deepProtoValue(s.levels))])),
    ]),
  );
  return ld(1, ld(2, Buffer.concat(encoded.map((s) => ld(2, s)))));
}

/** The same in OTLP/JSON, as text: JSON.stringify itself would overflow the stack. */
function deepJsonValue(levels: number): string {
  return `${'{"arrayValue":{"values":['.repeat(levels)}{"stringValue":"bottom"}${']}}'.repeat(levels)}`;
}

/** A request as JSON text with each `{ deep: n }` placeholder replaced by a value n levels deep. */
function withDeep(request: object): string {
  return JSON.stringify(request).replace(/\{"deep":(\d+)\}/g, (_, n) => deepJsonValue(Number(n)));
}

describe('deeply nested AnyValues', () => {
  let dir: string;
  let c: Collector;
  before(async () => {
    dir = tempDir();
    c = await collector(dir);
  });
  after(async () => {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const partial = (a: Answer) => JSON.parse(a.body.toString()).partialSuccess;

  it('rejects the item in JSON, 3,000 levels deep, naming its path, and stores the rest', async () => {
    const trace = hex(0xdee1, 32);
    const res = await postJson(
      c,
      '/v1/traces',
      withDeep(
        spanRequest([
          jsonSpan(trace, hex(1, 16), [{ key: 'deep', value: { deep: 3000 } }]),
          jsonSpan(trace, hex(2, 16), [{ key: 'twenty', value: { deep: 20 } }]),
        ]),
      ),
    );
    assert.equal(res.status, 200);
    assert.equal(partial(res).rejectedSpans, '1');
    assert.match(
      partial(res).errorMessage,
      new RegExp(`spans\\[0\\]: attributes\\.deep${'\\[0\\]'.repeat(20)}: AnyValue nested deeper than 20 levels`),
    );
    const stored = (await (await fetch(`${c.api}/api/traces/${trace}`)).json()) as { spans: unknown[] };
    assert.equal(stored.spans.length, 1, 'the span nested 20 levels is stored');

    const logs = await postJson(
      c,
      '/v1/logs',
      withDeep({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ timeUnixNano: '5', body: { deep: 3000 } }] }] }] }),
    );
    assert.equal(logs.status, 200);
    assert.equal(partial(logs).rejectedLogRecords, '1');
    assert.match(
      partial(logs).errorMessage,
      /logRecords\[0\]: body\[0\]\[0\].*: AnyValue nested deeper than 20 levels/,
    );
  });

  it('answers a resource nested 3,000 levels deep with a 400 naming the path', async () => {
    const res = await postJson(
      c,
      '/v1/traces',
      withDeep({
        resourceSpans: [{ resource: { attributes: [{ key: 'r', value: { deep: 3000 } }] }, scopeSpans: [] }],
      }),
    );
    assert.equal(res.status, 400);
    assert.match(
      JSON.parse(res.body.toString()).message,
      /invalid ExportTraceServiceRequest: resourceSpans\[0\]\.resource\.attributes\.r\[0\].*: AnyValue nested deeper than 20 levels/,
    );
  });

  it('rejects the item alike in protobuf, and refuses protobuf past its decoding depth with a 400', async () => {
    const items = await post(`${c.otlp}/v1/traces`, protoTraces([{ spanId: 1, levels: 25 }, { spanId: 2 }]), {
      'content-type': 'application/x-protobuf',
    });
    assert.equal(items.status, 200);
    const text = items.body.toString('latin1');
    assert.match(text, /spans\[0\]: attributes\.deep(\[0\]){20}: AnyValue nested deeper than 20 levels/);
    const stored = (await (await fetch(`${c.api}/api/traces/${hex(0xdee9, 32)}`)).json()) as { spans: unknown[] };
    assert.equal(stored.spans.length, 1);

    const deep = await post(`${c.otlp}/v1/traces`, protoTraces([{ spanId: 3, levels: 3000 }]), {
      'content-type': 'application/x-protobuf',
    });
    assert.equal(deep.status, 400);
    assert.match(deep.body.toString('latin1'), /messages nested deeper than 100 levels/);
  });

  it('keeps stderr quiet through all of it, and keeps serving', async () => {
    const trace = hex(0xdee2, 32);
    assert.equal((await postJson(c, '/v1/traces', spanRequest([jsonSpan(trace, hex(1, 16))]))).status, 200);
    assert.equal(c.stderr(), '');
    assert.equal((await health(c)).body.ingest.internalErrors, 0);
  });
});

describe('the OTLP port on loopback', () => {
  let dir: string;
  let c: Collector;
  before(async () => {
    dir = tempDir();
    c = await collector(dir);
  });
  after(async () => {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a request addressed to a foreign Host, and stores nothing of it', async () => {
    const trace = hex(0xe71, 32);
    const body = JSON.stringify(spanRequest([jsonSpan(trace, hex(1, 16))]));
    const evil = await post(`${c.otlp}/v1/traces`, body, { 'content-type': 'application/json', host: 'evil.example' });
    assert.equal(evil.status, 403);
    const refusal = JSON.parse(evil.body.toString());
    assert.equal(refusal.code, 7);
    assert.match(refusal.message, /host "evil\.example" is not this machine/);
    const rebound = await post(`${c.otlp}/v1/traces`, body, {
      'content-type': 'application/json',
      host: `evil.example:${c.otlpPort}`,
    });
    assert.equal(rebound.status, 403);
    assert.equal((await fetch(`${c.api}/api/traces/${trace}`)).status, 404, 'nothing stored');
    for (const host of [`localhost:${c.otlpPort}`, `[::1]:${c.otlpPort}`, `127.0.0.1:${c.otlpPort}`]) {
      const ok = await post(`${c.otlp}/v1/traces`, body, { 'content-type': 'application/json', host });
      assert.equal(ok.status, 200, host);
    }
    assert.equal((await fetch(`${c.api}/api/traces/${trace}`)).status, 200);
  });

  it('closes a request whose body stalls, and one whose headers stall, after --request-timeout', async () => {
    const quickDir = tempDir();
    const quick = await collector(quickDir, '--request-timeout', '1s');
    try {
      const stalled = (data: string) =>
        new Promise<{ ms: number; answer: string }>((resolve, reject) => {
          const started = Date.now();
          const socket = net.connect(quick.otlpPort, '127.0.0.1', () => socket.write(data));
          let answer = '';
          socket.on('data', (d) => (answer += d));
          socket.on('error', () => undefined);
          socket.on('close', () => resolve({ ms: Date.now() - started, answer }));
          setTimeout(() => reject(new Error('the connection was still open after 8 s')), 8000).unref();
        });
      const body = await stalled(
        'POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"resource',
      );
      assert.ok(body.ms >= 900, `closed after ${body.ms} ms, before the timeout`);
      assert.match(body.answer, /^HTTP\/1\.1 408/);
      const headers = await stalled('POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty');
      assert.ok(headers.ms >= 900, `closed after ${headers.ms} ms`);
      const ok = await postJson(quick, '/v1/traces', spanRequest([jsonSpan(hex(0x408, 32), hex(1, 16))]));
      assert.equal(ok.status, 200);
    } finally {
      await quick.stop();
      rmSync(quickDir, { recursive: true, force: true });
    }
  });
});

describe('health on a full disk', () => {
  const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

  it('turns 503 with the reason while writes fail, says so in the header, and 200 once space is freed', async (t) => {
    const dir = tempDir();
    const disk = join(dir, 'disk');
    mkdirSync(disk);
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', disk], { encoding: 'utf8' });
    if (mount.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      t.skip(`cannot mount a tmpfs here (${(mount.stderr || mount.error?.message || '').trim()}): needs root`);
      return;
    }
    let c: Collector | undefined;
    try {
      c = await collector(disk);
      const batch = (n: number) =>
        spanRequest(
          Array.from({ length: 100 }, (_, i) =>
            jsonSpan(hex(0xf011 + n, 32), hex(i + 1, 16), [
              { key: 'payload', value: { stringValue: `${n}-${i}`.repeat(2000) } },
            ]),
          ),
        );
      assert.equal((await postJson(c, '/v1/traces', batch(0))).status, 200);
      assert.equal((await health(c)).status, 200);

      // Fill what is left of the disk.
      const filler = join(disk, 'filler');
      const fd = openSync(filler, 'w');
      const block = Buffer.alloc(64 * 1024, 1);
      try {
        for (;;) writeSync(fd, block);
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        closeSync(fd);
      }
      let refused: Answer | undefined;
      for (let n = 1; n <= 20 && !refused; n++) {
        const res = await postJson(c, '/v1/traces', batch(n));
        if (res.status === 503) refused = res;
        else assert.equal(res.status, 200);
      }
      assert.ok(refused, 'a full disk refused no write');
      assert.equal(refused.headers['retry-after'], '1');
      const degraded = await health(c);
      assert.equal(degraded.status, 503);
      assert.equal(degraded.body.status, 'degraded');
      assert.equal(degraded.body.writer.reason, 'disk full');
      assert.match(degraded.body.reasons[0], /^disk full: .*full/);

      assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox'] });
      try {
        const page = await browser.newPage();
        await page.goto(`${c.api}/`);
        await page.waitForSelector('#health-badge:not([hidden])', { timeout: 10_000 });
        assert.equal(await page.textContent('#health-badge'), 'Ingest refused: disk full');
      } finally {
        await browser.close();
      }

      rmSync(filler);
      // With nothing sent, the writer finds out by itself that it can write again.
      const deadline = Date.now() + 5000;
      let recovered = await health(c);
      while (recovered.status !== 200 && Date.now() < deadline) {
        await sleep(100);
        recovered = await health(c);
      }
      assert.equal(recovered.status, 200, JSON.stringify(recovered.body.reasons));
      assert.equal(recovered.body.writer.state, 'ok');
      assert.equal((await postJson(c, '/v1/traces', batch(99))).status, 200);
    } finally {
      await c?.stop();
      spawnSync('umount', [disk]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
