-- Time travel from snapshots (issue 12): the issue projection also keeps each
-- issue's view as of every world time of its facts (issue_snapshots, created by
-- the projection's step of this migration, projections/issue_snapshots.py).
-- They are built as the projection folds the log, so it starts again from the
-- beginning (until an issue's row is back, reads fold the log, service.read.queries).
DELETE FROM issue_status;
UPDATE projection_checkpoints
SET txid = 0, position = 0, events_applied = 0, updated_at = now()
WHERE name = 'issue_status';
