-- A tenant's connection to its HighLevel (CRM) Location, and what HighLevel
-- tells us about it (issue 15).
--
-- Secrets (OAuth access and refresh tokens, a Private Integration key) are
-- stored sealed (AES-256-GCM, crates/security/src/sealing.rs) with the id of
-- the key that sealed them, never in clear. A disconnect destroys them.

-- One connection per tenant: connecting again replaces it.
CREATE TABLE crm_connections (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    method           text NOT NULL CHECK (method IN ('oauth', 'private_integration')),
    status           text NOT NULL CHECK (status IN ('connected', 'needs_reconnect', 'disconnected')),
    location_id      text,
    location_name    text,
    company_id       text,
    scopes           text[] NOT NULL DEFAULT '{}',
    -- Sealed secrets and their key ids: the access token (OAuth) or the
    -- Private Integration key; the refresh token (OAuth only).
    token_sealed     bytea,
    token_key_id     text,
    refresh_sealed   bytea,
    refresh_key_id   text,
    -- When the access token expires (OAuth).
    expires_at       timestamptz,
    connected_at     timestamptz,
    connected_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    last_error       text,
    -- Bumped by every token change: a session that refreshed compares it.
    token_version    bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((token_sealed IS NULL) = (token_key_id IS NULL)),
    CHECK ((refresh_sealed IS NULL) = (refresh_key_id IS NULL)),
    CHECK (status = 'disconnected' OR token_sealed IS NOT NULL)
);
CREATE INDEX crm_connections_location_idx ON crm_connections (location_id);

-- OAuth `state`: random, stored as its SHA-256, bound to the tenant and the
-- user who clicked Connect, single use, short lived.
CREATE TABLE crm_oauth_states (
    state_hash  bytea PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    whitelabel  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- Every webhook delivery accepted, by HighLevel's webhookId: a replayed
-- delivery finds its id here and has no effect.
CREATE TABLE highlevel_webhooks (
    webhook_id  text PRIMARY KEY,
    kind        text NOT NULL,
    location_id text,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX highlevel_webhooks_received_idx ON highlevel_webhooks (received_at);

-- Contact changes HighLevel reported for a connected Location, for the pull
-- (issue 16) to apply; the tenant is the connection's at receipt.
CREATE TABLE crm_contact_events (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    location_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('ContactCreate', 'ContactUpdate', 'ContactDelete')),
    crm_contact_id text NOT NULL,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz
);
CREATE INDEX crm_contact_events_pending_idx ON crm_contact_events (tenant_id, id) WHERE applied_at IS NULL;
