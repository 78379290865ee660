"""Closed-loop load: N workers each repeat one operation back to back for a fixed time.

Throughput counts the operations that *complete* inside the measuring window (after a
warm-up), which is unbiased however long one operation takes; latency is taken for
those same operations. Asyncio workers for asyncpg clients; threads for the
synchronous peer (psycopg releases the GIL while it waits on the server).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench._harness import Latencies, now


@dataclass
class Measured:
    operations: int
    items: int  # events, requests…: what one operation counts as (a batch is several)
    seconds: float
    latencies: Latencies
    errors: int = 0
    first_error: str | None = None

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


async def run_async(
    workers: int,
    operation: Callable[[int], Awaitable[int]],
    *,
    warmup: float,
    duration: float,
) -> Measured:
    """`operation(worker)` returns how many items it did."""
    latencies = Latencies()
    totals = {"operations": 0, "items": 0, "errors": 0}
    first_error: dict[str, str] = {}
    measure_from = now() + warmup
    deadline = measure_from + duration

    async def worker(index: int) -> None:
        while (started := now()) < deadline:
            try:
                items = await operation(index)
            except Exception as error:
                totals["errors"] += 1
                first_error.setdefault("text", repr(error))
                continue
            finished = now()
            if measure_from <= finished <= deadline:
                latencies.record(finished - started)
                totals["operations"] += 1
                totals["items"] += items

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return Measured(
        totals["operations"], totals["items"], duration, latencies, totals["errors"], first_error.get("text")
    )


def run_threads(
    workers: int,
    operation: Callable[[int], int],
    *,
    warmup: float,
    duration: float,
) -> Measured:
    latencies = Latencies()
    totals = {"operations": 0, "items": 0, "errors": 0}
    first_error: dict[str, str] = {}
    lock = threading.Lock()
    measure_from = now() + warmup
    deadline = measure_from + duration

    def worker(index: int) -> None:
        while (started := now()) < deadline:
            try:
                items = operation(index)
            except Exception as error:
                with lock:
                    totals["errors"] += 1
                    first_error.setdefault("text", repr(error))
                continue
            finished = now()
            if measure_from <= finished <= deadline:
                with lock:
                    latencies.record(finished - started)
                    totals["operations"] += 1
                    totals["items"] += items

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Measured(
        totals["operations"], totals["items"], duration, latencies, totals["errors"], first_error.get("text")
    )
