-- Custom Okta URL domains an operator allowed for a workspace (DESIGN.md, "Sign-in
-- trust"). Every workspace shares one OIDC redirect URI, so a workspace may only sign
-- in through an org Okta operates: Okta's own domains always, a custom domain only
-- while a row here allows it. `region-worker workspace allow-okta-domain` writes a
-- row, `disallow-okta-domain` deletes it; both audit. The page checks it when an admin
-- saves the domain, and the sign-in checks it again at login and at the callback, so
-- a domain disallowed later stops working at once.
CREATE TABLE okta_domain_allowances (
    team_id    uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    -- As the settings store a domain: lower case, no scheme, port or trailing dot.
    domain     text NOT NULL CHECK (domain = lower(domain) AND length(domain) BETWEEN 1 AND 253),
    allowed_at timestamptz NOT NULL DEFAULT now(),
    allowed_by text NOT NULL,
    PRIMARY KEY (team_id, domain)
);
