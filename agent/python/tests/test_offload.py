"""Thread offload (to_thread, run_in_executor, ThreadPoolExecutor) and nested loops, in real programs."""

from conftest import line_of, run_program


def tasks(sink):
    return [s for s in sink.spans() if s["attrs"].get("stallscope.kind") == "pool-task"]


def test_tasks_wait_for_a_worker_apart_from_their_run_time(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio, time
        from concurrent.futures import ThreadPoolExecutor
        import stallscope_agent

        def render(ms):
            time.sleep(ms / 1000)
            return ms

        async def main():
            pool = ThreadPoolExecutor(max_workers=1)  # MARK:pool
            loop = asyncio.get_running_loop()
            with stallscope_agent.span("POST /upload"):
                await asyncio.gather(*(loop.run_in_executor(pool, render, 50) for _ in range(4)))
            await asyncio.to_thread(render, 10)
            pool.submit(render, 5).result()
            try:
                await loop.run_in_executor(pool, int, "not a number")
            except ValueError:
                pass

        asyncio.run(main())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    pool_name = f"app.py:{line_of(tmp_path, 'pool')}"
    mine = [t["attrs"] for t in tasks(sink) if t["attrs"]["stallscope.pool.name"] == pool_name]
    assert len(mine) == 6
    # The four 50 ms renders submitted at once (the 5 ms one came later, alone).
    renders = sorted((a for a in mine if a["stallscope.pool.task"] == "render" and float(a["stallscope.pool.run_ms"]) >= 40), key=lambda a: float(a["stallscope.pool.queue_wait_ms"]))
    assert len(renders) == 4
    waits = [float(a["stallscope.pool.queue_wait_ms"]) for a in renders]
    # One worker, four 50 ms tasks at once: they wait about 0, 50, 100 and 150 ms.
    assert waits[0] < 20 and 130 <= waits[3] < 260, waits
    assert all(float(a["stallscope.pool.run_ms"]) < 120 for a in renders)
    assert {a["stallscope.pool.type"] for a in mine} == {"ThreadPoolExecutor"}
    assert {int(a["stallscope.pool.max_threads"]) for a in mine} == {1}
    assert [a["stallscope.pool.outcome"] for a in mine if a["stallscope.pool.task"] == "int"] == ["error"]
    # to_thread runs on the loop's default executor.
    default = [t["attrs"] for t in tasks(sink) if t["attrs"]["stallscope.pool.name"] == "asyncio default executor"]
    assert [a["stallscope.pool.task"] for a in default] == ["render"]
    # The submitting span is the parent.
    upload = [s for s in sink.spans() if s["name"] == "POST /upload"][0]
    assert sum(1 for t in tasks(sink) if t.get("parentSpanId") == upload["spanId"]) == 4
    wait = [p for p in sink.metrics("stallscope.pool.queue_wait") if p["attrs"]["stallscope.pool.name"] == pool_name][-1]
    run = [p for p in sink.metrics("stallscope.pool.run_time") if p["attrs"]["stallscope.pool.name"] == pool_name][-1]
    assert int(wait["count"]) == 6 and wait["sum"] > run["sum"] * 0.9
    # Exponential histograms, as the Node agent sends them.
    assert sink.metric_types("stallscope.pool.queue_wait") == sink.metric_types("stallscope.pool.run_time") == {"exponentialHistogram"}
    assert sum(int(c) for c in run["positive"]["bucketCounts"]) + int(run["zeroCount"]) == 6


def test_a_nested_asyncio_run_is_reported_and_still_raises(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio

        async def inner():
            return 1

        async def handler():
            coro = inner()
            try:
                asyncio.run(coro)  # MARK:nested
            except RuntimeError as err:
                print("raised:", err)
            finally:
                coro.close()

        asyncio.run(handler())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    assert "raised: asyncio.run() cannot be called from a running event loop" in r.stdout
    nested = [s for s in sink.spans() if s["attrs"].get("stallscope.kind") == "nested-loop"]
    assert len(nested) == 1
    s = nested[0]
    assert s["name"] == "nested event loop"
    assert s["status"]["code"] == 2 and "cannot be called from a running event loop" in s["status"]["message"]
    assert s["attrs"]["stallscope.nested.api"] == "asyncio.run"
    assert s["attrs"]["code.function.name"] == "handler" and int(s["attrs"]["code.line.number"]) == line_of(tmp_path, "nested")
    assert s["events"][0]["name"] == "exception"


def test_the_agent_changes_nothing_the_app_sees(sink, tmp_path):
    source = """
        import asyncio, json, threading, time
        from concurrent.futures import ThreadPoolExecutor

        async def main():
            lock, sem = asyncio.Lock(), asyncio.Semaphore(2)
            out = []
            async def worker(i):
                async with lock:
                    out.append(i)
                async with sem:
                    await asyncio.sleep(0)
            await asyncio.gather(*(worker(i) for i in range(5)))
            print(out, lock.locked(), sem.locked())
            print(await asyncio.to_thread(sum, [1, 2, 3]))
            with ThreadPoolExecutor(2) as pool:
                print(pool.submit(pow, 2, 10).result())
            print(json.loads('{"a": [1, 2]}'))
            t = threading.Lock()
            print(t.acquire(False), t.acquire(False), t.locked())
            t.release()
            try:
                await asyncio.wait_for(asyncio.sleep(1), 0.01)
            except asyncio.TimeoutError:
                print("timeout")
            time.sleep(0)

        asyncio.run(main())
    """
    plain = run_program(tmp_path, source, sink.endpoint, agent=False)
    watched = run_program(tmp_path, source, sink.endpoint)
    assert plain.returncode == 0 and watched.returncode == 0, watched.stderr
    assert watched.stdout == plain.stdout
    assert watched.stderr == ""
