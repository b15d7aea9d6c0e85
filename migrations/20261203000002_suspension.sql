-- Tenant suspension (terms: "to protect the service, comply with law,
-- resolve abuse, or address security concerns"): why, since when, by whom.
-- tenants.status already says 'suspended'; nothing is deleted.
ALTER TABLE tenants
    ADD COLUMN suspended_reason text CHECK (length(suspended_reason) <= 500),
    ADD COLUMN suspended_at     timestamptz,
    ADD COLUMN suspended_by     uuid;
