"""What every `parley` command shares: the settings (environment, then flags) and
the database it runs on (PARLEY_DATABASE_URL, or the embedded server)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from service.config import Settings
from service.db import database_settings


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
    )


def run_on_database(args: argparse.Namespace, work: Callable[[Settings], Awaitable[int | None]]) -> int:
    """Run `work(settings)` with settings.database_url set: the configured server,
    or an embedded one started for the command and stopped after it."""
    with database_settings(settings_from(args)) as settings:
        return int(asyncio.run(work(settings)) or 0)
