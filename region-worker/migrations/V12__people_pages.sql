-- The People and Groups pages (issue 16): a workspace's users, searched by part of
-- their email or name, filtered by status, source and role, newest first, paged by
-- keyset on `seq` (never OFFSET); and when each last signed in. Each index serves one
-- access path of store/people.rs at 100,000 users in one workspace (see its module
-- comment for the plans and the timings measured).

-- Set when a browser session starts for the user (Okta sign-in, one-time link).
ALTER TABLE users ADD COLUMN last_sign_in_at timestamptz;

-- Substring search. pg_trgm indexes `LIKE '%…%'`; btree_gin lets the same GIN index
-- lead with `team_id`, so a search reads only its own workspace's entries, never the
-- matches of every other workspace of the region. Both extensions ship with Debian's
-- `postgresql` package (postgresql-15 provides postgresql-contrib-15) and with the
-- managed Postgres services, and both are trusted (PostgreSQL 13+): the database's
-- owner may create them without being a superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX users_search_email ON users USING gin (team_id, lower(email) gin_trgm_ops);
CREATE INDEX users_search_name ON users USING gin (team_id, lower(display_name) gin_trgm_ops);

-- The status and source filters, each in the page's order.
CREATE INDEX users_active_paging ON users (team_id, active, seq);
CREATE INDEX users_source_paging ON users (team_id, source, seq);

-- The role filter: the holders of a rare role (Admin) are found from the role.
CREATE INDEX user_roles_role ON user_roles (team_id, role_id, user_id);
