-- What Business Contacts pushed to a tenant's CRM, one row per tenant and
-- contact (issue 16): the HighLevel contact id, a hash of the content sent,
-- and the last attempt's outcome. The row is written as an intent
-- (`pending`) before the call and settled after it, so a worker killed in
-- between leaves a `pending` row the next attempt reconciles (HighLevel is
-- searched by email and phone before anything is created again).
CREATE TABLE crm_pushes (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id     uuid NOT NULL REFERENCES contacts (id),
    -- Time-ordered; renewed by every attempt: the history's cursor.
    id             uuid NOT NULL UNIQUE,
    crm_contact_id text,
    location_id    text NOT NULL,
    content_hash   bytea NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'pushed', 'failed', 'skipped')),
    error          text,
    job_id         uuid,
    attempted_at   timestamptz NOT NULL DEFAULT now(),
    pushed_at      timestamptz,
    PRIMARY KEY (tenant_id, contact_id)
);
CREATE INDEX crm_pushes_list ON crm_pushes (tenant_id, id);
