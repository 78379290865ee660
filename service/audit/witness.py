"""`parley witness`: a transparency-log witness (C2SP tlog-witness), and the
protocol both sides speak.

A witness has its own Ed25519 key and its own state file: for every log it
follows (configured by the log's verifier key), the size and root of the latest
checkpoint it cosigned. It answers one call:

    POST <prefix>/add-checkpoint
    old <size it last cosigned, decimal>
    <consistency proof from that size to the new one: one base64 hash a line>
    <blank line>
    <the checkpoint, a signed note>

and cosigns (C2SP tlog-cosignature/v1, with the time) only a checkpoint signed by
the log's key and consistent with the one it cosigned last; a fork is refused
with 422 and never cosigned. The check against the stored state and the write of
the new state happen under one lock, and the state reaches the disk (fsync,
atomic rename) before the cosignature is sent. Status codes are the spec's:
400 malformed, 403 not signed by the log (or a bad signature by its key), 404
unknown log, 409 stale `old` (body: the size it holds, `text/x.tlog.size`) or the
same size with another root, 422 a proof that does not verify.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar, Request, post
from litestar.response import Response

from service.audit import merkle
from service.audit.signed_note import (
    CosignatureVerifier,
    NoteError,
    NoteVerifier,
    Verified,
    cosign,
    cosignature_line,
    parse_checkpoint_body,
    raw_public_key,
    split_note,
    verifier_from_vkey,
    verify_note,
)

log = logging.getLogger("parley.witness")

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 64 * 1024
SIZE_MEDIA_TYPE = "text/x.tlog.size"


class WitnessRefusal(Exception):
    """The witness will not cosign: an HTTP status and why."""

    def __init__(self, status: int, detail: str, *, size: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.size = size  # for 409 on a stale old size: what the witness holds


# -- the request, as the log writes it and the witness reads it --------------------


def add_checkpoint_request(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


class AddCheckpoint(msgspec.Struct, frozen=True):
    old_size: int
    proof: list[bytes]
    note: str


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRefusal(400, "the request is not UTF-8") from None
    header, separator, note = text.partition("\n\n")
    if not separator or not note:
        raise WitnessRefusal(400, "the request is an old size line, proof lines, a blank line and a checkpoint")
    lines = header.split("\n")
    keyword, _, size_text = lines[0].partition(" ")
    if keyword != "old" or not size_text.isascii() or not size_text.isdigit() or (
        size_text != "0" and size_text.startswith("0")
    ):
        raise WitnessRefusal(400, "the first line is `old <decimal size>`")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise WitnessRefusal(400, "a proof line is not base64") from None
        if len(node) != 32:
            raise WitnessRefusal(400, "a proof line is not a SHA-256 hash")
        proof.append(node)
    return AddCheckpoint(old_size=int(size_text), proof=proof, note=note)


def read_cosignature(response: str, checkpoint_note: str, witness: CosignatureVerifier) -> Verified:
    """The witness's cosignature in an add-checkpoint response, verified against the
    checkpoint's body (lines by other keys are ignored, as the spec requires)."""
    body, _ = split_note(checkpoint_note)
    opened = verify_note(f"{body}\n{response}", [witness])
    return opened.verified[0]


def cosignature_bytes(response: str, witness: CosignatureVerifier) -> bytes:
    """The 72 bytes (time || signature) of `witness`'s line in a response."""
    for line in response.splitlines():
        name, _, encoded = line.removeprefix("\u2014 ").partition(" ")
        if name == witness.name:
            raw = base64.b64decode(encoded, validate=True)
            if raw[:4] == witness.key_id:
                return raw[4:]
    raise NoteError(f"no cosignature by {witness.name} in the response")


# -- the witness's state -------------------------------------------------------------


class LogState(msgspec.Struct, kw_only=True):
    size: int
    root: bytes  # base64 in the file
    cosigned_at: int  # POSIX seconds of the latest cosignature


class StateFile:
    """The witness's record of every log: one JSON file, replaced atomically.

    A lock file held for the process's life keeps a second witness process from
    using the same state (two processes with one state could roll it back)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise RuntimeError(f"another witness process holds {path}") from None
        self.logs: dict[str, LogState] = {}
        if path.exists():
            stored = msgspec.json.decode(path.read_bytes(), type=dict[str, Any])
            self.logs = msgspec.convert(stored.get("logs", {}), dict[str, LogState])

    def save(self, logs: dict[str, LogState]) -> None:
        """Write `logs` durably, then make them the state (a failed write changes nothing)."""
        data = msgspec.json.format(msgspec.json.encode({"version": 1, "logs": logs}))
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.logs = logs

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


# -- the witness ----------------------------------------------------------------------


def default_witness_name(public_key: bytes) -> str:
    return f"parley-witness/{hashlib.sha256(public_key).hexdigest()[:16]}"


class Witness:
    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        state: StateFile,
        logs: Sequence[NoteVerifier],
        *,
        name: str | None = None,
        clock: Any = time.time,
    ) -> None:
        self.private_key = private_key
        self.public_key = raw_public_key(private_key.public_key())
        self.name = name or default_witness_name(self.public_key)
        self.verifier = CosignatureVerifier(self.name, self.public_key)
        self.state = state
        self.logs: dict[str, list[NoteVerifier]] = {}
        for verifier in logs:
            self.logs.setdefault(verifier.name, []).append(verifier)
        self.clock = clock
        self._lock = asyncio.Lock()

    async def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line(s) for a request, or WitnessRefusal."""
        request = parse_add_checkpoint(body)
        try:
            note_body, _ = split_note(request.note)
            head = parse_checkpoint_body(note_body)
        except NoteError as error:
            raise WitnessRefusal(400, f"not a checkpoint: {error}") from None
        keys = self.logs.get(head.origin)
        if keys is None:
            raise WitnessRefusal(404, f"unknown log {head.origin!r}")
        try:
            verify_note(request.note, keys)
        except NoteError as error:
            raise WitnessRefusal(403, str(error)) from None
        if request.old_size > head.tree_size:
            raise WitnessRefusal(400, f"old size {request.old_size} is above the checkpoint's {head.tree_size}")
        async with self._lock:  # check and persist atomically (the spec's rollback race)
            latest = self.state.logs.get(head.origin)
            held = latest.size if latest else 0
            if request.old_size != held:
                raise WitnessRefusal(409, f"the witness holds size {held}, not {request.old_size}", size=held)
            if latest is None:
                if request.proof:
                    raise WitnessRefusal(422, "the proof from size 0 must be empty")
                if head.tree_size == 0 and head.root != merkle.EMPTY_ROOT:
                    raise WitnessRefusal(422, "the empty tree's root is SHA-256 of nothing")
            elif head.tree_size == latest.size:
                if head.root != latest.root:
                    raise WitnessRefusal(409, f"size {head.tree_size} was cosigned with another root: a fork")
                if request.proof:
                    raise WitnessRefusal(422, "the proof between equal sizes must be empty")
            else:
                try:
                    merkle.verify_consistency(latest.size, head.tree_size, latest.root, head.root, request.proof)
                except merkle.ProofError as error:
                    log.warning("refused %s at %d: %s", head.origin, head.tree_size, error)
                    raise WitnessRefusal(422, f"not consistent with size {latest.size}: {error}") from None
            timestamp = int(self.clock())
            updated = dict(self.state.logs)
            updated[head.origin] = LogState(size=head.tree_size, root=head.root, cosigned_at=timestamp)
            self.state.save(updated)  # on disk before the cosignature leaves
        return cosignature_line(self.name, self.public_key, cosign(note_body, self.name, self.private_key, timestamp))


def create_witness_app(witness: Witness) -> Litestar:
    # (Litestar's names are module-level: with postponed annotations, it resolves a
    # handler's `Request` and `Response[str]` in this module's namespace; imported
    # inside this function they were not found and `parley witness` failed to start.)

    @post("/add-checkpoint", status_code=200, media_type="text/plain; charset=utf-8", include_in_schema=False)
    async def add_checkpoint(request: Request) -> Response[str]:
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            return Response("request too large\n", status_code=413, media_type="text/plain")
        try:
            line = await witness.add_checkpoint(body)
        except WitnessRefusal as refusal:
            if refusal.size is not None:
                return Response(f"{refusal.size}\n", status_code=409, media_type=SIZE_MEDIA_TYPE)
            return Response(refusal.detail + "\n", status_code=refusal.status, media_type="text/plain")
        return Response(line, media_type="text/plain; charset=utf-8")

    return Litestar(route_handlers=[add_checkpoint], openapi_config=None, request_max_body_size=MAX_REQUEST_BYTES)
