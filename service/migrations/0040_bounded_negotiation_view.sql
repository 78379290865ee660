-- Bounded views (issue 15): the negotiation view (GET /negotiations/{ref}) inlines
-- at most 100 issue briefs (projections/negotiation_summary.py, INLINE_ISSUES),
-- with `issues_total` and `issues_next`, the cursor of GET .../issues for the rest.
-- The stored views hold the old shape, so the summary's rows are dropped and
-- re-projected from the start (until a row is back, reads fold the log,
-- service.read.queries).
DELETE FROM negotiation_summary_issues;
DELETE FROM negotiation_summary;
UPDATE projection_checkpoints
SET txid = 0, position = 0, events_applied = 0, updated_at = now()
WHERE name = 'negotiation_summary';
