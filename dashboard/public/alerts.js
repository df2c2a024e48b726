// Alerts: what is firing or pending now, the rules (and their file, edited here with the same
// validation as at start-up), and the history of state changes.
import { el, empty, fmtCount, fmtMs, fmtTime, page, params, section, table, withParams } from './app.js';

// Which signals are durations comes with the rules (the collector's list), set at each load.
let durations = new Set();
const value = (signal, v) =>
  v === null || v === undefined ? 'no data' : durations.has(signal) ? fmtMs(v) : fmtCount(v);
const labelText = (labels) =>
  Object.entries(labels)
    .filter(([k]) => k !== 'alertname' && k !== 'severity')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
const state = (s) => el('span', { class: `state ${s}` }, s);

async function load() {
  const res = await fetch('/api/alerts?since=24h', { headers: { accept: 'application/json' } });
  if (res.status === 401) location.href = '/login';
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `${res.status} from /api/alerts`);
  return body;
}

/** What an empty rules file opens with: a commented example that saving as it is leaves inert. */
const EXAMPLE = `# No rules yet. An example, uncommented it alerts when any lock's p95 wait
# passes 50 ms over 5 minutes, for a minute, and tells a webhook:
#
# receivers:
#   - { name: ops, url: "http://127.0.0.1:9095/hook" }
# rules:
#   - name: slow lock
#     signal: lock-wait-p95
#     resource: "*"
#     above: 50ms
#     window: 5m
#     for: 1m
#     severity: warning
#     annotations: { summary: "{{resource}} on {{service}}: wait p95 {{value}}" }
#     receivers: [ops]
`;

/**
 * The file's text, with a rule drafted elsewhere (a finding's or a lock's "Alert on this")
 * added under `rules:` for the user to check and save.
 */
function withDraft(text, draft) {
  if (!draft) return text || EXAMPLE;
  const base = text.trim() ? text.replace(/\s*$/, '\n') : '';
  // Right under a block `rules:` (or an empty `rules: []`); a file without one gets one.
  const header = /^rules:[ \t]*(\[\s*\])?[ \t]*$/m.exec(base);
  if (!header) return `${base}rules:\n${draft}\n`;
  return base.replace(header[0], `rules:\n${draft}`);
}

function editor(status) {
  const draft = params().get('draft');
  const text = el(
    'textarea',
    { id: 'rules-text', spellcheck: 'false', 'aria-label': 'Rules file' },
    withDraft(status.text, draft),
  );
  const message = el('span', { id: 'rules-message', role: 'status' });
  const save = async () => {
    message.className = '';
    message.textContent = 'Checking…';
    const res = await fetch('/api/alerts/rules', {
      method: 'PUT',
      headers: { 'content-type': 'application/yaml' },
      body: text.value,
    });
    const body = await res.json().catch(() => ({ error: `${res.status}` }));
    if (res.ok) {
      message.className = 'ok';
      message.textContent = `Saved to ${body.file}: ${body.rules} rules, ${body.receivers} receivers. Reloading…`;
      setTimeout(() => (location.href = withParams({ draft: null })), 800);
    } else {
      message.className = 'error';
      message.textContent = body.error;
    }
  };
  return section(
    'Rules file',
    el(
      'p',
      { class: 'lead' },
      `YAML or JSON, checked like the file at start-up: nothing is applied unless all of it is valid. Saved to ${status.file}. See docs/alerts.md for the format.`,
    ),
    draft
      ? el(
          'p',
          { class: 'lead draft-note' },
          'A rule drafted from what you were looking at is in the file below, a little under what it measured now: check it, change what you like, and save.',
        )
      : null,
    el(
      'div',
      { class: 'rules-editor' },
      text,
      el(
        'div',
        { class: 'actions' },
        el('button', { type: 'button', id: 'rules-save', onclick: save }, 'Validate and save'),
        message,
      ),
    ),
  );
}

page(
  'Alerts',
  async (main) => {
    const status = await load();
    durations = new Set(status.durationSignals);
    const bySignal = Object.fromEntries(status.rules.map((r) => [r.name, r.signal]));
    const active = status.alerts.filter((a) => a.state !== 'resolved');
    main.append(
      section(
        `Firing and pending (${active.length})`,
        el(
          'p',
          { class: 'lead' },
          `Evaluated every ${fmtMs(status.intervalMs)}; last ${status.lastEvalMs ? fmtTime(status.lastEvalMs) : 'not yet'}.`,
        ),
        status.lastError ? el('p', { class: 'error' }, status.lastError) : null,
        table(
          [
            { key: 'state', label: 'State', format: (v) => state(v) },
            { key: 'rule', label: 'Rule' },
            { key: 'severity', label: 'Severity', value: (r) => r.labels.severity },
            { key: 'labels', label: 'Labels', value: (r) => labelText(r.labels) },
            { key: 'value', label: 'Value', numeric: true, format: (v, r) => value(bySignal[r.rule], v) },
            {
              key: 'since',
              label: 'Since',
              value: (r) => (r.state === 'firing' ? r.firedAtMs : r.activeSinceMs),
              format: fmtTime,
            },
            { key: 'summary', label: 'Summary', value: (r) => r.annotations.summary ?? '' },
          ],
          active,
          { id: 'active', sortable: false, emptyText: 'No alert is pending or firing.' },
        ),
      ),
      section(
        `Rules (${status.rules.length})`,
        status.rules.length
          ? table(
              [
                { key: 'name', label: 'Rule' },
                { key: 'signal', label: 'Signal', value: (r) => (r.kind ? `${r.signal} (${r.kind})` : r.signal) },
                {
                  key: 'filter',
                  label: 'Service / resource',
                  value: (r) => [r.service, r.resource].filter(Boolean).join(' / ') || 'all',
                },
                { key: 'when', label: 'When', value: (r) => `${r.op} ${value(r.signal, r.threshold)}` },
                { key: 'window', label: 'Window', value: (r) => fmtMs(r.windowMs) },
                { key: 'for', label: 'For', value: (r) => fmtMs(r.forMs) },
                { key: 'severity', label: 'Severity' },
                { key: 'noData', label: 'No data' },
                { key: 'receivers', label: 'Receivers', value: (r) => r.receivers.join(', ') || '–' },
              ],
              status.rules,
              { id: 'rules', sortable: false },
            )
          : empty('No rules yet: write some below.'),
      ),
      editor(status),
      section(
        'State changes (last 24 hours)',
        table(
          [
            { key: 'timeMs', label: 'When', format: fmtTime },
            { key: 'rule', label: 'Rule' },
            { key: 'labels', label: 'Labels', value: (r) => labelText(r.labels) },
            { key: 'change', label: 'Change', value: (r) => `${r.from} → ${r.to}` },
            { key: 'value', label: 'Value', numeric: true, format: (v, r) => value(bySignal[r.rule], v) },
          ],
          status.history,
          { id: 'history', sortable: false, emptyText: 'No alert changed state in the last 24 hours.' },
        ),
      ),
    );
  },
  // The rules editor must not be redrawn under the user's typing.
  { refresh: false },
);
