"""One request, one PostgreSQL transaction: the Idempotency-Key claimed first (a
stored answer replayed instead of deciding again), the work, the answer stored
with the events, and the retry of an append that lost a race.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from service.store.event_store import ConcurrencyError, EventStore
from service.write import idempotency
from service.write.requests import Idempotency, Outcome

log = logging.getLogger("parley.commands")

# Appends that lose a race are decided again on fresh state this many times in all.
MAX_ATTEMPTS = 5

T = TypeVar("T")


@dataclass
class RaceStats:
    """Counters of the command path in one process (parley_command_retries_total)."""

    # Attempts that lost a race to a concurrent writer and were decided again,
    # whatever the retry then decided: contention is visible, and tests of
    # concurrency can show that they met it.
    lost_races: int = 0
    # Called on each lost race too (the API counts them in parley_command_retries_total).
    on_lost_race: Callable[[], None] | None = None


async def in_transaction(
    store: EventStore,
    key: Idempotency | None,
    work: Callable[[asyncpg.Connection], Awaitable[Outcome]],
) -> Outcome:
    """`work(conn)` inside one transaction, under the Idempotency-Key when there
    is one, then the readers woken once it has committed, and the answer's
    consistency token given the commit's LSN (so that a standby can tell when it
    holds the write). A Restart raised by `work` rolls the transaction back and
    runs `work` in a new one (the key stays claimed: the lock is the session's)."""
    async with store.pool.acquire() as conn:
        claimed = False
        try:
            while True:
                try:
                    async with conn.transaction():
                        if key is not None and not claimed:
                            # Once: the key stays this session's across a restart.
                            claimed = True
                            replay = await stored_answer(conn, key)
                            if replay is not None:
                                return replay
                        outcome = await work(conn)
                        if key is not None:
                            await remember_answer(conn, key, outcome)
                    break
                except Restart:
                    continue  # rolled back: `work` begins again, knowing it lost (Restart)
            if not outcome.events_written:
                return outcome
            return await _after_commit(store, conn, key, outcome)
        finally:
            # Released whatever happened: unlocking a key the claim did not get
            # (another request holds it) is a harmless no-op.
            if key is not None:
                await release_key(conn, key)


async def remember_answer(conn: asyncpg.Connection, key: Idempotency, outcome: Outcome) -> None:
    """The answer stored under its Idempotency-Key, in the request's transaction."""
    stored = idempotency.StoredResponse.created(outcome.body, outcome.location)
    await idempotency.remember(conn, key.scope, key.key, key.request_digest, stored)


class Restart(Exception):
    """A first attempt run without a savepoint lost a race: its transaction is
    aborted. `in_transaction` rolls it back and calls the work again, which
    passes this to `until_not_overtaken(after=...)`."""

    def __init__(self, written: set[uuid.UUID], lock: bool) -> None:
        super().__init__(f"lost a race writing {len(written)} stream(s)")
        # The streams the lost attempt wrote, and whether to hold their heads.
        self.written = written
        self.lock = lock


async def _after_commit(
    store: EventStore, conn: asyncpg.Connection, key: Idempotency | None, outcome: Outcome
) -> Outcome:
    # After the commit, not inside it: PostgreSQL holds a database-wide lock from a
    # transaction's NOTIFY until its commit is flushed, which serialised every
    # command's commit (bench.http, bench.lag). The same statement reads the LSN.
    # On this request's own connection: taking a second one from the pool while
    # holding this one deadlocks a pool that every request has emptied so.
    lsn = await store.wake_readers(conn)
    if lsn is None:
        return outcome  # its token names the write by its place in the log alone: still valid
    return await with_commit_lsn(conn, key, outcome, lsn)


async def with_commit_lsn(conn: asyncpg.Connection, key: Idempotency | None, outcome: Outcome, lsn: int) -> Outcome:
    """The answer with the commit's LSN in its token, and the bytes stored under its
    key made those: a retry replays these bytes too (it waits for them, as the key
    is still held; a retry meanwhile is told the key is in use)."""
    finished = outcome.with_lsn(lsn)
    if key is not None:
        await idempotency.replace_body(conn, key.scope, key.key, finished.body)
    return finished


async def release_key(conn: asyncpg.Connection, key: Idempotency) -> None:
    try:
        await idempotency.release(conn, key.scope, key.key)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        # The pool resets (and so unlocks) or discards this connection anyway.
        log.warning("could not release Idempotency-Key %r at once: %s", key.key, error)


async def stored_answer(conn: asyncpg.Connection, key: Idempotency) -> Outcome | None:
    stored = await idempotency.claim(conn, key.scope, key.key, key.request_digest)
    if stored is None:
        return None
    return Outcome(stored.body, location=stored.location, replayed=True)


async def until_not_overtaken(
    conn: asyncpg.Connection,
    store: EventStore,
    attempt: Callable[[int, set[uuid.UUID]], Awaitable[T]],
    stats: RaceStats | None = None,
    *,
    bare_first: bool = False,
    after: Restart | None = None,
) -> T:
    """`attempt(number, written)` in a savepoint, again on fresh state when its
    append lost a race. Each attempt fills `written` with the streams it writes.

    With `bare_first` (the caller's transaction holds nothing to undo), the first
    attempt runs without a savepoint and a lost race raises Restart; called again
    in a new transaction with `after=` it, the retries go on from attempt 2.

    After the first lost race the request holds the heads of every stream it
    writes until it commits (outside the savepoint, so the locks survive its
    rollback): the next attempt decides on the latest state and no newcomer can
    overtake it. Under contention the request turns pessimistic instead of
    failing after N races; a command that named no expected_version never sees
    a spurious conflict, one that did is checked again by decide.
    """
    holding = after is not None and after.lock
    if holding:
        await store.lock_heads(conn, after.written)  # type: ignore[union-attr]
    for number in range(1 if after is None else 2, MAX_ATTEMPTS + 1):
        written: set[uuid.UUID] = set()
        try:
            if number == 1 and bare_first:
                # Nothing to undo yet: no savepoint (two round trips fewer). A lost
                # race aborts the transaction, which begins again (Restart).
                return await attempt(number, written)
            async with conn.transaction():  # a savepoint: a lost race leaves nothing
                return await attempt(number, written)
        except (ConcurrencyError, asyncpg.DeadlockDetectedError) as error:
            if number == MAX_ATTEMPTS:
                raise
            if stats is not None:
                stats.lost_races += 1
                if stats.on_lost_race is not None:
                    stats.on_lost_race()
            log.debug("attempt %d lost a race (%s); deciding again", number, error)
            lock = isinstance(error, ConcurrencyError) and not holding
            if number == 1 and bare_first:
                raise Restart(written, lock) from error
            if lock:
                # Once, and all heads in stream id order as the store locks them.
                await store.lock_heads(conn, written)
                holding = True
    raise AssertionError("unreachable")
