"""`parley import FILE`: NDJSON of commands, or an export (`parley audit export`).

Commands go through the command service of the composition root, the rules of the API: a
`negotiation.opened` line (the body of `POST /negotiations`, `type` optional) opens a negotiation (and makes it the current one);
every other line is a command on the current negotiation (or on `--negotiation`).
Each line is its own request with an Idempotency-Key derived from the file's
line, so re-running an interrupted import records only what is missing (within
the keys' retention).

Export lines (they carry `body` and `hash`) are re-recorded through the domain's
rules (service.write.restoring): each must be what its command decides here, or
the import stops at it. They keep their ids, streams and versions; their record
time is this database's, and the source's hash, record time and recorder are kept
as a claim (`import_claim`). Re-importing is harmless: a line already imported is
counted as already recorded. A step of an agreement covering several issues is
one command recorded once per covered issue: its copies are restored together
by that one command, or refused at the first of them (`_Restorer`).
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
from service.cli.restorer import ImportFailed, Restorer, copies_in
from service.config import Settings
from service.store.envelope import ExportedEvent
from service.write.requests import Idempotency, OpenRequest, RecordRequest, SlugTaken

# Idempotency keys are scoped to an API key's id (hex); the importer's own scope cannot collide.
IMPORT_SCOPE = "parley-import"


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
    restorer = Restorer(runtime, recorded_by, copies_in(lines))
    for number, raw in enumerate(tqdm(lines, unit="line", disable=None if show_progress else True, file=sys.stderr), start=1):
        if not raw.strip():
            continue
        report.lines += 1
        try:
            kind = msgspec.json.decode(raw, type=_Kind)
            if kind.body is not None and kind.hash is not None:
                await restorer.line(number, msgspec.json.decode(raw, type=ExportedEvent))
                continue
            # The body of POST /negotiations: its type may be given or left out.
            if kind.type in ("negotiation.opened", None):
                outcome = await service.open(
                    OpenRequest(msgspec.json.decode(raw, type=OpenNegotiation), recorded_by, _idempotency(number, raw))
                )
                current = uuid.UUID(msgspec.json.decode(outcome.body)["negotiation_id"])
            else:
                if current is None:
                    raise ImportFailed(number, "a command before any negotiation.opened (or pass --negotiation)")
                outcome = await service.record(
                    RecordRequest(
                        current, [msgspec.json.decode(raw, type=Command)], recorded_by,
                        idempotency=_idempotency(number, raw),
                    )
                )  # fmt: skip
            report.events_written += outcome.events_written
            report.replayed += outcome.replayed
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as error:
            raise ImportFailed(number, f"not a command or exported event: {error}") from None
        except DomainError as error:
            raise ImportFailed(number, f"{error.code}: {error.detail} (at {error.pointer or '/'})") from None
        except SlugTaken as error:
            raise ImportFailed(number, str(error)) from None
    restorer.finish()
    report.events_written += restorer.report_written
    report.replayed += restorer.report_replayed
    return report


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
