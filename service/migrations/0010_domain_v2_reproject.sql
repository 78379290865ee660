-- Domain v2 (DESIGN "Agreements from the table to the ground"): the views the
-- read models store changed shape (agreements carry issues, in_force,
-- signed_by, ratifications, implementation, withdrawn_by, superseded_by;
-- parties carry roles; rounds ends_on; the negotiation concluded_on and its
-- agreements) and the timeline's sentences read as English. The rows are
-- domain folds of the log, so they are dropped and re-projected from the
-- start; until a row is back, reads fold the log (service.read.queries).
DELETE FROM issue_status;
DELETE FROM negotiation_summary_issues;
DELETE FROM negotiation_summary;
DELETE FROM timeline;
DELETE FROM timeline_parties;
UPDATE projection_checkpoints
SET txid = 0, position = 0, events_applied = 0, updated_at = now()
WHERE name IN ('issue_status', 'negotiation_summary', 'timeline');
