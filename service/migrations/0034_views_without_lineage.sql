-- Bounded views (issue 15): issue and negotiation views no longer carry their
-- lineage (every event id of the stream); it is served by the paged routes
-- GET /negotiations/{ref}/lineage and .../issues/{key}/lineage from the log.
-- The projections' steps of this migration drop the lineage columns; the rows
-- hold the old bytes, so they are dropped and re-projected from the start (until
-- a row is back, reads fold the log, service.read.queries).
DELETE FROM issue_status;
DELETE FROM negotiation_summary_issues;
DELETE FROM negotiation_summary;
UPDATE projection_checkpoints
SET txid = 0, position = 0, events_applied = 0, updated_at = now()
WHERE name IN ('issue_status', 'negotiation_summary');
