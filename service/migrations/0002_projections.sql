-- Read models (projections/*) and the checkpoint of each.
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

-- projections/issue_status.py: one row per issue stream, the domain fold's view.
CREATE TABLE issue_status (
    stream_id        uuid PRIMARY KEY,
    negotiation_id   uuid NOT NULL,
    key              text NOT NULL,
    title            text NOT NULL,
    category         text NOT NULL,
    status           text NOT NULL,
    -- Every party the issue's positions, proposals, agreements and items name.
    parties          text[] NOT NULL,
    version          integer NOT NULL,
    -- Position of the event at `version` (the newest fact the row reflects).
    updated_position bigint NOT NULL,
    last_activity_on text,
    -- Lineage: the ids of the live (not retracted) events behind the row.
    lineage          uuid[] NOT NULL,
    view             jsonb NOT NULL,
    -- The exact bytes the API serves (the jsonb copy above is for ad-hoc queries).
    view_json        bytea NOT NULL,
    UNIQUE (negotiation_id, key)
);
CREATE INDEX ON issue_status (negotiation_id, status);
CREATE INDEX ON issue_status (negotiation_id, category);
CREATE INDEX ON issue_status USING gin (parties);
CREATE INDEX ON issue_status USING gin (lineage);

-- projections/negotiation_summary.py: one row per negotiation...
CREATE TABLE negotiation_summary (
    negotiation_id   uuid PRIMARY KEY,
    slug             text NOT NULL UNIQUE,
    title            text NOT NULL,
    status           text NOT NULL,
    -- Codes of every party and mediator that ever took part (the list filter).
    parties          text[] NOT NULL,
    mediators        text[] NOT NULL,
    rounds           integer NOT NULL,
    issue_counts     jsonb NOT NULL,
    -- Position of negotiation.opened: the keyset of the list.
    created_position bigint NOT NULL UNIQUE,
    version          integer NOT NULL,
    updated_position bigint NOT NULL,
    lineage          uuid[] NOT NULL,
    view_json        bytea NOT NULL,
    list_item_json   bytea NOT NULL
);
CREATE INDEX ON negotiation_summary (status, created_position);
CREATE INDEX ON negotiation_summary USING gin (parties);
CREATE INDEX ON negotiation_summary USING gin (lineage);

-- ...and, for it, the status of each of the negotiation's issues, folded by the
-- summary projection itself so that it never depends on another projection's
-- progress (each projection rebuilds alone).
CREATE TABLE negotiation_summary_issues (
    stream_id        uuid PRIMARY KEY,
    negotiation_id   uuid NOT NULL,
    key              text NOT NULL,
    version          integer NOT NULL,
    brief_json       bytea NOT NULL
);
CREATE INDEX ON negotiation_summary_issues (negotiation_id, key);

-- projections/timeline.py: one row per recorded fact.
CREATE TABLE timeline (
    event_id         uuid PRIMARY KEY,
    negotiation_id   uuid NOT NULL,
    stream_id        uuid NOT NULL,
    stream_type      text NOT NULL,
    issue_key        text,
    type             text NOT NULL,
    occurred_on      text NOT NULL,
    -- World-time order (domain.world_time.sort_key): the instant the fact's
    -- world time begins, then days before timed facts, then record order.
    world_start      timestamptz NOT NULL,
    world_timed      smallint NOT NULL,
    position         bigint NOT NULL,
    recorded_at      timestamptz NOT NULL,
    claimed_by       text[] NOT NULL,
    line             text NOT NULL,
    -- Set on record.retracted / claim.disputed rows: the fact they correct.
    retracts         uuid,
    disputes         uuid
);
CREATE INDEX ON timeline (negotiation_id, world_start, world_timed, position);
CREATE INDEX ON timeline (retracts) WHERE retracts IS NOT NULL;
CREATE INDEX ON timeline (disputes) WHERE disputes IS NOT NULL;

-- Party display names per negotiation, as known so far in log order (the
-- timeline's sentences say "Russia", not "RU").
CREATE TABLE timeline_parties (
    negotiation_id   uuid NOT NULL,
    code             text NOT NULL,
    name             text NOT NULL,
    PRIMARY KEY (negotiation_id, code)
);
