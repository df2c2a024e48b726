// The small parts the collector defends itself with: the memory budget's accounting, the
// rate-limited log line, the Host check, byte sizes and the secret comparison.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DECODE_FACTOR, MemoryBudget, OverBudget } from '../collector/memory-budget';
import { RateLimitedLog } from '../common/rate-limited-log';
import { hostHeaderIsLoopback } from '../common/listen';
import { formatSize, parseSize } from '../common/size';
import { sameSecret } from '../common/secret';

describe('memory budget', () => {
  it('refuses what does not fit beside other requests, and gives everything back at once', () => {
    const budget = new MemoryBudget(1000, () => undefined);
    const a = budget.claim();
    const b = budget.claim();
    a.take(600, 'a body');
    assert.throws(
      () => b.take(500, 'its body'),
      (e: unknown) =>
        e instanceof OverBudget && !e.alone && /in use by other requests; its body needs 500 bytes/.test(e.message),
    );
    assert.equal(budget.refusals, 1);
    b.take(400, 'its body');
    assert.equal(budget.inUse, 1000);
    assert.ok(budget.exhausted);
    a.release();
    a.release();
    assert.equal(budget.inUse, 400, 'a second release gives nothing back twice');
    b.release();
    assert.equal(budget.inUse, 0);
    assert.equal(budget.peak, 1000);
  });

  it('says when a request could never fit, even alone', () => {
    const budget = new MemoryBudget(1000, () => undefined);
    const c = budget.claim();
    c.take(100, 'its body');
    assert.throws(
      () => c.reserveDecode(100, 'decoding it'),
      (e: unknown) => e instanceof OverBudget && e.alone && /whole memory budget/.test(e.message),
    );
  });

  it('reserves decoding once, however often the size is learnt', () => {
    const budget = new MemoryBudget(100_000, () => undefined);
    const c = budget.claim();
    c.reserveDecode(1000, 'decoding it');
    c.reserveDecode(1000, 'decoding it');
    assert.equal(budget.inUse, DECODE_FACTOR * 1000);
    c.reserveDecode(1500, 'decoding it');
    assert.equal(budget.inUse, DECODE_FACTOR * 1500);
  });

  it('fits the largest body alone: read, its chunks, inflated and decoded', () => {
    const limit = 256 * 1024 * 1024;
    const body = MemoryBudget.largestBody(limit);
    assert.equal(body, 16 * 1024 * 1024);
    const c = new MemoryBudget(limit, () => undefined).claim();
    c.take(2 * body, 'its body');
    c.take(body, 'inflating its body');
    c.reserveDecode(body, 'decoding it');
  });

  it('asks for a collection once a quarter of the budget has been given back, and after a burst', async () => {
    let collections = 0;
    const budget = new MemoryBudget(1000, () => collections++);
    const c = budget.claim();
    c.take(300, 'x');
    c.release();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(collections, 1);
    // Under the quarter but idle: collected after a second.
    const d = budget.claim();
    d.take(100, 'x');
    d.release();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(collections, 1, 'not before the idle second');
    await new Promise((r) => setTimeout(r, 900));
    assert.equal(collections, 2);
    assert.equal(budget.sweeps, 2);
  });
});

describe('rate-limited log', () => {
  it('writes one line per interval and says how many it left out', () => {
    let now = 0;
    const lines: string[] = [];
    const log = new RateLimitedLog(
      (l) => lines.push(l),
      10_000,
      () => now,
    );
    log.log('boom');
    log.log('boom');
    now = 5000;
    log.log('boom');
    now = 10_000;
    log.log('boom again');
    assert.deepEqual(lines, ['boom', 'boom again (2 more since the last line like this)']);
  });
});

describe('Host header check', () => {
  it('takes loopback names and addresses, with or without a port, and nothing else', () => {
    for (const h of ['localhost', 'localhost:4318', '127.0.0.1:4318', '127.1.2.3', '[::1]', '[::1]:4318', 'LOCALHOST'])
      assert.ok(hostHeaderIsLoopback(h), h);
    for (const h of [undefined, '', 'evil.example', 'evil.example:4318', 'localhost.evil.example', '[::1', '10.0.0.1'])
      assert.ok(!hostHeaderIsLoopback(h), String(h));
  });
});

describe('sizes and secrets', () => {
  it('reads sizes as people write them, and says what it accepts otherwise', () => {
    assert.equal(parseSize('256MiB'), 256 * 1024 * 1024);
    assert.equal(parseSize('1GiB'), 1024 ** 3);
    assert.equal(parseSize('512M'), 512 * 1024 * 1024);
    assert.equal(parseSize('64kb'), 64 * 1024);
    assert.equal(parseSize('1000'), 1000);
    assert.match((parseSize('lots') as Error).message, /"lots" is not a size/);
    assert.equal(formatSize(256 * 1024 * 1024), '256 MiB');
    assert.equal(formatSize(1.5 * 1024 * 1024), '1.5 MiB');
    assert.equal(formatSize(100), '100 bytes');
  });

  it('compares secrets of any length', () => {
    assert.ok(sameSecret('s3cret-token-of-some-length', 's3cret-token-of-some-length'));
    assert.ok(!sameSecret('s3cret', 's3cret-token-of-some-length'));
    assert.ok(!sameSecret('', 'x'));
  });
});
