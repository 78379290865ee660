-- Read models (projections/*): the checkpoint of each. The projections' own
-- tables are created in this same migration by their modules' `schema` steps
-- (projections/<name>.py, SCHEMA_0002): service.migrate appends them here, in
-- the order of projections.PROJECTIONS.
--
-- Every projection writes its rows and its checkpoint in one transaction, so a
-- row is never ahead of, or behind, the checkpoint that says what it reflects.
--
-- Index and constraint names are left to PostgreSQL on purpose: a rebuild
-- creates `parley_rebuild.<table> (LIKE <table> INCLUDING ALL)`, which names
-- them the same way, so the swapped-in table looks exactly like a migrated one.

CREATE TABLE projection_checkpoints (
    name           text PRIMARY KEY,
    -- The last event applied, in the log's (txid, position) commit order.
    txid           bigint NOT NULL DEFAULT 0,
    position       bigint NOT NULL DEFAULT 0,
    -- Events applied since the projection (re)started from the beginning of the
    -- log; advanced in the same transaction as the rows, so it counts each once.
    events_applied bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

INSERT INTO projection_checkpoints (name)
VALUES ('issue_status'), ('negotiation_summary'), ('timeline');
