-- Deactivating and reactivating a user, and stamping a sign-in, rewrite the user's row
-- without changing any column that an index reads, so PostgreSQL can update it in
-- place (a heap-only tuple): no new entry in any of the table's eleven indexes, two of
-- them trigram GIN indexes. Two things stood in the way (issue 18):
--
-- 1. `users_active_paging (team_id, active, seq)` read `active`, so every change of
--    status wrote a new entry into every index. The People page's status filter now
--    reads the deactivated users from their own small table, kept by the triggers
--    below; the active ones are the page order with the deactivated left out.
-- 2. A full page has no room for the new version of a row. Pages of `users` now keep
--    15 % free. Only pages written from now on do; the rows already stored move to
--    such pages as they are updated.
--
-- Measured with pgbench on 100,000 users, the status UPDATE alone went from 2,817 to
-- 4,819 per second (BENCHMARKS.md, "What each change bought").

CREATE TABLE deactivated_users (
    team_id uuid   NOT NULL,
    -- The user's `users.seq`: the People page's order, so that a page of deactivated
    -- users is a range of this table's primary key.
    seq     bigint NOT NULL,
    PRIMARY KEY (team_id, seq)
);

INSERT INTO deactivated_users (team_id, seq) SELECT team_id, seq FROM users WHERE NOT active;

CREATE FUNCTION track_deactivated_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND NOT OLD.active THEN
        DELETE FROM deactivated_users WHERE team_id = OLD.team_id AND seq = OLD.seq;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NOT NEW.active THEN
        INSERT INTO deactivated_users (team_id, seq) VALUES (NEW.team_id, NEW.seq);
    END IF;
    RETURN NULL;
END
$$;

-- The WHEN clauses keep the function from running for the rows it has nothing to do
-- for: an update that leaves `active` as it was (every SCIM update sets it), an
-- active user created or deleted.
CREATE TRIGGER users_deactivated_insert AFTER INSERT ON users
    FOR EACH ROW WHEN (NOT NEW.active) EXECUTE FUNCTION track_deactivated_users();
CREATE TRIGGER users_deactivated_update AFTER UPDATE OF active ON users
    FOR EACH ROW WHEN (OLD.active IS DISTINCT FROM NEW.active) EXECUTE FUNCTION track_deactivated_users();
CREATE TRIGGER users_deactivated_delete AFTER DELETE ON users
    FOR EACH ROW WHEN (NOT OLD.active) EXECUTE FUNCTION track_deactivated_users();

DROP INDEX users_active_paging;

ALTER TABLE users SET (fillfactor = 85);
