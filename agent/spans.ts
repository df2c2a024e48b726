// Spans for things already over: a detector knows the start and end of a wait or a call (on the
// performance.now() clock) only once it has ended, and records the span then, in the context
// that was active when it began.
import { SpanKind, SpanStatusCode, type Attributes, type Context, type Tracer } from '@opentelemetry/api';
import { KIND } from '../common/conventions';
import { codeAttributes, parseV8Stack } from './stack';

export interface PastSpan {
  name: string;
  /** The `stallscope.kind` of the span. */
  kind: string;
  from: number;
  to: number;
  attributes: Attributes;
  /** The parent: the context active when it began (else the current one). */
  ctx?: Context;
  /** Where in the user's code it happened, as `code.*` attributes. */
  stack?: { stack?: string };
  /** Set for an outcome that is a failure: the span's status becomes an error with this message. */
  error?: string;
}

export function recordSpan(tracer: Tracer, s: PastSpan): void {
  const frames = s.stack ? parseV8Stack(s.stack.stack ?? '') : [];
  const origin = performance.timeOrigin;
  const span = tracer.startSpan(
    s.name,
    {
      kind: SpanKind.INTERNAL,
      startTime: origin + s.from,
      attributes: { [KIND]: s.kind, ...(frames.length ? codeAttributes(frames) : {}), ...s.attributes },
    },
    s.ctx,
  );
  if (s.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: s.error });
  span.end(origin + s.to);
}
