// @ts-check
// One trace as a waterfall. The agent's spans are marked (lock waits, blocking episodes, sync
// calls, offload waits); clicking a span shows its attributes and its stack.
import { el, empty, fmtMs, page, params, section, traceLink, withParams } from './app.js';

const LABELS = {
  'lock-wait': 'lock wait',
  'lock-held': 'held too long',
  'loop-block': 'loop blocked',
  'sync-call': 'sync call',
  'threadpool-wait': 'threadpool wait',
  'pool-task': 'pool task',
};

function order(spans) {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId)) {
      if (!children.has(s.parentSpanId)) children.set(s.parentSpanId, []);
      children.get(s.parentSpanId).push(s);
    } else roots.push(s);
  }
  const start = (s) => BigInt(s.startTimeUnixNano);
  const byStart = (a, b) => (start(a) < start(b) ? -1 : start(a) > start(b) ? 1 : 0);
  const out = [];
  const placed = new Set();
  const walk = (s, depth) => {
    if (placed.has(s.spanId)) return;
    placed.add(s.spanId);
    out.push({ span: s, depth });
    for (const c of (children.get(s.spanId) ?? []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  // Spans in a parent loop (a span its own ancestor) reach no root: shown at the top level.
  for (const s of [...spans].sort(byStart)) walk(s, 0);
  return out;
}

function details(s) {
  const attrs = Object.entries(s.attributes);
  const stack = s.attributes['code.stacktrace'];
  return el(
    'div',
    { class: 'details card', id: 'span-details' },
    el('h2', {}, s.name),
    el(
      'p',
      { class: 'lead' },
      `${s.service} · ${fmtMs(s.durationMs)} · span ${s.spanId}${s.status.code === 2 ? ` · error: ${s.status.message ?? ''}` : ''}`,
    ),
    attrs.length
      ? el(
          'table',
          { class: 'data' },
          el(
            'tbody',
            {},
            attrs
              .filter(([k]) => k !== 'code.stacktrace')
              .map(([k, v]) => {
                // The holder a lock wait queued behind: its own trace is one click away.
                const value =
                  k === 'stallscope.lock.holder_trace_id'
                    ? traceLink(String(v), s.attributes['stallscope.lock.holder_span_id'], String(v))
                    : typeof v === 'object'
                      ? JSON.stringify(v)
                      : String(v);
                return el('tr', {}, el('th', {}, k), el('td', {}, value));
              }),
          ),
        )
      : empty('No attributes.'),
    stack ? el('pre', { class: 'stack' }, String(stack)) : null,
  );
}

page(
  'Trace',
  async (main) => {
    const id = params().get('id') ?? '';
    if (!/^[0-9a-fA-F]{32}$/.test(id)) {
      main.append(empty('No trace chosen: open one from the Traces page.'));
      return;
    }
    const res = await fetch(`/api/traces/${id}`);
    if (res.status === 401) {
      location.href = '/login';
      return;
    }
    if (res.status === 404) {
      main.append(empty(`No trace ${id} (it may have been deleted by retention, or not have arrived yet).`));
      return;
    }
    if (!res.ok) throw new Error((await res.json()).error);
    const { spans } = await res.json();
    const rows = order(spans);
    const t0 = rows.reduce(
      (m, r) => (BigInt(r.span.startTimeUnixNano) < m ? BigInt(r.span.startTimeUnixNano) : m),
      BigInt(rows[0].span.startTimeUnixNano),
    );
    const t1 = rows.reduce((m, r) => (BigInt(r.span.endTimeUnixNano) > m ? BigInt(r.span.endTimeUnixNano) : m), 0n);
    const total = Number(t1 - t0) || 1;
    const selected = params().get('span');
    const panel = el('div', {});
    const wf = el(
      'div',
      { class: 'waterfall', role: 'list' },
      rows.map(({ span, depth }) => {
        const kind = span.attributes['stallscope.kind'];
        const bar = el('div', { class: 'wf-bar', title: `${span.name}: ${fmtMs(span.durationMs)}` });
        // Positions through the CSS object model: the Content-Security-Policy forbids style attributes.
        bar.style.left = `${(100 * Number(BigInt(span.startTimeUnixNano) - t0)) / total}%`;
        bar.style.width = `${(100 * Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano))) / total}%`;
        const row = el(
          'div',
          {
            class: `wf-row${kind ? ` kind-${kind}` : ''}${span.spanId === selected ? ' selected' : ''}`,
            role: 'listitem',
            tabindex: 0,
            dataset: { spanId: span.spanId, kind: kind ?? '' },
            onclick: () => {
              for (const r of wf.querySelectorAll('.selected')) r.classList.remove('selected');
              row.classList.add('selected');
              history.replaceState(null, '', withParams({ span: span.spanId }));
              panel.replaceChildren(details(span));
            },
          },
          el(
            'div',
            { class: `wf-name indent-${Math.min(depth, 6)}` },
            kind ? el('span', { class: `badge kind-${kind}` }, LABELS[kind] ?? kind) : null,
            `${span.name} `,
            el('small', {}, fmtMs(span.durationMs)),
          ),
          el('div', { class: 'wf-track' }, bar),
        );
        return row;
      }),
    );
    const chosen = spans.find((s) => s.spanId === selected);
    if (chosen) panel.append(details(chosen));
    main.append(
      section(
        `${rows[0].span.name} · ${fmtMs(total / 1e6)} · ${spans.length} spans`,
        el(
          'div',
          { class: 'key-legend' },
          Object.entries(LABELS).map(([k, l]) => el('span', {}, el('span', { class: `badge kind-${k}` }, l))),
        ),
        wf,
      ),
      panel,
    );
  },
  { refresh: false },
);
