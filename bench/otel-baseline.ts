// The baseline for bench/agent-overhead: plain OpenTelemetry with the same HTTP and express
// instrumentations and OTLP exporters the stallscope agent uses, and nothing else.
import { NodeSDK } from '@opentelemetry/sdk-node';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { ExpressInstrumentation } from '@opentelemetry/instrumentation-express';

new NodeSDK({ instrumentations: [new HttpInstrumentation(), new ExpressInstrumentation()] }).start();
