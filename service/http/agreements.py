"""Client routes: a negotiation's agreements (DESIGN v2).

An agreement may cover several issues; each issue's view holds it whole, and
these routes list every agreement of the negotiation once. Like every read,
they take ``as_of`` / ``known_at`` (computed from the log with the domain
fold) and a ``consistency_token``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from domain.views import AgreementView
from service.auth import Permission
from service.http.auth import requires
from service.http.problems import problem_responses
from service.http.reads import NOT_MODIFIED, READ_HEADERS, AsOf, ConsistencyToken, KnownAt, json_read, routed
from service.read.queries import TimeTravel
from service.read.replicas import ReadRouter, ReadTarget


class AgreementList(msgspec.Struct):
    items: list[AgreementView]
    next: str | None  # always null: a negotiation's agreements come in one page


class AgreementController(Controller):
    path = "/negotiations/{ref:str}/agreements"
    tags = ["agreements"]

    @get(
        "/",
        operation_id="listAgreements",
        summary="Every agreement of the negotiation, once each (in world-time order)",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404, 503)},
        response_headers=READ_HEADERS,
    )
    async def list_agreements(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[AgreementList]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> bytes:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.agreements_page(negotiation_id, travel)

        body, target = await routed(reads, consistency_token, read, log_read=travel.requested)
        return json_read(request, body, target=target)

    @get(
        "/{agreement_id:str}",
        operation_id="getAgreement",
        summary="One agreement: issues, state, signatures, ratifications, implementation, withdrawals, supersession",
        guards=[requires(Permission.READ)],
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 403, 404, 503)},
        response_headers=READ_HEADERS,
    )
    async def get_agreement(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        ref: FromPath[str],
        agreement_id: FromPath[str],
        as_of: AsOf = None,
        known_at: KnownAt = None,
        consistency_token: ConsistencyToken = None,
    ) -> Response[AgreementView]:
        travel = TimeTravel.parse(as_of, known_at)

        async def read(target: ReadTarget) -> bytes:
            negotiation_id = await target.queries.resolve_negotiation(ref)
            return await target.queries.agreement(negotiation_id, agreement_id, travel)

        body, target = await routed(reads, consistency_token, read, log_read=travel.requested)
        return json_read(request, body, target=target)


__all__ = ["AgreementController"]
