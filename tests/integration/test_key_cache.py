"""API keys answered from memory (service.auth.KeyCache): a cached key costs no
query, and a revoked or changed key is refused once its announcement arrives, or
once the entry's time limit has passed when nothing announced it, or at once while
the listener that would carry the announcement is down."""

from __future__ import annotations

import asyncio

import asyncpg

from service.auth import KeyCache, Role, create_key, ensure_key, revoke_key
from service.invalidation import Invalidations


async def until(condition, within: float = 10.0) -> bool:
    """Poll `condition()` until true; False if it never became true (a ceiling, not a timing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_cached_key_is_answered_from_memory_until_its_time_limit(pool: asyncpg.Pool) -> None:
    key = await create_key(pool, "desk", Role.RECORDER)
    cache = KeyCache(pool, ttl=3600)
    assert (await cache.authenticate(key)).name == "desk"
    # Revoked behind the cache's back (no announcement): still answered from memory...
    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'desk'")
    assert (await cache.authenticate(key)).role is Role.RECORDER
    # ...but never with a wrong secret, and not past the time limit.
    assert await cache.authenticate(key[:-2] + "xx") is None
    cache.ttl = 0
    assert await cache.authenticate(key) is None
    assert await cache.authenticate(key) is None, "a refused key is not cached"


async def test_revoking_and_changing_a_key_reach_a_listening_cache(pool: asyncpg.Pool, database_url: str) -> None:
    key = await create_key(pool, "desk", Role.ADMIN)
    other = await create_key(pool, "other", Role.READER)
    listening = Invalidations(database_url)
    cache = KeyCache(pool, ttl=3600)
    cache.attach(listening)
    await listening.start()
    try:
        assert listening.trustworthy
        assert (await cache.authenticate(key)).role is Role.ADMIN
        assert (await cache.authenticate(other)).role is Role.READER
        assert await revoke_key(pool, "desk")
        assert await until(lambda: _refused(cache, key)), "the revocation never reached the cache"
        assert (await cache.authenticate(other)).role is Role.READER, "only the revoked key was dropped"
        # ensure_key re-validates and may change the role: announced too.
        await ensure_key(pool, other, "other", Role.AUDITOR)
        assert await until(lambda: _has_role(cache, other, Role.AUDITOR)), "the change never reached the cache"
    finally:
        await listening.close()


async def _refused(cache: KeyCache, key: str) -> bool:
    return await cache.authenticate(key) is None


async def _has_role(cache: KeyCache, key: str, role: Role) -> bool:
    found = await cache.authenticate(key)
    return found is not None and found.role is role


async def test_a_cache_whose_listener_is_down_answers_no_key_from_memory(pool: asyncpg.Pool, database_url: str) -> None:
    """While the listener cannot be trusted an announcement may be missed, so every
    key is read again, however long the time limit (service.invalidation)."""
    key = await create_key(pool, "desk", Role.RECORDER)
    listening = Invalidations(database_url)
    cache = KeyCache(pool, ttl=3600)
    cache.attach(listening)
    await listening.start()
    try:
        assert listening.trustworthy
        assert (await cache.authenticate(key)).name == "desk"
    finally:
        await listening.close()
    assert not listening.trustworthy
    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'desk'")  # announced or not: unknown
    assert await cache.authenticate(key) is None, "a key held in memory was trusted with the listener down"
