-- Entry bundles (C2SP tlog-tiles, /ledger/tile/entries/...) serve each leaf's entry:
-- the event hash it seals. 0020 filled `entry` for the leaves sealed before it, but
-- the sealer did not write it until now: fill the leaves sealed in between. The
-- tiles themselves are written by the next sealing round (service/audit/tile_store.py
-- catches up from the stored leaves), so this migration stays quick on a large log.
ALTER TABLE ledger_leaves DISABLE TRIGGER ledger_leaves_append_only;
UPDATE ledger_leaves l SET entry = e.hash FROM events e WHERE e.id = l.event_id AND l.entry IS NULL;
ALTER TABLE ledger_leaves ENABLE TRIGGER ledger_leaves_append_only;
