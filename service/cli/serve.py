"""`parley serve`: the HTTP API under uvicorn, on the configured or embedded database."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service import bootstrap
from service.cli.background import Supervisor
from service.cli.options import settings_from
from service.db import database_settings


class _Stopped(Exception):
    """SIGINT/SIGTERM after the server has shut down gracefully."""


def _stop_on_signal(signum: int, frame: object) -> None:
    raise _Stopped(signum)


@dataclass(frozen=True)
class MetricsDirectory:
    path: Path
    made: bool  # by serve (removed when it stops), not the operator's


def metrics_directory() -> MetricsDirectory:
    """PROMETHEUS_MULTIPROC_DIR for the workers: the operator's, emptied of an
    earlier run's files (prometheus_client's rule: a fresh directory per run, or
    counters restart from stale ones), or a temporary one made here."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return MetricsDirectory(path, made=False)
    path = Path(tempfile.mkdtemp(prefix="parley-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return MetricsDirectory(path, made=True)


def announce_first_key(key: str | None) -> None:
    if key:
        print(f"Created the first admin key (shown only now): {key}", file=sys.stderr, flush=True)


def cmd_serve(args: argparse.Namespace, before_serving: Callable[[str, str], None] | None = None) -> int:
    """Serve; `before_serving(database_url, base_url)` runs once the schema is ready
    (`parley demo` records its example there)."""
    import uvicorn

    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal
    # to the handler it found at start: make that handler unwind the stack, so the
    # embedded PostgreSQL started below is stopped cleanly before the process exits.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)

    from service.audit.ledger import ledger_key

    # The signing key first: an unsafe key file stops serve with one line, before
    # any database or worker starts (service.keyfiles).
    ledger_key(settings_from(args))
    with database_settings(settings_from(args)) as settings:
        url = settings.database_url or ""
        # Migrate once before the workers start, so they never race on an empty
        # database (as the owner when its URL is known; the workers only check).
        announce_first_key(asyncio.run(bootstrap.prepare(settings, first_admin_key=True)))
        # The workers get the application role's URL, and the sealer role's for
        # their sealer; never the owner's.
        os.environ["PARLEY_DATABASE_URL"] = url
        os.environ.pop("PARLEY_OWNER_DATABASE_URL", None)
        if settings.sealer_database_url:
            os.environ["PARLEY_SEALER_DATABASE_URL"] = settings.sealer_database_url
        if settings.admin_key:
            os.environ["PARLEY_ADMIN_KEY"] = settings.admin_key
        # The workers (and `project`/`seal` below) find the ledger key where serve made it.
        os.environ["PARLEY_DATA_DIR"] = str(settings.data_dir)
        # Several workers: prometheus_client in multiprocess mode, so that whichever
        # worker answers a scrape adds up every worker's metrics (service.http.metrics).
        # Set before the children below copy the environment: `parley seal` counts
        # the witnesses' answers into the same directory.
        metrics_dir = metrics_directory() if args.workers > 1 else None
        background = None
        if args.workers > 1:
            # The runner and the sealer in processes of their own, not in every
            # API worker's event loop (service.cli.background).
            os.environ["PARLEY_BACKGROUND"] = "elsewhere"
            background = Supervisor([["project"], ["seal"]], os.environ)
        if before_serving is not None:
            before_serving(url, f"http://{settings.host}:{settings.port}")
        print(f"Parley serving on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
        if background is not None:
            background.start()
        try:
            uvicorn.run(
                "service.http.app:create_app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=args.workers,
                log_level="warning",
                access_log=False,
                # uvicorn's loggers propagate to the root one that service.logs set
                # up (PARLEY_LOG_FORMAT), instead of getting handlers of their own.
                log_config=None,
                timeout_graceful_shutdown=10,
                # Forwarded headers only from the configured proxies (none by default;
                # uvicorn's own default believes 127.0.0.1, so any local client could
                # pose as any address to the failed-key throttle).
                proxy_headers=bool(settings.trusted_proxies),
                forwarded_allow_ips=list(settings.trusted_proxies) or [],
            )
        except _Stopped:
            pass
        finally:
            if background is not None:
                background.stop()
            if metrics_dir is not None and metrics_dir.made:
                shutil.rmtree(metrics_dir.path, ignore_errors=True)
    print("Parley stopped", file=sys.stderr, flush=True)
    return 0


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes sharing the database; with more than one, the projection runner and the sealer run "
        "as processes of their own (`parley project`, `parley seal`)",
    )
