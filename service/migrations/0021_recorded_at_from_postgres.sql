-- Record time is PostgreSQL's clock (DESIGN v2, "Record time is provable").
--
-- The writer takes recorded_at from the database inside the inserting transaction
-- (the store reads now() in the statement that locks the stream heads) and hashes it
-- into the body. This trigger refuses any other time: one outside the inserting
-- transaction's lifetime (a backdated or future-dated row), or a body that carries
-- another time than the row. It runs for every role; the application's role owns
-- nothing and cannot disable it.
CREATE FUNCTION parley_check_recorded_at() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hashed text := convert_from(NEW.body, 'UTF8')::jsonb ->> 'recorded_at';
BEGIN
    IF NEW.recorded_at < transaction_timestamp() OR NEW.recorded_at > clock_timestamp() THEN
        RAISE EXCEPTION 'recorded_at % is not the time of this insert (PostgreSQL''s clock, %)',
            NEW.recorded_at, transaction_timestamp()
            USING ERRCODE = 'check_violation';
    END IF;
    IF hashed IS DISTINCT FROM to_char(NEW.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') THEN
        RAISE EXCEPTION 'the hashed body records %, the row %', hashed, NEW.recorded_at
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_recorded_at_is_postgres_time
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION parley_check_recorded_at();
