"""Configuration from the environment; command-line flags override it."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("parley", appauthor=False))


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
        )

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
