"""Issue status views held in a process's memory, as the bytes served (the primary's only).

A status read (GET /negotiations/{ref}/issues/{key}, no time travel, no consistency
token) is answered from here when this process read the same view from the
primary's `issue_status` since the issue projection last committed. What keeps an
answer no staler than the table itself:

* **Every commit of the issue projection forgets everything.** The projector
  notifies `parley_projections` (payload: the projection's name) after each batch
  commits and after a rebuild's swap (service.projection); this process's listener
  (service.invalidation, one connection to the primary) hears it, whichever process
  committed — the in-process runner's commits arrive the same way. A view is
  served from memory only until the notification of the next commit arrives
  (milliseconds after it).
* **A read racing a commit is not kept.** Every forget bumps a generation; a read
  keeps what it read only if no forget happened since it started (the commit may
  have landed just after its SELECT).
* **Nothing is answered from memory while a notification could be missed**: the
  listener is down or has not answered its heartbeat (`Invalidations.trustworthy`).
  Once it listens again, everything is forgotten.
* **A notification lost with the process that committed** (it died between its
  commit and its notify) is caught by reading the issue projection's checkpoint
  every `check_every` seconds (PARLEY_VIEW_CACHE_CHECK, 1 s; 0 turns this memory
  off): a checkpoint that moved forgets everything. Nothing is answered from
  memory while that read has not succeeded for twice as long.
* **Reads with a consistency token never come from here**: the token is checked
  against the projections' checkpoints in the database, which can pass the write
  before this process has heard of the commit. Standbys have no such memory (a hot
  standby cannot LISTEN): their reads always run their SELECT.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg

from projections.issue_status import IssueStatusProjection
from service.invalidation import Invalidations
from service.projection.checkpoints import PROJECTIONS_CHANNEL

log = logging.getLogger("parley.read")

# Entries held at most (dropped all at once beyond this: cheap to refill).
_SIZE = 10_000
_CHECKPOINT_SQL = "SELECT txid, position FROM projection_checkpoints WHERE name = $1"


class ServedViews:
    def __init__(self, *, check_every: float = 1.0, size: int = _SIZE) -> None:
        self.check_every = check_every
        self.size = size
        self._held: dict[tuple[uuid.UUID, str], bytes] = {}
        self._generation = 0
        self._invalidations: Invalidations | None = None
        self._checked_at = float("-inf")  # the checkpoint's last successful read

    def attach(self, invalidations: Invalidations) -> None:
        """Listen for the issue projection's commits (before `invalidations` start)."""
        self._invalidations = invalidations
        invalidations.subscribe_channel(PROJECTIONS_CHANNEL, self._committed, self.forget_all)

    @property
    def enabled(self) -> bool:
        return (
            self.check_every > 0
            and self._invalidations is not None
            and self._invalidations.trustworthy
            and time.monotonic() - self._checked_at <= 2 * self.check_every
        )

    def _committed(self, projection: str) -> None:
        if projection == IssueStatusProjection.name:
            self.forget_all()

    def forget_all(self) -> None:
        self._generation += 1
        self._held.clear()

    def generation(self) -> int:
        """Taken before a read whose answer is then `keep`-ed."""
        return self._generation

    def get(self, negotiation_id: uuid.UUID, key: str) -> bytes | None:
        held = self._held.get((negotiation_id, key))
        return held if held is not None and self.enabled else None

    def keep(self, generation: int, negotiation_id: uuid.UUID, key: str, view: bytes) -> None:
        """Hold `view`, read after `generation()` returned `generation`, unless a
        commit was heard since (what was read may be older than that commit)."""
        if generation != self._generation or not self.enabled:
            return
        if len(self._held) >= self.size:
            self._held.clear()
        self._held[(negotiation_id, key)] = view

    async def check_checkpoint(self, pool: asyncpg.Pool) -> None:
        """Read the issue projection's checkpoint every `check_every` seconds, for
        ever; forget everything when it moved (a commit may have gone unheard)."""
        if self.check_every <= 0:
            return
        seen: object = None
        while True:
            try:
                row = await pool.fetchrow(_CHECKPOINT_SQL, IssueStatusProjection.name)
                now = None if row is None else (row["txid"], row["position"])
                if now != seen:
                    self.forget_all()
                seen = now
                self._checked_at = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database away: memory is off until it answers
                log.info("served views: the issue projection's checkpoint could not be read: %s", error)
            await asyncio.sleep(self.check_every)
