-- Personal API and MCP tokens (issue 7). They are rows of `tokens` (V2) like every
-- credential we issue, stored as hashes only; this adds the public id by which their
-- owner lists and revokes them (the hash never leaves the worker), and the index that
-- lists a user's tokens newest first.
--
-- Revoking everything of a user (Universal Logout) touches none of these rows: it
-- raises `users.token_epoch` (V2), and a token issued under an older epoch is refused
-- and no longer listed.

ALTER TABLE tokens ADD COLUMN id uuid;
CREATE UNIQUE INDEX tokens_id ON tokens (id) WHERE id IS NOT NULL;
CREATE INDEX tokens_personal ON tokens (team_id, user_id, created_at DESC, id DESC)
    WHERE id IS NOT NULL AND revoked_at IS NULL;
