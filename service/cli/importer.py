"""`parley import FILE`: NDJSON of commands, or an export (`parley audit export`).

Commands go through the command service of the composition root, the rules of the API: a
`negotiation.opened` line (the body of `POST /negotiations`, `type` optional) opens a negotiation (and makes it the current one);
every other line is a command on the current negotiation (or on `--negotiation`).
Each line is its own request with an Idempotency-Key derived from the file's
line, so re-running an interrupted import records only what is missing (within
the keys' retention).

Export lines (they carry `body` and `hash`) restore events as they were: same ids,
streams, versions, record times and authors. Each line's canonical body is
recomputed and must equal the exported bytes, and the stored hash must equal the
exported hash, so a restore cannot silently alter the record. Re-importing is
harmless: an event id already stored with the same content is a replay.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec

from domain.commands import Command, OpenNegotiation
from domain.errors import DomainError
from service import bootstrap
from service.bootstrap import Runtime
from service.cli.options import run_on_database
from service.config import Settings
from service.store.canonical import body_data
from service.store.envelope import ExportedEvent
from service.store.event_store import ConcurrencyError, PendingEvent, canonical_body
from service.write.commands import Idempotency, SlugTaken

# Idempotency keys are scoped to an API key's id (hex); the importer's own scope cannot collide.
IMPORT_SCOPE = "parley-import"


class ImportFailed(Exception):
    def __init__(self, line: int, detail: str) -> None:
        super().__init__(f"line {line}: {detail}")
        self.line = line


@dataclass
class ImportReport:
    lines: int = 0
    events_written: int = 0
    replayed: int = 0


class _Kind(msgspec.Struct):
    type: str | None = None
    body: str | None = None
    hash: str | None = None


def _idempotency(line_number: int, raw: bytes) -> Idempotency:
    digest = hashlib.sha256(raw.strip()).digest()
    return Idempotency(IMPORT_SCOPE, f"line-{line_number}-{digest.hex()[:32]}", digest)


async def import_file(
    runtime: Runtime,
    path: Path,
    *,
    recorded_by: str = "import",
    negotiation: str | None = None,
    show_progress: bool = False,
) -> ImportReport:
    from tqdm import tqdm

    service = runtime.commands
    current = await runtime.queries.resolve_negotiation(negotiation) if negotiation else None
    report = ImportReport()
    lines = path.read_bytes().splitlines()
    for number, raw in enumerate(tqdm(lines, unit="line", disable=not show_progress, file=sys.stderr), start=1):
        if not raw.strip():
            continue
        report.lines += 1
        try:
            kind = msgspec.json.decode(raw, type=_Kind)
            if kind.body is not None and kind.hash is not None:
                written = await _restore(runtime, msgspec.json.decode(raw, type=ExportedEvent))
                report.events_written += written
                report.replayed += 0 if written else 1
                continue
            # The body of POST /negotiations: its type may be given or left out.
            if kind.type in ("negotiation.opened", None):
                outcome = await service.open(
                    msgspec.json.decode(raw, type=OpenNegotiation),
                    recorded_by=recorded_by,
                    idempotency_key=_idempotency(number, raw),
                )
                current = uuid.UUID(msgspec.json.decode(outcome.body)["negotiation_id"])
            else:
                if current is None:
                    raise ImportFailed(number, "a command before any negotiation.opened (or pass --negotiation)")
                outcome = await service.record(
                    current,
                    [msgspec.json.decode(raw, type=Command)],
                    recorded_by=recorded_by,
                    batch=False,
                    idempotency_key=_idempotency(number, raw),
                )
            report.events_written += outcome.events_written
            report.replayed += outcome.replayed
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as error:
            raise ImportFailed(number, f"not a command or exported event: {error}") from None
        except DomainError as error:
            raise ImportFailed(number, f"{error.code}: {error.detail} (at {error.pointer or '/'})") from None
        except SlugTaken as error:
            raise ImportFailed(number, str(error)) from None
    return report


async def _restore(runtime: Runtime, line: ExportedEvent) -> int:
    """Append one exported event as it was; returns 1 if written, 0 if already there."""
    body = line.body.encode()
    pending = PendingEvent(
        id=line.id,
        stream_id=line.stream_id,
        stream_type=line.stream_type,
        type=line.type,
        schema_version=line.schema_version,
        data=body_data(body),
        occurred_on=line.occurred_on,
        recorded_by=line.recorded_by,
        recorded_at=line.recorded_at,
        negotiation_id=line.negotiation_id,
        claimed_by=tuple(line.claimed_by),
        source=line.source,
        note=line.note,
        correlation_id=line.correlation_id,
        causation_id=line.causation_id,
    )
    if canonical_body(pending, line.version) != body:
        raise ValueError(f"event {line.id}: its fields do not reproduce its exported body")
    async with runtime.pool.acquire() as conn, conn.transaction():
        try:
            result = await runtime.store.append([pending], {line.stream_id: line.version - 1}, conn=conn)
        except ConcurrencyError as error:
            if error.actual >= line.version:
                # Already restored (the id check runs first, so this is another event at
                # that version: the target database holds a different history).
                raise ValueError(f"event {line.id}: stream {line.stream_id} already has version {line.version}")
            raise ValueError(f"event {line.id}: stream {line.stream_id} is at {error.actual}, the export skips") from None
        if result.events[0].hash.hex() != line.hash:
            raise ValueError(f"event {line.id}: the restored hash differs from the exported one")
        if line.type == "negotiation.opened" and not result.replayed:
            slug = msgspec.json.decode(pending.data)["slug"]
            await conn.execute(
                "INSERT INTO negotiation_slugs (slug, negotiation_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                slug,
                line.stream_id,
            )
    return 0 if result.replayed else 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.running(settings, pool_size=2) as runtime:
        try:
            report = await import_file(
                runtime, Path(args.file), recorded_by=args.recorded_by, negotiation=args.negotiation, show_progress=True
            )
        except (ImportFailed, ValueError) as error:
            print(f"parley import: {error}", file=sys.stderr)
            return 1
    print(
        f"imported {report.lines} lines: {report.events_written} events written, {report.replayed} already recorded",
        file=sys.stderr,
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    return run_on_database(args, lambda settings: _run(settings, args))


def add_import_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("import", help="record an NDJSON file of commands, or restore an export")
    parser.add_argument("file", help="NDJSON: commands (negotiation.opened starts a negotiation) or exported events")
    parser.add_argument("--negotiation", help="id or slug the commands apply to until a negotiation.opened line")
    parser.add_argument("--recorded-by", default="import", help="recorded_by of imported commands (default: import)")
    parser.set_defaults(run=cmd_import)
