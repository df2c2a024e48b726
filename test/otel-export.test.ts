// A real OpenTelemetry JS SDK exports to a running collector over OTLP/HTTP, JSON and protobuf;
// everything is read back through the query API.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, SpanStatusCode, context, trace, type HrTime } from '@opentelemetry/api';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import {
  AggregationTemporality,
  AggregationType,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { getJson, startServer, type TestServer } from './helpers';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.close();
});

// A start time with nanoseconds that a millisecond clock could never produce.
const START: HrTime = [1_900_000_000, 123_456_789];
const END: HrTime = [1_900_000_001, 987_654_321];
// One attribute of every OTLP value type the JS SDK produces, including markup to store verbatim.
const ATTRIBUTES = {
  'str.attr': 'héllo "quoted" <b>',
  'int.attr': 42,
  'neg.attr': -7,
  'double.attr': 3.25,
  'bool.attr': true,
  'false.attr': false,
  'strs.attr': ['a', 'b'],
  'ints.attr': [1, 2, 3],
  'doubles.attr': [1.5, 2.5],
  'bools.attr': [true, false],
};
const nanos = (t: HrTime) => (BigInt(t[0]) * 1_000_000_000n + BigInt(t[1])).toString();

for (const [protocol, Exporter] of [
  ['json', JsonTraceExporter],
  ['protobuf', ProtoTraceExporter],
] as const) {
  describe(`traces over OTLP/HTTP ${protocol}`, () => {
    const service = `svc-${protocol}`;
    let traceId: string;
    let parentId: string;
    let childId: string;

    before(async () => {
      const provider = new BasicTracerProvider({
        resource: resourceFromAttributes({
          'service.name': service,
          'deployment.environment.name': 'test',
          'host.cpus': 2,
        }),
        spanProcessors: [new SimpleSpanProcessor(new Exporter({ url: `${server.otlp}/v1/traces` }))],
      });
      const tracer = provider.getTracer('export-test', '1.2.3');
      const parent = tracer.startSpan('GET /orders', { kind: SpanKind.SERVER, startTime: START });
      const ctx = trace.setSpan(context.active(), parent);
      const child = tracer.startSpan(
        'db.query',
        {
          kind: SpanKind.CLIENT,
          startTime: [START[0], START[1] + 1000],
          attributes: ATTRIBUTES,
          links: [{ context: parent.spanContext(), attributes: { 'link.kind': 'follows' } }],
        },
        ctx,
      );
      child.addEvent('retry', { attempt: 2 }, [START[0], START[1] + 5000]);
      child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock detected' });
      child.end([START[0], START[1] + 900_000_000]);
      parent.end(END);
      traceId = parent.spanContext().traceId;
      parentId = parent.spanContext().spanId;
      childId = child.spanContext().spanId;
      await provider.forceFlush();
      await provider.shutdown();
    });

    it('stores both spans with ids, parent link, kind, status and exact nanosecond times', async () => {
      const { status, body } = await getJson(`${server.api}/api/traces/${traceId}`);
      assert.equal(status, 200);
      assert.equal(body.spans.length, 2);
      const parent = body.spans.find((s: any) => s.spanId === parentId);
      const child = body.spans.find((s: any) => s.spanId === childId);
      assert.equal(parent.parentSpanId, null);
      assert.equal(parent.name, 'GET /orders');
      assert.equal(parent.kind, 2);
      assert.equal(parent.service, service);
      assert.equal(parent.startTimeUnixNano, nanos(START));
      assert.equal(parent.endTimeUnixNano, nanos(END));
      assert.equal(child.parentSpanId, parentId);
      assert.equal(child.traceId, traceId);
      assert.equal(child.kind, 3);
      assert.equal(child.startTimeUnixNano, (BigInt(nanos(START)) + 1000n).toString());
      assert.equal(child.durationMs, 899.999);
      assert.deepEqual(child.status, { code: 2, message: 'deadlock detected' });
      assert.deepEqual(child.scope, { name: 'export-test', version: '1.2.3' });
      assert.equal(child.resource['service.name'], service);
      assert.equal(child.resource['host.cpus'], 2);
    });

    it('keeps attributes of every type, events and links', async () => {
      const { body } = await getJson(`${server.api}/api/traces/${traceId}`);
      const child = body.spans.find((s: any) => s.spanId === childId);
      assert.deepEqual(child.attributes, ATTRIBUTES);
      assert.deepEqual(child.events, [
        { timeUnixNano: (BigInt(nanos(START)) + 5000n).toString(), name: 'retry', attributes: { attempt: 2 } },
      ]);
      assert.equal(child.links.length, 1);
      assert.equal(child.links[0].traceId, traceId);
      assert.equal(child.links[0].spanId, parentId);
      assert.deepEqual(child.links[0].attributes, { 'link.kind': 'follows' });
    });

    it('finds the trace by service, name, duration and attribute', async () => {
      const q = (params: string) => getJson(`${server.api}/api/traces?${params}`);
      const byService = await q(`service=${service}`);
      assert.equal(byService.status, 200);
      assert.deepEqual(
        byService.body.map((t: any) => t.traceId),
        [traceId],
      );
      const summary = byService.body[0];
      assert.equal(summary.rootName, 'GET /orders');
      assert.equal(summary.spanCount, 2);
      assert.equal(summary.errorCount, 1);
      assert.equal(summary.startTimeUnixNano, nanos(START));
      assert.equal((await q(`service=${service}&name=db.query`)).body[0].matched.spanId, childId);
      assert.equal((await q(`service=${service}&minDuration=1s`)).body[0].matched.spanId, parentId);
      assert.equal((await q(`service=${service}&minDuration=3s`)).body.length, 0);
      assert.equal((await q(`service=${service}&attribute=int.attr=42`)).body.length, 1);
      assert.equal((await q(`service=${service}&attribute=bool.attr=true`)).body.length, 1);
      assert.equal((await q(`service=${service}&attribute=str.attr=nope`)).body.length, 0);
      const fromMs = START[0] * 1000;
      assert.equal((await q(`service=${service}&from=${fromMs}&to=${fromMs + 500}`)).body.length, 1);
      assert.equal((await q(`service=${service}&from=${fromMs + 60_000}&to=${fromMs + 120_000}`)).body.length, 0);
    });
  });
}

describe('services', () => {
  it('lists every service that sent data', async () => {
    const { body } = await getJson(`${server.api}/api/services`);
    const names = body.map((s: any) => s.service);
    assert.ok(names.includes('svc-json') && names.includes('svc-protobuf'), JSON.stringify(names));
    assert.equal(body.find((s: any) => s.service === 'svc-json').spanCount, 2);
  });
});

for (const [protocol, Exporter] of [
  ['json', JsonMetricExporter],
  ['protobuf', ProtoMetricExporter],
] as const) {
  describe(`metrics over OTLP/HTTP ${protocol}`, () => {
    const service = `metrics-${protocol}`;
    const since = Date.now() - 1000;

    before(async () => {
      const reader = new PeriodicExportingMetricReader({
        exporter: new Exporter({
          url: `${server.otlp}/v1/metrics`,
          temporalityPreference: AggregationTemporality.CUMULATIVE,
        }),
        exportIntervalMillis: 60_000,
      });
      const provider = new MeterProvider({
        resource: resourceFromAttributes({ 'service.name': service }),
        readers: [reader],
        views: [
          {
            instrumentName: 'lock.wait',
            aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [1, 10, 100] } },
          },
        ],
      });
      const meter = provider.getMeter('metrics-test');
      const hist = meter.createHistogram('lock.wait', { unit: 'ms' });
      for (const v of [0.5, 5, 5, 50, 500, 700]) hist.record(v, { 'lock.name': 'orders' });
      hist.record(2, { 'lock.name': 'users' });
      meter.createCounter('requests').add(7, { route: '/a' });
      meter.createObservableGauge('queue.depth').addCallback((r) => r.observe(3, { pool: 'p' }));
      await reader.forceFlush();
      // A second cumulative export: the counter's increase is measured by differencing.
      meter.createCounter('requests').add(5, { route: '/a' });
      await reader.forceFlush();
      await provider.shutdown();
    });

    const metric = async (name: string) => {
      const { status, body } = await getJson(
        `${server.api}/api/metrics?name=${name}&service=${service}&from=${since}&to=${Date.now() + 1000}&step=1h`,
      );
      assert.equal(status, 200, JSON.stringify(body));
      return body;
    };

    it('stores histogram buckets per attribute set', async () => {
      const m = await metric('lock.wait');
      assert.equal(m.type, 'histogram');
      assert.equal(m.unit, 'ms');
      const orders = m.series.find((s: any) => s.attributes['lock.name'] === 'orders');
      const step = orders.steps.find((s: any) => s.count !== undefined);
      assert.deepEqual(step.bounds, [1, 10, 100]);
      assert.deepEqual(step.bucketCounts, [1, 2, 1, 2]);
      assert.equal(step.count, 6);
      assert.equal(step.sum, 1260.5);
      assert.equal(step.min, 0.5);
      assert.equal(step.max, 700);
      const users = m.series.find((s: any) => s.attributes['lock.name'] === 'users');
      assert.deepEqual(users.steps.find((s: any) => s.count !== undefined).bucketCounts, [0, 1, 0, 0]);
    });

    it('differences cumulative counters and keeps gauges', async () => {
      const counter = await metric('requests');
      assert.equal(counter.type, 'sum');
      const increase = counter.series[0].steps.reduce((a: number, s: any) => a + (s.increase ?? 0), 0);
      assert.equal(increase, 12);
      const gauge = await metric('queue.depth');
      assert.equal(gauge.type, 'gauge');
      const step = gauge.series[0].steps.find((s: any) => s.last !== undefined);
      assert.equal(step.last, 3);
      assert.deepEqual(gauge.series[0].attributes, { pool: 'p' });
    });
  });
}
