"""stallscope's agent for Python asyncio services, standard library only.

Attach with `python -m stallscope_agent app.py [args]`, or call `install()` before the app's
event loop starts. It reports to a stallscope collector (or any OTLP/HTTP receiver that takes
JSON) with the same telemetry names as the Node.js agent, so the dashboard, findings and alerts
work unchanged."""

import asyncio
import sys

from . import config as _config
from . import safety, spans
from .conventions import METRICS_AGENT_ERRORS
from .locks import LockTracker, name_lock
from .loop import LoopMonitor
from .metrics import Registry
from .nested import NestedRuns
from .offload import Offload
from .otlp import Exporter
from .profiler import LoopProfiler
from .spans import span
from .sync_calls import SyncCalls

__all__ = ["install", "uninstall", "span", "name_lock", "Agent"]

_agent = None


class Agent:
    def __init__(self, cfg):
        self.config = cfg
        self.registry = Registry()
        self.loops = LoopMonitor(cfg, self.registry)
        self.exporter = Exporter(cfg, self.registry, before_metrics=self.loops.collect)
        self.sync_calls = SyncCalls(cfg, self.registry)
        self.locks = LockTracker(cfg, self.registry)
        self.offload = Offload(cfg, self.registry)
        self.nested = NestedRuns()
        if cfg.profile_hz > 0:
            self.loops.profiler = LoopProfiler(cfg, self.registry, self.exporter.add_profile, self.exporter.resource_attributes)
            self.exporter.final_profile = self.loops.profiler.take_window
        self.registry.gauge(METRICS_AGENT_ERRORS, lambda: [((("stallscope.agent.component", k),), v) for k, v in list(safety.errors.items())])
        self._run_forever = None

    def _patch_loops(self):
        monitor = self.loops
        original = asyncio.BaseEventLoop.run_forever

        def run_forever(loop):
            state = None
            try:
                state = monitor.attach(loop)
            except Exception as err:
                safety.report("loop monitor", err)
            try:
                return original(loop)
            finally:
                if state is not None:
                    monitor.detach(state)

        run_forever.__wrapped__ = original
        asyncio.BaseEventLoop.run_forever = run_forever
        self._run_forever = original

    def start(self):
        spans.set_sink(self.exporter.add)
        self.exporter.start()
        steps = [
            ("loop monitor", self._patch_loops),
            ("sync calls", self.sync_calls.install),
            ("locks", lambda: self.locks.install(self.sync_calls)),
            ("offload", self.offload.install),
            ("nested loops", self.nested.install),
        ]
        for name, step in steps:
            try:
                step()
            except Exception as err:
                safety.report(name, err)
        self.loops.tick_hooks.append(self.locks.scan)
        self.loops.start()

    def stop(self):
        for part in (self.nested, self.offload, self.locks, self.sync_calls):
            part.uninstall()
        if self._run_forever is not None:
            asyncio.BaseEventLoop.run_forever = self._run_forever
        self.loops.close()
        self.exporter.shutdown()
        spans.set_sink(None)


def install(**overrides):
    """Starts the agent once (later calls return the same one); `overrides` set Config fields."""
    global _agent
    if _agent is not None:
        return _agent
    cfg = _config.load()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    if cfg.disabled:
        return None
    try:
        _agent = Agent(cfg)
        _agent.start()
    except Exception as err:
        safety.report("start", err)
        _agent = None
    return _agent


def uninstall():
    global _agent
    if _agent is not None:
        _agent.stop()
        _agent = None


if sys.version_info < (3, 9):  # pragma: no cover
    raise ImportError("stallscope_agent needs Python 3.9 or later")
