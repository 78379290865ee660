"""Sealing in tests: until the ledger covers the events, not one round.

A sealing round only passes events below the oldest transaction still running on
the server (the gap-free rule): the app's own projection runner, or another
session on a shared server such as CI's PostgreSQL 15, may hold one open at that
moment, so one round — even `seal_once(wait=True)` — may seal fewer events than
have committed. Tests that need every event sealed wait for it, bounded."""

from __future__ import annotations

import asyncio

from service.audit.ledger import Ledger, Sealer


async def seal_up_to(sealer: Sealer, ledger: Ledger, size: int, *, ceiling: float = 60.0) -> None:
    """Seal until the log's first `size` events are sealed; fail loudly after `ceiling` seconds."""
    deadline = asyncio.get_running_loop().time() + ceiling
    while True:
        await sealer.seal_once(wait=True)
        latest = await ledger.latest_checkpoint()
        if latest is not None and latest.tree_size >= size:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the ledger did not reach tree size {size} in {ceiling:.0f} s "
                                 f"(latest: {latest.tree_size if latest else None})")
        await asyncio.sleep(0.05)


async def seal_everything(sealer: Sealer, *, ceiling: float = 60.0) -> None:
    """Seal until every event committed so far is sealed (the tests' databases hold
    only their own events)."""
    everything = await sealer.pool.fetchval("SELECT count(*) FROM events")
    await seal_up_to(sealer, Ledger(sealer.pool), everything, ceiling=ceiling)
