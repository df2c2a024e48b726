// Loop CPU profiles at the collector: a pprof file posted as the agents post it is stored with
// its stacks and sample times, drawn as a flame graph, downloadable as pprof again, named by the
// loop-saturated finding when the loop was busy; a bad one is refused with the reason.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { getJson, startServer, type TestServer } from './helpers';
import { Profile, pprof, type Frame } from './pprof';
import { PROFILE_PATH } from '../common/conventions';
import type { FlameNode, Finding, ProfilePage } from '../common/types';

const post = (server: TestServer, body: Buffer) =>
  fetch(`${server.otlp}${PROFILE_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body,
  });

/** The loop's utilization as the agents report it (a gauge). */
async function utilization(server: TestServer, service: string, value: number, atNs: bigint): Promise<void> {
  const res = await fetch(`${server.otlp}/v1/metrics`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'nodejs.eventloop.utilization',
                  gauge: { dataPoints: [{ timeUnixNano: String(atNs), asDouble: value }] },
                },
              ],
            },
          ],
        },
      ],
    }),
  });
  assert.equal(res.status, 200);
}

const find = (n: FlameNode, name: string): FlameNode | undefined =>
  n.name === name ? n : n.children.map((c) => find(c, name)).find(Boolean);

describe('loop CPU profiles', () => {
  let server: TestServer;
  const start = BigInt(Date.now() - 60_000) * 1_000_000n;
  const render: Frame[] = [
    ['handle', '/srv/node_modules/express/lib/router/layer.js', 95, 'dependency'],
    ['report', '/srv/app.js', 20, 'app'],
    ['renderTable', '/srv/render.js', 7, 'app'],
    ['JSON.stringify', '', 0, 'runtime'],
  ];
  const save: Frame[] = [
    ['handle', '/srv/node_modules/express/lib/router/layer.js', 95, 'dependency'],
    ['create', '/srv/node_modules/json-server/lib/router.js', 41, 'dependency'],
    ['write', '/srv/node_modules/lowdb/adapters/FileSync.js', 30, 'dependency'],
    ['stringify', '/srv/node_modules/lowdb/adapters/_stringify.js', 5, 'dependency'],
    ['JSON.stringify', '', 0, 'runtime'],
  ];
  const exporter: Frame[] = [
    ['send', '/srv/node_modules/@opentelemetry/otlp-exporter-base/build/src/index.js', 10, 'telemetry'],
  ];

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
  });

  it('stores a posted profile and draws it as a flame graph with each frame where it is', async () => {
    const res = await post(
      server,
      pprof('shop', start, [
        { stack: save, count: 300 },
        { stack: render, count: 100 },
        { stack: exporter, count: 20 },
      ]),
    );
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { samples: 420 });
    const { body } = await getJson<ProfilePage>(`${server.api}/api/dash/profile?service=shop&since=15m`);
    assert.equal(Math.round(body.cpu.totalMs), 4200);
    const stringify = find(body.cpu, 'stringify')!;
    assert.equal(stringify.file, '/srv/node_modules/lowdb/adapters/_stringify.js');
    assert.equal(stringify.line, 5);
    assert.equal(stringify.origin, 'dependency');
    assert.equal(Math.round(find(body.cpu, 'renderTable')!.totalMs), 1000);
    assert.equal(body.windows[0].samples, 420);
    assert.equal(body.windows[0].periodMs, 10);
  });

  it('downloads the window as a pprof file that a protobuf reader decodes with the same weights', async () => {
    const res = await fetch(`${server.api}/api/dash/profile.pb.gz?service=shop&since=15m`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition') ?? '', /shop-loop-cpu\.pb\.gz/);
    const p = Profile.toObject(Profile.decode(zlib.gunzipSync(Buffer.from(await res.arrayBuffer()))), {
      longs: Number,
    }) as { sample: Array<{ value: number[] }>; stringTable: string[]; function: Array<{ name: number }> };
    const total = p.sample.reduce((a, s) => a + s.value[1], 0);
    assert.equal(total, 420 * 10_000_000);
    const names = p.function.map((f) => p.stringTable[f.name]);
    assert.ok(names.includes('renderTable') && names.includes('stringify'), names.join(', '));
  });

  it('finds a saturated loop and names the dependency path that kept it busy, not the telemetry', async () => {
    await utilization(server, 'shop', 0.93, start + 2_000_000_000n);
    const { body } = await getJson<Finding[]>(`${server.api}/api/findings?service=shop&since=15m`);
    const f = body.find((x) => x.kind === 'loop-saturated');
    assert.ok(f, JSON.stringify(body));
    assert.equal(f.severity, 'critical');
    assert.equal(f.location?.function, 'stringify');
    assert.match(f.title, /JSON\.stringify in stringify \(lowdb\)/);
    assert.match(f.detail, /called from write \(\/srv\/node_modules\/lowdb\/adapters\/FileSync\.js:30\)/);
    assert.match(f.detail, /71% of the loop's time/); // 300 of 420 samples
    assert.ok(Math.abs(f.figures.telemetryMs - 200) < 1e-6, JSON.stringify(f.figures));
  });

  it('finds nothing for a loop busy a third of the time', async () => {
    const quiet = BigInt(Date.now() - 30_000) * 1_000_000n;
    assert.equal((await post(server, pprof('calm', quiet, [{ stack: render, count: 400 }]))).status, 200);
    await utilization(server, 'calm', 0.3, quiet + 1_000_000_000n);
    const { body } = await getJson<Finding[]>(`${server.api}/api/findings?service=calm&since=15m`);
    assert.deepEqual(body, []);
  });

  it('refuses what is not a profile, naming the problem, and keeps taking good ones', async () => {
    const garbage = await post(server, Buffer.from('not a profile at all'));
    assert.equal(garbage.status, 400);
    assert.match(
      ((await garbage.json()) as { message: string }).message,
      /invalid profile: the body is not a pprof profile/,
    );
    const noService = pprof('', start, [{ stack: render, count: 1 }]);
    const res = await post(server, noService);
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { message: string }).message, /no service\.name/);
    assert.equal((await post(server, pprof('shop', start, [{ stack: render, count: 1 }]))).status, 200);
  });
});
