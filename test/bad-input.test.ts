// Malformed OTLP requests are refused with a status and a message naming the problem; valid
// items around bad ones are still stored, and the collector keeps serving.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { getJson, startServer, type TestServer } from './helpers';
import { TraceRequest } from '../collector/otlp/proto';

let server: TestServer;
before(async () => {
  server = await startServer({ limits: { maxBodyBytes: 8 * 1024 * 1024 } });
});
after(async () => {
  await server.close();
});

function post(path: string, body: Buffer | string, headers: Record<string, string>) {
  return fetch(`${server.otlp}${path}`, { method: 'POST', body, headers });
}

function jsonSpan(traceId: string, spanId: string, name: string) {
  return {
    traceId,
    spanId,
    name,
    kind: 2,
    startTimeUnixNano: '1900000000000000001',
    endTimeUnixNano: 1900000000500000000,
  };
}

function jsonRequest(spans: object[], service = 'bad-input') {
  return JSON.stringify({
    resourceSpans: [
      { resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] }, scopeSpans: [{ spans }] },
    ],
  });
}

const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');

describe('OTLP bad input', () => {
  it('rejects a truncated protobuf body with 400 and a protobuf Status', async () => {
    const valid = TraceRequest.encode(
      TraceRequest.fromObject({
        resourceSpans: [
          {
            scopeSpans: [
              { spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'x'.repeat(50) }] },
            ],
          },
        ],
      }),
    ).finish();
    const res = await post('/v1/traces', Buffer.from(valid.subarray(0, valid.length - 10)), {
      'content-type': 'application/x-protobuf',
    });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('content-type'), 'application/x-protobuf');
    const text = Buffer.from(await res.arrayBuffer()).toString('latin1');
    assert.match(text, /invalid protobuf ExportTraceServiceRequest/);
  });

  it('rejects invalid JSON with 400 naming the parse error', async () => {
    const res = await post('/v1/traces', '{"resourceSpans": [', { 'content-type': 'application/json' });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: number; message: string };
    assert.equal(body.code, 3);
    assert.match(body.message, /^invalid JSON: /);
  });

  it('rejects a wrong structure with 400 naming the field', async () => {
    const res = await post('/v1/traces', '{"resourceSpans": [{"scopeSpans": {"spans": []}}]}', {
      'content-type': 'application/json',
    });
    assert.equal(res.status, 400);
    assert.match(
      ((await res.json()) as { message: string }).message,
      /resourceSpans\[0\]\.scopeSpans: expected an array/,
    );
  });

  it('rejects a wrong content type with 415', async () => {
    const res = await post('/v1/traces', 'hello', { 'content-type': 'text/plain' });
    assert.equal(res.status, 415);
    assert.match(((await res.json()) as { message: string }).message, /unsupported Content-Type "text\/plain"/);
    const enc = await post('/v1/traces', '{}', { 'content-type': 'application/json', 'content-encoding': 'br' });
    assert.equal(enc.status, 415);
  });

  it('answers an empty JSON body with 400 and an empty protobuf body as an empty request', async () => {
    const json = await post('/v1/traces', '', { 'content-type': 'application/json' });
    assert.equal(json.status, 400);
    assert.match(((await json.json()) as { message: string }).message, /the body is empty/);
    const proto = await post('/v1/traces', Buffer.alloc(0), { 'content-type': 'application/x-protobuf' });
    assert.equal(proto.status, 200);
    assert.equal((await proto.arrayBuffer()).byteLength, 0);
  });

  it('refuses unknown paths and methods', async () => {
    assert.equal((await post('/v1/spans', '{}', { 'content-type': 'application/json' })).status, 404);
    assert.equal((await fetch(`${server.otlp}/v1/traces`)).status, 405);
  });

  it('stores the valid spans of a request and reports invalid ids as a partial success', async () => {
    const trace = hex(0xabc, 32);
    const spans = [
      jsonSpan(trace, hex(1, 16), 'good-1'),
      jsonSpan('xyz', hex(2, 16), 'bad-trace-id'),
      jsonSpan(trace, hex(0, 16), 'zero-span-id'),
      jsonSpan(trace, 'abc', 'short-span-id'),
      { ...jsonSpan(trace, hex(5, 16), 'no-start'), startTimeUnixNano: undefined },
      jsonSpan(trace, hex(6, 16), 'good-2'),
    ];
    const res = await post('/v1/traces', jsonRequest(spans), { 'content-type': 'application/json' });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
    assert.equal(body.partialSuccess.rejectedSpans, '4');
    assert.match(body.partialSuccess.errorMessage, /spans\[1\]: traceId must be 32 hex characters/);
    assert.match(body.partialSuccess.errorMessage, /spans\[2\]: spanId is all zeros/);
    const stored = await getJson(`${server.api}/api/traces/${trace}`);
    assert.deepEqual(stored.body.spans.map((s: { name: string }) => s.name).sort(), ['good-1', 'good-2']);
  });

  it('accepts snake_case field names and enum names, ignores unknown fields', async () => {
    const trace = hex(0xdef, 32);
    const body = JSON.stringify({
      resource_spans: [
        {
          unknownField: { nested: true },
          scope_spans: [
            {
              spans: [
                {
                  trace_id: trace,
                  span_id: hex(7, 16),
                  name: 'snake',
                  kind: 'SPAN_KIND_CLIENT',
                  start_time_unix_nano: 5,
                  end_time_unix_nano: '9',
                  surprise: 1,
                },
              ],
            },
          ],
        },
      ],
    });
    const res = await post('/v1/traces', body, { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(res.status, 200);
    const stored = await getJson(`${server.api}/api/traces/${trace}`);
    assert.equal(stored.body.spans[0].kind, 3);
    assert.equal(stored.body.spans[0].endTimeUnixNano, '9');
    assert.equal(stored.body.spans[0].service, 'unknown_service');
  });

  it('rejects 64-bit values outside the signed range as items, and keeps storing that service', async () => {
    const trace = hex(0x456, 32);
    const tooBig = { ...jsonSpan(trace, hex(11, 16), 'too-big'), startTimeUnixNano: '99999999999999999999' };
    const res = await post('/v1/traces', jsonRequest([tooBig, jsonSpan(trace, hex(12, 16), 'fine')], 'ranges'), {
      'content-type': 'application/json',
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
    assert.equal(body.partialSuccess.rejectedSpans, '1');
    assert.match(body.partialSuccess.errorMessage, /outside the 64-bit range/);
    const next = await post('/v1/traces', jsonRequest([jsonSpan(trace, hex(13, 16), 'later')], 'ranges'), {
      'content-type': 'application/json',
    });
    assert.equal(next.status, 200);
    const stored = await getJson(`${server.api}/api/traces/${trace}`);
    assert.deepEqual(stored.body.spans.map((s: { name: string }) => s.name).sort(), ['fine', 'later']);
  });

  it('says a negative timestamp is negative, not missing, in spans, points and logs', async () => {
    const trace = hex(0x789, 32);
    const negative = { ...jsonSpan(trace, hex(14, 16), 'negative'), startTimeUnixNano: '-5' };
    const missing = { ...jsonSpan(trace, hex(15, 16), 'missing'), startTimeUnixNano: undefined };
    const spans = await post('/v1/traces', jsonRequest([negative, missing]), { 'content-type': 'application/json' });
    const message = ((await spans.json()) as { partialSuccess: { errorMessage: string } }).partialSuccess.errorMessage;
    assert.match(message, /spans\[0\]: startTimeUnixNano is negative \(-5\)/);
    assert.match(message, /spans\[1\]: startTimeUnixNano is missing/);
    const points = await post(
      '/v1/metrics',
      '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"-7","asInt":"1"}]}}]}]}]}',
      { 'content-type': 'application/json' },
    );
    assert.match(JSON.stringify(await points.json()), /timeUnixNano is negative \(-7\)/);
    const logs = await post(
      '/v1/logs',
      '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-9","body":{"stringValue":"x"}}]}]}]}',
      { 'content-type': 'application/json' },
    );
    assert.match(JSON.stringify(await logs.json()), /timeUnixNano is negative \(-9\)/);
  });

  const shapes: Array<[string, string, string, RegExp]> = [
    ['/v1/traces', 'a null resourceSpans entry', '{"resourceSpans":[null]}', /resourceSpans\[0\]: expected an object/],
    [
      '/v1/traces',
      'a null event',
      `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"${'1'.repeat(32)}","spanId":"${'2'.repeat(16)}","startTimeUnixNano":"1","endTimeUnixNano":"2","events":[null]}]}]}]}`,
      /events\[0\]: expected an object/,
    ],
    [
      '/v1/metrics',
      'a null metric',
      '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[null]}]}]}',
      /metrics\[0\]: expected an object/,
    ],
    [
      '/v1/metrics',
      'a null data point',
      '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[null]}}]}]}]}',
      /dataPoints\[0\]: expected an object/,
    ],
    [
      '/v1/metrics',
      'bucket counts that are not an array',
      '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"dataPoints":[{"timeUnixNano":"5","bucketCounts":"x"}]}}]}]}]}',
      /bucketCounts: expected an array/,
    ],
    [
      '/v1/logs',
      'a null log record',
      '{"resourceLogs":[{"scopeLogs":[{"logRecords":[null]}]}]}',
      /logRecords\[0\]: expected an object/,
    ],
    [
      '/v1/traces',
      'a malformed integer in a resource attribute',
      '{"resourceSpans":[{"resource":{"attributes":[{"key":"n","value":{"intValue":"1.5"}}]}}]}',
      /intValue must be an integer/,
    ],
  ];
  for (const [path, what, body, message] of shapes) {
    it(`answers ${what} with 400 naming it`, async () => {
      const res = await post(path, body, { 'content-type': 'application/json' });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { message: string }).message, message);
    });
  }

  it('refuses a body over the limit with 413', async () => {
    const res = await post('/v1/traces', Buffer.alloc(9 * 1024 * 1024, 32), { 'content-type': 'application/json' });
    assert.equal(res.status, 413);
  });

  it('refuses a gzip bomb with 413 without inflating it into memory, whatever its trailer says', async () => {
    // 1 GiB of zeros compresses to about 1 MiB; the limit is 8 MiB after decompression.
    const chunks: Buffer[] = [];
    const zero = Buffer.alloc(1024 * 1024);
    await pipeline(
      Readable.from(
        (function* () {
          for (let i = 0; i < 1024; i++) yield zero;
        })(),
      ),
      zlib.createGzip({ level: 9 }),
      new Writable({
        write(chunk, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      }),
    );
    const bomb = Buffer.concat(chunks);
    assert.ok(bomb.length < 8 * 1024 * 1024);
    // A trailer that lies about the inflated size is only found out by inflating, up to the limit.
    const liar = Buffer.from(bomb);
    liar.writeUInt32LE(1000, liar.length - 4);
    const rssBefore = process.memoryUsage().rss;
    const send = (body: Buffer) =>
      post('/v1/traces', body, { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' });
    const honest = await send(bomb);
    assert.equal(honest.status, 413);
    assert.match(
      Buffer.from(await honest.arrayBuffer()).toString('latin1'),
      /the body inflates to at least 1073741824 bytes, over the limit of 8388608 bytes/,
    );
    const lying = await send(liar);
    assert.equal(lying.status, 413);
    assert.match(Buffer.from(await lying.arrayBuffer()).toString('latin1'), /decompressed body exceeds the limit/);
    const grown = process.memoryUsage().rss - rssBefore;
    assert.ok(grown < 256 * 1024 * 1024, `memory grew by ${grown} bytes`);
  });

  it('rejects a corrupt gzip body with 400', async () => {
    const res = await post('/v1/traces', Buffer.from('not gzip at all'), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { message: string }).message, /not valid gzip/);
  });

  it('accepts a gzipped JSON request and keeps serving after all of the above', async () => {
    const trace = hex(0x123, 32);
    const res = await post('/v1/traces', zlib.gzipSync(jsonRequest([jsonSpan(trace, hex(9, 16), 'after')])), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.equal((await getJson(`${server.api}/api/traces/${trace}`)).body.spans[0].name, 'after');
    assert.equal((await getJson(`${server.api}/healthz`)).body.status, 'ok');
  });
});

describe('query API bad parameters', () => {
  const cases: Array<[string, RegExp]> = [
    ['/api/traces?limit=0', /limit: must be a whole number from 1 to 1000/],
    ['/api/traces?minDuration=fast', /minDuration: "fast" is not a duration/],
    ['/api/traces?from=yesterday', /from: "yesterday" is not a time/],
    ['/api/traces?since=1h&from=1000', /since and from/],
    ['/api/traces?attribute=novalue', /attribute: use key=value/],
    ['/api/traces/not-a-trace-id', /traceId: "not-a-trace-id" is not 32 hex characters/],
    ['/api/metrics', /name: required/],
    ['/api/metrics?name=x&since=1d&step=1s', /step: too small/],
    ['/api/traces?service=a&service=b', /service: give it once/],
  ];
  for (const [path, message] of cases) {
    it(`GET ${path} is a 400 naming the parameter`, async () => {
      const { status, body } = await getJson(`${server.api}${path}`);
      assert.equal(status, 400);
      assert.match(body.error, message);
    });
  }

  it('answers 404 for an unknown trace and an unknown endpoint', async () => {
    assert.equal((await getJson(`${server.api}/api/traces/${'f'.repeat(32)}`)).status, 404);
    assert.equal((await getJson(`${server.api}/api/nothing`)).status, 404);
  });
});
