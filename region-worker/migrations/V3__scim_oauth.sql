-- The SCIM OAuth server (OKTA.md §6): grants approved by workspace admins, and the
-- link from every token a grant issued back to it, so that revoking a grant (Disconnect,
-- or reuse of a code or refresh token) is one write that stops all of them at once.

-- One approval by a workspace admin: created with its authorization code, connected
-- when the code is redeemed, revoked at most once.
CREATE TABLE scim_oauth_grants (
    id               uuid PRIMARY KEY,
    team_id          uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    client_id        text NOT NULL,
    redirect_uri     text NOT NULL,
    scopes           text[] NOT NULL,
    -- Who approved it, and their user name then (kept if the user is deleted later).
    approved_by      uuid NOT NULL,
    approved_by_name text NOT NULL,
    approved_at      timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 of the authorization code: kept after the code's short life so that a
    -- second redemption is recognised and revokes what the first one issued.
    code_hash        bytea NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    code_redeemed_at timestamptz,
    last_refreshed_at timestamptz,
    -- The last SCIM call made with one of its access tokens (to the minute).
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    -- Why: 'disconnected', 'code_reuse' or 'refresh_token_reuse'.
    revoked_reason   text
);
CREATE INDEX scim_oauth_grants_team ON scim_oauth_grants (team_id, approved_at)
    WHERE revoked_at IS NULL;

-- Access and refresh tokens name the grant that issued them; a token of a revoked
-- grant is refused on lookup whatever its own state.
ALTER TABLE tokens ADD COLUMN grant_id uuid REFERENCES scim_oauth_grants (id) ON DELETE CASCADE;
CREATE INDEX tokens_grant ON tokens (grant_id) WHERE grant_id IS NOT NULL;
