-- Incremental CRM pulls (issue 16): after a full first pull, a pull asks
-- HighLevel only for contacts updated since the last pull's high-water mark
-- (`pulled_through`, HighLevel's `dateUpdated`), and stages a contact only
-- when its content differs from what was last staged from it.
ALTER TABLE crm_connections ADD COLUMN pulled_through timestamptz;

CREATE TABLE crm_pulled (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    crm_contact_id text NOT NULL,
    content_hash   bytea NOT NULL,
    pulled_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, crm_contact_id)
);
