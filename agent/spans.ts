// Spans for things already over: a detector knows the start and end of a wait or a call (on the
// performance.now() clock) only once it has ended, and records the span then, in the context
// that was active when it began. Its code positions are mapped to the source first; a span
// whose maps are still being read is recorded when they are (its times are already fixed).
import { SpanKind, SpanStatusCode, context, type Attributes, type Context, type Tracer } from '@opentelemetry/api';
import { KIND } from '../common/conventions';
import { codeAttributes, framesOf, siteName, topUserFrame, type Frame } from './stack';
import { activeSourceMapper } from './source-mapper';
import { report } from './safety';

/** An attribute naming a code site (`file:line`), from a captured stack. */
export interface SiteAttribute {
  /** The attribute that gets the site in the source. */
  name: string;
  /** The attribute that gets the generated site, when a map moved it. */
  generatedName: string;
  stack: { stack?: string };
}

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
  /** Attributes naming other code sites. */
  sites?: SiteAttribute[];
  /** Set for an outcome that is a failure: the span's status becomes an error with this message. */
  error?: string;
}

export function recordSpan(tracer: Tracer, s: PastSpan): void {
  const ctx = s.ctx ?? context.active();
  const frames = s.stack ? framesOf(s.stack) : [];
  const sites = (s.sites ?? []).map((site) => ({ site, frames: framesOf(site.stack) }));
  const mapper = activeSourceMapper();
  const emit = () => {
    try {
      const map = (f: Frame[]) => (mapper ? mapper.map(f) : f);
      const attributes: Attributes = { [KIND]: s.kind };
      if (frames.length) Object.assign(attributes, codeAttributes(map(frames)));
      for (const { site, frames: at } of sites) {
        const top = topUserFrame(map(at));
        attributes[site.name] = top ? siteName(top) : 'unknown';
        if (top?.generated) attributes[site.generatedName] = siteName(top.generated);
      }
      Object.assign(attributes, s.attributes);
      const origin = performance.timeOrigin;
      const span = tracer.startSpan(s.name, { kind: SpanKind.INTERNAL, startTime: origin + s.from, attributes }, ctx);
      if (s.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: s.error });
      span.end(origin + s.to);
    } catch (err) {
      report('span recording', err);
    }
  };
  if (mapper) mapper.whenReady([...frames, ...sites.flatMap((x) => x.frames)], emit);
  else emit();
}
