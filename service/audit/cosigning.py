"""Witness cosignatures for the log's checkpoints: the client side of C2SP
tlog-witness (the witness itself is service.audit.witness, `parley witness`).

Each round (about once a second, like sealing) takes the latest stored
checkpoint and, for every configured witness that has not cosigned it, sends

    POST <witness URL>/add-checkpoint
    old <the largest size this witness cosigned for us, 0 at first>
    <consistency proof from that size to the checkpoint's>
    <blank line>
    <the checkpoint note>

and stores the answer's cosignature (C2SP tlog-cosignature/v1: the witness's
time and Ed25519 signature) in `ledger_cosignatures`, after checking it with
the witness's configured key. A witness that answers 409 with the size it holds
(it cosigned for this log elsewhere, or rows were lost) is asked again once from
that size. A checkpoint already cosigned is sent again after `refresh` seconds
(60 by default) so that an idle log still gets fresh times: "recorded after"
bounds stay tight when events are few. A witness that refuses (a fork, a bad
signature) or is down is logged and asked again next round; it never stops
sealing.

Witnesses are configured with PARLEY_WITNESSES: entries separated by commas, each
`<URL> <verifier key>` (the key `parley witness --print-vkey` prints, type 0x04).
Rounds take a session advisory lock, so with many processes one asks at a time.
Cosignatures are written by the sealer's pool (the application role may not
write the ledger: service.roles).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import msgspec

from service.audit.ledger import Ledger, LedgerError, SignedCheckpoint
from service.audit.signed_note import CosignatureVerifier, NoteError, verifier_from_vkey
from service.audit.witness import SIZE_MEDIA_TYPE, add_checkpoint_request, cosignature_bytes, read_cosignature

log = logging.getLogger("parley.cosigning")

# Any fixed number, different from the sealing and migration locks.
COSIGN_LOCK = 0x7061726C6579_C051


class WitnessEndpoint(msgspec.Struct, frozen=True):
    url: str  # the witness's submission prefix: <url>/add-checkpoint
    vkey: str

    @property
    def verifier(self) -> CosignatureVerifier:
        found = verifier_from_vkey(self.vkey)
        assert isinstance(found, CosignatureVerifier)
        return found


def parse_witnesses(text: str | None) -> tuple[WitnessEndpoint, ...]:
    """PARLEY_WITNESSES: `<URL> <vkey>` entries separated by commas; ValueError
    with a sentence when an entry is not that."""
    found = []
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        url, _, vkey = entry.partition(" ")
        vkey = vkey.strip()
        if not url.startswith(("http://", "https://")) or not vkey:
            raise ValueError(f"PARLEY_WITNESSES entries are '<http(s) URL> <verifier key>', not {entry!r}")
        try:
            verifier = verifier_from_vkey(vkey)
        except NoteError as error:
            raise ValueError(f"PARLEY_WITNESSES: {error} ({vkey!r})") from None
        if not isinstance(verifier, CosignatureVerifier):
            raise ValueError(f"PARLEY_WITNESSES: {vkey!r} is not a witness's cosignature (0x04) key")
        found.append(WitnessEndpoint(url=url.rstrip("/"), vkey=vkey))
    return tuple(found)


_HELD_SQL = """
    SELECT tree_size, max(signed_at) AS signed_at FROM ledger_cosignatures
    WHERE key_id = $1 AND signer = $2 GROUP BY tree_size ORDER BY tree_size DESC LIMIT 1
"""
_STORE_SQL = """
    INSERT INTO ledger_cosignatures (tree_size, signer, key_id, signed_at, signature)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
"""


class Cosigner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        witnesses: Sequence[WitnessEndpoint],
        *,
        interval: float = 1.0,
        refresh: float = 60.0,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
        clock: Any = time.time,
    ) -> None:
        self.pool = pool
        self.ledger = Ledger(pool)
        self.witnesses = list(witnesses)
        self.verifiers = [w.verifier for w in self.witnesses]
        self.interval = interval
        self.refresh = refresh
        self.client = client or httpx.AsyncClient(timeout=timeout)
        self.clock = clock

    async def run(self, stop: asyncio.Event | None = None) -> None:
        try:
            while stop is None or not stop.is_set():
                try:
                    await self.cosign_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a lost connection: next round
                    log.exception("cosigning round failed")
                await asyncio.sleep(self.interval)
        finally:
            await self.client.aclose()

    async def cosign_once(self) -> dict[str, int]:
        """One round: {witness name: tree size} of the cosignatures stored now."""
        stored: dict[str, int] = {}
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", COSIGN_LOCK):
                return stored
            try:
                latest = await self.ledger.latest_checkpoint()
                if latest is None:
                    return stored
                for endpoint, verifier in zip(self.witnesses, self.verifiers):
                    try:
                        if await self._ask(conn, endpoint, verifier, latest):
                            stored[verifier.name] = latest.tree_size
                            self.cosigned(verifier.name)
                    except (httpx.HTTPError, NoteError, LedgerError) as error:
                        log.warning("witness %s did not cosign size %d: %s", endpoint.url, latest.tree_size, error)
                        self.refused(verifier.name, error)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", COSIGN_LOCK)
        return stored

    # Hooks for health (service.operations.ObservedCosigner): a witness's
    # cosignature stored, or its refusal or failure to answer.
    def cosigned(self, witness: str) -> None:
        pass

    def refused(self, witness: str, error: BaseException) -> None:
        pass

    async def _ask(
        self, conn: asyncpg.Connection, endpoint: WitnessEndpoint, verifier: CosignatureVerifier,
        latest: SignedCheckpoint,
    ) -> bool:
        held = await conn.fetchrow(_HELD_SQL, verifier.key_id, verifier.name)
        old = held["tree_size"] if held else 0
        if held and old == latest.tree_size and self.clock() - held["signed_at"] < self.refresh:
            return False
        if old > latest.tree_size:
            raise LedgerError(f"the witness cosigned size {old}, above the latest checkpoint {latest.tree_size}")
        response = await self._post(endpoint, old, latest)
        if response.status_code == 409 and response.headers.get("content-type", "").startswith(SIZE_MEDIA_TYPE):
            # The witness holds another size for this log: prove from that one.
            size = int(response.text.strip())
            if size > latest.tree_size or await self.ledger.checkpoint(size) is None and size != 0:
                raise LedgerError(f"the witness holds size {size}, which this log never published")
            response = await self._post(endpoint, size, latest)
        if response.status_code != 200:
            raise LedgerError(f"answered {response.status_code}: {response.text.strip()[:300]}")
        note = latest.note()
        cosigned = read_cosignature(response.text, note, verifier)  # NoteError unless it verifies
        await conn.execute(
            _STORE_SQL, latest.tree_size, verifier.name, verifier.key_id, cosigned.timestamp,
            cosignature_bytes(response.text, verifier),
        )
        return True

    async def _post(self, endpoint: WitnessEndpoint, old: int, latest: SignedCheckpoint) -> httpx.Response:
        proof: list[bytes] = []
        if 0 < old < latest.tree_size:
            proof = (await self.ledger.consistency(old, latest.tree_size)).proof
        body = add_checkpoint_request(old, proof, latest.note())
        return await self.client.post(f"{endpoint.url}/add-checkpoint", content=body)
