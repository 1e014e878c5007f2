-- One Okta app (issuer and client id) belongs to one workspace: Universal Logout finds
-- the workspace by the app that signed the request (the JWT's iss and sub), so two
-- workspaces sharing an app would make that lookup ambiguous.
DROP INDEX okta_settings_issuer;
CREATE UNIQUE INDEX okta_settings_app ON okta_settings (issuer, client_id);
