// The critical path of one request, as Uber's CRISP walks it: from the end of a span, the child
// that finished last before that point is what the span was waiting for; before that child
// started, the search repeats. Time on the path that no child covers is the span's own. Work
// that ran in parallel with the path is not on it, so it is never counted twice. Linear in the
// number of spans, after one sort of each span's children.

export interface PathSpan {
  spanId: string;
  parentSpanId: string | null;
  startNs: bigint;
  endNs: bigint;
}

/** A stretch of the request's time and the innermost span on the critical path during it. */
export interface Segment<S extends PathSpan> {
  span: S;
  fromNs: bigint;
  toNs: bigint;
}

/** The segments of `root`'s critical path, in time order; they tile [root.start, root.end). */
export function criticalPath<S extends PathSpan>(root: S, spans: readonly S[]): Segment<S>[] {
  const children = new Map<string, S[]>();
  for (const s of spans) {
    if (s.parentSpanId === null || s === root) continue;
    let list = children.get(s.parentSpanId);
    if (!list) children.set(s.parentSpanId, (list = []));
    list.push(s);
  }
  for (const list of children.values()) list.sort((a, b) => (a.endNs < b.endNs ? 1 : a.endNs > b.endNs ? -1 : 0));
  const out: Segment<S>[] = [];
  const seen = new Set<string>();
  // Iterative, so that a trace 10,000 spans deep cannot overflow the stack.
  const walk = (top: S, from: bigint, to: bigint) => {
    const stack: Array<{ span: S; from: bigint; to: bigint; next: number; cursor: bigint }> = [
      { span: top, from, to, next: 0, cursor: to },
    ];
    const reversed: Segment<S>[] = [];
    while (stack.length) {
      const f = stack[stack.length - 1];
      const kids = children.get(f.span.spanId) ?? [];
      let descended = false;
      while (f.next < kids.length) {
        const c = kids[f.next++];
        if (seen.has(c.spanId)) continue; // a parent loop in bad data
        const end = c.endNs < f.cursor ? c.endNs : f.cursor;
        const start = c.startNs > f.from ? c.startNs : f.from;
        // Past the cursor: in parallel with the child already on the path. Past the span's own end
        // (clocks and instrumentations overrun their parents a little): clipped to it.
        if ((c.endNs > f.cursor && f.cursor < f.to) || end <= start) continue;
        if (end < f.cursor) reversed.push({ span: f.span, fromNs: end, toNs: f.cursor });
        f.cursor = start;
        seen.add(c.spanId);
        stack.push({ span: c, from: start, to: end, next: 0, cursor: end });
        descended = true;
        break;
      }
      if (descended) continue;
      if (f.cursor > f.from) reversed.push({ span: f.span, fromNs: f.from, toNs: f.cursor });
      stack.pop();
    }
    for (let i = reversed.length - 1; i >= 0; i--) out.push(reversed[i]);
  };
  seen.add(root.spanId);
  walk(root, root.startNs, root.endNs);
  return out.sort((a, b) => (a.fromNs < b.fromNs ? -1 : a.fromNs > b.fromNs ? 1 : 0));
}
