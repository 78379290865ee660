"""Witnesses (issue 14 item 3): two `parley witness` processes on their own ports
cosign the log's consistent checkpoints through the cosigner, refuse a forked
log, and their stored cosignatures verify; the record-time check then flags a
backdated chained insert, in `/audit/verify` and in the independent verifier
(tests/independent/verifier.py, written from docs/audit-format.md alone).

Over 300 lines on purpose: its tests share two real witness processes and the
cosigner set up once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from service import bootstrap
from service.audit import log as audit_log
from service.audit import merkle
from service.audit.cosigning import Cosigner, WitnessEndpoint, parse_witnesses
from service.audit.ledger import Ledger, Sealer, SignedCheckpoint, ledger_key, trusted_verifier
from service.audit.signed_note import (
    CosignatureVerifier,
    TreeHead,
    checkpoint_body,
    cosignature_line,
    verifier_from_vkey,
)
from service.audit.witness import add_checkpoint_request
from service.config import Settings
from service.store.canonical import canonical_encoder, chain_hash, timestamp_text
from service.store.event_store import EventStore
from tests.independent import verifier as independent
from tests.integration.test_serve import free_port

from .conftest import Writer

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class WitnessProcess:
    url: str
    vkey: str
    process: subprocess.Popen
    log: Path

    @property
    def endpoint(self) -> WitnessEndpoint:
        return WitnessEndpoint(url=self.url, vkey=self.vkey)

    @property
    def verifier(self) -> CosignatureVerifier:
        found = verifier_from_vkey(self.vkey)
        assert isinstance(found, CosignatureVerifier)
        return found


def start_witness(directory: Path, log_vkey: str) -> WitnessProcess:
    directory.mkdir()
    args = [sys.executable, "-m", "service.cli", "witness", "--key-file", str(directory / "key.pem"),
            "--state", str(directory / "state.json"), "--log", log_vkey]
    vkey = subprocess.run([*args, "--print-vkey"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    port = free_port()
    log = directory / "witness.log"
    process = subprocess.Popen([*args, "--port", str(port)], cwd=ROOT, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"parley witness exited: {log.read_text()[-2000:]}")
        try:
            if httpx.post(f"{url}/add-checkpoint", content=b"", timeout=1).status_code == 400:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"parley witness did not answer within 60 s: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return WitnessProcess(url, vkey.stdout.strip(), process, log)


@pytest.fixture
def witnesses(settings: Settings, tmp_path: Path) -> Iterator[list[WitnessProcess]]:
    log_vkey = ledger_key(settings).verifier.vkey()
    started: list[WitnessProcess] = []
    try:
        for name in ("w1", "w2"):
            started.append(start_witness(tmp_path / name, log_vkey))
        yield started
    finally:
        for w in started:
            w.process.terminate()
            w.process.wait(timeout=30)


async def cosignatures(pool: asyncpg.Pool, tree_size: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT signer, key_id, signed_at, signature FROM ledger_cosignatures WHERE tree_size = $1 ORDER BY signer",
        tree_size,
    )


def cosigned_note(checkpoint: SignedCheckpoint, rows: list[asyncpg.Record], witnesses: list[WitnessProcess]) -> str:
    keys = {w.verifier.key_id: w.verifier for w in witnesses}
    lines = [cosignature_line(r["signer"], keys[r["key_id"]].public_key, r["signature"]) for r in rows]
    return checkpoint.note() + "".join(lines)


async def backdate(pool: asyncpg.Pool, stream_id: uuid.UUID, hours: float = 1) -> uuid.UUID:
    """As the owner with every trigger off: a correctly chained event at the head of
    the stream, whose hashed body says it was recorded `hours` ago."""
    store = EventStore(pool)
    head = (await store.read_stream(stream_id))[-1]
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
    body = msgspec.json.decode(head.body)
    event_id = uuid.uuid4()
    body.update(id=str(event_id), version=head.version + 1, recorded_at=timestamp_text(then))
    raw = canonical_encoder.encode(body)
    digest = chain_hash(head.hash, raw)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            """
            INSERT INTO events (id, stream_id, stream_type, negotiation_id, version, type, schema_version, body, data,
                                occurred_on, recorded_at, recorded_by, claimed_by, hash, content_digest)
            SELECT $1, stream_id, stream_type, negotiation_id, $2, type, schema_version, $3, data,
                   occurred_on, $4, recorded_by, claimed_by, $5, content_digest FROM events WHERE id = $6
            """,
            event_id, head.version + 1, raw, then, digest, head.id,
        )
        await conn.execute("UPDATE streams SET version = $2, head_hash = $3 WHERE stream_id = $1",
                           stream_id, head.version + 1, digest)
    return event_id


@pytest.mark.timeout(300)
async def test_two_witness_processes_cosign_refuse_a_fork_and_bound_record_time(
    pool: asyncpg.Pool, settings: Settings, witnesses: list[WitnessProcess], tmp_path: Path
) -> None:
    key = ledger_key(settings)
    writer = Writer(EventStore(pool))
    sealer = Sealer(pool, key)
    cosigner = Cosigner(pool, [w.endpoint for w in witnesses], refresh=3600)
    ledger = Ledger(pool)
    names = {w.verifier.name for w in witnesses}

    # The first checkpoint, then two consistent successors (each from the last size
    # the witness cosigned, with a consistency proof): both witnesses cosign each.
    sizes = []
    for count in (3, 4, 5):
        await writer.write(count)
        checkpoint = await sealer.seal_once(wait=True)
        assert checkpoint is not None
        sizes.append(checkpoint.tree_size)
        assert await cosigner.cosign_once() == {name: checkpoint.tree_size for name in names}
        rows = await cosignatures(pool, checkpoint.tree_size)
        assert {r["signer"] for r in rows} == names
        for row, witness in zip(rows, sorted(witnesses, key=lambda w: w.verifier.name)):
            assert witness.verifier.verify(checkpoint_body(checkpoint.head), row["signature"])
    assert sizes == [3, 7, 12]
    assert await cosigner.cosign_once() == {}  # nothing new: nobody is asked again

    # A fork: the log's own key signs a tree that rewrote leaf 1. Both witnesses refuse
    # it, at a larger size (the consistency proof fails: 422) and at the size they hold
    # (another root: 409), and keep cosigning the honest log afterwards.
    leaves = [r["leaf_hash"] for r in await pool.fetch('SELECT leaf_hash FROM ledger_leaves ORDER BY "index"')]
    forked = list(leaves)
    forked[1] = merkle.leaf_hash(b"\x01" * 32)
    forked += [merkle.leaf_hash(b"\x02" * 32)]
    for size, old, proof, refused in (
        (13, 12, merkle.consistency_proof(forked, 12), 422),
        (12, 12, [], 409),
    ):
        head = TreeHead(origin=key.origin, tree_size=size, root=merkle.root(forked[:size]))
        note = SignedCheckpoint(origin=head.origin, tree_size=size, root=head.root, signed_at=dt.datetime.now(dt.timezone.utc),
                                signature=key.sign(head), public_key=key.public_key).note()
        for witness in witnesses:
            answer = httpx.post(f"{witness.url}/add-checkpoint", content=add_checkpoint_request(old, proof, note))
            assert answer.status_code == refused, answer.text
    await writer.write(2)
    honest = await sealer.seal_once(wait=True)
    assert honest is not None and await cosigner.cosign_once() == {name: 14 for name in names}

    # No problem so far, with the witnesses' keys...
    verifiers = [w.verifier for w in witnesses]
    report = await audit_log.verify_store(EventStore(pool), trusted_verifier(settings), witnesses=verifiers)
    assert report.ok and report.cosignatures == 8, report.mismatches
    # The independent verifier finds nothing either in the clean export and notes.
    clean = b"".join([c async for c in audit_log.export_lines(EventStore(pool))]).split(b"\n")
    clean_notes = [cosigned_note(await ledger.checkpoint(size), await cosignatures(pool, size), witnesses)
                   for size in (3, 7, 12, 14)]
    assert independent.verify(clean, key.verifier.vkey(), clean_notes, [w.vkey for w in witnesses]) == []

    # ...until a backdated chained insert, sealed and cosigned like any event: it lies
    # before checkpoint 14, cosigned without it.
    backdated = await backdate(pool, writer.streams[0])
    assert (await sealer.seal_once(wait=True)).tree_size == 15
    assert await cosigner.cosign_once() == {name: 15 for name in names}
    without = await audit_log.verify_store(EventStore(pool), trusted_verifier(settings))
    assert without.ok  # chains, served fields, leaves and roots are all right
    report = await audit_log.verify_store(EventStore(pool), trusted_verifier(settings), witnesses=verifiers)
    assert not report.ok and {m.kind for m in report.mismatches} == {"recorded_too_early"}
    assert [m.event_id for m in report.mismatches] == [backdated]

    # The independent verifier agrees, from the export and the cosigned notes alone.
    lines = b"".join([c async for c in audit_log.export_lines(EventStore(pool))]).split(b"\n")
    notes = []
    for size in (3, 7, 12, 14, 15):
        checkpoint = await ledger.checkpoint(size)
        assert checkpoint is not None
        notes.append(cosigned_note(checkpoint, await cosignatures(pool, size), witnesses))
    # Each line's leaf_index places it in or out of every checkpoint, so the default
    # slack (30 s) holds for every honest event and names the backdated one alone.
    assert [msgspec.json.decode(raw)["leaf_index"] for raw in lines if raw] == list(range(15))
    problems = independent.verify(lines, key.verifier.vkey(), notes, [w.vkey for w in witnesses])
    line = next(n for n, raw in enumerate(lines, 1) if raw and msgspec.json.decode(raw)["id"] == str(backdated))
    assert problems and all(p.startswith(f"line {line}: recorded before") for p in problems), problems
    assert {p.rpartition(" cosigned")[0].rpartition(" ")[2] for p in problems} == names  # by both witnesses

    # And `parley audit verify` offline, from the same files: the export, the log's
    # key, the cosigned notes and the two witnesses' keys (one file in the
    # PARLEY_WITNESSES form, one as `parley witness --print-vkey` printed it).
    (tmp_path / "export.ndjson").write_bytes(b"\n".join(lines))
    (tmp_path / "log.vkey").write_text(key.verifier.vkey() + "\n")
    (tmp_path / "w1.vkey").write_text(f"{witnesses[0].url} {witnesses[0].vkey}\n")
    (tmp_path / "w2.vkey").write_text(witnesses[1].vkey + "\n")
    argv = [sys.executable, "-m", "service.cli", "audit", "verify", str(tmp_path / "export.ndjson"), "--json",
            "--public-key", str(tmp_path / "log.vkey"),
            "--witness-key", str(tmp_path / "w1.vkey"), "--witness-key", str(tmp_path / "w2.vkey")]
    for size, note in zip((3, 7, 12, 14, 15), notes):
        (tmp_path / f"cp-{size}.note").write_text(note)
        argv += ["--cosigned", str(tmp_path / f"cp-{size}.note")]
    offline = await asyncio.to_thread(subprocess.run, argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert offline.returncode == 1, offline.stderr
    found = msgspec.json.decode(offline.stdout)
    assert found["cosignatures"] == 10 and all(check["matches"] for check in found["roots"])
    assert {(m["kind"], m["line"], m["event_id"]) for m in found["mismatches"]} == {
        ("recorded_too_early", line, str(backdated))
    }
    # Without the witnesses' keys, the same files show nothing wrong: the check is theirs.
    unwitnessed = [a for a in argv if a not in ("--witness-key", str(tmp_path / "w1.vkey"), str(tmp_path / "w2.vkey"))]
    honest = await asyncio.to_thread(subprocess.run, unwitnessed, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert honest.returncode == 0, honest.stdout + honest.stderr
    # A forged cosignature row (the sealer role could insert one) is named and not used.
    async with pool.acquire() as conn:
        row = (await cosignatures(pool, 3))[0]
        forged = (int(row["signed_at"]) + 7200).to_bytes(8, "big") + row["signature"][8:]
        await conn.execute(
            "INSERT INTO ledger_cosignatures (tree_size, signer, key_id, signed_at, signature) VALUES ($1, $2, $3, $4, $5)",
            3, row["signer"], row["key_id"], int(row["signed_at"]) + 7200, forged,
        )
    report = await audit_log.verify_store(EventStore(pool), trusted_verifier(settings), witnesses=verifiers)
    assert "cosignature_signature" in {m.kind for m in report.mismatches}


@pytest.mark.timeout(300)
async def test_the_service_seals_and_gets_cosignatures_every_few_seconds_while_events_arrive(
    database_url: str, settings: Settings, witnesses: list[WitnessProcess]
) -> None:
    configured = settings.with_overrides(witnesses=", ".join(f"{w.url} {w.vkey}" for w in witnesses))
    assert parse_witnesses(configured.witnesses) == tuple(w.endpoint for w in witnesses)
    async with bootstrap.running(configured, pool_size=4, seal=True) as runtime:
        assert runtime.sealer is not None and runtime.cosigner is not None
        writer = Writer(runtime.store)
        # Events keep arriving; the service's own sealer and cosigner (1 s rounds) run
        # beside them. Wait, bounded, until each witness has cosigned three sizes.
        deadline = time.monotonic() + 120
        while True:
            await writer.write(1)
            counts = await runtime.pool.fetch(
                "SELECT signer, count(DISTINCT tree_size) AS n FROM ledger_cosignatures GROUP BY signer"
            )
            if len(counts) == 2 and all(r["n"] >= 3 for r in counts):
                break
            assert time.monotonic() < deadline, f"cosigned sizes after 120 s: {[dict(r) for r in counts]}"
            await asyncio.sleep(0.2)


# -- health and metrics: each witness named, an outage reported, never unready --------

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from domain.example import OPENED  # noqa: E402
from service.auth import Role, create_key  # noqa: E402
from service.http.app import create_app  # noqa: E402
from tests.reliability.conftest import live_server  # noqa: E402


def metric(text: str, name: str, **labels: str) -> float:
    found = [
        s.value for family in text_string_to_metric_families(text) for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def configured_with(settings: Settings, witnesses: list[WitnessProcess], **more: object) -> Settings:
    return settings.with_overrides(witnesses=", ".join(f"{w.url} {w.vkey}" for w in witnesses), **more)


@pytest.mark.timeout(300)
async def test_readiness_and_metrics_name_each_witness_and_an_outage_is_reported_not_unready(
    pool: asyncpg.Pool, settings: Settings, witnesses: list[WitnessProcess], reader: dict[str, str]
) -> None:
    """Issue 18 item 4: with PARLEY_WITNESSES, /health/ready lists `witness <key
    name>` with its URL, last cosignature obtained and last error; a witness that
    stops answering shows its error there and in /metrics, while the node stays
    ready (200): a witness outage delays signed time, not the API."""
    up, down = (w.verifier.name for w in witnesses)
    recorder = {"Authorization": f"Bearer {await create_key(pool, 'a-recorder', Role.RECORDER)}"}
    app = create_app(configured_with(settings, witnesses))
    async with live_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        opened = await http.post("/negotiations", json=OPENED, headers=recorder)
        assert opened.status_code == 201, opened.text
        commands = f"/negotiations/{opened.json()['negotiation_id']}/commands"
        raised = iter(range(1_000_000))

        async def ready(until) -> tuple[httpx.Response, dict]:
            deadline = time.monotonic() + 120  # a ceiling that fails loudly, not a speed claim
            while True:
                # Events keep arriving (the projections can apply them): checkpoints to cosign.
                n = next(raised)
                raise_issue = {"type": "issue.raised", "occurred_on": "2022-03-01", "issue": f"issue-{n}",
                               "title": f"Issue {n}", "category": "other"}
                assert (await http.post(commands, json=raise_issue, headers=recorder)).status_code == 201
                response = await http.get("/health/ready")
                components = {c["name"]: c for c in response.json()["components"]}
                if until(components):
                    return response, components
                assert time.monotonic() < deadline, response.json()
                await asyncio.sleep(0.2)

        _, components = await ready(lambda c: all(
            c.get(f"witness {n}", {}).get("last_success") for n in (up, down)))
        for witness in witnesses:
            found = components[f"witness {witness.verifier.name}"]
            assert found["ok"] and found["url"] == witness.url and found["last_error"] is None, found
            assert found["events_behind"] >= 0 and found["seconds_behind"] >= 0, found
        # Counted where the cosigner asks (this process: one worker). The registry is
        # the test process's, shared with earlier tests: compared with this reading.
        before = (await http.get("/metrics", headers=reader)).text
        for name in (up, down):
            assert metric(before, "parley_witness_cosignatures_total", witness=name) >= 1

        witnesses[1].process.terminate()
        witnesses[1].process.wait(timeout=30)
        response, components = await ready(lambda c: not c[f"witness {down}"]["ok"])
        failing = components[f"witness {down}"]
        assert failing["last_error"].startswith("Connect"), failing  # httpx.ConnectError: nobody listens
        assert failing["last_error_at"] > failing["last_success"], failing
        assert components[f"witness {up}"]["ok"], components
        assert response.status_code == 200 and response.json()["status"] == "ready", response.json()

        scraped = await http.get("/metrics", headers=reader)
        assert scraped.status_code == 200, scraped.text
        text = scraped.text
        assert metric(text, "parley_component_ok", component=f"witness {up}") == 1
        assert metric(text, "parley_component_ok", component=f"witness {down}") == 0
        assert metric(text, "parley_component_last_error_timestamp_seconds", component=f"witness {up}") == 0
        errored = metric(text, "parley_component_last_error_timestamp_seconds", component=f"witness {down}")
        assert abs(errored - dt.datetime.fromisoformat(failing["last_error_at"]).timestamp()) < 60
        assert 0 <= metric(text, "parley_witness_cosign_age_seconds", witness=up) < 60
        assert metric(text, "parley_witness_cosign_age_seconds", witness=down) >= 0
        failures = "parley_witness_cosign_failures_total"
        assert metric(text, failures, witness=down) > metric(before, failures, witness=down)
        assert metric(text, failures, witness=up) == metric(before, failures, witness=up)


@pytest.mark.timeout(300)
async def test_readiness_where_parley_seal_runs_elsewhere_reads_each_witness_from_its_stored_cosignatures(
    pool: asyncpg.Pool, settings: Settings, witnesses: list[WitnessProcess]
) -> None:
    """PARLEY_BACKGROUND=elsewhere (`parley serve --workers N`): the API process asks
    no witness; each witness's last success is its newest stored cosignature (the
    witness's own time), and how far the latest checkpoint is past it."""
    writer = Writer(EventStore(pool))
    sealer, cosigner = Sealer(pool, ledger_key(settings)), Cosigner(pool, [w.endpoint for w in witnesses])
    await writer.write(3)
    assert (await sealer.seal_once(wait=True)).tree_size == 3
    assert set((await cosigner.cosign_once()).values()) == {3}
    await writer.write(2)
    assert (await sealer.seal_once(wait=True)).tree_size == 5  # sealed, not cosigned yet
    async with live_server(create_app(configured_with(settings, witnesses, background_here=False))) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/health/ready")
    assert response.status_code == 200, response.text
    components = {c["name"]: c for c in response.json()["components"]}
    assert not any(name == "sealer" and c["last_error"] for name, c in components.items())
    for witness in witnesses:
        stored = await pool.fetchval(
            "SELECT max(signed_at) FROM ledger_cosignatures WHERE key_id = $1 AND tree_size = 3",
            witness.verifier.key_id,
        )
        found = components[f"witness {witness.verifier.name}"]
        assert found["ok"] and found["last_error"] is None and found["url"] == witness.url, found
        assert dt.datetime.fromisoformat(found["last_success"]).timestamp() == stored, found
        assert found["events_behind"] == 2, found  # leaves 4 and 5: sealed, not cosigned by it


def sample(text: str, name: str, **labels: str) -> float | None:
    found = [s.value for family in text_string_to_metric_families(text) for s in family.samples
             if s.name == name and labels.items() <= s.labels.items()]
    return found[0] if len(found) == 1 else None


@pytest.mark.timeout(300)
async def test_with_several_workers_the_sealer_process_counts_each_witness_in_the_scrape(
    database_url: str, pool: asyncpg.Pool, settings: Settings, witnesses: list[WitnessProcess],
    reader: dict[str, str], tmp_path: Path,
) -> None:
    """`parley serve --workers 2`: the cosigner runs in its `parley seal` child, which
    shares the workers' PROMETHEUS_MULTIPROC_DIR; a witness that stops answering is
    `parley_witness_cosign_failures_total` rising in the workers' /metrics."""
    from tests.reliability.conftest import kill_group, start_serve, wait_ready

    up, down = (w.verifier.name for w in witnesses)
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(database_url, port, log, workers=2, PARLEY_DATA_DIR=str(settings.data_dir),
                          PARLEY_LEDGER_ORIGIN=settings.ledger_origin or "",
                          PARLEY_WITNESSES=", ".join(f"{w.url} {w.vkey}" for w in witnesses))
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_ready, base, process, log)
        writer = Writer(EventStore(pool))

        async def scrape_until(until, what: str) -> str:
            deadline = time.monotonic() + 120  # a ceiling that fails loudly, not a speed claim
            async with httpx.AsyncClient(base_url=base) as http:
                while True:
                    await writer.write(1)  # new checkpoints: the witnesses are asked again
                    response = await http.get("/metrics", headers=reader)
                    assert response.status_code == 200, response.text
                    if until(response.text):
                        return response.text
                    assert time.monotonic() < deadline, (what, response.text, log.read_text()[-3000:])
                    await asyncio.sleep(0.3)

        cosigned = await scrape_until(lambda t: all(
            (sample(t, "parley_witness_cosignatures_total", witness=n) or 0) >= 1 for n in (up, down)),
            "both witnesses' cosignatures counted in the scrape")
        assert sample(cosigned, "parley_witness_cosign_failures_total", witness=down) == 0
        witnesses[1].process.terminate()
        witnesses[1].process.wait(timeout=30)
        failing = await scrape_until(
            lambda t: (sample(t, "parley_witness_cosign_failures_total", witness=down) or 0) >= 1,
            "the stopped witness's failures counted in the scrape")
        assert sample(failing, "parley_witness_cosign_failures_total", witness=up) == 0
        assert sample(failing, "parley_witness_cosignatures_total", witness=up) >= sample(
            cosigned, "parley_witness_cosignatures_total", witness=up)
    finally:
        import signal

        kill_group(process, signal.SIGTERM)
