-- Accounts are Okta subjects, not email addresses (issue 14, DESIGN.md "Sign-in trust").
--
-- The first successful Okta sign-in of a user records the ID token's issuer and `sub`
-- (OIDC Core §5.7: the only stable identifier); every later sign-in must carry the same
-- pair, and a user whose SCIM externalId (Okta's user id) is set must sign in with
-- sub = externalId. A pair names at most one user of a workspace, so an email match can
-- never link a second account to it. SCIM writes never touch these columns, so an email
-- change in Okta keeps the binding.
ALTER TABLE users
    ADD COLUMN okta_issuer text,
    ADD COLUMN okta_sub    text,
    ADD COLUMN okta_bound_at timestamptz,
    ADD CONSTRAINT users_okta_subject_whole CHECK ((okta_issuer IS NULL) = (okta_sub IS NULL));
CREATE UNIQUE INDEX users_okta_subject ON users (team_id, okta_issuer, okta_sub)
    WHERE okta_sub IS NOT NULL;
