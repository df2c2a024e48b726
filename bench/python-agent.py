"""The Python agent's cost: 200k awaits, uncontended asyncio.Lock acquire+release, and contended
waits (4 tasks taking turns on one lock, each holding it across a loop turn, so every acquisition
but the first waits, each behind 3 holds), each timed in a fresh process
without and with the agent, interleaved over several rounds; prints the medians and the cost
against the baseline measured in the same run. Targets: under 3% on the awaits, under 1 us added
per uncontended acquisition.

Run: npm run bench:python  (or python3 bench/python-agent.py). BENCH_AGENT_DIR=<dir> times the
agent package found there instead (another revision's agent/python), for a before/after."""

import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
AGENT_DIR = os.environ.get("BENCH_AGENT_DIR") or os.path.join(ROOT, "agent", "python")

WORKLOAD = r"""
import asyncio, json, time

AWAITS = 200_000
ACQUIRES = 200_000
TASKS = 4
TURNS = 10_000

async def step(i):
    return i

async def awaits():
    start = time.perf_counter()
    for i in range(AWAITS):
        await step(i)
    return time.perf_counter() - start

async def locks():
    lock = asyncio.Lock()
    start = time.perf_counter()
    for _ in range(ACQUIRES):
        await lock.acquire()
        lock.release()
    return time.perf_counter() - start

async def contended():
    lock = asyncio.Lock()
    waits = 0
    async def worker():
        nonlocal waits
        for _ in range(TURNS):
            waits += bool(lock._locked or lock._waiters)  # this acquisition will queue
            async with lock:
                await asyncio.sleep(0)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return (time.perf_counter() - start) / waits

async def main():
    await awaits(); await locks(); await contended()  # warm up
    print(json.dumps({"awaits": await awaits(), "locks": await locks(), "contended": await contended()}))

asyncio.run(main())
"""


def run(agent):
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": AGENT_DIR,
            # Nothing listens there: the exporter's failures are counted, as when a collector is down.
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_SERVICE_NAME": "bench",
            # Contended waits stay under the span threshold even on a busy machine: the figure is
            # the bookkeeping every wait pays (a wait over the threshold also makes a span).
            "STALLSCOPE_LOCK_WAIT_THRESHOLD_MS": "1000",
        }
    )
    path = os.path.join(ROOT, "bench", ".python-workload.py")
    with open(path, "w") as f:
        f.write(WORKLOAD)
    try:
        cmd = [sys.executable, "-m", "stallscope_agent", path] if agent else [sys.executable, path]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    finally:
        os.unlink(path)
    return json.loads(out.strip().splitlines()[-1])


def main():
    base = {"awaits": [], "locks": [], "contended": []}
    agent = {"awaits": [], "locks": [], "contended": []}
    ratios = []
    for _ in range(ROUNDS):
        b, a = run(False), run(True)
        for k in base:
            base[k].append(b[k])
            agent[k].append(a[k])
        ratios.append(a["awaits"] / b["awaits"])
    med = statistics.median
    n = 200_000
    print(f"python-agent bench: Python {sys.version.split()[0]}, {ROUNDS} interleaved rounds, medians, agent from {os.path.relpath(AGENT_DIR, ROOT)}")
    print(f"  200k awaits      without {med(base['awaits']) * 1e3:7.1f} ms   with agent {med(agent['awaits']) * 1e3:7.1f} ms   ratio {med(ratios):.3f} (target < 1.03)")
    lock_base = med(base["locks"]) / n * 1e9
    lock_agent = med(agent["locks"]) / n * 1e9
    print(f"  lock acquire+release  without {lock_base:6.0f} ns   with agent {lock_agent:6.0f} ns   added {lock_agent - lock_base:+.0f} ns (target < 1000 ns)")
    wait_base = med(base["contended"]) * 1e9
    wait_agent = med(agent["contended"]) * 1e9
    print(f"  contended wait        without {wait_base:6.0f} ns   with agent {wait_agent:6.0f} ns   added {wait_agent - wait_base:+.0f} ns per wait")


if __name__ == "__main__":
    main()
