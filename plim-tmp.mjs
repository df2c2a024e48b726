import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
const require = createRequire(import.meta.url);
const { BasicTracerProvider, NoopSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { MeterProvider } = require('@opentelemetry/sdk-metrics');
const { LockTracker } = require('./dist/agent/locks/tracker.js');
const { PLimitInstrumentation } = require('./dist/agent/locks/limiters.js');
const tracer = new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] }).getTracer('b');
const tracker = new LockTracker({ waitThresholdMs: 0, heldThresholdMs: 5000 }, tracer, new MeterProvider().getMeter('b'));
register('@opentelemetry/instrumentation/hook.mjs', pathToFileURL('./x.js'));
const inst = new PLimitInstrumentation();
inst.enable(); tracker.start();
const pLimit = await import('p-limit');
const on = process.env.ON === '1';
if (!on) { inst.disable(); tracker.stop(); }
const limit = pLimit.default(1);
for (let r = 0; r < 5; r++) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < 200000; i++) await limit(() => undefined);
  console.log(on ? 'on' : 'off', Number(process.hrtime.bigint() - t) / 200000);
}
