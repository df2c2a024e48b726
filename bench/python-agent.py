"""The Python agent's cost: 200k awaits, uncontended asyncio.Lock acquire+release, and contended
waits (4 tasks taking turns on one lock, each holding it across a loop turn, so every acquisition
but the first waits, each behind 3 holds), each timed in a fresh process
without and with the agent, interleaved over several rounds; prints the medians and the cost
against the baseline measured in the same run. Targets: under 3% on the awaits, under 1 us added
per uncontended acquisition.

Run: npm run bench:python  (or python3 bench/python-agent.py). BENCH_AGENT_DIR=<dir> times the
agent package found there instead (another revision's agent/python); BENCH_BEFORE_AGENT_DIR=<dir>
times that one as well, in the same rounds, for a before/after under the same machine load."""

import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
AGENT_DIR = os.environ.get("BENCH_AGENT_DIR") or os.path.join(ROOT, "agent", "python")
BEFORE_DIR = os.environ.get("BENCH_BEFORE_AGENT_DIR")

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


def run(agent_dir):
    """The workload's timings, with the agent package found in agent_dir (None: without one)."""
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": agent_dir or AGENT_DIR,
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
        cmd = [sys.executable, "-m", "stallscope_agent", path] if agent_dir else [sys.executable, path]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:  # what the program (or faulthandler, on a crash) said
            sys.exit(f"the workload with {agent_dir or 'no agent'} exited with {r.returncode}:\n{r.stderr[-4000:]}")
        out = r.stdout
    finally:
        os.unlink(path)
    return json.loads(out.strip().splitlines()[-1])


def main():
    runs = {"without": None, "with agent": AGENT_DIR}
    if BEFORE_DIR:
        runs["before"] = BEFORE_DIR
    times = {label: {"awaits": [], "locks": [], "contended": []} for label in runs}
    labels = list(runs)
    for r in range(ROUNDS):
        # Each round in another order: a run's place in the round does not favour one of them.
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            for k, v in run(runs[label]).items():
                times[label][k].append(v)
    ratios = {label: [a / b for a, b in zip(t["awaits"], times["without"]["awaits"])] for label, t in times.items()}
    med = statistics.median
    n = 200_000
    awaits = {label: med(t["awaits"]) * 1e3 for label, t in times.items()}
    locks = {label: med(t["locks"]) / n * 1e9 for label, t in times.items()}
    waits = {label: med(t["contended"]) * 1e9 for label, t in times.items()}
    agents = [label for label in runs if label != "without"]
    where = os.path.relpath(AGENT_DIR, ROOT) + (f", before: {BEFORE_DIR}" if BEFORE_DIR else "")
    print(f"python-agent bench: Python {sys.version.split()[0]}, {ROUNDS} interleaved rounds, medians, agent from {where}")
    print(f"  200k awaits           without {awaits['without']:7.1f} ms" + "".join(f"   {a} {awaits[a]:7.1f} ms ratio {med(ratios[a]):.3f}" for a in agents) + " (target < 1.03)")
    print(f"  lock acquire+release  without {locks['without']:6.0f} ns" + "".join(f"   {a} {locks[a]:6.0f} ns added {locks[a] - locks['without']:+.0f} ns" for a in agents) + " (target < 1000 ns)")
    print(f"  contended wait        without {waits['without']:6.0f} ns" + "".join(f"   {a} {waits[a]:6.0f} ns added {waits[a] - waits['without']:+.0f} ns" for a in agents) + " per wait")


if __name__ == "__main__":
    main()
