-- A projection that meets an event it cannot apply (a poison event: its data
-- does not decode, or folding it fails the same way every time) stops at it and
-- says so here, instead of retrying for ever in silence
-- (service/projection/runner.py; docs/operations.md, "A projection stuck at an
-- event"). NULL: not stuck. The runner sets these in the same row as its
-- checkpoint, which stays at the last event applied before the stuck one; a
-- rebuild (`parley projections rebuild`) or the runner's next start tries the
-- event again and clears them once it applies.
ALTER TABLE projection_checkpoints
    ADD COLUMN stuck_event_id       uuid,
    ADD COLUMN stuck_negotiation_id uuid,
    ADD COLUMN stuck_error          text,
    ADD COLUMN stuck_since          timestamptz;
