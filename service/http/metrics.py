"""GET /metrics: prometheus_client, through Litestar's Prometheus plugin.

* **HTTP metrics** come from the plugin's middleware (`PROMETHEUS.middleware`):
  `parley_http_requests_total`, `parley_http_request_duration_seconds`,
  `parley_http_requests_in_progress`, `parley_http_requests_error_total`, labelled
  `method`, `path` (the route template), `status_code`, `app_name`.
* **Status as sent.** Authentication is a middleware *inside* this one, and a
  middleware's exception (401 no key, 429 throttled) is only turned into a
  response by the app's outermost exception handler, after every middleware has
  unwound: the plugin would see no response and count it as its default. So the
  app below this middleware is wrapped in Litestar's own exception handler (the
  one it puts between every route and its middleware), which answers with our
  problems (service.http.problems) there: the status counted is the one sent.
  Paths that match no route (Litestar answers 404 before any route middleware)
  are not counted.
* **Domain metrics** beside them: the events appended and the lost races of the
  command path (counters, incremented where they happen), and gauges read from
  PostgreSQL when /metrics is scraped (log head, projection lag and stuck per
  projection, seal lag, idempotency keys held, each witness's cosignature age)
  plus the open event streams of the process; each witness's cosignatures and
  failed requests (counters, incremented by the cosigner: in the API process
  with one worker, in `parley seal` with several, see below); and every component of
  /health/ready (service.operations.component_reports) as `parley_component_ok`
  and its last success and last error times, so that sealing, projecting or
  cosigning that stops shows in /metrics as it does in /health/ready.
* **Several workers** (`parley serve --workers N`, N > 1): `serve` sets
  PROMETHEUS_MULTIPROC_DIR, prometheus_client keeps every metric in a file per
  process there, and the scrape (whichever worker answers it) adds them up:
  counters and histograms summed over workers. A gauge needs to say how:
  the ones read from PostgreSQL are the same wherever they are read, so the most
  recent reading wins (`mostrecent`); the open streams are each worker's own, so
  they are summed over the live workers (`livesum`). serve's `parley seal` child
  shares the directory, so the witness counters it increments are in the sums
  too. See docs/operations.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar._asgi.utils import wrap_in_exception_handler
from litestar.di import NamedDependency
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController, PrometheusMiddleware
from litestar.types import ASGIApp
from prometheus_client import Counter, Gauge, multiprocess

from service.auth import Permission
from service.bootstrap import Runtime
from service.http.auth import requires
from service.http.problems import problem_responses

EVENTS_APPENDED = Counter("parley_events_appended", "Events appended by commands.")
COMMAND_RETRIES = Counter(
    "parley_command_retries",
    "Command attempts that lost a race to a concurrent writer and were decided again on fresh state.",
)
LOG_HEAD = Gauge("parley_log_head_position", "Highest position in the event log.", multiprocess_mode="mostrecent")
PROJECTION_LAG_EVENTS = Gauge(
    "parley_projection_lag_events", "Events the projection has not applied yet.", ["projection"],
    multiprocess_mode="mostrecent",
)
PROJECTION_LAG_SECONDS = Gauge(
    "parley_projection_lag_seconds", "Age of the oldest event the projection has not applied (0: caught up).",
    ["projection"], multiprocess_mode="mostrecent",
)
SEAL_LAG_EVENTS = Gauge(
    "parley_seal_lag_events", "Events not yet sealed into the ledger's Merkle tree.", multiprocess_mode="mostrecent"
)
SEAL_LAG_SECONDS = Gauge(
    "parley_seal_lag_seconds", "Age of the oldest event not yet sealed (0: all sealed).", multiprocess_mode="mostrecent"
)
IDEMPOTENCY_KEYS = Gauge(
    "parley_idempotency_keys", "Idempotency keys held (stored answers not yet expired).", multiprocess_mode="mostrecent"
)
STREAMS_OPEN = Gauge("parley_event_streams_open", "Open /events/stream streams.", multiprocess_mode="livesum")
PROJECTION_STUCK = Gauge(
    "parley_projection_stuck", "1 while the projection is stuck at an event it cannot apply, else 0.", ["projection"],
    multiprocess_mode="mostrecent",
)
# Every component of /health/ready (database, projection <name>, sealer, witness <name>).
COMPONENT_OK = Gauge(
    "parley_component_ok", "1 when the component is not failing now (no error, or a success since the last), else 0.",
    ["component"], multiprocess_mode="mostrecent",
)
COMPONENT_LAST_SUCCESS = Gauge(
    "parley_component_last_success_timestamp_seconds", "When the component last succeeded (POSIX seconds; 0: never).",
    ["component"], multiprocess_mode="mostrecent",
)
COMPONENT_LAST_ERROR = Gauge(
    "parley_component_last_error_timestamp_seconds", "When the component last failed (POSIX seconds; 0: never).",
    ["component"], multiprocess_mode="mostrecent",
)
# Counted where the cosigner asks (this process, or `parley seal` beside the
# workers, whose files join the workers' in PROMETHEUS_MULTIPROC_DIR).
WITNESS_COSIGNATURES = Counter(
    "parley_witness_cosignatures", "Cosignatures a witness returned that verified and were stored.", ["witness"]
)
WITNESS_COSIGN_FAILURES = Counter(
    "parley_witness_cosign_failures",
    "Cosignature requests a witness refused, answered wrongly or did not answer (no connection, a timeout).",
    ["witness"],
)
WITNESS_COSIGN_AGE = Gauge(
    "parley_witness_cosign_age_seconds", "Age of the witness's newest stored cosignature (absent: none yet).",
    ["witness"], multiprocess_mode="mostrecent",
)


class SentStatusMiddleware(PrometheusMiddleware):
    """The plugin's middleware, counting the status a refusing middleware sent.

    Its accounting is the plugin's — the same four metrics, labels (group_path: the
    route template) and values: in progress (labelled status 200, as the plugin
    does) while the request runs, then the count, the duration until the last body
    message and, from 500 on, the error count — with each label set's series
    looked up once and kept, where the plugin builds a request, a wrapped `send`
    and four `labels()` lookups for every request (some 8 % of a status read's
    profile). A configuration using what that skips (extra labels, exemplars,
    excluded methods) takes the plugin's own path."""

    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(wrap_in_exception_handler(app), config)
        self._plain = not (config.labels or config.exemplars or config.excluded_http_methods) and config.group_path
        self._series: dict[tuple[str, str, int], tuple[Any, Any, Any | None]] = {}
        self._in_progress: dict[tuple[str, str], Any] = {}

    def _series_of(self, method: str, path: str, status: int) -> tuple[Any, Any, Any | None]:
        """(count, duration, errors or None) of one label set, and in progress for status 200."""
        key = (method, path, status)
        found = self._series.get(key)
        if found is None:
            labels: dict[str, str | int | float] = {
                "method": method, "path": path, "status_code": status, "app_name": self._config.app_name
            }
            values = [*labels.values()]
            errors = self.requests_error_count(labels).labels(*values) if status >= 500 else None
            found = (self.request_count(labels).labels(*values), self.request_time(labels).labels(*values), errors)
            if len(self._series) < 10_000:  # bounded: the paths are route templates
                self._series[key] = found
        return found

    def _in_progress_of(self, method: str, path: str) -> Any:
        """The in-progress gauge of one route (labelled status 200, as the plugin does)."""
        found = self._in_progress.get((method, path))
        if found is None:
            labels: dict[str, str | int | float] = {
                "method": method, "path": path, "status_code": 200, "app_name": self._config.app_name
            }
            found = self.requests_in_progress(labels).labels(*labels.values())
            if len(self._in_progress) < 10_000:  # bounded: the paths are route templates
                self._in_progress[(method, path)] = found
        return found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._plain:
            await super().__call__(scope, receive, send)
            return
        method = scope["method"] if scope["type"] == "http" else scope["type"]
        path = scope["path_template"]
        in_progress = self._in_progress_of(method, path)
        started = time.perf_counter()
        sent = {"status": 200, "duration": 0.0}

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            elif message["type"] == "http.response.body":
                sent["duration"] = time.perf_counter() - started
            await send(message)

        in_progress.inc()
        try:
            await self.app(scope, receive, counting_send)
        finally:
            in_progress.dec()
            count, duration, errors = self._series_of(method, path, int(sent["status"]))
            if errors is not None:
                errors.inc()
            count.inc()
            duration.observe(sent["duration"])


PROMETHEUS = PrometheusConfig(
    app_name="parley", prefix="parley_http", group_path=True, middleware_class=SentStatusMiddleware
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def count_witness_asks(runtime: Runtime) -> None:
    """Where this process runs the cosigner: each witness's cosignatures and failed
    requests counted, both from 0 for every configured witness (so that a rate is
    defined before the first failure)."""
    from service.operations import ObservedCosigner

    cosigner = runtime.cosigner
    if not isinstance(cosigner, ObservedCosigner):
        return
    for verifier in cosigner.verifiers:
        WITNESS_COSIGNATURES.labels(verifier.name)
        WITNESS_COSIGN_FAILURES.labels(verifier.name)
    cosigner.on_cosigned = lambda witness: WITNESS_COSIGNATURES.labels(witness).inc()
    cosigner.on_refused = lambda witness: WITNESS_COSIGN_FAILURES.labels(witness).inc()


def worker_metrics(runtime: Runtime) -> None:
    """At an API process's start: its lost races and (when it cosigns) its
    witnesses' answers counted; with several workers, the live gauges of workers
    that died without stopping (killed, crashed) left out of the sums (uvicorn
    starts a new worker in their place)."""
    runtime.commands.stats.on_lost_race = COMMAND_RETRIES.inc
    count_witness_asks(runtime)
    directory = multiprocess_dir()
    if directory is None:
        return
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if pid != os.getpid() and not _alive(pid):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def worker_stopped() -> None:
    """At an API process's graceful stop: its live gauges leave the sums."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def refresh_gauges(runtime: Runtime, streams_open: int) -> None:
    """The gauges read from PostgreSQL, as of now."""
    from service import operations
    from service.write import idempotency

    LOG_HEAD.set(await runtime.store.last_position())
    lags = await runtime.projection_lag()
    for lag in lags:
        PROJECTION_LAG_EVENTS.labels(lag["name"]).set(lag["events_behind"])
        PROJECTION_LAG_SECONDS.labels(lag["name"]).set(lag["seconds_behind"])
        PROJECTION_STUCK.labels(lag["name"]).set(0 if lag.get("stuck") is None else 1)
    runtime.components.database.succeeded()  # the reads above reached it
    for report in await operations.component_reports(runtime, lags):
        COMPONENT_OK.labels(report.name).set(1 if report.ok else 0)
        COMPONENT_LAST_SUCCESS.labels(report.name).set(report.last_success.timestamp() if report.last_success else 0)
        COMPONENT_LAST_ERROR.labels(report.name).set(report.last_error_at.timestamp() if report.last_error_at else 0)
        if report.name.startswith("witness ") and report.seconds_behind is not None:
            WITNESS_COSIGN_AGE.labels(report.name.removeprefix("witness ")).set(report.seconds_behind)
    seal = await operations.seal_lag(runtime.pool)
    SEAL_LAG_EVENTS.set(seal.events)
    SEAL_LAG_SECONDS.set(seal.seconds)
    IDEMPOTENCY_KEYS.set(await idempotency.keys_held(runtime.pool))
    STREAMS_OPEN.set(streams_open)


class MetricsController(PrometheusController):
    """The plugin's controller at /metrics, read with any key (as before)."""

    guards = [requires(Permission.READ)]
    tags = ["operations"]

    @get(
        operation_id="getMetrics",
        summary="Prometheus metrics",
        description="Any key may read them (Prometheus: `authorization: {credentials: <key>}`). "
        "With several workers, every worker's counters added up.",
        media_type="text/plain; version=0.0.4",
        responses=problem_responses(401, 403),
    )
    async def get(self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Response[bytes]:  # type: ignore[override]
        streams = getattr(request.app.state, "streams", None)  # service.http.streams, made on first use
        await refresh_gauges(runtime, streams.count() if streams is not None else 0)
        # The plugin's exposition: the process's registry, or with
        # PROMETHEUS_MULTIPROC_DIR one adding up every worker's files.
        return await PrometheusController.get.fn(self)
