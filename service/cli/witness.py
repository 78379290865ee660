"""`parley witness`: run a witness (service.audit.witness) over HTTP."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.audit.signed_note import CosignatureVerifier, NoteError, NoteVerifier, raw_public_key, verifier_from_vkey
from service.audit.witness import StateFile, Witness, create_witness_app, default_witness_name

def add_witness_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "witness", help="run a transparency-log witness (C2SP tlog-witness) that cosigns consistent checkpoints"
    )
    parser.add_argument("--key-file", required=True, help="the witness's Ed25519 key (PKCS#8 PEM; made if missing)")
    parser.add_argument("--state", required=True, help="the witness's state file (made if missing)")
    parser.add_argument(
        "--log", action="append", default=[], metavar="VKEY", help="a log to witness: its verifier key (repeatable)"
    )
    parser.add_argument("--name", help="the witness's key name (default: parley-witness/<hash of its key>)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8410)
    parser.add_argument("--print-vkey", action="store_true", help="print the witness's verifier key and exit")
    parser.set_defaults(run=cmd_witness)


def cmd_witness(args: argparse.Namespace) -> int:
    from service.audit.ledger import load_or_create_key

    key = load_or_create_key(Path(args.key_file))
    public = raw_public_key(key.public_key())
    name = args.name or default_witness_name(public)
    vkey = CosignatureVerifier(name, public).vkey()
    if args.print_vkey:
        print(vkey)
        return 0
    try:
        logs = [verifier_from_vkey(v) for v in args.log]
    except NoteError as error:
        print(f"parley witness: --log: {error}", file=sys.stderr)
        return 2
    if not logs or any(type(v) is not NoteVerifier for v in logs):
        print("parley witness: give each log's Ed25519 (0x01) verifier key with --log", file=sys.stderr)
        return 2
    try:
        state = StateFile(Path(args.state))
    except RuntimeError as error:
        print(f"parley witness: {error}", file=sys.stderr)
        return 1
    import uvicorn

    witness = Witness(key, state, logs, name=name)
    print(f"witness {vkey} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        uvicorn.run(create_witness_app(witness), host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        state.close()
    return 0
