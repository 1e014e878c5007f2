-- Durable token records (hashes only) and one-time sign-in links.

-- Every bearer credential we issue. Redis holds the hot copy; this table is the truth
-- a worker falls back to when Redis lacks an entry.
CREATE TABLE tokens (
    hash         bytea PRIMARY KEY CHECK (length(hash) = 32),
    team_id      uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    kind         text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    user_id      uuid,
    -- The user's revocation epoch when the token was issued (see users.token_epoch).
    user_epoch   bigint NOT NULL DEFAULT 0,
    name         text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX tokens_team_user ON tokens (team_id, user_id) WHERE revoked_at IS NULL;

-- "Revoke everything of this user" is one increment: a token or session issued under
-- an older epoch is refused.
ALTER TABLE users ADD COLUMN token_epoch bigint NOT NULL DEFAULT 0;

-- One-time sign-in links printed by `workspace create` for a workspace's first admin.
CREATE TABLE sign_in_links (
    hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
    team_id    uuid NOT NULL,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    FOREIGN KEY (team_id, user_id) REFERENCES users (team_id, id) ON DELETE CASCADE
);
