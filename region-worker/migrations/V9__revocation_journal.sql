-- The revocation journal: every revocation, numbered without gaps in commit order, so
-- that a Redis that lost some of them (restarted from an older snapshot, replaced by a
-- lagging replica, or unreachable when they were published) can be told apart from
-- one that has them all, and be brought up to date. See store/revocations.rs.
--
-- Entries are written by triggers, not by the code paths that revoke: a revocation
-- reaches the journal whichever code path made it (a token, a user's epoch, a grant,
-- a deleted user or grant), including paths written later.

-- The last number handed out. One row, updated by the journal trigger as the *last*
-- thing a revoking transaction does (the triggers are deferred to commit), so its row
-- lock orders the numbers by commit: a transaction that takes number n holds the lock
-- until it commits, and the next one reads n once that commit is visible. A SEQUENCE
-- would not do: `nextval` is not transactional, so numbers are handed out in start
-- order, commit in any order, and leave gaps on rollback; a reader that sees 7
-- committed could not know whether 6 is still coming.
CREATE TABLE revocation_counter (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint NOT NULL
);
INSERT INTO revocation_counter (seq) VALUES (0);

-- One row per revocation. Exactly one of: a token hash; a user and the epoch its
-- tokens must carry from now on; a SCIM OAuth grant.
CREATE TABLE revocation_journal (
    seq        bigint PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    token_hash bytea,
    team_id    uuid,
    user_id    uuid,
    epoch      bigint,
    grant_id   uuid,
    CHECK (
        (token_hash IS NOT NULL)::int
        + (user_id IS NOT NULL AND team_id IS NOT NULL AND epoch IS NOT NULL)::int
        + (grant_id IS NOT NULL)::int = 1
    )
);
CREATE INDEX revocation_journal_at ON revocation_journal (at);

CREATE FUNCTION journal_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    UPDATE revocation_counter SET seq = seq + 1 RETURNING seq INTO n;
    IF TG_TABLE_NAME = 'tokens' THEN
        INSERT INTO revocation_journal (seq, token_hash) VALUES (n, OLD.hash);
    ELSIF TG_TABLE_NAME = 'users' THEN
        -- A deleted user's tokens go with the row; the raised epoch stops their hot
        -- copies, as users::delete publishes.
        INSERT INTO revocation_journal (seq, team_id, user_id, epoch)
        VALUES (n, OLD.team_id, OLD.id,
                CASE WHEN TG_OP = 'DELETE' THEN OLD.token_epoch + 1 ELSE NEW.token_epoch END);
    ELSE
        INSERT INTO revocation_journal (seq, grant_id) VALUES (n, OLD.id);
    END IF;
    -- Delivered at commit, to every worker listening (store/revocations.rs).
    PERFORM pg_notify('closedloop_revocations', n::text);
    RETURN NULL;
END $$;

-- A token revoked. Refresh tokens are left out: they are only ever checked in Postgres
-- (under a row lock, at the token endpoint), never from Redis. Deleted tokens are
-- covered by their user's or grant's entry, except operator SCIM tokens, which go
-- only with their workspace.
CREATE CONSTRAINT TRIGGER journal_token_revoked
    AFTER UPDATE OF revoked_at ON tokens DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL AND OLD.kind <> 'rt')
    EXECUTE FUNCTION journal_revocation();
CREATE CONSTRAINT TRIGGER journal_token_deleted
    AFTER DELETE ON tokens DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND OLD.kind <> 'rt'
          AND OLD.user_id IS NULL AND OLD.grant_id IS NULL)
    EXECUTE FUNCTION journal_revocation();

-- A user's revocation epoch raised (Universal Logout, deactivation, …) or the user
-- deleted.
CREATE CONSTRAINT TRIGGER journal_user_epoch
    AFTER UPDATE OF token_epoch ON users DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.token_epoch > OLD.token_epoch)
    EXECUTE FUNCTION journal_revocation();
CREATE CONSTRAINT TRIGGER journal_user_deleted
    AFTER DELETE ON users DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    EXECUTE FUNCTION journal_revocation();

-- A SCIM OAuth grant revoked or deleted.
CREATE CONSTRAINT TRIGGER journal_grant_revoked
    AFTER UPDATE OF revoked_at ON scim_oauth_grants DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION journal_revocation();
CREATE CONSTRAINT TRIGGER journal_grant_deleted
    AFTER DELETE ON scim_oauth_grants DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL)
    EXECUTE FUNCTION journal_revocation();
