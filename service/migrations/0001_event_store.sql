-- The event store: one append-only table of events, and the head of every stream.

CREATE TABLE streams (
    stream_id   uuid PRIMARY KEY,
    stream_type text NOT NULL,
    -- The negotiation a stream belongs to, for filtering the global log.
    negotiation_id uuid,
    version     integer NOT NULL DEFAULT 0 CHECK (version >= 0),
    -- Hash of the stream's last event: the next event chains from it.
    head_hash   bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
);

CREATE TABLE events (
    position        bigserial PRIMARY KEY,
    -- The writing transaction: readers follow (txid, position) and stop below the
    -- oldest running transaction, so a late commit with a low position is never skipped.
    txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id              uuid NOT NULL UNIQUE,
    stream_id       uuid NOT NULL,
    stream_type     text NOT NULL,
    negotiation_id  uuid,
    version         integer NOT NULL CHECK (version >= 1),
    type            text NOT NULL,
    schema_version  integer NOT NULL,
    -- The canonical JSON bytes of the whole event exactly as hashed; never re-serialised.
    body            bytea NOT NULL,
    -- Queryable copy of the fact's own fields.
    data            jsonb NOT NULL,
    occurred_on     text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    recorded_by     text NOT NULL,
    claimed_by      text[] NOT NULL DEFAULT '{}',
    source          jsonb,
    note            text,
    correlation_id  uuid,
    causation_id    uuid,
    -- sha256 of what the writer asked to record: an idempotent retry must match it.
    content_digest  bytea NOT NULL,
    -- sha256(hash of the previous event of the stream || body)
    hash            bytea NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE INDEX events_commit_order ON events (txid, position);
CREATE INDEX events_negotiation ON events (negotiation_id, txid, position);
CREATE INDEX events_type ON events (type, txid, position);

-- Append-only, enforced by PostgreSQL itself and not only by the code.
CREATE FUNCTION parley_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION parley_refuse_event_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION parley_refuse_event_change();
