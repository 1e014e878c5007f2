-- Foundation schema: the region stamp, workspaces, roles, users, groups, memberships,
-- Okta settings and the audit trail. SCIM resources keep their canonical JSON in
-- `resource` beside extracted, indexed columns so that every filter runs as SQL.

CREATE TABLE region_stamp (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    region     text NOT NULL,
    stamped_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspaces (
    team_id    uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    region     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Workspace roles, exposed to Okta as SCIM entitlements at /Roles.
CREATE TABLE roles (
    team_id      uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    key          text NOT NULL CHECK (key IN ('admin', 'member', 'viewer')),
    display_name text NOT NULL,
    description  text NOT NULL,
    is_default   boolean NOT NULL DEFAULT false,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (team_id, id),
    UNIQUE (team_id, key)
);

CREATE TABLE users (
    team_id      uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    -- Stable order for paging: insertion order, never reused.
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    user_name    text NOT NULL,
    external_id  text,
    active       boolean NOT NULL DEFAULT true,
    -- The primary email (userName when it is an email, else emails[primary]).
    email        text,
    display_name text,
    given_name   text,
    family_name  text,
    -- Canonical SCIM JSON without id, meta, groups, roles and password.
    resource     jsonb NOT NULL,
    version      bigint NOT NULL DEFAULT 1,
    -- How the user came to exist: 'scim', 'jit' (first Okta sign-in) or 'admin'.
    source       text NOT NULL DEFAULT 'scim' CHECK (source IN ('scim', 'jit', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, id)
);
CREATE UNIQUE INDEX users_user_name_ci ON users (team_id, lower(user_name));
CREATE INDEX users_external_id ON users (team_id, external_id);
CREATE INDEX users_email_ci ON users (team_id, lower(email));
CREATE INDEX users_paging ON users (team_id, seq);
-- /auth finds the workspaces of an email across the region.
CREATE INDEX users_email_region ON users (lower(email));

CREATE TABLE user_roles (
    team_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role_id uuid NOT NULL,
    PRIMARY KEY (team_id, user_id, role_id),
    FOREIGN KEY (team_id, user_id) REFERENCES users (team_id, id) ON DELETE CASCADE,
    FOREIGN KEY (team_id, role_id) REFERENCES roles (team_id, id) ON DELETE CASCADE
);

CREATE TABLE groups (
    team_id      uuid NOT NULL REFERENCES workspaces (team_id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    display_name text NOT NULL,
    external_id  text,
    -- Canonical SCIM JSON without id, meta and members.
    resource     jsonb NOT NULL,
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, id)
);
CREATE INDEX groups_display_name_ci ON groups (team_id, lower(display_name));
CREATE INDEX groups_external_id ON groups (team_id, external_id);
CREATE INDEX groups_paging ON groups (team_id, seq);

-- Membership is a set: adding and removing a member are single-row statements.
CREATE TABLE group_members (
    team_id  uuid NOT NULL,
    group_id uuid NOT NULL,
    user_id  uuid NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, group_id, user_id),
    FOREIGN KEY (team_id, group_id) REFERENCES groups (team_id, id) ON DELETE CASCADE,
    FOREIGN KEY (team_id, user_id) REFERENCES users (team_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_user ON group_members (team_id, user_id);

-- The workspace's Okta OIDC connection. The client secret is AES-256-GCM ciphertext
-- under the region key (nonce || ciphertext), never plaintext.
CREATE TABLE okta_settings (
    team_id                uuid PRIMARY KEY REFERENCES workspaces (team_id) ON DELETE CASCADE,
    okta_domain            text NOT NULL,
    issuer                 text NOT NULL,
    client_id              text NOT NULL,
    client_secret_sealed   bytea NOT NULL,
    key_id                 text NOT NULL,
    sign_in_enabled        boolean NOT NULL DEFAULT true,
    jit_provisioning       boolean NOT NULL DEFAULT false,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    updated_by             text
);
CREATE INDEX okta_settings_issuer ON okta_settings (issuer, client_id);

-- Every provisioning change, sign-in, grant and logout. Never a raw token or secret.
CREATE TABLE audit_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id    uuid REFERENCES workspaces (team_id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id text
);
CREATE INDEX audit_events_team ON audit_events (team_id, at);
