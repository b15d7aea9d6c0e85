-- Members join by invitation and set their own password: an inviter never
-- chooses another person's password, and an existing account joins a tenant
-- only when its owner accepts. The token is shown once to the inviter and
-- stored as its SHA-256, like session tokens and API keys.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('org_admin', 'billing_manager', 'importer', 'reviewer', 'member')),
    token_hash  bytea NOT NULL UNIQUE,
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  timestamptz,
    CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
-- One open invitation per address and tenant: inviting again replaces it.
CREATE UNIQUE INDEX invitations_open_key ON invitations (tenant_id, lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_tenant_idx ON invitations (tenant_id, id);
