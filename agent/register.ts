// The one-flag entry: `node --import stallscope/agent app.js` or `node --require stallscope/agent app.js`.
// Registers the ESM loader hook that lets instrumentations patch modules the app imports, then
// starts the agent. Configuration comes from OTEL_* and STALLSCOPE_* environment variables.
import * as nodeModule from 'node:module';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { start } from './index';
import { warnOnce } from './safety';

const TYPESCRIPT = /\.[cm]?tsx?(?:$|\?)/;

// Worker threads inherit --require/--import: the agent belongs to the main thread only.
if (isMainThread) attach();

function attach(): void {
  try {
    // module.register exists from Node 20.6; without it ESM apps get no library instrumentation.
    if (typeof nodeModule.register === 'function') {
      // Instrumentations patch packages, never the app's TypeScript sources, which a loader such as
      // tsx compiles: on Node 24 import-in-the-middle's wrapper of a .ts module would hand tsx
      // source it cannot compile (the two are known not to compose: nodejs/import-in-the-middle#58).
      nodeModule.register('@opentelemetry/instrumentation/hook.mjs', pathToFileURL(__filename), {
        data: { exclude: [TYPESCRIPT] },
      });
    }
  } catch (err) {
    warnOnce(`ESM instrumentation unavailable: ${(err as Error).message}`);
  }
  start();
}
