// Profile: what kept the event loop busy, as flame graphs (icicles: callers on top, callees below,
// width = time). One for the loop's sampled CPU, one for the stacks of blocking episodes weighted
// by how long they blocked. A click on a frame zooms into it and shows its file and line; the
// CPU profile downloads as a pprof file for go tool pprof or speedscope.
import { api, el, empty, findingsSection, fmtMs, getFindings, page, params, section, withParams } from './app.js';

const ROW = 18;
/** Colours by whose code a frame is: the app's stands out, the runtime's recedes. */
const COLOURS = {
  app: '#d9663f',
  dependency: '#d6a23a',
  telemetry: '#8aa8c7',
  runtime: '#b8b8b8',
  '': '#999999',
};

/** Every node with its depth and horizontal extent (fractions of the root), for drawing and hit tests. */
function layout(root) {
  const boxes = [];
  const walk = (n, depth, x0, scale) => {
    const w = n.totalMs * scale;
    boxes.push({ n, depth, x: x0, w });
    let x = x0;
    for (const c of n.children) {
      walk(c, depth + 1, x, scale);
      x += c.totalMs * scale;
    }
  };
  if (root.totalMs > 0) walk(root, 0, 0, 1 / root.totalMs);
  return boxes;
}

function flameGraph(root, { id, emptyText }) {
  if (!root || root.totalMs <= 0) return empty(emptyText);
  const boxes = layout(root);
  const depth = Math.max(...boxes.map((b) => b.depth)) + 1;
  const canvas = el('canvas', { class: 'flame', id, height: depth * ROW, role: 'img' });
  const detail = el(
    'p',
    { class: 'frame-detail', id: `${id}-detail` },
    'Click a frame to zoom in and see where it is.',
  );
  const reset = el('button', { type: 'button', class: 'link', hidden: true }, 'Whole graph');
  let focus = boxes[0];
  const visible = () => {
    const f = focus;
    return boxes.filter((b) => b.depth >= f.depth && b.x >= f.x - 1e-12 && b.x + b.w <= f.x + f.w + 1e-12);
  };
  const draw = () => {
    const width = canvas.parentElement ? canvas.parentElement.clientWidth : 800;
    canvas.width = width;
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = '12px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    for (const b of visible()) {
      const x = ((b.x - focus.x) / focus.w) * width;
      const w = (b.w / focus.w) * width;
      if (w < 0.5) continue;
      const y = (b.depth - focus.depth) * ROW;
      ctx.fillStyle = COLOURS[b.n.origin] ?? COLOURS[''];
      ctx.fillRect(x, y, Math.max(w - 1, 0.5), ROW - 1);
      if (w > 40) {
        ctx.fillStyle = '#111';
        const label = `${b.n.name} ${fmtMs(b.n.totalMs)}`;
        ctx.save();
        ctx.beginPath();
        ctx.rect(x, y, w - 2, ROW);
        ctx.clip();
        ctx.fillText(label, x + 3, y + ROW / 2);
        ctx.restore();
      }
    }
  };
  const hit = (e) => {
    const r = canvas.getBoundingClientRect();
    const fx = focus.x + ((e.clientX - r.left) / r.width) * focus.w;
    const d = focus.depth + Math.floor((e.clientY - r.top) / ROW);
    return visible().find((b) => b.depth === d && fx >= b.x && fx < b.x + b.w);
  };
  const describe = (b) =>
    `${b.n.name}${b.n.file ? ` (${b.n.file}:${b.n.line})` : ''} · ${fmtMs(b.n.totalMs)} in all (${Math.round(
      (100 * b.n.totalMs) / root.totalMs,
    )}%), ${fmtMs(b.n.selfMs)} in itself · ${b.n.origin || 'all'}`;
  canvas.addEventListener('click', (e) => {
    const b = hit(e);
    if (!b) return;
    focus = b;
    reset.hidden = b === boxes[0];
    detail.textContent = describe(b);
    draw();
  });
  canvas.addEventListener('mousemove', (e) => {
    const b = hit(e);
    canvas.title = b ? describe(b) : '';
  });
  reset.addEventListener('click', () => {
    focus = boxes[0];
    reset.hidden = true;
    detail.textContent = 'Click a frame to zoom in and see where it is.';
    draw();
  });
  const wrap = el('div', { class: 'flame-wrap' }, canvas);
  requestAnimationFrame(draw);
  window.addEventListener('resize', draw);
  return el('div', {}, el('div', { class: 'flame-bar' }, detail, reset), wrap);
}

const legend = () =>
  el(
    'p',
    { class: 'legend flame-legend' },
    Object.entries({
      app: 'your code',
      dependency: 'dependencies',
      telemetry: 'telemetry',
      runtime: 'Node / runtime',
    }).map(([k, label]) => el('span', { class: 'flame-key' }, el('span', { class: `swatch swatch-${k}` }), label)),
  );

page('Profile', async (main) => {
  const [p, findings] = await Promise.all([api('/api/dash/profile'), getFindings(['loop-saturated', 'loop-blocked'])]);
  const rate = p.windows
    .map(
      (w) =>
        `${w.service}: ${w.windows} window${w.windows === 1 ? '' : 's'} from ${w.instances} process${w.instances === 1 ? '' : 'es'}, one sample every ${w.periodMs.toFixed(1)} ms`,
    )
    .join('; ');
  const download = el(
    'a',
    { href: withParams({}, '/api/dash/profile.pb.gz'), class: 'button', download: '' },
    'Download pprof (go tool pprof, speedscope)',
  );
  main.append(
    findingsSection(findings, 'The event loop was not saturated or blocked over the thresholds in this window.'),
    section(
      'Event loop CPU',
      el(
        'p',
        { class: 'lead' },
        p.windows.length
          ? `Where the loop's time went, sampled by the agents (${rate}). Wide frames low in the graph are what to make cheaper or move off the loop.`
          : 'No CPU profile was received in this window (profiling is on by default; STALLSCOPE_PROFILE_HZ=0 turns it off).',
      ),
      legend(),
      flameGraph(p.cpu, { id: 'cpu', emptyText: 'No profiled loop time in this window.' }),
      p.windows.length ? download : null,
    ),
    section(
      'Blocked time',
      el(
        'p',
        { class: 'lead' },
        `The stacks of ${p.blockedEpisodes} blocking episode${p.blockedEpisodes === 1 ? '' : 's'}, each as wide as it blocked the loop.`,
      ),
      flameGraph(p.blocked, {
        id: 'blocked',
        emptyText: 'The loop was not blocked over the threshold in this window.',
      }),
    ),
  );
  if (params().get('focus')) main.querySelector('#cpu')?.scrollIntoView();
});
