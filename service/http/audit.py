"""Auditor routes: `GET /audit/export` (NDJSON, streamed) and `GET /audit/verify`."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from service.audit import log as audit_log
from service.audit.cosigning import parse_witnesses
from service.audit.ledger import trusted_verifier
from service.auth import Permission
from service.bootstrap import Runtime
from service.store.envelope import ExportedEvent
from service.http.auth import requires
from service.http.log_filters import NegotiationFilter, negotiation_filter
from service.http.problems import problem_responses
from service.http.reads import READ_HEADERS, served_by
from service.read.replicas import ReadRouter
from service.store.event_store import LogFilter

NDJSON = "application/x-ndjson"


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    guards = [requires(Permission.AUDIT)]

    @get(
        "/export",
        operation_id="exportEvents",
        summary="Every event with its hashed body and its leaf, as NDJSON in leaf order (auditor)",
        description="One `ExportedEvent` per line: the served envelope plus `body`, the exact bytes that "
        "were hashed, and `leaf_index`, the event's leaf in the ledger's tree. Lines come in leaf order: "
        "0, 1, 2… for the events sealed when the export began, then those not sealed yet (`leaf_index: "
        "null`) in commit order; filtered to a negotiation, the others' leaves are skipped (gaps). Streamed "
        "a page at a time; ends at the head of the log as it was when the export began. `parley audit "
        "verify FILE` checks it offline. An export of the whole log (no filter) can also be checked against "
        "signed checkpoints, and each event's record time against the witnesses' cosignatures on them.",
        media_type=NDJSON,
        response_headers=READ_HEADERS,
        responses={
            200: ResponseSpec(
                data_container=ExportedEvent,
                media_type=NDJSON,
                description="One ExportedEvent (JSON) per line",
                generate_examples=False,
            ),
            **problem_responses(400, 401, 403, 404),
        },
    )
    async def export(self, reads: NamedDependency[ReadRouter], negotiation: NegotiationFilter = None) -> Stream:
        # One server for the whole export (its head bounds it); the primary if that
        # standby goes away mid-way.
        target = await reads.choose()
        where = LogFilter(negotiation_id=await negotiation_filter(reads, target, negotiation))
        return Stream(
            audit_log.export_lines(target.store, where, fallback=reads.primary.store),
            media_type=NDJSON,
            headers={
                "Content-Disposition": 'attachment; filename="parley-export.ndjson"',
                "Cache-Control": "no-store",
                **served_by(target),
            },
        )

    @get(
        "/verify",
        operation_id="verifyEvents",
        summary="Recompute every hash chain, every served field, the ledger and its checkpoints (auditor)",
        description="`ok` is false when anything is wrong: a hash that is not sha256(previous || body), a "
        "served field (any column: recorded_at, recorded_by, occurred_on, claimed_by, note…) that disagrees "
        "with the hashed body, a missing version, an event out of order, a stream head or a sealed leaf that "
        "no longer matches its event, a stored checkpoint whose root is not the one recomputed from the "
        "stored leaves, or one not signed by the configured public key (`trusted_key`), and, with witnesses "
        "configured (`witnesses`), an event whose hashed record time lies before a checkpoint cosigned "
        "without it (`recorded_too_early`: a backdated insert) or after one cosigned with it. "
        "`first_mismatch` names the event or the checkpoint.",
        responses=problem_responses(401, 403),
        response_headers=READ_HEADERS,
    )
    async def verify(
        self, reads: NamedDependency[ReadRouter], runtime: NamedDependency[Runtime]
    ) -> Response[audit_log.VerifyReport]:
        trusted = trusted_verifier(runtime.settings)
        witnesses = [w.verifier for w in parse_witnesses(runtime.settings.witnesses)]
        report, target = await reads.run(
            lambda target: audit_log.verify_store(target.store, trusted, witnesses=witnesses)
        )
        return Response(report, headers=served_by(target))
