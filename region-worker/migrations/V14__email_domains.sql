-- Email domains a workspace claims for sign-in by email domain (home realm discovery,
-- issue 16): at `/auth`, an email of a verified domain that no workspace knows yet goes
-- to the claiming workspace's Okta, where just-in-time provisioning can create the user.
--
-- A claim is pending until the worker found `token` in the domain's DNS TXT record
-- (`_closedloop-challenge.<domain>`): only the domain's owner can publish it, so no
-- tenant can route another company's users to its own Okta login page. A pending claim
-- routes nothing; any number of workspaces may hold one. A verified claim is unique per
-- domain in the region (the partial unique index): a second workspace's verification is
-- refused until an operator releases the first (`region-worker workspace
-- release-domain`). Claims, verifications, removals and releases are audited.
CREATE TABLE email_domains (
    team_id     uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    -- Normalised (store::domains::EmailDomain): lower-case ASCII (IDNA), no final dot.
    domain      text NOT NULL CHECK (domain = lower(domain) AND length(domain) BETWEEN 3 AND 253),
    -- The random value the TXT record must carry; public once published, so not a
    -- secret: it only binds the record to this claim.
    token       text NOT NULL CHECK (length(token) BETWEEN 20 AND 100),
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    claimed_by  text NOT NULL,
    verified_at timestamptz,
    PRIMARY KEY (team_id, domain)
);

-- One verified claim per domain in the region; also the sign-in's lookup.
CREATE UNIQUE INDEX email_domains_verified ON email_domains (domain) WHERE verified_at IS NOT NULL;
