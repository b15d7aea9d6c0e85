-- Tenants, packages, identity, usage and audit: the foundation every job and
-- route stands on. Checks mirror the domain enums so a bad value cannot be
-- written even by hand.

CREATE TABLE packages (
    name                text PRIMARY KEY CHECK (name IN ('free', 'starter', 'pro', 'enterprise')),
    users               integer NOT NULL CHECK (users >= 0),
    searches_per_day    integer NOT NULL CHECK (searches_per_day >= 0),
    contacts_per_search integer NOT NULL CHECK (contacts_per_search >= 0),
    api_access          boolean NOT NULL,
    concurrent_jobs     integer NOT NULL CHECK (concurrent_jobs >= 0),
    jobs_per_day        integer NOT NULL CHECK (jobs_per_day >= 0),
    import_rows_per_day integer NOT NULL CHECK (import_rows_per_day >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

INSERT INTO packages (name, users, searches_per_day, contacts_per_search, api_access,
                      concurrent_jobs, jobs_per_day, import_rows_per_day) VALUES
    ('free',         2,     50,   25, false,  1,    20,     1000),
    ('starter',      5,    500,  100, true,   2,   200,    20000),
    ('pro',         25,   5000,  500, true,   5,  2000,   250000),
    ('enterprise', 500, 100000, 2000, true,  20, 50000,  5000000);

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    package    text NOT NULL REFERENCES packages (name),
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    -- argon2id PHC string; NULL means the user cannot sign in with a password.
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('org_admin', 'billing_manager', 'importer', 'reviewer', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE system_roles (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('platform_admin', 'support', 'data_steward')),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    -- NULL for a system-role key (admin routes), owned by a user with system roles.
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- First characters of the key, shown so people can recognise it; not secret.
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id);

-- Per-tenant counters for one UTC day. A new day is a new row (quota_reset
-- creates it ahead of traffic; writers upsert so a missing row is never an error).
CREATE TABLE usage_daily (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day         date NOT NULL,
    searches    integer NOT NULL DEFAULT 0,
    jobs        integer NOT NULL DEFAULT 0,
    import_rows integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE audit_events (
    id               uuid PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    tenant_id        uuid REFERENCES tenants (id) ON DELETE SET NULL,
    -- Who acted: a user (possibly through an API key), or the platform itself (both NULL).
    actor_user_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_api_key_id uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    action           text NOT NULL,
    target_type      text,
    target_id        text,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id       text
);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, id);
CREATE INDEX audit_events_action_idx ON audit_events (action, id);
