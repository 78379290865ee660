"""`parley audit export|verify|replay|prove`: the auditor's command line.

`export` reads a server (`--url`, `--key`) or the database directly; `verify`
(service.cli.audit_verify) and `replay` need nothing but the file and what the
auditor saved (and, for `replay --against`, a server to compare with); `prove`
(service.cli.prove) checks a saved proof against saved checkpoints. Progress goes to stderr; results to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import msgspec
from tqdm import tqdm

from service.cli.audit_verify import fail, lines_of


def add_audit_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="export the log, verify an export offline, replay it")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)

    export = audit_commands.add_parser(
        "export", help="write the log as NDJSON (from a server with --url, else from the database)"
    )
    export.add_argument("-o", "--output", required=True, help="file to write ('-' for stdout)")
    export.add_argument("--url", help="a Parley server, e.g. http://127.0.0.1:8000 (default: read the database)")
    export.add_argument("--key", help="an auditor or admin API key (default: $PARLEY_API_KEY)")
    export.add_argument("--negotiation", help="only this negotiation's events (its id)")
    export.set_defaults(run=cmd_audit_export)

    from service.cli.audit_verify import add_verify_command

    add_verify_command(audit_commands)

    replay = audit_commands.add_parser(
        "replay", help="recompute every view (negotiations, issues, timelines) from an export, now or in the past"
    )
    replay.add_argument("file", help="an NDJSON export")
    replay.add_argument("--as-of", help="world time: the views as things stood then (a date or an instant)")
    replay.add_argument("--known-at", help="record time: the views as the log knew them then")
    replay.add_argument("--against", metavar="URL", help="compare every view with a live server's, at the same window")
    replay.add_argument("--key", help="an API key for --against (default: $PARLEY_API_KEY)")
    replay.set_defaults(run=cmd_audit_replay)

    from service.cli.prove import add_prove_commands

    add_prove_commands(audit_commands)

    from service.cli.receipt import add_receipt_command

    add_receipt_command(audit_commands)


# -- export ----------------------------------------------------------------------


def cmd_audit_export(args: argparse.Namespace) -> int:
    output = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    try:
        if args.url:
            return _export_over_http(args, output)
        return _export_from_database(args, output)
    finally:
        if output is not sys.stdout.buffer:
            output.close()


def _export_over_http(args: argparse.Namespace, output: Any) -> int:
    import httpx

    key = args.key or os.environ.get("PARLEY_API_KEY")
    if not key:
        return fail("--key (or PARLEY_API_KEY) is needed to export from a server")
    params = {"negotiation": args.negotiation} if args.negotiation else {}
    with tqdm(unit=" events", file=sys.stderr, desc="export", disable=None) as progress:
        with httpx.stream(
            "GET",
            args.url.rstrip("/") + "/audit/export",
            params=params,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(30, read=300),
        ) as response:
            if response.status_code != 200:
                response.read()
                return fail(f"the server answered {response.status_code}: {response.text[:500]}", 1)
            for chunk in response.iter_bytes():
                output.write(chunk)
                progress.update(chunk.count(b"\n"))
    return 0


def _export_from_database(args: argparse.Namespace, output: Any) -> int:
    import uuid

    from service import bootstrap
    from service.audit.log import export_lines
    from service.cli.options import run_on_database
    from service.config import Settings
    from service.store.event_store import LogFilter

    try:
        where = LogFilter(negotiation_id=uuid.UUID(args.negotiation) if args.negotiation else None)
    except ValueError:
        return fail("--negotiation takes a negotiation id")

    async def export(settings: Settings) -> None:
        # A reading client: the schema is the server's to migrate.
        async with bootstrap.running(settings, pool_size=2, migrate=False) as runtime:
            total = await runtime.store.count_events(where.negotiation_id)
            with tqdm(total=total, unit=" events", file=sys.stderr, desc="export", disable=None) as progress:
                async for chunk in export_lines(runtime.store, where):
                    output.write(chunk)
                    progress.update(chunk.count(b"\n"))

    return run_on_database(args, export)


# -- replay ----------------------------------------------------------------------


def cmd_audit_replay(args: argparse.Namespace) -> int:
    from service.audit.replay import replay_views

    try:
        replayed = replay_views(
            tqdm(lines_of(args.file), unit=" events", file=sys.stderr, desc="replay", disable=None),
            as_of=args.as_of, known_at=args.known_at,
        )  # fmt: skip
    except ValueError as error:  # a line that is no exported event, a time that does not parse
        return fail(str(error))
    if not args.against:
        print(msgspec.json.format(msgspec.json.encode(replayed)).decode())
        return 0

    import httpx

    key = args.key or os.environ.get("PARLEY_API_KEY")
    if not key:
        return fail("--key (or PARLEY_API_KEY) is needed to compare with a server")
    window = {name: value for name, value in (("as_of", args.as_of), ("known_at", args.known_at)) if value}
    found = 0
    with httpx.Client(base_url=args.against.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for negotiation in replayed:
            mine = msgspec.to_builtins(negotiation)
            try:
                theirs = _served_views(client, str(negotiation.negotiation_id), window)
            except _Unserved as error:
                print(f"{negotiation.negotiation_id}: {error}")
                found += 1
                continue
            diffs = [
                f"{negotiation.negotiation_id} {view}{line}"
                for view in ("negotiation", "issues", "timeline")
                for line in _differences(mine[view], theirs[view])
            ]
            for line in diffs:
                print(line)
            found += bool(diffs)
    issues = sum(len(n.issues) for n in replayed)
    entries = sum(len(n.timeline) for n in replayed)
    if found:
        print(f"{found} of {len(replayed)} negotiations differ from the server")
        return 1
    print(
        f"ok: all {len(replayed)} negotiations ({issues} issues, {entries} timeline entries) replay to the "
        f"server's views" + (f" at {', '.join(f'{k}={v}' for k, v in window.items())}" if window else "")
    )
    return 0


class _Unserved(Exception):
    pass


def _served_views(client: Any, negotiation_id: str, window: dict[str, str]) -> dict[str, Any]:
    def get(path: str, **params: str) -> Any:
        response = client.get(path, params={**window, **params})
        if response.status_code != 200:
            raise _Unserved(f"GET {path} answered {response.status_code}")
        return response.json()

    def every(path: str) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = get(path, limit="500", **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            if (cursor := page.get("next")) is None:
                return items

    base = f"/negotiations/{negotiation_id}"
    return {"negotiation": get(base), "issues": every(f"{base}/issues"), "timeline": every(f"{base}/timeline")}


def _differences(replayed: Any, served: Any) -> list[str]:
    from service.audit.replay import differences

    return differences(replayed, served)
