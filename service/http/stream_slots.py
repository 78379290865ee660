"""Places for open event streams, counted by PostgreSQL so that every process on
one database shares the caps (DESIGN "Security (v2)": caps on open streams per
key and in all).

Each open stream holds two session-level advisory locks, taken with
`pg_try_advisory_lock` on one connection of this process's own (not a pool's):

- a place of its key: class `KEY_CLASS`, object `hashtext(key_id || ':' || n)`
  for n in 0 .. per_key - 1;
- a place of the server: class `TOTAL_CLASS`, object n for n in 0 .. total - 1.

A stream that finds no free place of its key, or none of the server, is
refused. The locks are the count: nothing to expire, no heartbeat, and a process
that dies (or whose connection drops) holds nothing any more, because
PostgreSQL releases a session's advisory locks with the session. When this
process's connection is lost, its streams are ended (`generation` moves on; clients
resume with Last-Event-ID) since their places are no longer held.

Advisory locks are re-entrant within a session, so the places this process
holds already are skipped by the query itself, in a CASE so that the skip is
decided before the lock is tried (the planner may reorder an AND).
Two keys whose hashed places collide only cost one of them a place it then
takes at the next number; the classes are Parley's own, apart from the
projections' (service.projection.checkpoints).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from service import db

log = logging.getLogger("parley.streams")

KEY_CLASS = 0x73746B79  # "stky"
TOTAL_CLASS = 0x7374616C  # "stal"

_TAKE_KEY_PLACE = """
    SELECT n FROM generate_series(0, $2::int - 1) AS n
    WHERE CASE WHEN n = ANY($3::int[]) THEN false
               ELSE pg_try_advisory_lock($4::int, hashtext($1::text || ':' || n)) END
    LIMIT 1
"""
_TAKE_TOTAL_PLACE = """
    SELECT n FROM generate_series(0, $1::int - 1) AS n
    WHERE CASE WHEN n = ANY($2::int[]) THEN false ELSE pg_try_advisory_lock($3::int, n) END
    LIMIT 1
"""
_GIVE_KEY_PLACE = "SELECT pg_advisory_unlock($3::int, hashtext($1::text || ':' || $2::int))"
_GIVE_TOTAL_PLACE = "SELECT pg_advisory_unlock($2::int, $1::int)"


@dataclass(frozen=True)
class Places:
    key_id: str
    key_place: int
    total_place: int
    generation: int  # of the connection that holds them


class Refused(Exception):
    """No place left: `which` is "key" or "total"."""

    def __init__(self, which: str) -> None:
        super().__init__(which)
        self.which = which


class StreamSlots:
    """This process's places, on its own connection (opened on first use)."""

    def __init__(self, database_url: str, *, per_key: int, total: int) -> None:
        self.database_url = database_url
        self.per_key = per_key
        self.total = total
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._key_places: dict[str, set[int]] = {}
        self._total_places: set[int] = set()
        # Counts the connections lost: a stream that took its places before the
        # last loss holds none any more and must end.
        self.generation = 0

    async def take(self, key_id: str) -> Places:
        """A place of the key and one of the server, or Refused."""
        async with self._lock:
            conn = await self._connection()
            held = self._key_places.setdefault(key_id, set())
            key_place = await conn.fetchval(_TAKE_KEY_PLACE, key_id, self.per_key, sorted(held), KEY_CLASS)
            if key_place is None:
                self._forget_key(key_id)
                raise Refused("key")
            total_place = await conn.fetchval(_TAKE_TOTAL_PLACE, self.total, sorted(self._total_places), TOTAL_CLASS)
            if total_place is None:
                await conn.fetchval(_GIVE_KEY_PLACE, key_id, key_place, KEY_CLASS)
                self._forget_key(key_id)
                raise Refused("total")
            held.add(key_place)
            self._total_places.add(total_place)
            return Places(key_id, key_place, total_place, self.generation)

    async def give_back(self, places: Places) -> None:
        async with self._lock:
            held = self._key_places.get(places.key_id)
            if places.generation != self.generation or held is None or places.key_place not in held:
                return  # lost with a connection (and maybe held by a newer stream now)
            held.discard(places.key_place)
            self._forget_key(places.key_id)
            self._total_places.discard(places.total_place)
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                await conn.fetchval(_GIVE_KEY_PLACE, places.key_id, places.key_place, KEY_CLASS)
                await conn.fetchval(_GIVE_TOTAL_PLACE, places.total_place, TOTAL_CLASS)
            except db.CONNECTION_FAILURES as error:  # the session is gone, and its locks with it
                log.warning("could not give a stream's places back: %s", error)
            if not self._total_places:
                await self._close()  # no stream open: no connection held for nothing

    def check(self) -> int:
        """Notice a lost connection (called every second while streams are open);
        the generation of the connection now."""
        if self._conn is not None and self._conn.is_closed():
            self._lost()
        return self.generation

    def _forget_key(self, key_id: str) -> None:
        if not self._key_places.get(key_id):
            self._key_places.pop(key_id, None)

    def _lost(self) -> None:
        log.warning("the connection holding the stream places was lost: ending this process's streams")
        self._conn = None
        self._key_places.clear()
        self._total_places.clear()
        self.generation += 1

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and self._conn.is_closed():
            self._lost()
        if self._conn is None:
            self._conn = await db.connect(self.database_url, "parley-streams")
        return self._conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await db.close_connection(conn)

    async def close(self) -> None:
        async with self._lock:
            self._key_places.clear()
            self._total_places.clear()
            await self._close()
