// Sync calls too short for a span, end to end: the agent in a real service counts every one per
// API and site, and the collector's finding adds them up. A file of its own: it runs a collector
// (better-sqlite3), which the Node 24 run of the in-process suites does not build for.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Finding } from '../common/types';
import { REGISTER, agentEnv, markLine, startApp, stop } from './agent-apps';
import { eventually, getJson, startServer } from './helpers';

describe('sync calls under the span threshold, end to end', () => {
  it('add up: 300 calls of 8 ms are a sync-call finding of about 2.4 s at their site', async () => {
    const server = await startServer();
    try {
      const app = await startApp(
        ['--require', REGISTER, 'blocking-app.js'],
        agentEnv(server, 'short-calls', { STALLSCOPE_SYNC_THRESHOLD_MS: '10' }),
      );
      try {
        for (let i = 0; i < 300; i++) await fetch(`http://127.0.0.1:${app.port}/pause?ms=8`).then((r) => r.text());
        const sync = await eventually(
          async () => {
            const { body } = await getJson<Finding[]>(`${server.api}/api/findings?service=short-calls&since=10m`);
            const f = body.find((x) => x.kind === 'sync-call');
            return f && f.count >= 300 ? f : undefined;
          },
          15_000,
          'a sync-call finding counting the 300 calls',
        );
        assert.equal(sync.count, 300);
        assert.ok(sync.impactMs >= 2300 && sync.impactMs < 3000, `300 calls of 8 ms: ${sync.impactMs} ms`);
        assert.equal(sync.location?.function, 'pauseFor');
        assert.equal(sync.location?.line, markLine('blocking-app.js', 'short-wait'));
        assert.match(sync.title, /^Atomics\.wait /);
        // Without a call over the threshold (a busy machine can stretch one) there is no span, and the
        // finding says what each took instead of the longest.
        if (sync.figures.maxMs !== undefined) assert.ok(sync.figures.maxMs >= 10, JSON.stringify(sync.figures));
        else
          assert.match(
            sync.detail,
            /ran 300 times while serving, blocking the event loop for 2\.\d+ s in all \(8(\.\d+)? ms each on average\)/,
          );
      } finally {
        await stop(app);
      }
    } finally {
      await server.close();
    }
  });
});
