-- GET /events?recorded_after= / recorded_before= (and the audit's time windows) read
-- a range of record time instead of scanning the whole log (issue 15 finding 4).
-- The log reader uses its own statement for time-filtered reads
-- (service/store/log_reader.py), so this index never competes with the commit-order
-- index of unfiltered reads. Built in the migration's transaction (it holds off
-- writes while it builds: run `parley migrate` at a quiet moment on a large log).
CREATE INDEX events_recorded_at ON events (recorded_at, txid, position);
