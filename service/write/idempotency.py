"""Idempotency keys for commands, kept in PostgreSQL so every API process shares them.

A key is claimed inside the transaction that appends the command's events, under a
session-level advisory lock on (API key, Idempotency-Key) that the request holds
until its answer is final:

* the lock is taken with `pg_try_advisory_lock`, so a retry that arrives while
  the first request is still running is told so at once (IdempotencyKeyInUse)
  instead of waiting or writing twice;
* it outlives the commit until the stored body has its final consistency token
  (the commit's LSN is known only after the commit): a retry in between is told
  the key is in use rather than replaying different bytes. `release` frees it; a
  connection that dies frees it too, and asyncpg's pool unlocks all advisory locks
  of a connection it takes back;
* the stored response is written in the same transaction as the events, so a
  retry finds either both or neither: concurrent retries produce one write;
* only successful responses are stored; a refused command writes nothing, so its
  retry is simply decided again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import asyncpg
import msgspec

# The contract says "at least 24 h"; a margin covers clients retrying for a day.
RETENTION = dt.timedelta(hours=48)

_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyKeyInUse(Exception):
    """The same key is being processed by another request right now."""


class IdempotencyKeyReused(Exception):
    """The key was used before with another request."""


class InvalidIdempotencyKey(ValueError):
    pass


class StoredResponse(msgspec.Struct, frozen=True):
    """A row as the table keeps it: the answer as HTTP gave it. Only successful
    commands are stored, and a command's one success is 201 Created, with the
    Location of the negotiation it opened, if it opened one."""

    status_code: int
    body: bytes
    headers: dict[str, str]

    @classmethod
    def created(cls, body: bytes, location: str | None) -> "StoredResponse":
        return cls(201, body, {"Location": location} if location else {})

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


def check_key(key: str) -> str:
    if not _KEY_SHAPE.match(key):
        raise InvalidIdempotencyKey("1 to 255 visible ASCII characters (a UUID is a good choice)")
    return key


def _lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"parley-idempotency\0{scope}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def claim(conn: asyncpg.Connection, scope: str, key: str, request_digest: bytes) -> StoredResponse | None:
    """Inside the caller's transaction: the stored response to replay, or None when
    this request is the first with this key (and now holds it until commit)."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_id(scope, key)):
        raise IdempotencyKeyInUse(key)
    row = await conn.fetchrow(
        """
        SELECT request_digest, status_code, response_body, response_headers::text AS headers
        FROM idempotency_keys
        WHERE key_id = $1 AND idempotency_key = $2 AND expires_at > now()
        """,
        scope,
        key,
    )
    if row is None:
        return None
    if bytes(row["request_digest"]) != request_digest:
        raise IdempotencyKeyReused(key)
    return StoredResponse(row["status_code"], bytes(row["response_body"]), msgspec.json.decode(row["headers"]))


async def remember(
    conn: asyncpg.Connection, scope: str, key: str, request_digest: bytes, response: StoredResponse
) -> None:
    """Store the response in the caller's transaction (it commits with the events).
    An expired row of the same key is replaced."""
    await conn.execute(
        """
        INSERT INTO idempotency_keys
            (key_id, idempotency_key, request_digest, status_code, response_body, response_headers, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, now() + $7::interval)
        ON CONFLICT (key_id, idempotency_key) DO UPDATE SET
            request_digest = EXCLUDED.request_digest, status_code = EXCLUDED.status_code,
            response_body = EXCLUDED.response_body, response_headers = EXCLUDED.response_headers,
            created_at = now(), expires_at = EXCLUDED.expires_at
        """,
        scope,
        key,
        request_digest,
        response.status_code,
        response.body,
        msgspec.json.encode(response.headers).decode(),
        RETENTION,
    )


async def replace_body(pool: asyncpg.Pool | asyncpg.Connection, scope: str, key: str, body: bytes) -> None:
    """After the commit: the response as finally sent (its consistency token now
    carries the commit's LSN), for retries to replay byte for byte."""
    await pool.execute(
        "UPDATE idempotency_keys SET response_body = $3 WHERE key_id = $1 AND idempotency_key = $2",
        scope,
        key,
        body,
    )


async def release(conn: asyncpg.Connection, scope: str, key: str) -> None:
    """Frees the key claimed on `conn` (outside any transaction: the lock is the session's)."""
    await conn.execute("SELECT pg_advisory_unlock($1)", _lock_id(scope, key))


async def purge_expired(pool: asyncpg.Pool | asyncpg.Connection) -> int:
    status = await pool.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")
    return int(status.split()[-1])


async def purge_periodically(pool: asyncpg.Pool, interval: float = 3600.0) -> None:
    """Background task of every API process (deleting twice is harmless)."""
    import asyncio
    import logging

    while True:
        try:
            await purge_expired(pool)
        except Exception:  # noqa: BLE001  (a failed purge is retried next time; never fatal)
            logging.getLogger("parley.idempotency").warning("purging expired idempotency keys failed", exc_info=True)
        await asyncio.sleep(interval)


async def keys_held(pool: asyncpg.Pool | asyncpg.Connection) -> int:
    """Idempotency keys whose answer is kept now (not expired; for /metrics)."""
    return await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE expires_at > now()")
