"""Shared by the Python agent's tests: a real OTLP/HTTP receiver on a free loopback port, and
programs run the way users run them, with `python -m stallscope_agent`."""

import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

AGENT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(AGENT_ROOT))
# The interpreter the programs run on: this one, or another (STALLSCOPE_TEST_PYTHON=python3.9)
# to check the agent on the oldest Python it supports without pytest installed there.
PYTHON = os.environ.get("STALLSCOPE_TEST_PYTHON") or sys.executable


METRIC_TYPES = ("histogram", "exponentialHistogram", "sum", "gauge")


class Sink:
    """Everything an agent sent, decoded from OTLP/JSON."""

    def __init__(self):
        self.requests = []
        # Loop profiles as they came: (headers, gzipped pprof body).
        self.profiles = []
        self.lock = threading.Lock()

    def spans(self):
        out = []
        with self.lock:
            for path, body in self.requests:
                if path == "/v1/traces":
                    for rs in body["resourceSpans"]:
                        for ss in rs["scopeSpans"]:
                            for s in ss["spans"]:
                                s["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                                out.append(s)
        return out

    def metrics(self, name):
        """Data points of a metric, latest request last."""
        out = []
        with self.lock:
            for path, body in self.requests:
                if path != "/v1/metrics":
                    continue
                for rm in body["resourceMetrics"]:
                    for sm in rm["scopeMetrics"]:
                        for m in sm["metrics"]:
                            if m["name"] == name:
                                data = next(m[k] for k in METRIC_TYPES if k in m)
                                for p in data["dataPoints"]:
                                    p["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in p.get("attributes", [])}
                                    out.append(p)
        return out

    def metric_types(self, name):
        """How a metric was sent: `histogram`, `exponentialHistogram`, `sum`, `gauge`."""
        with self.lock:
            return {k for path, body in self.requests if path == "/v1/metrics" for rm in body["resourceMetrics"] for sm in rm["scopeMetrics"] for m in sm["metrics"] if m["name"] == name for k in METRIC_TYPES if k in m}

    def resources(self):
        with self.lock:
            return [{a["key"]: next(iter(a["value"].values())) for a in body[k][0]["resource"]["attributes"]} for path, body in self.requests for k in ("resourceSpans", "resourceMetrics") if k in body]


@pytest.fixture
def sink():
    s = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["content-length"]))
            with s.lock:
                if self.path == "/v1/profiles/pprof":
                    s.profiles.append(({k.lower(): v for k, v in self.headers.items()}, raw))
                else:
                    s.requests.append((self.path, json.loads(raw)))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    s.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield s
    server.shutdown()
    server.server_close()


def agent_env(endpoint, **extra):
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": AGENT_ROOT + os.pathsep + env.get("PYTHONPATH", ""),
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "py-test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "STALLSCOPE_BLOCK_THRESHOLD_MS": "50",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_program(tmp_path, source, endpoint, agent=True, timeout=60, **env):
    """Writes `source` to app.py and runs it (with the agent unless told not to)."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(source))
    cmd = [PYTHON, "-m", "stallscope_agent", str(app)] if agent else [PYTHON, str(app)]
    r = subprocess.run(cmd, cwd=tmp_path, env=agent_env(endpoint, **env), capture_output=True, text=True, timeout=timeout)
    return r


def line_of(tmp_path, mark):
    """1-based line of the `# MARK:name` comment in app.py."""
    for i, line in enumerate((tmp_path / "app.py").read_text().splitlines(), 1):
        if f"MARK:{mark}" in line:
            return i
    raise AssertionError(f"no MARK:{mark}")
