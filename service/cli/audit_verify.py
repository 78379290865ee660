"""`parley audit verify FILE`: an export checked offline, with nothing but files the
auditor saved (docs/auditor-guide.md): the log's public key, signed checkpoints
(the notes of /ledger/checkpoint, or the JSON of /ledger/checkpoints/N, which carry
the witnesses' cosignatures) and the witnesses' verifier keys.

Chains, served fields, leaf order and every checkpoint's root come from
service.audit.offline; with `--witness-key`, every witness cosignature on the
checkpoints bounds each event's hashed record time at its leaf
(service.audit.record_time, docs/audit-format.md §9).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from service.audit.record_time import SKEW, SLACK, Bound, RecordTimeBounds
from service.audit.signed_note import NoteError, TreeHead


def add_verify_command(audit_commands: Any) -> None:
    verify = audit_commands.add_parser(
        "verify", help="check an export offline: chains, order, signed checkpoints, record times"
    )
    verify.add_argument("file", help="an NDJSON export")
    verify.add_argument(
        "--checkpoint", help="a saved checkpoint (the note of GET /ledger/checkpoint, or the JSON of /ledger/checkpoints/N)"
    )
    verify.add_argument("--public-key", help="the log's public key (vkey, PEM, or the JSON of GET /ledger/public-key)")
    verify.add_argument("--older-checkpoint", help="an earlier checkpoint: the log must extend it")
    verify.add_argument(
        "--cosigned", action="append", default=[], metavar="CHECKPOINT",
        help="another saved checkpoint (repeatable), root-checked like --checkpoint; its witness cosignatures "
        "bound record times",
    )
    verify.add_argument(
        "--witness-key", action="append", default=[], metavar="FILE",
        help="a witness's verifier key (repeatable; `parley witness --print-vkey`, or PARLEY_WITNESSES entries): "
        "check every event's record time against the checkpoints this witness cosigned",
    )
    verify.add_argument("--slack", type=float, default=SLACK, help=f"seconds an event may precede a cosigned "
                        f"checkpoint that does not contain it (default {SLACK:g})")
    verify.add_argument("--skew", type=float, default=SKEW, help=f"seconds an event may follow a cosigned "
                        f"checkpoint that contains it (default {SKEW:g})")
    verify.add_argument("--filtered", action="store_true", help="the export is of one negotiation (export "
                        "--negotiation): leaf indexes may skip and no root is checked")
    verify.add_argument("--json", action="store_true", help="print the full report as JSON")
    verify.set_defaults(run=cmd_audit_verify)


# Shared with the other audit commands (service.cli.audit imports them from here:
# this module cannot import that one, which registers this one).
def lines_of(path: str) -> Iterator[bytes]:
    """An export's lines, read as they are needed."""
    with open(path, "rb") as file:
        yield from file


def fail(message: str, code: int = 2) -> int:
    """A `parley audit` refusal: one line on stderr, the exit status (2: usage)."""
    print(f"parley audit: {message}", file=sys.stderr)
    return code


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from service.audit.offline import read_verifier, read_witness_keys, verify_export
    from service.audit.saved import open_cosigned, read_note

    if args.older_checkpoint and not args.checkpoint:
        return fail("--older-checkpoint is checked together with --checkpoint")
    if args.filtered and args.older_checkpoint:
        return fail("--older-checkpoint needs a whole export: no root can be computed from a filtered one")
    saved = [(role, path) for role, path in (("checkpoint", args.checkpoint), ("older checkpoint",
             args.older_checkpoint)) if path] + [("cosigned checkpoint", path) for path in args.cosigned]
    if saved and not args.public_key:
        return fail("--checkpoint and --cosigned need --public-key to check their signatures")
    if args.witness_key and not saved:
        return fail("--witness-key needs the checkpoints the witnesses cosigned (--checkpoint, --cosigned)")

    checkpoints: list[tuple[str, TreeHead]] = []
    bounds: list[Bound] = []
    try:
        witnesses = [w for path in args.witness_key for w in read_witness_keys(Path(path).read_text())]
    except NoteError as error:
        return fail(f"witness key refused: {error}")
    try:
        for role, path in saved:
            text = Path(path).read_text()
            log = read_verifier(Path(args.public_key).read_text(), read_note(text))
            opened = open_cosigned(text, log, witnesses)
            checkpoints.append((role, opened.head))
            bounds += opened.bounds
    except NoteError as error:
        return fail(f"checkpoint refused: {error}", 1)
    if args.older_checkpoint:
        head, older = checkpoints[0][1], checkpoints[1][1]
        if older.origin != head.origin or older.tree_size > head.tree_size:
            return fail(
                f"the older checkpoint ({older.origin}, size {older.tree_size}) cannot precede "
                f"the checkpoint ({head.origin}, size {head.tree_size})",
                1,
            )
    if witnesses and not bounds:
        return fail("none of the checkpoints carries a cosignature by the given witnesses: "
                     "record times cannot be checked", 1)

    record_time = RecordTimeBounds(bounds, slack=args.slack, skew=args.skew) if witnesses else None
    lines = tqdm(lines_of(args.file), unit=" events", file=sys.stderr, desc="verify", disable=None)
    report = verify_export(lines, [] if args.filtered else checkpoints, record_time=record_time,
                           filtered=args.filtered)
    report.cosignatures = len(bounds) if witnesses else 0
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
    else:
        _print(report, record_time)
    return 0 if report.ok else 1


def _print(report: Any, record_time: RecordTimeBounds | None) -> None:
    print(f"{report.events} events in {report.streams} streams")
    for check in report.roots:
        size = f"{check.role} {check.origin} at tree size {check.tree_size}"
        if check.matches:
            print(f"ok: the export's first {check.tree_size} events give the root signed in the {size}")
        elif check.computed_root is None:
            print(f"FAILED: the export has fewer events than the {size}")
        else:
            print(f"FAILED: the export's first {check.tree_size} events do not give the root of the {size} "
                  "(an event was altered, dropped, added or reordered, or the export is filtered)")
    if report.first_mismatch is not None:
        problem = report.first_mismatch
        print(
            f"FAILED: {report.mismatch_count} problem(s); the first, line {problem.line}: {problem.kind} at event "
            f"{problem.event_id} (stream {problem.stream_id}, version {problem.version}): {problem.detail}"
        )
        if problem.expected_hash:
            print(f"  expected hash {problem.expected_hash}\n  stored hash   {problem.stored_hash}")
    if report.ok:
        print("ok: every chain verifies" + (" and every checkpoint matches" if report.roots else ""))
        if record_time is not None:
            print(f"ok: every record time lies within the bounds of {report.cosignatures} witness cosignature(s)")
