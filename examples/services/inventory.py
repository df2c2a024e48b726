"""inventory: a Python asyncio service (standard library only) with the article's own mistakes.
Stock levels are recomputed in a CPU loop inside the request handler, every request takes one
global asyncio.Lock across a slow write, and the audit log "waits" with time.sleep.
Expected findings: loop-blocked (recount), lock-contention (the stock lock), sync-call (time.sleep
in write_audit). Run: python -m stallscope_agent inventory.py"""

import asyncio
import json
import os
import sys
import time

import stallscope_agent

stock = {f"sku-{i}": i % 17 for i in range(50_000)}
stock_lock = asyncio.Lock()  # MARK:stock-lock


def recount():
    total = 0
    for _ in range(180):
        for value in stock.values(): total += value  # noqa: E701  MARK:recount
    return total


def write_audit(entry):
    time.sleep(0.03)  # MARK:audit-sleep
    return entry


async def reserve(sku):
    async with stock_lock:  # MARK:reserve
        await asyncio.sleep(0.04)  # the database write
        stock[sku] = stock.get(sku, 0) - 1
    return stock[sku]


async def route(path):
    if path.startswith("/reserve/"):
        return {"left": await reserve(path.split("/")[-1])}
    if path == "/report":
        return {"total": recount()}
    if path == "/audit":
        return {"logged": write_audit(path)}
    if path == "/health":
        return {"ok": True}
    return None


async def handle(reader, writer):
    try:
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        method, path, _ = request.decode().split(" ", 2)
        with stallscope_agent.span(f"{method} {path.split('?')[0]}", {"http.request.method": method, "url.path": path}):
            body = await route(path)
        status = "200 OK" if body is not None else "404 Not Found"
        data = json.dumps(body or {"error": "not found"}).encode()
        writer.write(f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\nconnection: close\r\n\r\n".encode() + data)
        await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(os.environ.get("PORT", "0")))
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    if os.environ.get("STALLSCOPE_DEMO"):
        # Under the demo: its end (even a SIGKILL) closes our stdin, and we stop too.
        import threading

        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))), daemon=True).start()
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main())
