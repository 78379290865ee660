"""GET /metrics: Prometheus text exposition.

Request counts and latencies are counted per API process (as any Prometheus client
does without a shared store; scrape each worker or sum them); the log's head and
the projections' lag are read from PostgreSQL, so every process reports the same.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import Permission
from service.http.auth import requires
from service.http.problems import problem_responses
from service.bootstrap import Runtime

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters of one API process."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        # (method, route) -> per-bucket counts (+Inf last), sum, count
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.events_appended = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        entry = self.latency.setdefault((method, route), [0.0] * (len(LATENCY_BUCKETS) + 3))
        entry[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        entry[-2] += seconds
        entry[-1] += 1

    def render(self, head_position: int, lags: list[dict[str, Any]], lost_races: int = 0) -> str:
        lines = [
            "# HELP parley_http_requests_total HTTP requests answered by this process.",
            "# TYPE parley_http_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.requests.items()):
            lines.append(f'parley_http_requests_total{{method="{method}",route="{_escape(route)}",status="{status}"}} {count}')
        lines += [
            "# HELP parley_http_request_duration_seconds Time to answer, by route.",
            "# TYPE parley_http_request_duration_seconds histogram",
        ]
        for (method, route), entry in sorted(self.latency.items()):
            labels = f'method="{method}",route="{_escape(route)}"'
            cumulative = 0.0
            for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), entry[: len(LATENCY_BUCKETS) + 1]):
                cumulative += count
                lines.append(f'parley_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {int(cumulative)}')
            lines.append(f"parley_http_request_duration_seconds_sum{{{labels}}} {entry[-2]:.6f}")
            lines.append(f"parley_http_request_duration_seconds_count{{{labels}}} {int(entry[-1])}")
        lines += [
            "# HELP parley_events_appended_total Events appended by commands through this process.",
            "# TYPE parley_events_appended_total counter",
            f"parley_events_appended_total {self.events_appended}",
            "# HELP parley_command_retries_total Command attempts through this process that lost a race "
            "to a concurrent writer and were decided again on fresh state.",
            "# TYPE parley_command_retries_total counter",
            f"parley_command_retries_total {lost_races}",
            "# HELP parley_log_head_position Highest position in the event log (all processes).",
            "# TYPE parley_log_head_position gauge",
            f"parley_log_head_position {head_position}",
            "# HELP parley_projection_lag_events Events the projection has not applied yet.",
            "# TYPE parley_projection_lag_events gauge",
        ]
        for lag in lags:
            lines.append(f'parley_projection_lag_events{{projection="{_escape(lag["name"])}"}} {lag["events_behind"]}')
        lines += [
            "# HELP parley_projection_lag_seconds Age of the oldest event the projection has not applied.",
            "# TYPE parley_projection_lag_seconds gauge",
        ]
        for lag in lags:
            lines.append(
                f'parley_projection_lag_seconds{{projection="{_escape(lag["name"])}"}} {float(lag["seconds_behind"]):.3f}'
            )
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Counts every routed HTTP request by method, route template and status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            metrics: Metrics | None = getattr(scope["litestar_app"].state, "metrics", None)
            if metrics is not None:
                route = scope.get("path_template") or "unmatched"
                metrics.observe(scope["method"], route, status, time.perf_counter() - started)

    return middleware


@get(
    "/metrics",
    operation_id="getMetrics",
    summary="Prometheus metrics",
    description="Any key may read them (Prometheus: `authorization: {credentials: <key>}`).",
    tags=["operations"],
    guards=[requires(Permission.READ)],
    media_type="text/plain; version=0.0.4",
    responses=problem_responses(401, 403),
)
async def get_metrics(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Response[str]:
    head = await runtime.store.last_position()
    text = request.app.state.metrics.render(head, await runtime.projection_lag(), runtime.commands.stats.lost_races)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
