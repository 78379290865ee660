"""Configuration from the environment; command-line flags override it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("parley", appauthor=False))


def split_urls(value: str | None) -> list[str]:
    """PARLEY_READ_DATABASE_URL: URLs separated by commas. A comma inside one URL (a
    libpq multi-host URL) is kept: only a comma before a new `postgres…://` splits."""
    if not value:
        return []
    return [part.strip() for part in re.split(r",(?=\s*postgres(?:ql)?://)", value) if part.strip()]


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not 0 <= value <= 3600:
        raise ValueError(f"{name} must be between 0 and 3600 seconds, not {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    import ipaddress

    found = []
    for part in (env.get(name) or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(f"{name} must list IP addresses or networks (e.g. 10.0.0.5,10.1.0.0/16), not {part!r}") from None
        found.append(part)
    return tuple(found)


def _background_here(env: Mapping[str, str]) -> bool:
    raw = (env.get("PARLEY_BACKGROUND") or "here").strip()
    if raw not in ("here", "elsewhere"):
        raise ValueError(f"PARLEY_BACKGROUND must be `here` or `elsewhere`, not {raw!r}")
    return raw == "here"


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    host: str
    port: int
    admin_key: str | None
    data_dir: Path
    # The Ed25519 key that signs ledger checkpoints (default: <data_dir>/ledger-ed25519.pem),
    # and the log's name in them (default: derived from the public key).
    ledger_key_file: Path | None = None
    ledger_origin: str | None = None
    # Hot standbys that answer reads (PARLEY_READ_DATABASE_URL); how long a read with a
    # consistency token waits for one to catch up before the primary answers it; how
    # far behind (seconds) a standby may be and still answer reads without a token.
    read_database_urls: tuple[str, ...] = ()
    read_token_wait: float = 1.0
    read_max_lag: float = 30.0
    # The schema owner's URL (PARLEY_OWNER_DATABASE_URL; the embedded server's
    # superuser): migrations, grants and rebuild swaps use it, the service's pools
    # never do. With it, the role of PARLEY_APP_ROLE gets service.roles.APP_GRANTS
    # after every migration run.
    owner_database_url: str | None = None
    app_role: str | None = None
    # The sealer's URL (PARLEY_SEALER_DATABASE_URL; the embedded server's
    # `parley_sealer`): the sealer and the witness client run on a pool of their
    # own as this role, the only one besides the owner that may write the ledger
    # (service.roles). Unset, they use PARLEY_DATABASE_URL, and a process whose
    # role may not write the ledger does not seal. With the owner's URL, the role
    # of PARLEY_SEALER_ROLE gets service.roles.SEALER_GRANTS after every migration run.
    sealer_database_url: str | None = None
    sealer_role: str | None = None
    # The witnesses asked to cosign every checkpoint (PARLEY_WITNESSES: `<URL> <vkey>`
    # entries separated by commas; service.audit.cosigning parses them). Their keys
    # are also what /audit/verify bounds record times with.
    witnesses: str | None = None
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    # (PARLEY_TRUSTED_PROXIES: addresses or networks, comma-separated). None by
    # default: the client address is the TCP peer's, whatever headers say.
    trusted_proxies: tuple[str, ...] = ()
    # Failed authentications allowed per client address per minute before 429
    # (PARLEY_AUTH_FAILURE_LIMIT; a fuzzing run raises it).
    auth_failure_limit: int = 10
    # The longest an API key is answered from this process's memory without being
    # read again (PARLEY_KEY_CACHE_TTL, seconds). A revocation or change made through
    # Parley is announced and reaches every process at once (service.invalidation),
    # and while a process's listener is down it reads every key again; this bounds
    # a change made behind Parley's back (raw SQL).
    key_cache_ttl: float = 1.0
    # How often this process reads the issue projection's checkpoint to notice a
    # commit whose notification was lost with the process that made it
    # (PARLEY_VIEW_CACHE_CHECK, seconds; 0: no status view is served from memory).
    # Every commit heard drops the views held at once (service.read.served_views).
    view_cache_check: float = 1.0
    # Whether this API process runs the projection runner and the sealer itself
    # (PARLEY_BACKGROUND=here, the default) or leaves them to processes of their own
    # (`elsewhere`: `parley serve --workers N` with N > 1 sets it for its API workers
    # and starts `parley project` and `parley seal` beside them; service.cli.background).
    background_here: bool = True

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("PARLEY_DATABASE_URL") or None,
            host=env.get("PARLEY_HOST", "127.0.0.1"),
            port=int(env.get("PARLEY_PORT", "8000")),
            admin_key=env.get("PARLEY_ADMIN_KEY") or None,
            data_dir=Path(env["PARLEY_DATA_DIR"]) if env.get("PARLEY_DATA_DIR") else default_data_dir(),
            ledger_key_file=Path(env["PARLEY_LEDGER_KEY_FILE"]) if env.get("PARLEY_LEDGER_KEY_FILE") else None,
            ledger_origin=env.get("PARLEY_LEDGER_ORIGIN") or None,
            read_database_urls=tuple(split_urls(env.get("PARLEY_READ_DATABASE_URL"))),
            read_token_wait=_seconds(env, "PARLEY_READ_TOKEN_WAIT", 1.0),
            read_max_lag=_seconds(env, "PARLEY_READ_MAX_LAG", 30.0),
            owner_database_url=env.get("PARLEY_OWNER_DATABASE_URL") or None,
            app_role=env.get("PARLEY_APP_ROLE") or None,
            sealer_database_url=env.get("PARLEY_SEALER_DATABASE_URL") or None,
            sealer_role=env.get("PARLEY_SEALER_ROLE") or None,
            witnesses=env.get("PARLEY_WITNESSES") or None,
            trusted_proxies=_networks(env, "PARLEY_TRUSTED_PROXIES"),
            auth_failure_limit=_count(env, "PARLEY_AUTH_FAILURE_LIMIT", 10),
            key_cache_ttl=_seconds(env, "PARLEY_KEY_CACHE_TTL", 1.0),
            view_cache_check=_seconds(env, "PARLEY_VIEW_CACHE_CHECK", 1.0),
            background_here=_background_here(env),
        )

    @property
    def migration_url(self) -> str | None:
        """Where migrations run: the owner's URL when known, else the service's."""
        return self.owner_database_url or self.database_url

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
