"""Holding a writer's transaction open after it has appended an event, with a real
PostgreSQL lock, so that a later transaction commits first: the case every reader
of the log must get right (the gap-free rule), made deterministic.

Any writer can be held -- an HTTP command in flight, the CLI, the store -- without
touching its code: a trigger on the events table (installed by the test, in the
test's own database) makes the inserting transaction wait on an advisory lock the
test holds, when the inserted row mentions HOLD_MARKER anywhere (a summary, a
note). The row then exists, uncommitted, with its position and transaction id;
the test releases it when it has checked what readers see meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

HOLD_MARKER = "hold-this-commit"
# A number no part of Parley uses as an advisory lock key.
_HOLD_LOCK = 0x1A7E_C0DE

_INSTALL = f"""
CREATE OR REPLACE FUNCTION parley_test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF strpos(to_jsonb(NEW)::text, '{HOLD_MARKER}') > 0 THEN
        -- Waits while the test holds the lock; the row is already inserted.
        PERFORM pg_advisory_xact_lock_shared({_HOLD_LOCK});
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS parley_test_hold_commit ON events;
CREATE TRIGGER parley_test_hold_commit AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION parley_test_hold_commit();
"""

_WAITING = f"""
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid = {_HOLD_LOCK} AND objsubid = 1
"""


class Hold:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.released = False

    async def until_waiting(self, writers: int = 1, ceiling: float = 60.0) -> None:
        """Until `writers` transactions have inserted a marked event and wait on the
        hold (fails loudly after `ceiling` seconds: a writer that never got there)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ceiling
        while (waiting := await self.conn.fetchval(_WAITING)) < writers:
            if loop.time() > deadline:
                raise AssertionError(f"{waiting} of {writers} writers reached the hold within {ceiling} s")
            await asyncio.sleep(0.02)

    async def release(self) -> None:
        if not self.released:
            self.released = True
            await self.conn.execute(f"SELECT pg_advisory_unlock({_HOLD_LOCK})")


@contextlib.asynccontextmanager
async def held_commits(database_url: str) -> AsyncIterator[Hold]:
    """While inside, a transaction that inserts a marked event waits before it can
    commit; leaving (or `release()`) lets it go. The trigger stays installed (it
    holds nothing once the lock is free)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(_INSTALL)
        await conn.execute(f"SELECT pg_advisory_lock({_HOLD_LOCK})")
        hold = Hold(conn)
        try:
            yield hold
        finally:
            await hold.release()
    finally:
        await conn.close()
