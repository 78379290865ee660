"""Client routes: the issues of a negotiation, one issue's view, history and lineage.

Thin handlers as in service.http.negotiations: parse the parameters, call
service.read.queries on the server service.read.replicas chooses, return the bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from domain import vocabulary
from domain.status import IssueView
from service.auth import Permission
from service.http.auth import requires
from service.http.problems import problem_responses
from service.http.reads import (
    NOT_MODIFIED,
    AsOf,
    ConsistencyToken,
    Cursor,
    KnownAt,
    Limit,
    READ_HEADERS,
    PartyCode,
    issue_stream_tag,
    json_read,
    routed,
)
from service.read.lineage import LineagePage
from service.read.queries import EventPage, TimeTravel
from service.read.replicas import ReadRouter, ReadTarget

IssueStatus = Annotated[
    vocabulary.IssueStatus | None,
    QueryParameter(name="status", required=False, description="Only issues in this status."),
]
IssueCategory = Annotated[
    vocabulary.Category | None,
    QueryParameter(name="category", required=False, description="Only issues of this category."),
]


class IssueList(msgspec.Struct):
    items: list[IssueView]
    next: str | None


class IssueController(Controller):
    path = "/negotiations/{ref:str}/issues"
    tags = ["issues"]

    @get(
        "/",
        operation_id="listIssues",
        summary="Every issue's status view (cursor-paginated, by key)",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404, 503)},
        response_headers=READ_HEADERS,
    )
    async def list_issues(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        status: IssueStatus = None,
        category: IssueCategory = None,
        party: PartyCode = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        cursor: Cursor = None,
        limit: Limit = 100,
        consistency_token: ConsistencyToken = None,
    ) -> Response[IssueList]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> tuple[bytes, str | None]:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.issues(
                negotiation_id, travel, status=status, category=category, party=party, cursor=cursor, limit=limit
            )

        (body, next_cursor), target = await routed(reads, consistency_token, read, log_read=travel.requested)
        return json_read(request, body, next_cursor, target=target)

    @get(
        "/{key:str}",
        operation_id="getIssue",
        summary="One issue's full status view",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404, 503)},
        response_headers=READ_HEADERS,
    )
    async def get_issue(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        key: FromPath[str],
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[IssueView]:
        travel = TimeTravel.parse(as_of, known_at)

        # Without a token the view may come from the process's memory (a token's
        # write may be in the table before this process has heard of its commit).
        from_memory = consistency_token is None

        async def read(target: ReadTarget) -> bytes:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.issue(negotiation_id, key, travel, from_memory=from_memory)

        body, target = await routed(reads, consistency_token, read, log_read=travel.requested)
        return json_read(request, body, target=target, stream=issue_stream_tag(key))

    @get(
        "/{key:str}/history",
        operation_id="getIssueHistory",
        summary="The issue's events as stored (cursor-paginated, in stream order)",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404)},
        response_headers=READ_HEADERS,
    )
    async def get_issue_history(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        key: FromPath[str],
        cursor: Cursor = None,
        limit: Limit = 100,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[EventPage]:
        travel = TimeTravel.parse(as_of, known_at)

        # Read from the log itself: the primary has a write as soon as its token is
        # issued; a standby once it has replayed that far.
        async def read(target: ReadTarget) -> tuple[bytes, str | None]:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.issue_history(negotiation_id, key, cursor=cursor, limit=limit, travel=travel)

        (body, next_cursor), target = await routed(reads, consistency_token, read, log_read=True)
        return json_read(request, body, next_cursor, target=target)

    @get(
        "/{key:str}/lineage",
        operation_id="getIssueLineage",
        summary="The events behind the issue's status view (cursor-paginated, in stream order)",
        description="The ids of the issue stream's live facts (retracted ones left out; retractions and disputes "
        "included), as /events pages; with as_of / known_at, those of the view as it stood.",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404)},
        response_headers=READ_HEADERS,
    )
    async def get_issue_lineage(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        key: FromPath[str],
        cursor: Cursor = None,
        limit: Limit = 100,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[LineagePage]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> tuple[bytes, str | None]:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.lineage_page(negotiation_id, key, cursor=cursor, limit=limit, travel=travel)

        (body, next_cursor), target = await routed(reads, consistency_token, read, log_read=True)
        return json_read(request, body, next_cursor, target=target)


__all__ = ["IssueController"]
