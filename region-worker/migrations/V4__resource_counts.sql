-- Exact resource counts without counting rows: a SCIM list reports totalResults on
-- every page, and counting 100,000 users per page would dominate paging. Each insert
-- or delete adds ±1 to one of 64 shards (chosen at random, so concurrent writers
-- rarely wait on the same row); the total is the sum of at most 64 rows, and it is
-- exact within the reader's snapshot.

CREATE TABLE resource_counts (
    team_id uuid NOT NULL,
    kind    text NOT NULL CHECK (kind IN ('users', 'groups')),
    shard   smallint NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (team_id, kind, shard)
) WITH (
    -- Every write updates a row here: leave room on each page for HOT updates and
    -- vacuum often, so the 64 rows never hide among thousands of dead versions.
    fillfactor = 30,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000
);

CREATE FUNCTION count_resources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO resource_counts (team_id, kind, shard, n)
        VALUES (NEW.team_id, TG_ARGV[0], floor(random() * 64)::smallint, 1)
        ON CONFLICT (team_id, kind, shard) DO UPDATE SET n = resource_counts.n + 1;
    ELSE
        INSERT INTO resource_counts (team_id, kind, shard, n)
        VALUES (OLD.team_id, TG_ARGV[0], floor(random() * 64)::smallint, -1)
        ON CONFLICT (team_id, kind, shard) DO UPDATE SET n = resource_counts.n - 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_count AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION count_resources('users');
CREATE TRIGGER groups_count AFTER INSERT OR DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION count_resources('groups');

INSERT INTO resource_counts (team_id, kind, shard, n)
SELECT team_id, 'users', 0, count(*) FROM users GROUP BY team_id;
INSERT INTO resource_counts (team_id, kind, shard, n)
SELECT team_id, 'groups', 0, count(*) FROM groups GROUP BY team_id;

-- Membership changes append a row here instead of updating the group's row, so that
-- concurrent one-member PATCHes of a large group never wait for one another. A
-- group's version (its ETag) is its own version plus the id of its newest change:
-- both only grow, so every change gives a new version.
CREATE TABLE group_member_changes (
    -- No primary key: the only index is the per-group one, which every read uses.
    id       bigint GENERATED ALWAYS AS IDENTITY,
    team_id  uuid NOT NULL,
    group_id uuid NOT NULL,
    FOREIGN KEY (team_id, group_id) REFERENCES groups (team_id, id) ON DELETE CASCADE
);
CREATE INDEX group_member_changes_group ON group_member_changes (team_id, group_id, id DESC);
