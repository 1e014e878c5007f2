-- MCP clients connecting with OAuth (issue 17): the clients that registered
-- dynamically (RFC 7591; clients identified by a Client ID Metadata Document are
-- fetched and cached in Redis, never stored here), the grants users approved for
-- them, and the refresh tokens of those grants.

-- A client registered with RFC 7591. Public clients only (no secret); pruned when
-- unused for a while (routes/mcp/register.rs), since anyone may register one.
CREATE TABLE mcp_clients (
    client_id     text PRIMARY KEY,
    client_name   text NOT NULL,
    redirect_uris text[] NOT NULL CHECK (cardinality(redirect_uris) BETWEEN 1 AND 10),
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mcp_clients_last_used ON mcp_clients (last_used_at);

-- One approval by a user for one MCP client: created with its authorization code,
-- connected when the code is redeemed, revoked at most once. Tokens carry the user's
-- revocation epoch of the approval, so Universal Logout and deactivation end them.
CREATE TABLE mcp_grants (
    id               uuid PRIMARY KEY,
    team_id          uuid NOT NULL,
    user_id          uuid NOT NULL,
    user_epoch       bigint NOT NULL,
    client_id        text NOT NULL,
    -- The name the client gave itself (unverified), for the Connected apps list.
    client_name      text NOT NULL,
    redirect_uri     text NOT NULL,
    -- The RFC 8707 resource the grant's access tokens are for (their audience).
    resource         text NOT NULL,
    scopes           text[] NOT NULL,
    approved_at      timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 of the authorization code, kept so that a second redemption is
    -- recognised and revokes the grant.
    code_hash        bytea NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    code_redeemed_at timestamptz,
    last_refreshed_at timestamptz,
    revoked_at       timestamptz,
    -- 'disconnected', 'code_reuse', 'refresh_token_reuse' or 'revoked_by_client'.
    revoked_reason   text,
    FOREIGN KEY (team_id, user_id) REFERENCES users (team_id, id) ON DELETE CASCADE
);
CREATE INDEX mcp_grants_user ON mcp_grants (team_id, user_id, approved_at)
    WHERE revoked_at IS NULL;

-- Refresh tokens of MCP grants, only ever checked here, under a row lock, at the token
-- endpoint: rotated on every use; a retired one presented again ends the grant.
CREATE TABLE mcp_refresh_tokens (
    hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
    grant_id   uuid NOT NULL REFERENCES mcp_grants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    retired_at timestamptz
);
CREATE INDEX mcp_refresh_tokens_grant ON mcp_refresh_tokens (grant_id);

-- Access tokens of MCP grants are personal MCP tokens (`tokens` rows with the user and
-- epoch, no public id) naming their grant, so that ending a grant revokes them.
ALTER TABLE tokens ADD COLUMN mcp_grant_id uuid REFERENCES mcp_grants (id) ON DELETE CASCADE;
CREATE INDEX tokens_mcp_grant ON tokens (mcp_grant_id) WHERE mcp_grant_id IS NOT NULL;
