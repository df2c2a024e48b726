// The one-flag entry: `node --import stallscope/agent app.js` or `node --require stallscope/agent app.js`.
// Registers the ESM loader hook that lets instrumentations patch modules the app imports, then
// starts the agent. Configuration comes from OTEL_* and STALLSCOPE_* environment variables.
import * as nodeModule from 'node:module';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { start } from './index';
import { warnOnce } from './safety';

// Worker threads inherit --require/--import: the agent belongs to the main thread only.
if (isMainThread) attach();

function attach(): void {
  try {
    // module.register exists from Node 20.6; without it ESM apps get no library instrumentation.
    if (typeof nodeModule.register === 'function') {
      nodeModule.register('@opentelemetry/instrumentation/hook.mjs', pathToFileURL(__filename));
    }
  } catch (err) {
    warnOnce(`ESM instrumentation unavailable: ${(err as Error).message}`);
  }
  start();
}
