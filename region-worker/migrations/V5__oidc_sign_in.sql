-- Okta sign-in (issue 6): what a browser session needs beyond its token row.
--
-- A session is a token of kind 'ses' (hash only, V2) with an absolute expiry. This table
-- adds its sliding idle expiry (last_seen_at, written at most once a minute; Redis holds
-- the hot copy) and, for an Okta sign-in, what sign-out needs: the org's issuer and the
-- ID token for Okta's logout `id_token_hint`, sealed under the region key (AES-256-GCM,
-- bound to this row) with the id of the key that sealed it. Never a plaintext token.
CREATE TABLE browser_sessions (
    token_hash      bytea PRIMARY KEY REFERENCES tokens (hash) ON DELETE CASCADE,
    team_id         uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    -- How the session began: 'okta' or 'sign-in-link'.
    method          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL,
    okta_issuer     text,
    id_token_sealed bytea,
    key_id          text,
    CHECK ((id_token_sealed IS NULL) = (key_id IS NULL))
);
CREATE INDEX browser_sessions_user ON browser_sessions (team_id, user_id);
