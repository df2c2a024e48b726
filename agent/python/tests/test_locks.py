"""asyncio locks and threading.Lock on the loop's thread, in real programs."""

from conftest import line_of, run_program


def kind(sink, k):
    return [s for s in sink.spans() if s["attrs"].get("stallscope.kind") == k]


def test_waits_on_an_asyncio_lock_name_the_lock_the_waiter_and_the_holder(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio
        import stallscope_agent

        async def hold(lock, ms):
            async with lock:  # MARK:acquire
                await asyncio.sleep(ms / 1000)

        async def main():
            ledger = asyncio.Lock()  # MARK:ledger
            orders = stallscope_agent.name_lock(asyncio.Lock(), "orders")
            await hold(ledger, 1)  # uncontended
            await asyncio.gather(hold(ledger, 80), hold(ledger, 80), hold(ledger, 80))
            # Hot now: a holder's site is recorded too.
            await asyncio.gather(hold(ledger, 50), hold(ledger, 50))
            with stallscope_agent.span("GET /orders"):
                await asyncio.gather(hold(orders, 60), hold(orders, 60))

        asyncio.run(main())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    waits = kind(sink, "lock-wait")
    ledger = f"app.py:{line_of(tmp_path, 'ledger')}"
    site = f"hold (app.py:{line_of(tmp_path, 'acquire')})"
    on_ledger = [w for w in waits if w["attrs"]["stallscope.lock.name"] == ledger]
    # 3 then 2 concurrent holders: 2 + 1 waits.
    assert len(on_ledger) == 3, [w["attrs"] for w in waits]
    durations = sorted((int(w["endTimeUnixNano"]) - int(w["startTimeUnixNano"])) / 1e6 for w in on_ledger)
    assert 40 <= durations[0] < 120 and 140 <= durations[-1] < 260, durations
    for w in on_ledger:
        a = w["attrs"]
        assert a["stallscope.lock.type"] == "asyncio.Lock"
        assert a["stallscope.lock.outcome"] == "granted"
        assert a["stallscope.lock.acquire_site"] == site
        assert a["code.function.name"] == "hold"
    assert any(w["attrs"].get("stallscope.lock.holder_site") == site for w in on_ledger)
    assert max(int(w["attrs"]["stallscope.lock.queue_depth"]) for w in on_ledger) == 1
    # The named lock, inside the app's span: same trace, the span as parent.
    on_orders = [w for w in waits if w["attrs"]["stallscope.lock.name"] == "orders"]
    server = [s for s in sink.spans() if s["name"] == "GET /orders"][0]
    assert len(on_orders) == 1 and on_orders[0]["traceId"] == server["traceId"] and on_orders[0]["parentSpanId"] == server["spanId"]
    # Metrics: acquisitions by contention, waits, holds.
    acq = {(p["attrs"]["stallscope.lock.name"], p["attrs"]["stallscope.lock.contended"]): int(p["asInt"]) for p in sink.metrics("stallscope.lock.acquisitions")}
    assert acq[(ledger, False)] == 3 and acq[(ledger, True)] == 3, acq
    holds = [p for p in sink.metrics("stallscope.lock.hold_time") if p["attrs"]["stallscope.lock.name"] == ledger]
    assert int(holds[-1]["count"]) == 6
    pending = [p["asDouble"] for p in sink.metrics("stallscope.lock.pending_requests") if p["attrs"]["stallscope.lock.name"] == ledger]
    assert max(pending) >= 2


def test_semaphores_conditions_timeouts_and_a_lock_held_too_long(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio

        async def main():
            pool = asyncio.BoundedSemaphore(2)  # MARK:pool
            async def use(ms):
                async with pool:
                    await asyncio.sleep(ms / 1000)
            await asyncio.gather(*(use(60) for _ in range(4)))

            cond = asyncio.Condition()  # MARK:cond
            async def locked(ms):
                async with cond:
                    await asyncio.sleep(ms / 1000)
            await asyncio.gather(locked(50), locked(50))

            lock = asyncio.Lock()  # MARK:leak
            await lock.acquire()  # never released
            try:
                await asyncio.wait_for(lock.acquire(), 0.9)
            except asyncio.TimeoutError:
                pass

        asyncio.run(main())
        """,
        sink.endpoint,
        STALLSCOPE_LOCK_HELD_THRESHOLD_MS="200",
    )
    assert r.returncode == 0, r.stderr
    by_name = {}
    for w in kind(sink, "lock-wait"):
        by_name.setdefault(w["attrs"]["stallscope.lock.name"], []).append(w["attrs"])
    pool = by_name[f"app.py:{line_of(tmp_path, 'pool')}"]
    assert len(pool) == 2 and {a["stallscope.lock.type"] for a in pool} == {"asyncio.BoundedSemaphore"}
    cond = by_name[f"app.py:{line_of(tmp_path, 'cond')}"]
    assert len(cond) == 1 and cond[0]["stallscope.lock.type"] == "asyncio.Condition"
    # Blamed through its lock; the holder took it cold, so without a site.
    assert [v["stringValue"] for v in cond[0]["stallscope.lock.holder_sites"]["values"]] == ["(unknown)"]
    leak_name = f"app.py:{line_of(tmp_path, 'leak')}"
    assert [a["stallscope.lock.outcome"] for a in by_name[leak_name]] == ["cancelled"]
    # Reported while still held, and again at twice the age: a lock never released stays visible.
    held = sorted(kind(sink, "lock-held"), key=lambda s: float(s["attrs"]["stallscope.lock.held_ms"]))
    assert len(held) >= 2, [s["attrs"] for s in held]
    assert {s["attrs"]["stallscope.lock.name"] for s in held} == {leak_name}
    assert 200 <= float(held[0]["attrs"]["stallscope.lock.held_ms"]) < 400
    assert float(held[1]["attrs"]["stallscope.lock.held_ms"]) >= 400
    assert all(int(s["attrs"]["stallscope.lock.waiters"]) == 1 for s in held)


def test_a_contended_threading_lock_taken_on_the_loop_thread_is_a_sync_call(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio, threading, time

        shared = threading.Lock()

        def worker():
            with shared:
                time.sleep(0.15)

        async def handler():
            with shared:  # MARK:taken
                pass

        async def main():
            with shared:  # uncontended on the loop thread: nothing to report
                pass
            t = threading.Thread(target=worker)
            t.start()
            await asyncio.sleep(0.02)
            await handler()
            t.join()

        asyncio.run(main())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    sync = kind(sink, "sync-call")
    assert [s["attrs"]["stallscope.sync.api"] for s in sync] == ["threading.Lock.acquire"]
    a = sync[0]["attrs"]
    assert a["code.function.name"] == "handler" and int(a["code.line.number"]) == line_of(tmp_path, "taken")
    assert (int(sync[0]["endTimeUnixNano"]) - int(sync[0]["startTimeUnixNano"])) / 1e6 >= 100
