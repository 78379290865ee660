"""What an operator watches, read from PostgreSQL and from the running parts:
the seal lag, and each component's last success and last error.

`/metrics` (service.http.metrics) and `/health/ready` (service.http.health) show
them; the projection lag is service.projection.watch's, the idempotency keys
held service.write.idempotency's.

* **Seal lag**: the events after the ledger's last leaf (read here from
  `ledger_leaves`, which service.audit.ledger writes; only the frontier is read).
* **Components** (`Components`, one per process, in the Runtime): the database
  (each readiness probe), the sealer (each sealing round of this process) and each
  witness (each cosignature this process asked it for) record when they last
  succeeded and last failed, and with what. The projections keep theirs in the
  runner's WorkerStats.
* **Reports** (`component_reports`): every component as /health/ready and the
  component gauges of /metrics show it, from this process's states or, for what
  runs in another process (`parley seal`, `parley project`), from what that
  process stored: its checkpoints, its cosignatures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from service.audit.cosigning import Cosigner, WitnessEndpoint, parse_witnesses
from service.audit.ledger import Sealer, SignedCheckpoint
from service.store.event_store import START, Checkpoint, EventStore

if TYPE_CHECKING:
    from service.bootstrap import Runtime

log = logging.getLogger("parley.operations")

_LAST_LEAF_SQL = 'SELECT txid::text::bigint AS txid, position FROM ledger_leaves ORDER BY "index" DESC LIMIT 1'
_LAG_COUNT_CAP = 1_000_000


@dataclass(frozen=True)
class Lag:
    events: int
    seconds: float


async def seal_lag(pool: asyncpg.Pool) -> Lag:
    """Readable events not yet leaves of the ledger's tree, and the age of the oldest."""
    row = await pool.fetchrow(_LAST_LEAF_SQL)
    after = Checkpoint(row["txid"], row["position"]) if row else START
    [backlog] = await EventStore(pool).backlog([after], cap=_LAG_COUNT_CAP)
    return Lag(backlog.events, backlog.seconds)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class ComponentState:
    last_success: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None

    def succeeded(self) -> None:
        self.last_success = now()

    def failed(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.last_error_at = now()

    @property
    def ok(self) -> bool:
        """Not failing now: no error, or a success since the last one."""
        return self.last_error_at is None or (self.last_success is not None and self.last_success > self.last_error_at)


@dataclass
class Components:
    """This process's components that report their own health."""

    database: ComponentState
    sealer: ComponentState
    # By witness key name, while this process asks them (ObservedCosigner).
    witnesses: dict[str, ComponentState] = field(default_factory=dict)

    @classmethod
    def new(cls) -> "Components":
        return cls(ComponentState(), ComponentState())


class ObservedSealer(Sealer):
    """service.audit.ledger.Sealer, each round's outcome kept in `state` (its own
    `run` loop, retries and stop on a tampered ledger unchanged)."""

    def __init__(self, *args: Any, state: ComponentState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state

    async def seal_once(self, *args: Any, **kwargs: Any) -> Any:
        try:
            sealed = await super().seal_once(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.state.failed(error)
            raise
        self.state.succeeded()
        return sealed


class ObservedCosigner(Cosigner):
    """service.audit.cosigning.Cosigner, each witness's outcome kept in `states`
    (by the witness's key name): a cosignature stored is a success; a refusal or
    no answer an error. A witness not asked in a round (its cosignature of the
    latest checkpoint is fresh) keeps its state. `on_cosigned` / `on_refused`, when
    set, are told each outcome too (by witness key name): /metrics counts them
    (service.http.metrics.count_witness_asks), in whichever process cosigns."""

    def __init__(self, *args: Any, states: dict[str, ComponentState], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.states = states
        self.on_cosigned: Callable[[str], None] | None = None
        self.on_refused: Callable[[str], None] | None = None
        for verifier in self.verifiers:
            states.setdefault(verifier.name, ComponentState())

    def cosigned(self, witness: str) -> None:
        self.states[witness].succeeded()
        if self.on_cosigned is not None:
            self.on_cosigned(witness)

    def refused(self, witness: str, error: BaseException) -> None:
        self.states[witness].failed(error)
        if self.on_refused is not None:
            self.on_refused(witness)


# -- reports: what /health/ready and /metrics show ----------------------------------

# A witness whose newest cosignature is older than this is failing, as seen from a
# process that does not ask it: the cosigner asks every witness for each new
# checkpoint and again every minute on an idle log (service.audit.cosigning), so
# two minutes without one is two refreshes missed.
WITNESS_STALE_AFTER = 120.0


@dataclass(frozen=True)
class ComponentReport:
    name: str  # "database", "projection <name>", "sealer", "witness <key name>"
    ok: bool
    last_success: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    # Projections and the sealer: events still to apply or seal, the oldest's age.
    # Witnesses: sealed leaves its newest cosignature does not cover, that cosignature's age.
    events_behind: int | None = None
    seconds_behind: float | None = None
    url: str | None = None  # witnesses: where they are asked


def state_report(name: str, state: ComponentState, **more: Any) -> ComponentReport:
    return ComponentReport(name, state.ok, state.last_success, state.last_error, state.last_error_at, **more)


async def component_reports(runtime: Runtime, lags: list[dict[str, Any]]) -> list[ComponentReport]:
    """Every component after a database probe that succeeded; `lags` is
    runtime.projection_lag()'s reading."""
    latest = None
    if runtime.sealer is None or runtime.settings.witnesses:
        try:
            latest = await runtime.ledger.latest_checkpoint()
        except asyncpg.PostgresError as error:  # a ledger that cannot be read is reported, not a 500
            log.warning("the latest checkpoint could not be read for health: %s", error)
    return [
        state_report("database", runtime.components.database),
        *_projections(runtime, lags),
        await _sealer(runtime, latest),
        *await _witnesses(runtime, latest),
    ]


def _projections(runtime: Runtime, lags: list[dict[str, Any]]) -> list[ComponentReport]:
    """Last success: when its checkpoint last moved (whichever process holds it);
    last error: this process's runner's, or the event it is stuck at."""
    here = {s.name: s for s in runtime.projector.stats()} if runtime.projector is not None else {}
    found = []
    for lag in lags:
        stats, stuck = here.get(lag["name"]), lag.get("stuck")
        error, error_at = (stats.last_error, stats.last_error_at) if stats is not None else (None, None)
        if stuck is not None:
            error, error_at = stuck["error"], stuck["since"]
        found.append(ComponentReport(
            f"projection {lag['name']}", stuck is None and (error_at is None or lag["updated_at"] > error_at),
            lag["updated_at"], error, error_at, lag["events_behind"], round(lag["seconds_behind"], 3),
        ))  # fmt: skip
    return found


async def _sealer(runtime: Runtime, latest: SignedCheckpoint | None) -> ComponentReport:
    """This process's sealer rounds when it seals; else (`parley seal` elsewhere)
    the last signed checkpoint as its last success."""
    lag = await seal_lag(runtime.pool)
    if runtime.sealer is not None:
        return state_report("sealer", runtime.components.sealer, events_behind=lag.events,
                       seconds_behind=round(lag.seconds, 3))  # fmt: skip
    return ComponentReport("sealer", True, latest.signed_at if latest else None, None, None, lag.events,
                           round(lag.seconds, 3))  # fmt: skip


_NEWEST_COSIGNATURE_SQL = """
    SELECT tree_size, signed_at FROM ledger_cosignatures WHERE key_id = $1 AND signer = $2
    ORDER BY tree_size DESC, signed_at DESC LIMIT 1
"""
_FIRST_CHECKPOINT_SQL = "SELECT signed_at FROM ledger_checkpoints ORDER BY tree_size LIMIT 1"


@dataclass(frozen=True)
class Cosigned:
    """A witness's newest stored cosignature: the checkpoint's size, the witness's time."""

    tree_size: int
    at: dt.datetime


async def _witnesses(runtime: Runtime, latest: SignedCheckpoint | None) -> list[ComponentReport]:
    """Each configured witness: this process's asks when it runs the cosigner;
    else (`parley seal` elsewhere) its newest stored cosignature, failing when
    that is older than WITNESS_STALE_AFTER."""
    endpoints: Sequence[WitnessEndpoint]
    if runtime.cosigner is not None:
        endpoints = runtime.cosigner.witnesses
    else:
        try:
            endpoints = parse_witnesses(runtime.settings.witnesses)
        except ValueError as error:  # checked at start-up only where the cosigner runs
            return [ComponentReport("witnesses", False, None, str(error), None)]
    states = runtime.components.witnesses if isinstance(runtime.cosigner, ObservedCosigner) else {}
    reports = []
    first_checkpoint_at: dt.datetime | None = None
    for endpoint in endpoints:
        verifier = endpoint.verifier
        row = await runtime.pool.fetchrow(_NEWEST_COSIGNATURE_SQL, verifier.key_id, verifier.name)
        newest = Cosigned(row["tree_size"], dt.datetime.fromtimestamp(row["signed_at"], dt.timezone.utc)) if row else None
        state = states.get(verifier.name)
        if state is None and newest is None and latest is not None and first_checkpoint_at is None:
            first_checkpoint_at = await runtime.pool.fetchval(_FIRST_CHECKPOINT_SQL)
        reports.append(witness_report(verifier.name, endpoint.url, state, newest, latest, first_checkpoint_at, now()))
    return reports


def witness_report(
    name: str, url: str, state: ComponentState | None, newest: Cosigned | None, latest: SignedCheckpoint | None,
    first_checkpoint_at: dt.datetime | None, at: dt.datetime,
) -> ComponentReport:
    """One witness as of `at`. With this process's `state`: its asks (a cosignature
    stored before this process started counts as the last success until it gets
    one). Without: the newest cosignature stored; failing once it is older than
    WITNESS_STALE_AFTER (or no cosignature at all that long after the first
    checkpoint), the error then saying so and dated when it became overdue."""
    behind = latest.tree_size - (newest.tree_size if newest else 0) if latest else None
    age = round((at - newest.at).total_seconds(), 3) if newest else None
    full = f"witness {name}"
    if state is not None:
        last_success = state.last_success or (newest.at if newest else None)
        return ComponentReport(full, state.ok, last_success, state.last_error, state.last_error_at, behind, age, url)
    since = newest.at if newest else first_checkpoint_at
    overdue = since + dt.timedelta(seconds=WITNESS_STALE_AFTER) if since is not None else None
    if overdue is None or at <= overdue:
        return ComponentReport(full, True, newest.at if newest else None, None, None, behind, age, url)
    error = (
        f"no cosignature for more than {WITNESS_STALE_AFTER:.0f} s (since {since.isoformat()}); "
        "the cosigner runs with `parley seal`, whose log says why"
    )
    return ComponentReport(full, False, newest.at if newest else None, error, overdue, behind, age, url)
