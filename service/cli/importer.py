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
counted as already recorded.
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
from domain.events import UnknownEventType
from service.audit.served import disagreements
from service.store.canonical import ZERO_HASH, canonical_decoder, chain_hash
from service.store.envelope import ExportedEvent
from service.write.requests import Idempotency, OpenRequest, RecordRequest, SlugTaken
from service.write.restoring import RestoreRefused, Restoring, command_for

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
    restorer = _Restorer(runtime, recorded_by)
    lines = path.read_bytes().splitlines()
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


class _Restorer:
    """Export lines re-recorded one by one through the domain's rules
    (service.write.restoring). Each line is checked first on its own terms: its
    served fields equal its hashed body, and its hash chains from the previous
    event of its stream (in the file, or already imported here). A stream's lines
    are taken in version order (an export is in leaf order, which can put a
    version before its predecessor); a line waits until its predecessor is in."""

    def __init__(self, runtime: Runtime, recorded_by: str) -> None:
        self.runtime = runtime
        self.recorded_by = recorded_by
        self.waiting: dict[tuple[uuid.UUID, int], tuple[int, ExportedEvent]] = {}
        self.report_written = 0
        self.report_replayed = 0

    async def line(self, number: int, line: ExportedEvent) -> None:
        existing = await self.runtime.store.get_event(line.id)
        if existing is not None:  # imported before (an interrupted or repeated import)
            if existing.import_claim is None or existing.import_claim.hash != line.hash:
                raise ImportFailed(number, f"event {line.id} is already recorded here with other content")
            self.report_replayed += 1
            return
        self.waiting[(line.stream_id, line.version)] = (number, line)
        await self._drain(line.stream_id)

    async def _drain(self, stream_id: uuid.UUID) -> None:
        while True:
            version = await self.runtime.store.stream_version(stream_id) + 1
            ready = self.waiting.pop((stream_id, version), None)
            if ready is None:
                return
            await self._restore(*ready)

    def finish(self) -> None:
        if self.waiting:
            number, line = min(self.waiting.values(), key=lambda pair: pair[0])
            raise ImportFailed(number, f"event {line.id} follows a version of its stream that is not in the file")

    async def _restore(self, number: int, line: ExportedEvent) -> None:
        body = line.body.encode()
        try:
            hashed = canonical_decoder.decode(body)
        except msgspec.DecodeError as error:
            raise ImportFailed(number, f"the body is not an event: {error}") from None
        wrong = disagreements(line, hashed)
        if wrong:
            raise ImportFailed(number, f"the served fields disagree with the hashed body: {', '.join(wrong)}")
        previous = ZERO_HASH
        if line.version > 1:
            [before] = await self.runtime.store.read_stream(line.stream_id, line.version - 1, line.version - 1)
            if before.import_claim is None:
                raise ImportFailed(number, f"stream {line.stream_id} holds events of this log, not of the export")
            previous = bytes.fromhex(before.import_claim.hash)
        if chain_hash(previous, body).hex() != line.hash:
            raise ImportFailed(number, "the hash is not sha256(previous hash || body): the line was altered")
        try:
            command = command_for(hashed)
            restoring = Restoring.of(hashed, line.hash)
            commands = self.runtime.commands
            if isinstance(command, OpenNegotiation):
                outcome = await commands.open(OpenRequest(command, self.recorded_by, restoring=restoring))
            else:
                outcome = await commands.record(
                    RecordRequest(line.negotiation_id or line.stream_id, [command], self.recorded_by, restoring=restoring)
                )
        except (msgspec.ValidationError, UnknownEventType) as error:
            raise ImportFailed(number, f"event {line.id} states no command the rules accept: {error}") from None
        except DomainError as error:
            raise ImportFailed(number, f"event {line.id} is refused by the rules: {error.code}: {error.detail}") from None
        except (RestoreRefused, SlugTaken) as error:
            raise ImportFailed(number, str(error)) from None
        self.report_written += outcome.events_written


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
