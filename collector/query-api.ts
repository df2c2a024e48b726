// The collector's JSON query API, mounted on the dashboard port. Every bad parameter is a 400
// whose message names the parameter and what it accepts.
import express, { type Router } from 'express';
import type { Collector } from './index';
import type { TraceSearch } from '../common/types';
import { AGENT_KINDS, isAgentKind } from '../common/conventions';
import { msToNs } from '../common/time';
import { FINDING_KINDS } from '../common/conventions';
import { ConfigError } from './config-file';
import { BadParam, TRACE_ID, durationParam, handler, intParam, one, range, stepParam } from './params';

export function queryApi(collector: Collector): Router {
  const api = express.Router();
  const store = collector.store;

  api.get(
    '/services',
    handler(() => store.read.services()),
  );

  api.get(
    '/traces',
    handler((req) => {
      const { fromMs, toMs } = range(req, undefined);
      const search: TraceSearch = { limit: intParam(req, 'limit', 1, 1000, 20) };
      search.service = one(req, 'service');
      search.name = one(req, 'name');
      const minDuration = durationParam(req, 'minDuration');
      if (minDuration !== undefined) search.minDurationNs = msToNs(minDuration);
      if (fromMs !== undefined) search.fromNs = msToNs(fromMs);
      if (toMs !== undefined) search.toNs = msToNs(toMs);
      const kind = one(req, 'kind');
      if (kind !== undefined) {
        if (!isAgentKind(kind)) throw new BadParam(`kind: one of ${AGENT_KINDS.join(', ')}`);
        search.agentKind = kind;
      }
      const attr = one(req, 'attribute');
      if (attr !== undefined) {
        const eq = attr.indexOf('=');
        const key = attr.slice(0, eq);
        if (eq <= 0 || key.includes('"'))
          throw new BadParam('attribute: use key=value, e.g. attribute=http.route=/orders');
        search.attribute = { key, value: attr.slice(eq + 1) };
      }
      return store.read.searchTraces(search);
    }),
  );

  api.get('/traces/:traceId', async (req, res) => {
    const id = req.params.traceId;
    if (!TRACE_ID.test(id)) {
      res.status(400).json({ error: `traceId: "${id}" is not 32 hex characters` });
      return;
    }
    try {
      const spans = await store.read.trace(id);
      if (spans.length === 0) res.status(404).json({ error: `no trace ${id.toLowerCase()}` });
      else res.json({ traceId: id.toLowerCase(), spans });
    } catch (err) {
      res.status(500).json({ error: `internal error: ${(err as Error).message}` });
    }
  });

  api.get(
    '/metrics',
    handler((req) => {
      const name = one(req, 'name');
      if (!name) throw new BadParam('name: required, the metric name (e.g. nodejs.eventloop.delay.p99)');
      const { fromMs, toMs } = range(req, 3_600_000);
      const spanMs = toMs! - fromMs!;
      const stepMs = stepParam(req, spanMs);
      return store.read.metric({
        name,
        service: one(req, 'service'),
        fromNs: msToNs(fromMs!),
        toNs: msToNs(toMs!),
        stepNs: msToNs(stepMs),
      });
    }),
  );

  api.get(
    '/findings',
    handler(async (req) => {
      const { fromMs, toMs } = range(req, 15 * 60_000);
      const kinds = one(req, 'kind')?.split(',');
      const unknown = kinds?.find((k) => !(FINDING_KINDS as readonly string[]).includes(k));
      if (unknown !== undefined)
        throw new BadParam(
          `kind: "${unknown}" is not a finding kind; use one or more of ${FINDING_KINDS.join(', ')}, separated by commas`,
        );
      const resource = one(req, 'resource');
      const findings = await collector.findings({
        service: one(req, 'service') || undefined,
        fromNs: msToNs(fromMs!),
        toNs: msToNs(toMs!),
        stepNs: msToNs(toMs! - fromMs!),
      });
      return findings.filter(
        (f) => (!kinds || kinds.includes(f.kind)) && (resource === undefined || f.resource === resource),
      );
    }),
  );

  api.get(
    '/alerts',
    handler(async (req) => {
      const since = durationParam(req, 'since') ?? 24 * 3_600_000;
      return {
        ...collector.alerts.status(),
        history: await store.read.alertHistory(Date.now() - since, intParam(req, 'limit', 1, 5000, 200)),
      };
    }),
  );

  api.get(
    '/alerts/summary',
    handler(() => {
      const alerts = collector.alerts.status().alerts;
      return {
        firing: alerts.filter((a) => a.state === 'firing').length,
        pending: alerts.filter((a) => a.state === 'pending').length,
      };
    }),
  );

  // PUT, never POST: a page elsewhere cannot send one without a CORS preflight, which this
  // server does not grant, so a browser cannot be used to rewrite the rules.
  api.put('/alerts/rules', express.text({ type: () => true, limit: '1mb' }), async (req, res) => {
    if (typeof req.body !== 'string') {
      res.status(400).json({ error: 'send the rules file (YAML or JSON) as the request body' });
      return;
    }
    try {
      const rules = await collector.alerts.replaceRules(req.body);
      res.json({ file: collector.alerts.status().file, rules: rules.rules.length, receivers: rules.receivers.length });
    } catch (err) {
      if (err instanceof ConfigError) res.status(400).json({ error: err.message });
      else res.status(500).json({ error: `could not save the rules: ${(err as Error).message}` });
    }
  });

  api.use((req, res) => {
    res.status(404).json({ error: `no API endpoint ${req.method} ${req.path}` });
  });
  return api;
}
