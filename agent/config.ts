// The agent's own settings: STALLSCOPE_* environment variables, overridden by start() options.
// The standard OTEL_* variables are read by the OpenTelemetry SDK itself.

/** Library instrumentations, by the names OTEL_NODE_ENABLED/DISABLED_INSTRUMENTATIONS use. */
export const INSTRUMENTATION_NAMES = [
  'http',
  'express',
  'async-mutex',
  'async-lock',
  'p-limit',
  'p-queue',
  'web-locks',
  'piscina',
  'workerpool',
] as const;
export type InstrumentationName = (typeof INSTRUMENTATION_NAMES)[number];

/** How HTTP server requests are traced (STALLSCOPE_REQUESTS). */
export const REQUEST_MODES = ['full', 'lean'] as const;
export type RequestMode = (typeof REQUEST_MODES)[number];

export interface AgentConfig {
  /** OTEL_SDK_DISABLED=true or STALLSCOPE_DISABLED=true: the agent does nothing. */
  disabled: boolean;
  /** A loop that has not turned for this long is a blocking episode. */
  blockThresholdMs: number;
  /** Episode spans allowed per minute; further episodes are only counted. */
  maxBlockSpansPerMinute: number;
  /** A blocking sync call lasting this long becomes a span. */
  syncThresholdMs: number;
  /** JSON.parse / JSON.stringify are watched only for payloads of at least this many characters. */
  jsonSizeThreshold: number;
  /** A contended lock acquisition that waited this long becomes a span. */
  lockWaitThresholdMs: number;
  /** A lock held this long while others wait is reported while still held. */
  lockHeldThresholdMs: number;
  /** A libuv threadpool operation that waited this long for a thread becomes a span. */
  threadpoolWaitThresholdMs: number;
  /** How often the threadpool canary runs; 0 turns it off. */
  threadpoolCanaryMs: number;
  /** Loop CPU profile: samples per second asked of V8; 0 turns profiling off. */
  profileHz: number;
  /** Loop CPU profile: one profile is sent per window of this length. */
  profileWindowMs: number;
  /** Switches for the detectors. */
  watchdog: boolean;
  syncCalls: boolean;
  loopMetrics: boolean;
  locks: boolean;
  threadpool: boolean;
  pools: boolean;
  /** Whether keys of keyed locks (async-lock keys, Web Locks names) may name lock resources. */
  lockKeyNames: boolean;
  /** Whether reported code positions are mapped through the app's source maps. */
  sourceMaps: boolean;
  /**
   * `full`: OpenTelemetry's HTTP and express instrumentations (a span per request, as sampled);
   * `lean`: stallscope's own, which exports a server span only for requests that stalled or were
   * slow and counts every request in the `http.server.request.duration` histogram.
   */
  requests: RequestMode;
  /** Lean mode: a request that took this long is exported even if nothing stalled it. */
  slowRequestMs: number;
  /** The library instrumentations to load (all unless the environment narrows them). */
  instrumentations: InstrumentationName[];
}

export const DEFAULTS: AgentConfig = {
  disabled: false,
  blockThresholdMs: 100,
  maxBlockSpansPerMinute: 60,
  syncThresholdMs: 10,
  jsonSizeThreshold: 100_000,
  lockWaitThresholdMs: 1,
  lockHeldThresholdMs: 5000,
  threadpoolWaitThresholdMs: 10,
  threadpoolCanaryMs: 500,
  profileHz: 100,
  profileWindowMs: 30_000,
  watchdog: true,
  syncCalls: true,
  loopMetrics: true,
  locks: true,
  threadpool: true,
  pools: true,
  lockKeyNames: true,
  sourceMaps: true,
  requests: 'full',
  slowRequestMs: 1000,
  instrumentations: [...INSTRUMENTATION_NAMES],
};

/** [setting, variable, minimum, maximum]. */
const NUMBER_VARS: Array<[keyof AgentConfig, string, number, number?]> = [
  ['blockThresholdMs', 'STALLSCOPE_BLOCK_THRESHOLD_MS', 20],
  ['maxBlockSpansPerMinute', 'STALLSCOPE_BLOCK_MAX_PER_MINUTE', 0],
  ['syncThresholdMs', 'STALLSCOPE_SYNC_THRESHOLD_MS', 0],
  ['jsonSizeThreshold', 'STALLSCOPE_JSON_SIZE_THRESHOLD', 0],
  ['lockWaitThresholdMs', 'STALLSCOPE_LOCK_WAIT_THRESHOLD_MS', 0],
  ['lockHeldThresholdMs', 'STALLSCOPE_LOCK_HELD_THRESHOLD_MS', 10],
  ['threadpoolWaitThresholdMs', 'STALLSCOPE_THREADPOOL_WAIT_THRESHOLD_MS', 0],
  ['threadpoolCanaryMs', 'STALLSCOPE_THREADPOOL_CANARY_MS', 0],
  ['slowRequestMs', 'STALLSCOPE_SLOW_REQUEST_MS', 0],
  ['profileHz', 'STALLSCOPE_PROFILE_HZ', 0, 1000],
  ['profileWindowMs', 'STALLSCOPE_PROFILE_WINDOW_MS', 1000, 600_000],
];

const range = (min: number, max: number | undefined) => (max === undefined ? `>= ${min}` : `from ${min} to ${max}`);

const SWITCH_VARS: Array<[keyof AgentConfig, string]> = [
  ['watchdog', 'STALLSCOPE_WATCHDOG'],
  ['syncCalls', 'STALLSCOPE_SYNC_CALLS'],
  ['loopMetrics', 'STALLSCOPE_LOOP_METRICS'],
  ['locks', 'STALLSCOPE_LOCKS'],
  ['threadpool', 'STALLSCOPE_THREADPOOL'],
  ['pools', 'STALLSCOPE_POOLS'],
  ['lockKeyNames', 'STALLSCOPE_LOCK_KEY_NAMES'],
  ['sourceMaps', 'STALLSCOPE_SOURCE_MAPS'],
];

function truthy(v: string | undefined): boolean | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  return undefined;
}

/**
 * Reads the environment. A bad value never stops the host: it is named in a warning and the
 * default is used instead.
 */
export function resolveConfig(
  env: NodeJS.ProcessEnv,
  options: Partial<AgentConfig>,
  warn: (msg: string) => void,
): AgentConfig {
  const cfg: AgentConfig = { ...DEFAULTS };
  cfg.disabled = truthy(env.OTEL_SDK_DISABLED) === true || truthy(env.STALLSCOPE_DISABLED) === true;
  for (const [key, name, min, max] of NUMBER_VARS) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > (max ?? Infinity))
      warn(`${name}="${raw}" is not a number ${range(min, max)}; using ${cfg[key]}`);
    else (cfg[key] as number) = n;
  }
  for (const [key, name] of SWITCH_VARS) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const b = truthy(raw);
    if (b === undefined) warn(`${name}="${raw}" is not true or false; using ${cfg[key]}`);
    else (cfg[key] as boolean) = b;
  }
  const mode = env.STALLSCOPE_REQUESTS?.trim().toLowerCase();
  if (mode) {
    if ((REQUEST_MODES as readonly string[]).includes(mode)) cfg.requests = mode as RequestMode;
    else
      warn(
        `STALLSCOPE_REQUESTS="${env.STALLSCOPE_REQUESTS}" is not ${REQUEST_MODES.join(' or ')}; using ${cfg.requests}`,
      );
  }
  // The OpenTelemetry Node convention: comma-separated names, enabled first, then disabled.
  const names = (name: string): InstrumentationName[] | undefined => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return undefined;
    const list = raw
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean);
    for (const n of list) {
      if (!(INSTRUMENTATION_NAMES as readonly string[]).includes(n))
        warn(`${name}: unknown instrumentation "${n}" (known: ${INSTRUMENTATION_NAMES.join(', ')})`);
    }
    return list.filter((n): n is InstrumentationName => (INSTRUMENTATION_NAMES as readonly string[]).includes(n));
  };
  const enabled = names('OTEL_NODE_ENABLED_INSTRUMENTATIONS');
  const disabled = names('OTEL_NODE_DISABLED_INSTRUMENTATIONS') ?? [];
  cfg.instrumentations = (enabled ?? cfg.instrumentations).filter((n) => !disabled.includes(n));
  // Options from code get the same checks; undefined means "not given".
  for (const [key, , min, max] of NUMBER_VARS) {
    const v = options[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > (max ?? Infinity))
      warn(`start(): ${key}=${String(v)} is not a number ${range(min, max)}; using ${cfg[key]}`);
    else (cfg[key] as number) = v;
  }
  for (const key of ['disabled', ...SWITCH_VARS.map(([k]) => k)] as Array<keyof AgentConfig>) {
    const v = options[key];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') warn(`start(): ${key}=${String(v)} is not true or false; using ${cfg[key]}`);
    else (cfg[key] as boolean) = v;
  }
  if (options.requests !== undefined) {
    if ((REQUEST_MODES as readonly unknown[]).includes(options.requests)) cfg.requests = options.requests;
    else
      warn(`start(): requests=${String(options.requests)} is not ${REQUEST_MODES.join(' or ')}; using ${cfg.requests}`);
  }
  if (options.instrumentations !== undefined) {
    const list = options.instrumentations as unknown;
    if (!Array.isArray(list) || list.some((n) => !(INSTRUMENTATION_NAMES as readonly string[]).includes(n))) {
      warn(
        `start(): instrumentations=${JSON.stringify(list)} is not a list of ${INSTRUMENTATION_NAMES.join(', ')}; using ${cfg.instrumentations.join(', ')}`,
      );
    } else cfg.instrumentations = [...(list as InstrumentationName[])];
  }
  return cfg;
}

/** Where the agent posts what the OpenTelemetry exporters do not send (loop profiles). */
export interface OtlpTarget {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';
const DEFAULT_OTLP_TIMEOUT_MS = 10_000;

/**
 * `path` under OTEL_EXPORTER_OTLP_ENDPOINT (the base URL, as the OTLP/HTTP exporters read it),
 * with OTEL_EXPORTER_OTLP_HEADERS (`k=v,k2=v2`, values percent-decoded) and
 * OTEL_EXPORTER_OTLP_TIMEOUT; undefined when the endpoint is not a URL.
 */
export function otlpTarget(env: NodeJS.ProcessEnv, path: string, warn: (msg: string) => void): OtlpTarget | undefined {
  const base = (env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || DEFAULT_OTLP_ENDPOINT).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(base + path);
  } catch {
    warn(`OTEL_EXPORTER_OTLP_ENDPOINT="${base}" is not a URL; loop profiles are not sent`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    warn(`OTEL_EXPORTER_OTLP_ENDPOINT="${base}" is not http or https; loop profiles are not sent`);
    return undefined;
  }
  const headers: Record<string, string> = {};
  for (const pair of (env.OTEL_EXPORTER_OTLP_HEADERS ?? '').split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim();
    try {
      headers[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      warn(`OTEL_EXPORTER_OTLP_HEADERS: the value of "${key}" is not percent-encoded text; it is sent as written`);
      headers[key] = pair.slice(eq + 1).trim();
    }
  }
  let timeoutMs = DEFAULT_OTLP_TIMEOUT_MS;
  const rawTimeout = env.OTEL_EXPORTER_OTLP_TIMEOUT;
  if (rawTimeout !== undefined && rawTimeout.trim() !== '') {
    const n = Number(rawTimeout);
    if (Number.isFinite(n) && n > 0) timeoutMs = n;
    else warn(`OTEL_EXPORTER_OTLP_TIMEOUT="${rawTimeout}" is not a number of milliseconds > 0; using ${timeoutMs}`);
  }
  return { url: url.href, headers, timeoutMs };
}
