"""API keys and roles.

A key reads `pk_<key id>_<secret>`. Only sha256(secret) is stored; the key id finds
the row and the hashes are compared in constant time. The name of the key is what
every event it writes records as `recorded_by`.

PARLEY_ADMIN_KEY may also be any strong secret of its own (≥ 32 characters, e.g.
`openssl rand -hex 32`): its key id is then derived from it (`derived_key_id`), and
a client sends it as it is. Ensuring it at start-up never revives a revoked key
and never fails on a name already taken (DESIGN "Security (v2)").
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import asyncpg

from service.invalidation import CHANNEL as INVALIDATION_CHANNEL, Invalidations


log = logging.getLogger("parley.auth")

# The least a secret given as PARLEY_ADMIN_KEY may hold (characters, and distinct ones).
MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 10


class Role(str, enum.Enum):
    READER = "reader"
    RECORDER = "recorder"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(str, enum.Enum):
    READ = "read"  # statuses, timelines, history
    RECORD = "record"  # commands
    AUDIT = "audit"  # the global log, export, verify, ledger
    MANAGE_KEYS = "manage_keys"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.READ}),
    Role.RECORDER: frozenset({Permission.READ, Permission.RECORD}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role

    def may(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _split(key: str) -> tuple[str, str] | None:
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != "pk" or not key_id or not secret:
        return None
    return key_id, secret


def derived_key_id(secret: str) -> str:
    """The key id of a key given as a bare secret (not `pk_<id>_<secret>`)."""
    return "x" + hashlib.sha256(b"parley-key-id\0" + secret.encode()).hexdigest()[:15]


def _parts(key: str) -> tuple[str, str]:
    """(key id, secret) of a key as a client sends it, in either form."""
    return _split(key) or (derived_key_id(key), key)


class InvalidAdminKey(ValueError):
    """PARLEY_ADMIN_KEY is malformed or too weak (the message is one line)."""


def admin_key_parts(key: str) -> tuple[str, str]:
    """(key id, secret) of PARLEY_ADMIN_KEY, or InvalidAdminKey saying what is wrong."""
    if not key or any(c.isspace() or not c.isprintable() for c in key):
        raise InvalidAdminKey("PARLEY_ADMIN_KEY must be one word of printable characters (no spaces)")
    key_id, secret = _parts(key)
    if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < MIN_DISTINCT_CHARACTERS:
        raise InvalidAdminKey(
            f"PARLEY_ADMIN_KEY is too weak: its secret needs at least {MIN_SECRET_LENGTH} characters, "
            f"{MIN_DISTINCT_CHARACTERS} of them different (make one with `openssl rand -hex 32`)"
        )
    return key_id, secret


async def unused_name(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> str:
    """`name`, or `name-2`, `name-3`… when a key (active or revoked) has it."""
    taken = {r["name"] for r in await conn.fetch("SELECT name FROM api_keys WHERE name = $1 OR name LIKE $2",
                                                  name, name.replace("%", r"\%").replace("_", r"\_") + "-%")}
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


# Compared against when the key id is unknown, so unknown and wrong keys take as long.
_DUMMY_HASH = _hash("no such key")


class KeyNameTaken(Exception):
    pass


async def create_key(conn: asyncpg.Connection | asyncpg.Pool, name: str, role: Role) -> str:
    """Create a key and return it; this is the only time it is ever visible."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    try:
        await conn.execute(
            "INSERT INTO api_keys (key_id, name, role, secret_hash) VALUES ($1, $2, $3, $4)",
            key_id,
            name,
            role.value,
            _hash(secret),
        )
    except asyncpg.UniqueViolationError as error:
        raise KeyNameTaken(f"a key named {name!r} exists already") from error
    return f"pk_{key_id}_{secret}"


async def ensure_key(conn: asyncpg.Connection | asyncpg.Pool, key: str, name: str, role: Role) -> bool:
    """Make sure `key` (e.g. PARLEY_ADMIN_KEY) is a valid key with this role; False
    (and a warning) when it was revoked: a revoked key stays revoked. A key new to
    the database is named `name`, or `name-2`… when that name is taken."""
    key_id, secret = admin_key_parts(key)
    row = await conn.fetchrow("SELECT revoked_at FROM api_keys WHERE key_id = $1", key_id)
    if row is not None and row["revoked_at"] is not None:
        log.warning("PARLEY_ADMIN_KEY (key id %s) was revoked and stays revoked; set another key", key_id)
        return False
    if row is not None:
        await conn.execute(
            f"""
            WITH changed AS (
                UPDATE api_keys SET role = $2, secret_hash = $3 WHERE key_id = $1 AND revoked_at IS NULL
                RETURNING key_id
            )
            {_ANNOUNCE}
            """,
            key_id,
            role.value,
            _hash(secret),
        )
        return True
    for _ in range(5):
        try:
            await conn.execute(
                "INSERT INTO api_keys (key_id, name, role, secret_hash) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (key_id) DO NOTHING",
                key_id,
                await unused_name(conn, name),
                role.value,
                _hash(secret),
            )
            return True
        except asyncpg.UniqueViolationError:
            continue  # another process took the name meanwhile: pick the next
    raise KeyNameTaken(f"could not find a free name for PARLEY_ADMIN_KEY near {name!r}")


async def authenticate(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> ApiKey | None:
    key_id, secret = _parts(key)
    row = await conn.fetchrow(
        "SELECT key_id, name, role, secret_hash FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    stored = row["secret_hash"] if row else _DUMMY_HASH
    if not hmac.compare_digest(_hash(secret), stored) or row is None:
        return None
    return ApiKey(key_id=row["key_id"], name=row["name"], role=Role(row["role"]))


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> bool:
    revoked = await conn.fetch(
        f"""
        WITH changed AS (
            UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING key_id
        )
        {_ANNOUNCE}
        """,
        name,
    )
    return len(revoked) == 1


# The caches of every process forget a changed key when its change commits
# (service.invalidation; the kind is KeyCache.KIND). In the changing statement, so
# the announcement travels with the change and only with it.
_ANNOUNCE = f"SELECT pg_notify('{INVALIDATION_CHANNEL}', 'api_key:' || changed.key_id) FROM changed"


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT key_id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at, name"
    )


async def any_key(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)"))


@dataclass(frozen=True)
class _Held:
    key: ApiKey
    secret_hash: bytes
    fetched: float


class KeyCache:
    """API keys looked up once, then answered from memory (per process).

    A revoked or changed key is refused within a second, however it changed:
    `revoke_key` and `ensure_key` announce the change (service.invalidation), which
    drops the entry in every process at once; while this process's listener is not
    trustworthy (an announcement may be being missed) no key is answered from
    memory; and no entry is trusted for longer than `ttl` seconds anyway (a change
    made by raw SQL; PARLEY_KEY_CACHE_TTL). The secret is checked against the
    stored hash on every request; a key id that is unknown or revoked is never cached."""

    KIND = "api_key"

    def __init__(self, pool: asyncpg.Pool, *, ttl: float = 1.0, size: int = 10_000) -> None:
        self.pool = pool
        self.ttl = ttl
        self.size = size
        self._held: dict[str, _Held] = {}
        # Bumped by every invalidation: a lookup that started before one does not
        # cache what it read (the change may have committed just after the read).
        self._generation = 0
        self._invalidations: Invalidations | None = None

    def attach(self, invalidations: Invalidations) -> None:
        self._invalidations = invalidations
        invalidations.subscribe(self.KIND, self._changed, self.forget_all)

    def _current(self, held: _Held | None) -> bool:
        if held is None or time.monotonic() - held.fetched > self.ttl:
            return False
        return self._invalidations is None or self._invalidations.trustworthy

    def _changed(self, key_id: str) -> None:
        self._generation += 1
        self._held.pop(key_id, None)

    def forget_all(self) -> None:
        self._generation += 1
        self._held.clear()

    async def authenticate(self, key: str) -> ApiKey | None:
        key_id, secret = _parts(key)
        held = self._held.get(key_id)
        if not self._current(held):
            generation = self._generation
            fetched = time.monotonic()
            row = await self.pool.fetchrow(_KEY_SQL, key_id)
            if row is None:
                self._held.pop(key_id, None)
                hmac.compare_digest(_hash(secret), _DUMMY_HASH)
                return None
            held = _Held(ApiKey(key_id=row["key_id"], name=row["name"], role=Role(row["role"])),
                         row["secret_hash"], fetched)  # fmt: skip
            if generation == self._generation:
                if len(self._held) >= self.size:
                    self._held.clear()
                self._held[key_id] = held
        if not hmac.compare_digest(_hash(secret), held.secret_hash):
            return None
        return held.key


_KEY_SQL = "SELECT key_id, name, role, secret_hash FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL"
