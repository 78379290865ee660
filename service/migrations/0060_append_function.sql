-- The append in one round trip (service.store.append; issue 12, DESIGN v2 "Scale
-- beyond one machine"): one call locks the stream heads, checks the event ids,
-- checks the expected versions, computes each event's version, finishes its
-- canonical body, chains its hash, inserts the events and moves the heads.
--
-- The writer sends each body in two pieces around what only the server knows:
--   body = head || <recorded_at as text> || tail || <version> || '}'
-- (the canonical JSON sorts its keys and "version" is the last of them; the
-- writer builds head and tail with the same encoder as the whole body, so the
-- bytes are exactly those service.store.canonical would produce). The hash is
-- sha256(previous hash || body), as docs/audit-format.md defines it.
--
-- Outcomes:
--   * some ids are already stored: nothing is locked or written, and the rows
--     ('exists', id, content_digest) are returned (the writer answers as a retry);
--   * a stream is not at its expected version: SQLSTATE PV409 with the detail
--     "<stream id> <expected> <actual>" (the statement, and so every lock and new
--     head it took, is undone; in a caller's transaction, its savepoint is);
--   * otherwise the stored events ('stored', the columns of EVENT_COLUMNS).
-- p_wake: NOTIFY parley_events (service.store.log_reader.NOTIFY_CHANNEL) with it.
-- Record time: recorded_at given per event, else now() of the transaction (the
-- events_recorded_at_is_postgres_time trigger still checks either).

CREATE FUNCTION parley_append(
    p_streams uuid[], p_stream_types text[], p_negotiations uuid[], p_expected int[],
    p_ids uuid[], p_stream_ids uuid[], p_event_stream_types text[], p_event_negotiations uuid[],
    p_types text[], p_schema_versions int[], p_heads bytea[], p_tails bytea[], p_data jsonb[],
    p_occurred_on text[], p_recorded_at timestamptz[], p_recorded_by text[], p_claimed_by jsonb[],
    p_sources jsonb[], p_notes text[], p_correlations uuid[], p_causations uuid[], p_digests bytea[],
    p_wake boolean
) RETURNS TABLE (
    outcome text, "position" bigint, txid bigint, id uuid, stream_id uuid, stream_type text,
    negotiation_id uuid, version int, type text, schema_version int, body bytea, occurred_on text,
    recorded_at timestamptz, recorded_by text, claimed_by text[], source text, note text,
    correlation_id uuid, causation_id uuid, hash bytea, content_digest bytea
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(array_length(p_ids, 1), 0);
    versions int[];
    hashes bytea[];
    locked uuid[];
    s int;
    moment timestamptz;
    v_versions int[] := '{}';
    v_bodies bytea[] := '{}';
    v_hashes bytea[] := '{}';
    v_recorded timestamptz[] := '{}';
    one_body bytea;
BEGIN
    IF EXISTS (SELECT 1 FROM events e WHERE e.id = ANY (p_ids)) THEN
        RETURN QUERY SELECT 'exists', NULL::bigint, NULL::bigint, e.id, NULL::uuid, NULL::text, NULL::uuid,
            NULL::int, NULL::text, NULL::int, NULL::bytea, NULL::text, NULL::timestamptz, NULL::text,
            NULL::text[], NULL::text, NULL::text, NULL::uuid, NULL::uuid, NULL::bytea, e.content_digest
        FROM events e WHERE e.id = ANY (p_ids);
        RETURN;
    END IF;

    -- Lock every head in stream id order (p_streams is sorted), creating new streams:
    -- two multi-stream appends cannot deadlock. DO UPDATE, unlike DO NOTHING, returns
    -- and locks a head that exists, or that a concurrent writer has just created.
    WITH heads AS (
        INSERT INTO streams AS st (stream_id, stream_type, negotiation_id)
        SELECT h.stream_id, h.stream_type, h.negotiation_id
        FROM unnest(p_streams, p_stream_types, p_negotiations) AS h(stream_id, stream_type, negotiation_id)
        ORDER BY h.stream_id
        ON CONFLICT (stream_id) DO UPDATE SET stream_id = EXCLUDED.stream_id
        RETURNING st.stream_id, st.version, st.head_hash
    )
    SELECT array_agg(heads.stream_id ORDER BY heads.stream_id),
           array_agg(heads.version ORDER BY heads.stream_id),
           array_agg(heads.head_hash ORDER BY heads.stream_id)
    INTO locked, versions, hashes
    FROM heads;

    FOR s IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
        IF p_expected[s] IS NOT NULL AND p_expected[s] <> versions[s] THEN
            RAISE EXCEPTION 'stream % is at version %, not %', p_streams[s], versions[s], p_expected[s]
                USING ERRCODE = 'PV409', DETAIL = format('%s %s %s', p_streams[s], p_expected[s], versions[s]);
        END IF;
    END LOOP;

    FOR i IN 1 .. n LOOP
        s := array_position(locked, p_stream_ids[i]);
        versions[s] := versions[s] + 1;
        moment := coalesce(p_recorded_at[i], now());
        one_body := p_heads[i]
            || convert_to(to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'UTF8')
            || p_tails[i] || convert_to(versions[s]::text, 'UTF8') || '\x7d'::bytea;
        hashes[s] := sha256(hashes[s] || one_body);
        v_versions := v_versions || versions[s];
        v_bodies := v_bodies || one_body;
        v_hashes := v_hashes || hashes[s];
        v_recorded := v_recorded || moment;
    END LOOP;

    UPDATE streams st SET version = m.version, head_hash = m.head_hash
    FROM unnest(locked, versions, hashes) AS m(stream_id, version, head_hash)
    WHERE st.stream_id = m.stream_id;

    -- Readers are woken when this transaction commits (a writer that commits itself
    -- sends the wake-up after its commit instead: NOTIFY's lock lasts until the
    -- commit is flushed, and would serialise every appending commit).
    IF p_wake THEN
        PERFORM pg_notify('parley_events', '');
    END IF;

    RETURN QUERY
    WITH inserted AS (
        INSERT INTO events AS ev (
            id, stream_id, stream_type, negotiation_id, version, type, schema_version,
            body, data, occurred_on, recorded_at, recorded_by, claimed_by, source, note,
            correlation_id, causation_id, content_digest, hash)
        SELECT b.id, b.stream_id, b.stream_type, b.negotiation_id, b.version, b.type, b.schema_version,
            b.body, b.data, b.occurred_on, b.recorded_at, b.recorded_by,
            ARRAY(SELECT jsonb_array_elements_text(b.claimed_by)), b.source, b.note,
            b.correlation_id, b.causation_id, b.content_digest, b.hash
        FROM unnest(
            p_ids, p_stream_ids, p_event_stream_types, p_event_negotiations, v_versions, p_types,
            p_schema_versions, v_bodies, p_data, p_occurred_on, v_recorded, p_recorded_by, p_claimed_by,
            p_sources, p_notes, p_correlations, p_causations, p_digests, v_hashes)
            WITH ORDINALITY AS b(id, stream_id, stream_type, negotiation_id, version, type,
                schema_version, body, data, occurred_on, recorded_at, recorded_by, claimed_by,
                source, note, correlation_id, causation_id, content_digest, hash, ord)
        ORDER BY b.ord
        RETURNING ev.position, ev.txid, ev.id, ev.stream_id, ev.stream_type, ev.negotiation_id,
            ev.version, ev.type, ev.schema_version, ev.body, ev.occurred_on, ev.recorded_at,
            ev.recorded_by, ev.claimed_by, ev.source, ev.note, ev.correlation_id, ev.causation_id,
            ev.hash, ev.content_digest
    )
    SELECT 'stored', ins.position, ins.txid::text::bigint, ins.id, ins.stream_id, ins.stream_type,
        ins.negotiation_id, ins.version, ins.type, ins.schema_version, ins.body, ins.occurred_on,
        ins.recorded_at, ins.recorded_by, ins.claimed_by, ins.source::text, ins.note, ins.correlation_id,
        ins.causation_id, ins.hash, ins.content_digest
    FROM inserted ins ORDER BY ins.position;
END;
$$;
