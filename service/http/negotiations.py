"""Client routes: negotiations, their commands and timeline (their issues:
service.http.issues).

Handlers are thin: parse (service.http.body, parameters), call service.write.commands or
service.read.queries, return the bytes they produce. Request bodies are decoded by
service.http.body (strict msgspec, problems with pointers), so their schema is
declared with `opt={"request_body": ...}` and added by service.http.openapi.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from domain import vocabulary
from domain.commands import OpenNegotiation
from projections.negotiation_summary import NegotiationListItem, NegotiationSummary
from projections.timeline import TimelinePage
from service.auth import Permission
from service.http.auth import current_key, requires
from service.http.body import decode, read_body
from service.http.command_requests import (
    IdempotencyKey,
    IfMatch,
    command_response,
    commands_body,
    idempotency_of,
    parse_if_match,
)
from service.http.problems import problem_responses
from service.http.request_id import request_id_of
from service.http.reads import (
    NEGOTIATION_STREAM,
    NOT_MODIFIED,
    AsOf,
    ConsistencyToken,
    Cursor,
    KnownAt,
    Limit,
    READ_HEADERS,
    PartyCode,
    json_read,
    routed,
)
from service.read.lineage import LineagePage
from service.read.queries import Queries, TimeTravel
from service.read.replicas import ReadRouter, ReadTarget
from service.write.commands import CommandService
from service.write.requests import CommandResult, OpenRequest, RecordRequest

NegotiationStatus = Annotated[
    vocabulary.NegotiationStatus | None,
    QueryParameter(name="status", required=False, description="Only negotiations in this status."),
]
class NegotiationList(msgspec.Struct):
    items: list[NegotiationListItem]
    next: str | None


class NegotiationController(Controller):
    path = "/negotiations"
    tags = ["negotiations"]

    @post(
        "/",
        operation_id="openNegotiation",
        summary="Open a negotiation",
        description="Records `negotiation.opened`. The id is generated; the slug (from the title when omitted) "
        "must be unique (409 `slug-taken`).",
        guards=[requires(Permission.RECORD)],
        status_code=201,
        responses=problem_responses(400, 401, 403, 409, 413, 415, 422),
        opt={"request_body": OpenNegotiation},
    )
    async def open_negotiation(
        self,
        request: Request[Any, Any, Any],
        commands: NamedDependency[CommandService],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CommandResult]:
        command = decode(await read_body(request), OpenNegotiation)
        outcome = await commands.open(
            OpenRequest(
                command,
                current_key(request).name,
                idempotency_of(request, idempotency_key, command),
                correlation_id=request_id_of(request),
            )
        )
        return command_response(request, outcome)

    @post(
        "/{ref:str}/commands",
        operation_id="recordCommands",
        summary="Record one command, or a batch atomically",
        description="The body is one command (its `type` selects it) or `{\"commands\": [...]}` recorded all or "
        "nothing. `expected_version` per command: 409 `version-conflict` with `current_version` on mismatch.",
        guards=[requires(Permission.RECORD)],
        status_code=201,
        responses=problem_responses(400, 401, 403, 404, 409, 412, 413, 415, 422),
        opt={"request_body": "commands"},
    )
    async def record_commands(
        self,
        request: Request[Any, Any, Any],
        commands: NamedDependency[CommandService],
        queries: NamedDependency[Queries],
        ref: FromPath[str],
        idempotency_key: IdempotencyKey = None,
        if_match: IfMatch = None,
    ) -> Response[CommandResult]:
        submitted, batch = commands_body(await read_body(request))
        precondition = parse_if_match(if_match) if if_match is not None else None
        negotiation_id = await queries.resolve_negotiation(ref)
        value = {"commands": submitted} if batch else submitted[0]
        outcome = await commands.record(
            RecordRequest(
                negotiation_id,
                submitted,
                current_key(request).name,
                batch=batch,
                if_match=precondition,
                idempotency=idempotency_of(
                    request, idempotency_key, value, target=f"/negotiations/{negotiation_id}/commands"
                ),
                correlation_id=request_id_of(request),
            )
        )
        return command_response(request, outcome)

    @get(
        "/",
        operation_id="listNegotiations",
        summary="List negotiations (cursor-paginated)",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 503)},
        response_headers=READ_HEADERS,
    )
    async def list_negotiations(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        status: NegotiationStatus = None,
        party: PartyCode = None,
        cursor: Cursor = None,
        limit: Limit = 50,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[NegotiationList]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> tuple[bytes, str | None]:
            return await target.queries.list_negotiations(
                cursor=cursor, limit=limit, status=status, party=party, travel=travel
            )

        (body, next_cursor), target = await routed(reads, consistency_token, read, log_read=travel.requested)
        return json_read(request, body, next_cursor, target=target)

    @get(
        "/{ref:str}",
        operation_id="getNegotiation",
        summary="A negotiation: status, parties, rounds, every issue's status",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404, 503)},
        response_headers=READ_HEADERS,
    )
    async def get_negotiation(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[NegotiationSummary]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> bytes:
            return await target.queries.negotiation(await target.queries.resolve_negotiation(ref), travel)

        body, target = await routed(reads, consistency_token, read, log_read=travel.requested)
        return json_read(request, body, target=target, stream=NEGOTIATION_STREAM)

    @get(
        "/{ref:str}/timeline",
        operation_id="getTimeline",
        summary="Everything recorded, in world-time order, as readable lines (cursor-paginated)",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404, 503)},
        response_headers=READ_HEADERS,
    )
    async def get_timeline(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        cursor: Cursor = None,
        limit: Limit = 100,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[TimelinePage]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> tuple[bytes, str | None]:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.timeline_page(negotiation_id, cursor=cursor, limit=limit, travel=travel)

        (body, next_cursor), target = await routed(reads, consistency_token, read, log_read=travel.requested)
        return json_read(request, body, next_cursor, target=target)


    @get(
        "/{ref:str}/lineage",
        operation_id="getNegotiationLineage",
        summary="The events behind the negotiation's view (cursor-paginated, in stream order)",
        description="The ids of the negotiation stream's live facts (retracted ones left out), as /events pages.",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404)},
        response_headers=READ_HEADERS,
    )
    async def get_negotiation_lineage(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        cursor: Cursor = None,
        limit: Limit = 100,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[LineagePage]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> tuple[bytes, str | None]:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.lineage_page(negotiation_id, None, cursor=cursor, limit=limit, travel=travel)

        (body, next_cursor), target = await routed(reads, consistency_token, read, log_read=True)
        return json_read(request, body, next_cursor, target=target)


__all__ = ["NegotiationController"]
