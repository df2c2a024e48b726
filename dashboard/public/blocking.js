// Blocking: episodes of a blocked event loop grouped by the function that blocked, and slow
// synchronous calls grouped by API and call site. Each group opens its stack and its episodes.
import {
  api,
  el,
  empty,
  findingsSection,
  fmtCount,
  fmtMs,
  fmtTime,
  getFindings,
  link,
  page,
  params,
  section,
  traceLink,
  withParams,
} from './app.js';

function groups(kind, rows, emptyText) {
  if (!rows.length) return empty(emptyText);
  const open = params().get('group');
  return el(
    'div',
    { class: 'groups' },
    rows.map((g) => {
      const details = el(
        'details',
        {
          class: 'group',
          open: open === g.key,
          dataset: { key: g.key },
          ontoggle: (e) => {
            if (e.target.open) {
              history.replaceState(null, '', withParams({ group: g.key, kind }));
              void fill(details, kind, g);
            }
          },
        },
        el(
          'summary',
          {},
          el('span', { class: 'what' }, g.key),
          el('span', {}, `${fmtCount(g.count)}×`),
          el('span', {}, `total ${fmtMs(g.totalMs)}`),
          el('span', {}, `max ${fmtMs(g.maxMs)}`),
          el('span', {}, g.service),
        ),
      );
      if (open === g.key) void fill(details, kind, g);
      return details;
    }),
  );
}

async function fill(details, kind, g) {
  if (details.dataset.filled) return;
  details.dataset.filled = 'true';
  const body = el('div', { class: 'group-body' }, el('p', { class: 'lead' }, 'Loading…'));
  details.append(body);
  try {
    const d = await api('/api/dash/blocking/group', { kind, key: g.key });
    body.replaceChildren(
      d.stack ? el('pre', { class: 'stack' }, d.stack) : el('p', { class: 'lead' }, 'No stack was captured.'),
      el(
        'ul',
        { class: 'episodes' },
        d.spans.map((s) =>
          el(
            'li',
            {},
            `${fmtTime(s.start)} · ${s.service} · ${fmtMs(s.durationMs)} · `,
            traceLink(s.traceId, s.spanId),
          ),
        ),
      ),
    );
  } catch (err) {
    body.replaceChildren(el('p', { class: 'error' }, err.message));
  }
}

page('Blocking', async (main) => {
  const [b, findings] = await Promise.all([api('/api/dash/blocking'), getFindings(['loop-blocked', 'sync-call'])]);
  main.append(
    findingsSection(findings, 'Nothing blocks the event loop over the thresholds in this window.'),
    section(
      'Event loop blocked in',
      el(
        'p',
        { class: 'lead' },
        'While these functions ran, the event loop could not serve anything else. Move the work off the loop (a worker pool) or break it up. ',
        el('a', { href: link('/profile') }, "Flame graphs of the loop's CPU and of the blocked time"),
        '.',
      ),
      groups('loop-block', b.episodes, 'The event loop was not blocked over the threshold in this window.'),
    ),
    section(
      'Blocking synchronous calls',
      el(
        'p',
        { class: 'lead' },
        'Synchronous APIs called while serving. Each has an asynchronous alternative (readFile for readFileSync, pbkdf2 for pbkdf2Sync, ...).',
      ),
      groups('sync-call', b.syncCalls, 'No slow synchronous call in this window.'),
    ),
  );
});
