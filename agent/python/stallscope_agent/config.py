"""Settings from the same environment variables as the Node agent (OTEL_* and STALLSCOPE_*)."""

import os
import sys
from dataclasses import dataclass, field


@dataclass
class Config:
    service_name: str = "unknown_service:python"
    endpoint: str = "http://localhost:4318"
    resource_attributes: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    span_delay_s: float = 5.0
    metric_interval_s: float = 60.0
    block_threshold_ms: float = 100.0
    sync_threshold_ms: float = 10.0
    json_size_threshold: int = 100_000
    lock_wait_threshold_ms: float = 1.0
    lock_held_threshold_ms: float = 5000.0
    max_blocks_per_minute: int = 60
    max_queued_spans: int = 2048
    export_timeout_s: float = 10.0
    profile_hz: float = 100.0
    profile_window_ms: float = 30_000.0
    # faulthandler's C timer names a C call that holds the GIL, but it dumps every thread's frames
    # without the GIL while they run: it has crashed CPython (in dump_frame) when the watchdog was
    # starved. Off unless asked for.
    gil_stacks: bool = False
    disabled: bool = False


def _number(env, name, default, minimum, warn, maximum=None):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        warn(f"{name}={raw!r} is not a number {bound}; using {default}")
        return default
    return value


def _pairs(text):
    """`k1=v1,k2=v2` as OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS write them."""
    from urllib.parse import unquote

    out = {}
    for part in (text or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            if k.strip():
                out[k.strip()] = unquote(v.strip())
    return out


def load(env=None, warn=None):
    env = os.environ if env is None else env
    warn = warn or (lambda msg: sys.stderr.write(f"stallscope: {msg}\n"))
    c = Config()
    c.disabled = env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("STALLSCOPE_DISABLED", "").lower() == "true"
    c.resource_attributes = _pairs(env.get("OTEL_RESOURCE_ATTRIBUTES"))
    c.service_name = env.get("OTEL_SERVICE_NAME") or c.resource_attributes.get("service.name") or c.service_name
    c.endpoint = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or c.endpoint).rstrip("/")
    c.headers = _pairs(env.get("OTEL_EXPORTER_OTLP_HEADERS"))
    c.span_delay_s = _number(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, 1, warn) / 1000
    c.metric_interval_s = _number(env, "OTEL_METRIC_EXPORT_INTERVAL", 60000, 100, warn) / 1000
    c.block_threshold_ms = _number(env, "STALLSCOPE_BLOCK_THRESHOLD_MS", c.block_threshold_ms, 20, warn)
    c.max_blocks_per_minute = int(_number(env, "STALLSCOPE_BLOCK_MAX_PER_MINUTE", c.max_blocks_per_minute, 0, warn))
    c.sync_threshold_ms = _number(env, "STALLSCOPE_SYNC_THRESHOLD_MS", c.sync_threshold_ms, 0, warn)
    c.json_size_threshold = int(_number(env, "STALLSCOPE_JSON_SIZE_THRESHOLD", c.json_size_threshold, 0, warn))
    c.lock_wait_threshold_ms = _number(env, "STALLSCOPE_LOCK_WAIT_THRESHOLD_MS", c.lock_wait_threshold_ms, 0, warn)
    c.lock_held_threshold_ms = _number(env, "STALLSCOPE_LOCK_HELD_THRESHOLD_MS", c.lock_held_threshold_ms, 10, warn)
    c.export_timeout_s = _number(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, 1, warn) / 1000
    c.profile_hz = _number(env, "STALLSCOPE_PROFILE_HZ", c.profile_hz, 0, warn, 1000)
    c.profile_window_ms = _number(env, "STALLSCOPE_PROFILE_WINDOW_MS", c.profile_window_ms, 1000, warn, 600_000)
    c.gil_stacks = env.get("STALLSCOPE_GIL_STACKS", "").lower() == "true"
    return c
